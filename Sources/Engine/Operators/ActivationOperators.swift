import Kernels
import Tensors

/// Activations: the pointwise ones run `Kernels.Activation` (shared with fused epilogues);
/// PRelu broadcasts its slope and Clip reads its bounds from attributes or inputs.
enum ActivationOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("Relu", versions: [1, 6, 13, 14], contract: .unary(ElementTypes.floatingPoint.union(ElementTypes.signedIntegers))) { _ in ActivationOperator(.relu) },
        OperatorDefinition("LeakyRelu", versions: [1, 6, 16], contract: .unary(ElementTypes.floatingPoint)) { context in
            ActivationOperator(.leakyRelu(alpha: try context.float("alpha", default: 0.01)))
        },
        OperatorDefinition("Elu", versions: [1, 6, 22], contract: .unary(ElementTypes.floatingPoint)) { context in
            ActivationOperator(.elu(alpha: try context.float("alpha", default: 1)))
        },
        OperatorDefinition("Selu", versions: [1, 6, 22], contract: .unary(ElementTypes.floatingPoint)) { context in
            ActivationOperator(.selu(alpha: try context.float("alpha", default: 1.67326319217681884765625),
                                     gamma: try context.float("gamma", default: 1.05070102214813232421875)))
        },
        OperatorDefinition("Celu", versions: [12, 28], contract: .unary(ElementTypes.floatingPoint)) { context in
            let alpha = try context.float("alpha", default: 1)
            guard alpha != 0 else { throw OpError("alpha must not be 0") }
            return ActivationOperator(.celu(alpha: alpha))
        },
        OperatorDefinition("Sigmoid", versions: [1, 6, 13], contract: .unary(ElementTypes.floatingPoint)) { _ in ActivationOperator(.sigmoid) },
        OperatorDefinition("HardSigmoid", versions: [1, 6, 22], contract: .unary(ElementTypes.floatingPoint)) { context in
            ActivationOperator(.hardSigmoid(alpha: try context.float("alpha", default: 0.2),
                                            beta: try context.float("beta", default: 0.5)))
        },
        OperatorDefinition("HardSwish", versions: [14, 22], contract: .unary(ElementTypes.floatingPoint)) { _ in ActivationOperator(.hardSwish) },
        OperatorDefinition("Shrink", versions: [9], contract: .unary(ElementTypes.numeric, input: "input", output: "output")) { try Shrink($0) },
        OperatorDefinition("Tanh", versions: [1, 6, 13], contract: .unary(ElementTypes.floatingPoint, input: "input", output: "output")) { _ in ActivationOperator(.tanh) },
        OperatorDefinition("Softplus", versions: [1, 22], contract: .unary(ElementTypes.floatingPoint)) { _ in ActivationOperator(.softplus) },
        OperatorDefinition("Softsign", versions: [1, 22], contract: .unary(ElementTypes.floatingPoint, input: "input", output: "output")) { _ in ActivationOperator(.softsign) },
        OperatorDefinition("ThresholdedRelu", versions: [10, 22], contract: .unary(ElementTypes.floatingPoint)) { context in
            ActivationOperator(.thresholdedRelu(alpha: try context.float("alpha", default: 1)))
        },
        OperatorDefinition("Gelu", versions: [20], contract: .unary(ElementTypes.floatingPoint)) { context in
            switch try context.string("approximate", default: "none") {
            case "none": return ActivationOperator(.gelu)
            case "tanh": return ActivationOperator(.geluTanh)
            case let other: throw OpError("approximate must be \"none\" or \"tanh\", got \"\(other)\"")
            }
        },
        OperatorDefinition("Mish", versions: [18, 22], contract: .unary(ElementTypes.floatingPoint)) { _ in ActivationOperator(.mish) },
        OperatorDefinition("PRelu", versions: [1, 6, 7, 9, 16],
                           contract: OperatorContract(inputs: [.init("X", "T"), .init("slope", "T")], outputs: [.init("Y", "T")],
                                                      types: ["T": ElementTypes.floatingPoint.union([.int32, .int64, .uint32, .uint64])],
                                                      shape: .sameAs(0))) { _ in PRelu() },
        OperatorDefinition("Clip", versions: [1, 6, 11, 12, 13], contracts: { version in
            // Bounds are attributes before opset 11, optional inputs since.
            version < 11 ? .unary(ElementTypes.floatingPoint, input: "input", output: "output")
                : OperatorContract(inputs: [.init("input", "T"), .init("min", "T", .optional), .init("max", "T", .optional)],
                                   outputs: [.init("output", "T")], types: ["T": ElementTypes.numeric], shape: .sameAs(0))
        }) { context in try Clip(context) },
        // A chain the optimiser recognised (SiLU, HardSwish, GELU), named as on fused nodes.
        OperatorDefinition("Activation", domain: OperatorRegistry.internalDomain, versions: [1],
                           contract: .unary(ElementTypes.floatingPoint)) { context in
            guard let activation = try Activation(fusedAttributesOf: context) else { throw OpError("missing attribute 'activation'") }
            return ActivationOperator(activation)
        },
    ]
}

