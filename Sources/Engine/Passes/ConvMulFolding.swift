import Tensors

/// Folds a multiplication by a constant per-channel factor after a Conv into its weights and
/// bias: `(W ∗ x + B) · s = (W · s) ∗ x + B · s`. Caffe-style exports scale after BatchNormalization
/// this way, and once that is folded the Mul would otherwise keep the Conv from fusing further.
struct ConvMulFolding: GraphPass {
    var name: String { "conv-mul-folding" }

    func run(_ graph: inout Graph, opsets: [String: Int]) throws(EngineError) {
        let outputs = graph.outputNames, uses = graph.useCounts
        var producers = graph.producers
        var removed = Set<Int>()
        for (index, mul) in graph.nodes.enumerated() where mul.isStandard("Mul") {
            guard mul.inputs.count == 2, mul.outputs.count == 1 else { continue }
            for side in 0..<2 {
                let value = mul.inputs[side]
                guard let producer = producers[value], graph.nodes[producer].isStandard("Conv"),
                      graph.hasSingleReader(value, uses: uses, outputs: outputs),
                      let factor = graph.initializers[mul.inputs[1 - side]],
                      let folded = fold(graph.nodes[producer], factor: factor, graph) else { continue }
                var conv = graph.nodes[producer]
                let weightName = graph.unusedName(conv.inputs[1] + "_scaled")
                graph.initializers[weightName] = folded.weights
                conv.inputs[1] = weightName
                if let bias = folded.bias {
                    let biasName = graph.unusedName(conv.inputs[2] + "_scaled")
                    graph.initializers[biasName] = bias
                    conv.inputs[2] = biasName
                }
                conv.outputs = mul.outputs
                graph.nodes[producer] = conv
                producers[mul.outputs[0]] = producer
                removed.insert(index)
                break
            }
        }
        graph.removeNodes(removed)
        graph.removeUnusedInitializers()
    }

    /// The scaled weights and bias, or nil when the factor is not per channel or the weights or
    /// bias are not constant floats.
    private func fold(_ conv: Node, factor: Tensor, _ graph: Graph) -> (weights: Tensor, bias: Tensor?)? {
        guard conv.inputs.count >= 2, let weights = graph.initializers[conv.inputs[1]], weights.dataType == .float,
              weights.shape.rank >= 3,
              let scale = factor.perChannelValues(channels: weights.shape[0], outputRank: weights.shape.rank) else { return nil }
        var bias: Tensor? = nil
        if conv.inputs.count > 2 && !conv.inputs[2].isEmpty {
            guard let existing = graph.initializers[conv.inputs[2]], existing.dataType == .float,
                  existing.elementCount == scale.count else { return nil }
            bias = Tensor(zip(existing.scalars(as: Float.self), scale).map { $0 * $1 }, shape: [scale.count])
        }
        var values = weights.scalars(as: Float.self)
        let perChannel = values.count / max(scale.count, 1)
        for i in values.indices { values[i] *= scale[i / perChannel] }
        return (Tensor(values, shape: weights.shape), bias)
    }
}
