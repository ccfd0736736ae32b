import ArgumentParser

@main
struct OnnxServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "onnx-serve",
        abstract: "Serve ONNX models over HTTP with a CPU engine of its own.",
        subcommands: [ServeCommand.self, RunCommand.self, InspectCommand.self, BenchCommand.self]
    )
}
