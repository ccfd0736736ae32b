import Kernels
import Tensors

/// Activations: the pointwise ones run `Kernels.Activation` (shared with fused epilogues);
/// PRelu broadcasts its slope and Clip reads its bounds from attributes or inputs.
enum ActivationOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("Relu", versions: [1, 6, 13, 14]) { _ in ActivationOperator(.relu, integers: true) },
        OperatorDefinition("LeakyRelu", versions: [1, 6, 16]) { context in
            ActivationOperator(.leakyRelu(alpha: try context.float("alpha", default: 0.01)))
        },
        OperatorDefinition("Elu", versions: [1, 6, 22]) { context in
            ActivationOperator(.elu(alpha: try context.float("alpha", default: 1)))
        },
        OperatorDefinition("Selu", versions: [1, 6, 22]) { context in
            ActivationOperator(.selu(alpha: try context.float("alpha", default: 1.67326319217681884765625),
                                     gamma: try context.float("gamma", default: 1.05070102214813232421875)))
        },
        OperatorDefinition("Celu", versions: [12, 28]) { context in
            let alpha = try context.float("alpha", default: 1)
            guard alpha != 0 else { throw OpError("alpha must not be 0") }
            return ActivationOperator(.celu(alpha: alpha))
        },
        OperatorDefinition("Sigmoid", versions: [1, 6, 13]) { _ in ActivationOperator(.sigmoid) },
        OperatorDefinition("HardSigmoid", versions: [1, 6, 22]) { context in
            ActivationOperator(.hardSigmoid(alpha: try context.float("alpha", default: 0.2),
                                            beta: try context.float("beta", default: 0.5)))
        },
        OperatorDefinition("HardSwish", versions: [14, 22]) { _ in ActivationOperator(.hardSwish) },
        OperatorDefinition("Shrink", versions: [9]) { try Shrink($0) },
        OperatorDefinition("Tanh", versions: [1, 6, 13]) { _ in ActivationOperator(.tanh) },
        OperatorDefinition("Softplus", versions: [1, 22]) { _ in ActivationOperator(.softplus) },
        OperatorDefinition("Softsign", versions: [1, 22]) { _ in ActivationOperator(.softsign) },
        OperatorDefinition("ThresholdedRelu", versions: [10, 22]) { context in
            ActivationOperator(.thresholdedRelu(alpha: try context.float("alpha", default: 1)))
        },
        OperatorDefinition("Gelu", versions: [20]) { context in
            switch try context.string("approximate", default: "none") {
            case "none": return ActivationOperator(.gelu)
            case "tanh": return ActivationOperator(.geluTanh)
            case let other: throw OpError("approximate must be \"none\" or \"tanh\", got \"\(other)\"")
            }
        },
        OperatorDefinition("Mish", versions: [18, 22]) { _ in ActivationOperator(.mish) },
        OperatorDefinition("PRelu", versions: [1, 6, 7, 9, 16]) { _ in PRelu() },
        OperatorDefinition("Clip", versions: [1, 6, 11, 12, 13]) { context in try Clip(context) },
        // A chain the optimiser recognised (SiLU, HardSwish, GELU), named as on fused nodes.
        OperatorDefinition("Activation", domain: OperatorRegistry.internalDomain, versions: [1]) { context in
            guard let activation = try Activation(fusedAttributesOf: context) else { throw OpError("missing attribute 'activation'") }
            return ActivationOperator(activation)
        },
    ]
}

/// A pointwise activation on floating-point tensors (and integer ones for Relu).
struct ActivationOperator: UnaryElementwise {
    let activation: Activation
    let allowed: Set<DataType>

    init(_ activation: Activation, integers: Bool = false) {
        self.activation = activation
        allowed = integers ? ElementTypes.floatingPoint.union(ElementTypes.signedIntegers) : ElementTypes.floatingPoint
    }

    init(_ activation: Activation, allowed: Set<DataType>) {
        self.activation = activation
        self.allowed = allowed
    }

    func compute(_ x: Tensor, into y: Tensor, _ parallelism: Parallelism) throws {
        if try x.dataType.visit(ActivationKernel(activation: activation, x: x, y: y, parallelism: parallelism)) == nil {
            // Integer Relu.
            _ = try x.dataType.visit(ClipKernel(x: x, y: y, low: 0.0, high: nil, parallelism: parallelism))
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

    private var allowed: Set<DataType> { attributeBounds == nil ? ElementTypes.numeric : ElementTypes.floatingPoint }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        try checkElementType(x.dataType, allowed)
        try checkSameElementType([x.dataType, inputs.type(1)?.dataType, inputs.type(2)?.dataType], roles: ["input", "min", "max"])
        return [x]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        try checkElementType(x.dataType, allowed)
        let low = inputs.optional(1), high = inputs.optional(2)
        try checkSameElementType([x.dataType, low?.dataType, high?.dataType], roles: ["input", "min", "max"])
        for (bound, name) in [(low, "min"), (high, "max")] {
            if let bound, bound.elementCount != 1 { throw OpError.invalidArgument("\(name) must be a scalar, got shape \(bound.shape)") }
        }
        let y = try context.allocate(x.dataType, x.shape)
        _ = try x.dataType.visit(ClipKernel(x: x, y: y, low: attributeBounds.map { Double($0.low) },
                                            high: attributeBounds.map { Double($0.high) }, parallelism: context.parallelism,
                                            lowTensor: low, highTensor: high))
        return [y]
    }
}

/// `y = x < 0 ? slope · x : x`, the slope broadcast onto x's shape.
struct PRelu: Operator {
    private static let allowed = ElementTypes.floatingPoint.union([.int32, .int64, .uint32, .uint64])

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        try checkElementType(x.dataType, Self.allowed)
        try checkSameElementType([x.dataType, inputs.type(1)?.dataType], roles: ["input", "slope"])
        return [x]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0), slope = try inputs.required(1)
        try checkElementType(x.dataType, Self.allowed)
        try checkSameElementType([x.dataType, slope.dataType], roles: ["input", "slope"])
        guard let layout = BroadcastLayout(output: x.shape, operands: [x.shape, slope.shape]) else {
            throw OpError.invalidArgument("slope shape \(slope.shape) does not broadcast to input shape \(x.shape)")
        }
        let y = try context.allocate(x.dataType, x.shape)
        _ = try x.dataType.visit(Kernel(layout: layout, x: x, slope: slope, y: y, parallelism: context.parallelism))
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
