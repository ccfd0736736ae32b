import ArgumentParser

@main
struct OnnxServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "onnx-serve",
        abstract: "Serve ONNX models over HTTP with a CPU engine of its own.",
        subcommands: [RunCommand.self, InspectCommand.self, BenchCommand.self]
    )
}
