import Tensors

/// Folds an inference-mode BatchNormalization into the Conv before it: with
/// `s = scale / sqrt(var + epsilon)`, `W' = W · s` per output channel and `B' = (B − mean) · s + bias`.
/// Needs constant float weights and statistics, and a Conv output that only the BatchNormalization reads.
struct ConvBatchNormFolding: GraphPass {
    var name: String { "conv-batchnorm-folding" }

    func run(_ graph: inout Graph, opsets: [String: Int]) throws(EngineError) {
        let outputs = graph.outputNames, uses = graph.useCounts, producers = graph.producers
        var removed = Set<Int>()
        for (index, norm) in graph.nodes.enumerated() where norm.isStandard("BatchNormalization") {
            guard norm.inputs.count == 5, let input = norm.inputs.first, let convIndex = producers[input],
                  graph.nodes[convIndex].isStandard("Conv"),
                  graph.hasSingleReader(input, uses: uses, outputs: outputs),
                  norm.outputs.dropFirst().allSatisfy({ $0.isEmpty || uses[$0] == nil }),
                  Self.isInferenceMode(norm),
                  let folded = fold(graph.nodes[convIndex], norm, graph) else { continue }
            var conv = graph.nodes[convIndex]
            let weightName = graph.unusedName(conv.inputs[1] + "_folded")
            graph.initializers[weightName] = folded.weights
            let biasName = graph.unusedName((conv.inputs.count > 2 && !conv.inputs[2].isEmpty ? conv.inputs[2] : conv.name + "_bias") + "_folded")
            graph.initializers[biasName] = folded.bias
            conv.inputs = [conv.inputs[0], weightName, biasName]
            conv.outputs = [norm.outputs[0]]
            graph.nodes[convIndex] = conv
            removed.insert(index)
        }
        graph.removeNodes(removed)
        graph.removeUnusedInitializers()
    }

    /// False for a BatchNormalization in training mode or with per-element statistics (opset < 9 `spatial = 0`).
    static func isInferenceMode(_ node: Node) -> Bool {
        if case .int(let training)? = node.attributes["training_mode"], training != 0 { return false }
        if case .int(let spatial)? = node.attributes["spatial"], spatial == 0 { return false }
        return true
    }

    /// The folded weights and bias, or nil when some operand is not a constant float of the right size.
    private func fold(_ conv: Node, _ norm: Node, _ graph: Graph) -> (weights: Tensor, bias: Tensor)? {
        func constant(_ name: String) -> Tensor? {
            guard !name.isEmpty, let tensor = graph.initializers[name], tensor.dataType == .float else { return nil }
            return tensor
        }
        guard conv.inputs.count >= 2, let weights = constant(conv.inputs[1]), weights.shape.rank >= 3 else { return nil }
        let channels = weights.shape[0]
        let statistics = norm.inputs[1...4].map(constant)
        guard statistics.allSatisfy({ $0?.elementCount == channels }) else { return nil }
        let (scale, shift, mean, variance) = (statistics[0]!.scalars(as: Float.self), statistics[1]!.scalars(as: Float.self),
                                              statistics[2]!.scalars(as: Float.self), statistics[3]!.scalars(as: Float.self))
        var bias = [Float](repeating: 0, count: channels)
        if conv.inputs.count > 2 && !conv.inputs[2].isEmpty {
            guard let existing = constant(conv.inputs[2]), existing.elementCount == channels else { return nil }
            bias = existing.scalars(as: Float.self)
        }
        var epsilon: Float = 1e-5
        switch norm.attributes["epsilon"] {
        case .float(let value)?: epsilon = value
        case nil: break
        default: return nil
        }
        var folded = weights.scalars(as: Float.self)
        let perChannel = folded.count / max(channels, 1)
        for channel in 0..<channels {
            let factor = Double(scale[channel]) / (Double(variance[channel]) + Double(epsilon)).squareRoot()
            for i in (channel * perChannel)..<((channel + 1) * perChannel) { folded[i] = Float(Double(folded[i]) * factor) }
            bias[channel] = Float((Double(bias[channel]) - Double(mean[channel])) * factor + Double(shift[channel]))
        }
        return (Tensor(folded, shape: weights.shape), Tensor(bias, shape: [channels]))
    }
}
