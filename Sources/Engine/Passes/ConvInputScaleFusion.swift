import Tensors

/// Merges a Mul whose only reader is a 1×1 convolution (group 1) into it, as FusedConv's scale
/// input: `Conv(Mul(a, b))` becomes FusedConv with inputs `[a, W, B, Z, b]`. This is the end of a
/// squeeze-and-excitation block (MobileNetV3, EfficientNet): a per-image, per-channel scale
/// `s [N, C, 1, 1]` times the feature map `x [N, C, H, W]`, then the block's projection. Since
/// `W · (s ⊙ x) = (W · diag(s)) · x`, the convolution scales its M × C weights per image instead
/// of the Mul making a scaled copy of the C × H × W feature map (one pass over it and a buffer
/// fewer). At run time the operator checks the shapes: any other pair of Mul operands is
/// multiplied as the Mul would (broadcasting) before the convolution, so results never change.
struct ConvInputScaleFusion: GraphPass {
    var name: String { "conv-input-scale-fusion" }

    func run(_ graph: inout Graph, opsets: [String: Int]) throws(EngineError) {
        let outputs = graph.outputNames, uses = graph.useCounts
        let producers = graph.producers
        var readers: [String: Int] = [:]
        for (index, node) in graph.nodes.enumerated() {
            for input in node.inputs where !input.isEmpty { readers[input] = index }
        }
        // Before opset 7, Mul broadcast only with its `broadcast` attribute, by other rules.
        guard (opsets[""] ?? opsets["ai.onnx"] ?? 0) >= 7 else { return }
        var removed = Set<Int>()
        for (index, mul) in graph.nodes.enumerated() where mul.isStandard("Mul") {
            guard mul.attributes.isEmpty, mul.inputs.count == 2, mul.outputs.count == 1, !mul.inputs[0].isEmpty, !mul.inputs[1].isEmpty,
                  graph.hasSingleReader(mul.outputs[0], uses: uses, outputs: outputs),
                  let reader = readers[mul.outputs[0]], !removed.contains(reader),
                  Self.acceptsScale(graph.nodes[reader], reading: mul.outputs[0], graph) else { continue }
            // Neither operand may be made by the convolution itself (a cycle), which a valid graph excludes anyway.
            if mul.inputs.contains(where: { producers[$0] == reader }) { continue }
            var conv = graph.nodes[reader]
            while conv.inputs.count < 4 { conv.inputs.append("") }
            conv.domain = OperatorRegistry.internalDomain
            conv.opType = "FusedConv"
            conv.inputs = [mul.inputs[0]] + conv.inputs[1..<4] + [mul.inputs[1]]
            graph.nodes[reader] = conv
            removed.insert(index)
        }
        graph.removeNodes(removed)
    }

    /// A Conv or FusedConv that reads `value` as X only, with constant float weights of a 1×1
    /// kernel, group 1, stride 1 and no padding, and no scale input yet.
    static func acceptsScale(_ node: Node, reading value: String, _ graph: Graph) -> Bool {
        guard node.isStandard("Conv") || node.isInternal("FusedConv"), node.outputs.count == 1,
              node.inputs.count >= 2, node.inputs.count <= 4, node.inputs[0] == value,
              !node.inputs.dropFirst().contains(value),
              let weights = graph.initializers[node.inputs[1]], weights.dataType == .float, weights.shape.rank >= 3,
              weights.shape.dims.dropFirst(2).allSatisfy({ $0 == 1 }) else { return false }
        /// True when the attribute is absent or holds only `value`.
        func isAbsentOrAll(_ name: String, _ value: Int) -> Bool {
            switch node.attributes[name] {
            case nil: true
            case .int(let single)?: single == value
            case .ints(let values)?: values.allSatisfy { $0 == value }
            default: false
            }
        }
        return isAbsentOrAll("group", 1) && isAbsentOrAll("kernel_shape", 1) && isAbsentOrAll("strides", 1)
            && isAbsentOrAll("pads", 0)
    }
}
