import Kernels

extension Activation {
    /// The activation a fused node (FusedConv, FusedGemm) applies, from its `activation` name and
    /// `activation_params` floats (the same encoding as ONNX Runtime's fused operators); nil when
    /// the node has none. `attribute` names the pair read: `activation` (applied last) or
    /// `activation_before_residual` (FusedConv: applied to the product and bias before the residual is added).
    init?(fusedAttributesOf context: OperatorContext, attribute: String = "activation") throws {
        guard let name = try context.string(attribute) else { return nil }
        let parameters = try context.floats(attribute + "_params") ?? []
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
        case "Elu": self = .elu(alpha: try parameter(0, default: 1))
        case "Selu": self = .selu(alpha: try parameter(0), gamma: try parameter(1))
        case "Celu": self = .celu(alpha: try parameter(0, default: 1))
        case "Softplus": self = .softplus
        case "Softsign": self = .softsign
        case "ThresholdedRelu": self = .thresholdedRelu(alpha: try parameter(0, default: 1))
        case "Gelu": self = .gelu
        case "GeluTanh": self = .geluTanh
        case "Mish": self = .mish
        case "SiLU": self = .silu
        case "QuantizeDequantize":
            let scale = try parameter(0), zeroPoint = try parameter(1), low = try parameter(2), high = try parameter(3)
            // The grid of an integer type of at most 16 bits: whole-number zero point and bounds,
            // and a positive scale (what `QuantizationGrid`'s rounding needs to be exact).
            let wholeNumbers = [zeroPoint, low, high].allSatisfy { $0.isFinite && $0.rounded() == $0 && abs($0) <= 65_536 }
            guard scale.isFinite, scale > 0, wholeNumbers, low <= high else {
                throw OpError("QuantizeDequantize needs a finite positive scale, and a zero point and bounds low <= high"
                              + " that are whole numbers of at most 65536 in size, not \(parameters)")
            }
            self = .quantizeDequantize(scale: scale, zeroPoint: zeroPoint, low: low, high: high)
        default: throw OpError("unknown fused activation '\(name)'")
        }
    }

    /// The `activation` and `activation_params` attributes that name this activation on a fused
    /// node (or another pair: see `init(fusedAttributesOf:attribute:)`).
    func fusedAttributes(_ attribute: String = "activation") -> [String: AttributeValue] {
        let (name, parameters): (String, [Float]) = switch self {
        case .relu: ("Relu", [])
        case .leakyRelu(let alpha): ("LeakyRelu", [alpha])
        case .clip(let low, let high): ("Clip", [low, high])
        case .sigmoid: ("Sigmoid", [])
        case .tanh: ("Tanh", [])
        case .hardSigmoid(let alpha, let beta): ("HardSigmoid", [alpha, beta])
        case .hardSwish: ("HardSwish", [])
        case .elu(let alpha): ("Elu", [alpha])
        case .selu(let alpha, let gamma): ("Selu", [alpha, gamma])
        case .celu(let alpha): ("Celu", [alpha])
        case .softplus: ("Softplus", [])
        case .softsign: ("Softsign", [])
        case .thresholdedRelu(let alpha): ("ThresholdedRelu", [alpha])
        case .gelu: ("Gelu", [])
        case .geluTanh: ("GeluTanh", [])
        case .mish: ("Mish", [])
        case .silu: ("SiLU", [])
        case .quantizeDequantize(let scale, let zeroPoint, let low, let high): ("QuantizeDequantize", [scale, zeroPoint, low, high])
        }
        var attributes: [String: AttributeValue] = [attribute: .string(name)]
        if !parameters.isEmpty { attributes[attribute + "_params"] = .floats(parameters) }
        return attributes
    }
}
