import Kernels
import Tensors

/// Merges a pointwise activation (Relu, LeakyRelu, Clip with constant bounds, Sigmoid, Tanh,
/// HardSigmoid, HardSwish, Elu, Gelu, Mish, …: every `Activation`, and a QDQ model's
/// QuantizeDequantize rounding into a Conv) into the Conv or Gemm before it, which becomes
/// FusedConv or FusedGemm and applies it in its epilogue; or into an inference-mode
/// BatchNormalization that no Conv took (after a Concat or an Add: DenseNet's and pre-activation
/// ResNets' BatchNormalization → Relu), which becomes FusedBatchNormalization, one pass.
struct ActivationFusion: GraphPass {
    var name: String { "activation-fusion" }

    func run(_ graph: inout Graph, opsets: [String: Int]) throws(EngineError) {
        let outputs = graph.outputNames, uses = graph.useCounts
        var producers = graph.producers
        var removed = Set<Int>()
        for (index, node) in graph.nodes.enumerated() {
            guard node.outputs.count == 1, let input = node.inputs.first, let producer = producers[input],
                  graph.hasSingleReader(input, uses: uses, outputs: outputs),
                  let fusedType = Self.fusedType(of: graph.nodes[producer]),
                  let activation = Self.activation(of: node, opsets: opsets, graph.initializers) else { continue }
            // A QDQ rounding is float-only; FusedConv checks that, the others would not.
            if case .quantizeDequantize = activation, fusedType != "FusedConv" { continue }
            var fused = graph.nodes[producer]
            if fusedType == "FusedBatchNormalization" {
                // Inference mode only; the attributes the node's own opset ignores go, so that the
                // fused node means what the original did (`spatial` exists before 9 only,
                // `training_mode` from 14).
                let version = opsets[""] ?? opsets["ai.onnx"] ?? 1
                if version >= 14, case .int(let mode)? = fused.attributes["training_mode"], mode != 0 { continue }
                fused.attributes["training_mode"] = nil
                if version >= 9 { fused.attributes["spatial"] = nil }
            }
            fused.domain = OperatorRegistry.internalDomain
            fused.opType = fusedType
            fused.attributes.merge(activation.fusedAttributes()) { _, new in new }
            fused.outputs = [node.outputs[0]]
            graph.nodes[producer] = fused
            producers[node.outputs[0]] = producer
            removed.insert(index)
        }
        graph.removeNodes(removed)
        graph.removeUnusedInitializers()
    }

    /// The fused operator a producer becomes, when it can take an activation.
    static func fusedType(of node: Node) -> String? {
        guard node.outputs.count == 1, node.attributes["activation"] == nil else { return nil }
        if node.isStandard("Conv") || node.isInternal("FusedConv") { return "FusedConv" }
        if node.isStandard("Gemm") || node.isInternal("FusedGemm") { return "FusedGemm" }
        if node.isStandard("BatchNormalization") { return "FusedBatchNormalization" }
        return nil
    }

    /// The activation a node computes, when it is a pointwise activation operator (read from the
    /// operator itself, so defaults and versions are those of the unfused operator) or a Clip with
    /// constant bounds.
    static func activation(of node: Node, opsets: [String: Int], _ constants: [String: Tensor]) -> Activation? {
        guard node.isStandard || node.isInternal("Activation") || node.isInternal("QuantizeDequantize"),
              node.inputs.count >= 1 else { return nil }
        if node.isStandard("Clip") { return clip(node, constants) }
        let op = try? OperatorRegistry.make(node, opsets: opsets, constants: node.inputs.map { constants[$0] })
        return (op as? ActivationOperator)?.activation
    }

    /// Clip as an activation: bounds are attributes before opset 11 and optional constant inputs after.
    private static func clip(_ node: Node, _ constants: [String: Tensor]) -> Activation? {
        func bound(_ position: Int, _ attribute: String, _ unbounded: Float) -> Float? {
            guard position < node.inputs.count, !node.inputs[position].isEmpty else {
                switch node.attributes[attribute] {
                case nil: return unbounded
                case .float(let value)?: return value
                default: return nil
                }
            }
            guard let tensor = constants[node.inputs[position]], tensor.dataType == .float,
                  tensor.elementCount == 1 else { return nil }
            return tensor.scalars(as: Float.self)[0]
        }
        guard let low = bound(1, "min", -.infinity), let high = bound(2, "max", .infinity) else { return nil }
        return .clip(min: low, max: high)
    }
}
