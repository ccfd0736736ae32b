import ArgumentParser
import Engine
import Foundation
import ONNX
import Tensors

/// `onnx-serve run`: one inference over inputs stored as serialized TensorProtos.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a model once on inputs stored as TensorProto files (the ONNX backend test format).",
        discussion: """
            Each --input is FILE.pb (matched to the graph inputs that are not initializers, in order) \
            or NAME=FILE.pb. Writes DIR/output_K.pb for each graph output K, named after the output. \
            Sequence and optional inputs and outputs are SequenceProto and OptionalProto files.
            """
    )

    @Argument(help: "The .onnx model file.")
    var model: String

    @Option(name: .customLong("input"), help: "An input TensorProto file: FILE.pb or NAME=FILE.pb (repeatable).")
    var inputs: [String] = []

    @Option(name: .customLong("output-dir"), help: "Folder for output_K.pb files (created if missing).")
    var outputDirectory: String

    @Option(help: "Intra-op threads (default: all cores).")
    var threads: Int?

    @Flag(name: .customLong("no-optimize"), help: "Skip the graph optimisation passes.")
    var noOptimize = false

    @Flag(name: .customLong("flush-denormals"), help: "Flush denormal floats to zero (faster on underflowing models).")
    var flushDenormals = false

    func run() throws {
        try reportingErrors {
            let session = try InferenceSession(
                contentsOf: model, options: .init(intraOpThreads: threads, optimizations: !noOptimize, flushDenormals: flushDenormals))
            let feeds = try Self.feeds(inputs, for: session)
            let results = try session.runValues(feeds)
            try FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
            for (index, output) in session.outputs.enumerated() {
                guard let value = results[output.name] else { throw ValidationError("output '\(output.name)' was not produced") }
                let bytes = ValueFile.encode(value, name: output.name)
                let path = "\(outputDirectory)/output_\(index).pb"
                guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
                    throw ValidationError("cannot write \(path)")
                }
            }
        }
    }

    /// Matches `--input` arguments to the session's inputs.
    static func feeds(_ arguments: [String], for session: InferenceSession) throws -> [String: Value] {
        let names = session.inputs.map(\.name)
        var feeds: [String: Value] = [:]
        var position = 0
        for argument in arguments {
            let name: String, path: String
            if let equals = argument.firstIndex(of: "="), names.contains(String(argument[..<equals])) {
                name = String(argument[..<equals])
                path = String(argument[argument.index(after: equals)...])
            } else {
                guard position < names.count else {
                    throw ValidationError("\(arguments.count) inputs given; the model takes \(names.count) (\(names.joined(separator: ", ")))")
                }
                name = names[position]
                path = argument
                position += 1
            }
            guard feeds[name] == nil else { throw ValidationError("input '\(name)' given twice") }
            let input = session.inputs.first { $0.name == name }
            feeds[name] = try ValueFile.read(path, kind: input?.kind ?? .tensor, elementType: input?.type?.dataType)
        }
        return feeds
    }
}
