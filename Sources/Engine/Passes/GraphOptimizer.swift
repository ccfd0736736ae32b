import Tensors

/// A graph-to-graph rewrite that keeps results the same (within float rounding).
protocol GraphPass: Sendable {
    /// Short name for logs.
    var name: String { get }
    func run(_ graph: inout Graph, opsets: [String: Int]) throws(EngineError)
}

/// The optimisation pipeline: a literal list of passes, run in order.
package enum GraphOptimizer {
    static let passes: [any GraphPass] = [
        IdentityElimination(),
        ConstantFolding(),
        QuantizeDequantizeFusion(),
        ChainRecognition(),
        ConvBatchNormFolding(),
        ConvMulFolding(),
        ConvAddFusion(),
        MatMulAddFusion(),
        ActivationFusion(),
        ConvInputScaleFusion(),
    ]

    package static func optimize(_ graph: Graph, opsets: [String: Int]) throws(EngineError) -> Graph {
        var graph = graph
        for pass in passes {
            try pass.run(&graph, opsets: opsets)
        }
        return graph
    }
}

extension Graph {
    /// Names the graph exposes as outputs; passes must keep these values produced.
    var outputNames: Set<String> { Set(outputs.map(\.name)) }

    /// Replaces every read of `old` with `new` (not graph outputs, which keep their names).
    mutating func rename(uses old: String, to new: String) {
        for index in nodes.indices {
            for position in nodes[index].inputs.indices where nodes[index].inputs[position] == old {
                nodes[index].inputs[position] = new
            }
        }
    }

    /// How many node inputs read each value.
    var useCounts: [String: Int] {
        var counts: [String: Int] = [:]
        for node in nodes { for input in node.inputs where !input.isEmpty { counts[input, default: 0] += 1 } }
        for output in outputs { counts[output.name, default: 0] += 1 }
        return counts
    }
}