/// A pointwise activation on floating-point tensors (and integer ones for Relu: the definitions'
/// contracts say which).
struct ActivationOperator: UnaryElementwise {
    let activation: Activation

    init(_ activation: Activation) {
        self.activation = activation
    }

    func compute(_ x: Tensor, into y: Tensor, _ parallelism: Parallelism) throws {
        if try x.dataType.visit(ActivationKernel(activation: activation, x: x, y: y, parallelism: parallelism)) == nil {
            // Integer Relu.
            try requireKernel(x.dataType.visit(ClipKernel(x: x, y: y, low: 0.0, high: nil, parallelism: parallelism)), x)
        }
    }
}

/// `y = activation(x)` for floating-point element types, split over the threads.
private struct ActivationKernel: RealVisitor {
    let activation: Activation, x: Tensor, y: Tensor, parallelism: Parallelism
    func visit<T: RealElement>(_: T.Type) {
        withExtendedLifetime(x) {
            let source = x.pointer(as: T.self), target = y.mutablePointer(as: T.self)
            parallelism.forEachChunk(x.elementCount, minimumChunk: BroadcastLayout.defaultGrain) { range in
                activation.apply(source + range.lowerBound, into: target + range.lowerBound, count: range.count)
            }
        }
    }
}

/// `y = min(max(x, low), high)` in the element type itself (no rounding of integer bounds);
/// a nil bound is no bound.
private struct ClipKernel: ArithmeticVisitor {
    let x: Tensor, y: Tensor, low: Double?, high: Double?, parallelism: Parallelism
    var lowTensor: Tensor? = nil, highTensor: Tensor? = nil

    func visit<T: ArithmeticElement>(_: T.Type) {
        let low = lowTensor.map { $0.pointer(as: T.self)[0] } ?? low.map(T.init(converting:)) ?? T.lowest
        let high = highTensor.map { $0.pointer(as: T.self)[0] } ?? high.map(T.init(converting:)) ?? T.highest
        withExtendedLifetime((lowTensor, highTensor)) {
            mapElements(x, into: y, parallelism, Elementwise.Clamp(low: low, high: high))
        }
    }
}

/// Clip: bounds from the `min`/`max` attributes before opset 11, from optional scalar inputs since.
struct Clip: Operator {
    /// Attribute bounds (opset < 11): the float range unless set.
    let attributeBounds: (low: Float, high: Float)?

    init(_ context: OperatorContext) throws {
        attributeBounds = context.version < 11
            ? (try context.float("min", default: -.greatestFiniteMagnitude), try context.float("max", default: .greatestFiniteMagnitude))
            : nil
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let low = inputs.optional(1), high = inputs.optional(2)
        for (bound, name) in [(low, "min"), (high, "max")] {
            if let bound, bound.elementCount != 1 { throw OpError.invalidArgument("\(name) must be a scalar, got shape \(bound.shape)") }
        }
        let y = try context.allocate(x.dataType, x.shape)
        try requireKernel(x.dataType.visit(ClipKernel(x: x, y: y, low: attributeBounds.map { Double($0.low) },
                                                      high: attributeBounds.map { Double($0.high) }, parallelism: context.parallelism,
                                                      lowTensor: low, highTensor: high)), x)
        return [y]
    }
}

/// `y = x < 0 ? slope · x : x`, the slope broadcast onto x's shape.
struct PRelu: Operator {
    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0), slope = try inputs.required(1)
        guard let layout = BroadcastLayout(output: x.shape, operands: [x.shape, slope.shape]) else {
            throw OpError.invalidArgument("slope shape \(slope.shape) does not broadcast to input shape \(x.shape)")
        }
        let y = try context.allocate(x.dataType, x.shape)
        try requireKernel(x.dataType.visit(Kernel(layout: layout, x: x, slope: slope, y: y, parallelism: context.parallelism)), x)
        return [y]
    }

    private struct Kernel: ArithmeticVisitor {
        let layout: BroadcastLayout, x: Tensor, slope: Tensor, y: Tensor, parallelism: Parallelism
        func visit<T: ArithmeticElement>(_: T.Type) {
            withExtendedLifetime((x, slope)) {
                layout.binary(x.pointer(as: T.self), slope.pointer(as: T.self), into: y.mutablePointer(as: T.self),
                              parallelism: parallelism, Elementwise.ParametricRelu())
            }
        }
    }
}
