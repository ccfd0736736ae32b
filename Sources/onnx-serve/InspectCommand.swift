import ArgumentParser
import Engine
import Foundation
import Kernels
import ONNX
import Tensors

/// `onnx-serve inspect`: what a model holds and whether we can run it.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a model's inputs, outputs, opsets, operators and parameters, and what we cannot run yet."
    )

    @Argument(help: "The .onnx model file.")
    var model: String

    func run() throws {
        try reportingErrors {
            let model = try ModelLoader.load(contentsOf: model)
            print(Self.report(model))
        }
    }

    static func report(_ model: Model) -> String {
        let graph = model.graph
        var lines: [String] = []
        lines.append("producer: \(model.producerName.isEmpty ? "(none)" : model.producerName) \(model.producerVersion)")
        lines.append("IR version: \(model.irVersion)")
        lines.append("opsets: " + model.opsets.sorted { $0.key < $1.key }
            .map { "\($0.key.isEmpty ? "ai.onnx" : $0.key) \($0.value)" }.joined(separator: ", "))
        if !model.metadata.isEmpty {
            lines.append("metadata: " + model.metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
        }
        lines.append("inputs:")
        for input in graph.inputs { lines.append("  \(input.name): \(input.typeDescription ?? "unknown type")") }
        let session = Result { try InferenceSession(model: model, options: .init(intraOpThreads: 1)) }
        lines.append("outputs:")
        for (index, output) in graph.outputs.enumerated() {
            let info = (try? session.get())?.outputs[index] ?? output
            lines.append("  \(output.name): \(info.typeDescription ?? "unknown type")")
        }
        let parameters = graph.initializers.values.reduce(0) { $0 + $1.elementCount }
        let bytes = graph.initializers.values.reduce(0) { $0 + $1.byteCount }
        lines.append("parameters: \(parameters) in \(graph.initializers.count) initializers (\(bytes / 1_048_576) MiB)")
        lines.append("nodes: \(graph.nodes.count)")
        var histogram: [String: Int] = [:]
        var unsupported: [String: [String]] = [:]
        for node in graph.nodes {
            let key = node.domain.isEmpty || node.domain == "ai.onnx" ? node.opType : "\(node.domain).\(node.opType)"
            histogram[key, default: 0] += 1
            if case .failure(let error) = OperatorRegistry.resolve(node, opsets: model.opsets),
               case .unsupportedOperator(_, _, let version, _) = error {
                unsupported["\(key) (opset \(version))", default: []].append(node.name)
            }
        }
        lines.append("operators:")
        for (op, count) in histogram.sorted(by: { ($1.value, $0.key) < ($0.value, $1.key) }) {
            lines.append("  \(op): \(count)")
        }
        if unsupported.isEmpty {
            lines.append("unsupported operators: none")
        } else {
            lines.append("unsupported operators:")
            for (op, nodes) in unsupported.sorted(by: { $0.key < $1.key }) {
                let shown = nodes.prefix(3).joined(separator: ", ") + (nodes.count > 3 ? ", ..." : "")
                lines.append("  \(op): \(nodes.count) node\(nodes.count == 1 ? "" : "s") (\(shown))")
            }
        }
        switch session {
        case .success(let session):
            lines.append("loads: yes")
            lines.append("batch runs as one sub-batch per thread: \(session.batchSeparability)")
        case .failure(let error): lines.append("loads: no (\(error))")
        }
        lines.append("OpenBLAS core: \(BLAS.coreName) (\(BLAS.coreOrigin))")
        return lines.joined(separator: "\n")
    }
}
