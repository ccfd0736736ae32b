import Kernels
import Tensors

/// Merges an activation (Relu, LeakyRelu, Clip with constant bounds, Sigmoid, Tanh, HardSigmoid,
/// HardSwish) into the Conv or Gemm before it, which becomes FusedConv or FusedGemm and applies
/// it in its epilogue.
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
                  let activation = Self.activation(of: node, graph.initializers) else { continue }
            var fused = graph.nodes[producer]
            fused.domain = OperatorRegistry.internalDomain
            fused.opType = fusedType
            fused.attributes.merge(activation.fusedAttributes) { _, new in new }
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
        return nil
    }

    /// The activation a node computes, when it is one the fused operators know (Clip only with
    /// constant bounds).
    static func activation(of node: Node, _ constants: [String: Tensor]) -> Activation? {
        guard node.isStandard else { return nil }
        func float(_ name: String, _ defaultValue: Float) -> Float? {
            switch node.attributes[name] {
            case nil: defaultValue
            case .float(let value)?: value
            default: nil
            }
        }
        switch node.opType {
        case "Relu": return .relu
        case "Sigmoid": return .sigmoid
        case "Tanh": return .tanh
        case "HardSwish": return .hardSwish
        case "LeakyRelu": return float("alpha", 0.01).map { .leakyRelu(alpha: $0) }
        case "HardSigmoid":
            guard let alpha = float("alpha", 0.2), let beta = float("beta", 0.5) else { return nil }
            return .hardSigmoid(alpha: alpha, beta: beta)
        case "Clip":
            // Bounds are attributes before opset 11 and optional constant inputs after.
            func bound(_ position: Int, _ attribute: String, _ unbounded: Float) -> Float? {
                guard position < node.inputs.count, !node.inputs[position].isEmpty else { return float(attribute, unbounded) }
                guard let tensor = constants[node.inputs[position]], tensor.dataType == .float,
                      tensor.elementCount == 1 else { return nil }
                return tensor.scalars(as: Float.self)[0]
            }
            guard let low = bound(1, "min", -.infinity), let high = bound(2, "max", .infinity) else { return nil }
            return .clip(min: low, max: high)
        default: return nil
        }
    }
}
