import Kernels
import Tensors

/// Merges an Add (or a two-input Sum) that follows a Conv into it. A constant addend that is one value per output
/// channel joins the bias; any other addend becomes FusedConv's residual input, added in the
/// epilogue while the output is in cache (ResNet's shortcut). Runs before activation fusion,
/// since the residual is added before the activation. In a QDQ model a QuantizeDequantize sits
/// between the Conv and the Add: it joins as FusedConv's `activation_before_residual`.
struct ConvAddFusion: GraphPass {
    var name: String { "conv-add-fusion" }

    func run(_ graph: inout Graph, opsets: [String: Int]) throws(EngineError) {
        let outputs = graph.outputNames, uses = graph.useCounts
        var producers = graph.producers
        // Where each node runs; of two Conv operands the later one absorbs the Add.
        var position = [Int](repeating: 0, count: graph.nodes.count)
        for (step, index) in try GraphOrder.sorted(graph).enumerated() { position[index] = step }
        var removed = Set<Int>()
        for (index, add) in graph.nodes.enumerated() where add.isStandard("Add") || add.isStandard("Sum") {
            guard add.inputs.count == 2, add.outputs.count == 1, add.inputs[0] != add.inputs[1] else { continue }
            let candidates = (0..<2).compactMap { side -> (side: Int, conv: Int, rounding: (node: Int, activation: Activation)?)? in
                let value = add.inputs[side]
                guard let producer = producers[value], !removed.contains(producer),
                      graph.hasSingleReader(value, uses: uses, outputs: outputs) else { return nil }
                if Self.acceptsAddend(graph.nodes[producer]) { return (side, producer, nil) }
                // A QDQ model rounds the convolution's output before the Add: that rounding joins too.
                let rounding = graph.nodes[producer]
                guard rounding.isInternal("QuantizeDequantize"), let input = rounding.inputs.first,
                      let conv = producers[input], Self.acceptsAddend(graph.nodes[conv]),
                      graph.hasSingleReader(input, uses: uses, outputs: outputs),
                      let activation = ActivationFusion.activation(of: rounding, opsets: opsets, graph.initializers) else { return nil }
                return (side, conv, (producer, activation))
            }
            guard let chosen = candidates.max(by: { position[$0.conv] < position[$1.conv] }) else { continue }
            var conv = graph.nodes[chosen.conv]
            let addend = add.inputs[1 - chosen.side]
            while conv.inputs.count < 3 { conv.inputs.append("") }
            if let rounding = chosen.rounding {
                conv.attributes.merge(rounding.activation.fusedAttributes("activation_before_residual")) { _, new in new }
                conv.domain = OperatorRegistry.internalDomain
                conv.opType = "FusedConv"
                conv.inputs = Array(conv.inputs.prefix(3)) + [addend]
                removed.insert(rounding.node)
            } else if let bias = Self.channelBias(conv, addend: addend, graph) {
                let name = graph.unusedName(addend + "_bias")
                graph.initializers[name] = bias
                conv.inputs[2] = name
            } else {
                conv.domain = OperatorRegistry.internalDomain
                conv.opType = "FusedConv"
                conv.inputs = Array(conv.inputs.prefix(3)) + [addend]
            }
            conv.outputs = [add.outputs[0]]
            graph.nodes[chosen.conv] = conv
            producers[add.outputs[0]] = chosen.conv
            removed.insert(index)
        }
        graph.removeNodes(removed)
        graph.removeUnusedInitializers()
    }

    /// A Conv, or a FusedConv with neither a residual nor an activation yet.
    static func acceptsAddend(_ node: Node) -> Bool {
        if node.isStandard("Conv") { return node.outputs.count == 1 }
        return node.isInternal("FusedConv") && node.inputs.count < 4 && node.attributes["activation"] == nil
            && node.attributes["activation_before_residual"] == nil
    }

    /// The new bias when `addend` is a constant float holding one value per output channel and the
    /// existing bias, if any, is constant too; nil otherwise.
    static func channelBias(_ conv: Node, addend: String, _ graph: Graph) -> Tensor? {
        guard let value = graph.initializers[addend], let weights = graph.initializers[conv.inputs[1]],
              weights.dataType == .float,
              let values = value.perChannelValues(channels: weights.shape[0], outputRank: weights.shape.rank) else { return nil }
        var bias = [Float](repeating: 0, count: values.count)
        if !conv.inputs[2].isEmpty {
            guard let existing = graph.initializers[conv.inputs[2]], existing.dataType == .float,
                  existing.elementCount == values.count else { return nil }
            bias = existing.scalars(as: Float.self)
        }
        for channel in bias.indices { bias[channel] += values[channel] }
        return Tensor(bias, shape: [values.count])
    }
}

extension Tensor {
    /// For a float constant that broadcasts against a convolution output of rank `outputRank` as
    /// one value per channel (shape [M, 1, …] or [1, M, 1, …] aligned to the trailing axes, or a
    /// single value): the `channels` values. Nil for any other shape or type.
    func perChannelValues(channels: Int, outputRank: Int) -> [Float]? {
        guard dataType == .float, shape.rank <= outputRank else { return nil }
        // Axis 1 of the output (channels) sits at this position among our dims, if we reach it.
        let channelAxis = shape.rank - (outputRank - 1)
        for (axis, size) in shape.dims.enumerated() where size != 1 && !(axis == channelAxis && size == channels) { return nil }
        let values = scalars(as: Float.self)
        return values.count == 1 ? Array(repeating: values[0], count: channels) : values
    }
}
