import Kernels

extension Activation {
    /// The activation a fused node (FusedConv, FusedGemm) applies, from its `activation` name and
    /// `activation_params` floats (the same encoding as ONNX Runtime's fused operators); nil when
    /// the node has none.
    init?(fusedAttributesOf context: OperatorContext) throws {
        guard let name = try context.string("activation") else { return nil }
        let parameters = try context.floats("activation_params") ?? []
        func parameter(_ index: Int, default defaultValue: Float? = nil) throws -> Float {
            if index < parameters.count { return parameters[index] }
            guard let defaultValue else { throw OpError("activation \(name) needs \(index + 1) activation_params") }
            return defaultValue
        }
        switch name {
        case "Relu": self = .relu
        case "LeakyRelu": self = .leakyRelu(alpha: try parameter(0, default: 0.01))
        case "Clip": self = .clip(min: try parameter(0), max: try parameter(1))
        case "Sigmoid": self = .sigmoid
        case "Tanh": self = .tanh
        case "HardSigmoid": self = .hardSigmoid(alpha: try parameter(0, default: 0.2), beta: try parameter(1, default: 0.5))
        case "HardSwish": self = .hardSwish
        default: throw OpError("unknown fused activation '\(name)'")
        }
    }

    /// The `activation` and `activation_params` attributes that name this activation on a fused node.
    var fusedAttributes: [String: AttributeValue] {
        switch self {
        case .relu: ["activation": .string("Relu")]
        case .leakyRelu(let alpha): ["activation": .string("LeakyRelu"), "activation_params": .floats([alpha])]
        case .clip(let low, let high): ["activation": .string("Clip"), "activation_params": .floats([low, high])]
        case .sigmoid: ["activation": .string("Sigmoid")]
        case .tanh: ["activation": .string("Tanh")]
        case .hardSigmoid(let alpha, let beta): ["activation": .string("HardSigmoid"), "activation_params": .floats([alpha, beta])]
        case .hardSwish: ["activation": .string("HardSwish")]
        }
    }
}
