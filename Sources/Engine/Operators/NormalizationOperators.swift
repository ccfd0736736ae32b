import Kernels
import Tensors

/// Normalisations: batch (inference form), instance, layer, group, mean-variance and local
/// response normalisation.
enum NormalizationOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("BatchNormalization", versions: [1, 6, 7, 9, 14, 15], contracts: { BatchNormalization.contract($0) }) {
            try BatchNormalization($0)
        },
        // An inference-mode BatchNormalization with the activation after it (`activation`,
        // `activation_params` as FusedConv's), made by ActivationFusion: one pass instead of two.
        OperatorDefinition("FusedBatchNormalization", domain: OperatorRegistry.internalDomain, versions: [1],
                           contract: BatchNormalization.contract(15)) { try BatchNormalization(fused: $0) },
        OperatorDefinition("InstanceNormalization", versions: [1, 6, 22], contract: OperatorContract(
            inputs: [.init("input", "T"), .init("scale", "T"), .init("B", "T")], outputs: [.init("output", "T")],
            types: ["T": ElementTypes.floatingPoint])) { try RowNormalization(instance: $0) },
        // 1...16: ONNX Runtime's contrib LayerNormalization in the default domain (its schema, X of
        // T and Scale and B of V), which its transformer optimiser writes into models of opsets
        // before 17.
        OperatorDefinition("LayerNormalization", versions: Array(1...17), contracts: { version in
            version < 17 ? RowNormalization.contribLayerNormalization : RowNormalization.layerNormalization
        }) { try RowNormalization(layer: $0) },
        // The same, for a LayerNorm the optimiser recognised in a model older than opset 17 (the
        // form of opset 17).
        OperatorDefinition("LayerNormalization", domain: OperatorRegistry.internalDomain, versions: [1],
                           contract: RowNormalization.layerNormalization) {
            try RowNormalization(layer: $0)
        },
        // 18 is deprecated (scale and bias per group; 21's per channel), the same formals.
        OperatorDefinition("GroupNormalization", versions: [18, 21], contract: OperatorContract(
            inputs: [.init("X", "T"), .init("scale", "T"), .init("bias", "T")], outputs: [.init("Y", "T")],
            types: ["T": ElementTypes.floatingPoint])) { try RowNormalization(group: $0) },
        OperatorDefinition("MeanVarianceNormalization", versions: [9, 13], contract: .unary(ElementTypes.floatingPoint)) {
            try MeanVarianceNormalization($0)
        },
        OperatorDefinition("LRN", versions: [1, 13], contract: .unary(ElementTypes.floatingPoint)) { try LocalResponseNormalization($0) },
    ]
}

/// Checks that `x` has at least `rank` dimensions.
private func checkRank(_ x: Tensor, rank: Int) throws {
    guard x.shape.rank >= rank else { throw OpError.invalidArgument("input must have rank \(rank) or more, got shape \(x.shape)") }
}

/// A small parameter tensor as `T`s, broadcast onto `shape` (a tensor with as many elements as
/// `shape` is taken as is, so a per-channel `[C]` may also arrive as `[C, 1, 1]`).
private func parameterValues<T: RealElement>(_ tensor: Tensor, _ name: String, shape: Shape, as _: T.Type) throws -> [T] {
    guard tensor.dataType.isFloatingPoint else { throw OpError("\(name) must be floating point, got \(tensor.dataType)") }
    let source = tensor.elementCount == shape.elementCount ? tensor.reshaped(shape) : tensor
    guard let layout = BroadcastLayout(output: shape, operands: [source.shape]) else {
        throw OpError.invalidArgument("\(name) of shape \(tensor.shape) does not fit shape \(shape)")
    }
    var result = [T](repeating: 0, count: shape.elementCount)
    if result.isEmpty { return result }
    let values = source.doubles()
    values.withUnsafeBufferPointer { values in
        result.withUnsafeMutableBufferPointer { result in
            layout.map(values.baseAddress!, into: result.baseAddress!, parallelism: .serial, Elementwise.Convert<Double, T>())
        }
    }
    return result
}

/// BatchNormalization at inference: `y = (x - mean) / sqrt(var + epsilon) · scale + B` per channel.
/// With `training_mode` (opset 14 and later) the batch's own per-channel mean and (population)
/// variance normalise x, and the running statistics come out updated:
/// `running = input · momentum + batch · (1 − momentum)`. Before opset 14 the statistics outputs
/// meant training and are rejected, except in opset 6's test mode, where they pass the running
/// mean and variance through.
struct BatchNormalization: Operator {
    let epsilon: Float
    let training: Bool
    let momentum: Double
    /// Opset < 9 with `spatial = 0`: one set of statistics per channel and position.
    let perActivation: Bool
    /// Outputs the graph uses.
    let outputCount: Int
    /// Applied to Y in the same pass (FusedBatchNormalization), if any.
    let activation: Activation?

    init(_ context: OperatorContext) throws {
        epsilon = try context.float("epsilon", default: 1e-5)
        let spatial = try context.int("spatial", default: 1)
        perActivation = context.version < 9 && spatial == 0
        outputCount = context.outputCount
        activation = nil
        let isTest = try context.int("is_test", default: 0) != 0
        let trainingMode = try context.int("training_mode", default: 0)
        training = context.version >= 14 && trainingMode != 0
        momentum = Double(try context.float("momentum", default: 0.9))
        if context.version < 14 && outputCount > 1 && !(context.version < 7 && isTest) {
            throw OpError("training mode (updated running statistics) before opset 14 is not supported; export the model in inference mode")
        }
    }

    /// FusedBatchNormalization: inference mode only, Y alone, and the activation. A `spatial`
    /// attribute (only opsets before 9 have it) keeps its meaning.
    init(fused context: OperatorContext) throws {
        epsilon = try context.float("epsilon", default: 1e-5)
        perActivation = try context.int("spatial", default: 1) == 0
        outputCount = 1
        training = false
        momentum = 0.9
        guard try context.int("training_mode", default: 0) == 0, context.outputCount <= 1 else {
            throw OpError("FusedBatchNormalization is the inference form: no training_mode, one output")
        }
        activation = try Activation(fusedAttributesOf: context)
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [x]
    }

    /// X, scale, B, mean and var of one floating-point type T to Y and the optional statistics
    /// (before 14); the running statistics of their own type U from 14; from 15 scale and B of T1,
    /// the statistics of T2.
    static func contract(_ version: Int) -> OperatorContract {
        let (parameter, statistic) = switch version {
        case ..<14: ("T", "T")
        case 14: ("T", "U")
        default: ("T1", "T2")
        }
        let inputs: [OperatorContract.Parameter] = [
            .init("X", "T"), .init("scale", parameter), .init("B", parameter),
            .init(version < 14 ? "mean" : "input_mean", statistic), .init(version < 14 ? "var" : "input_var", statistic),
        ]
        let outputs: [OperatorContract.Parameter] = version < 14
            ? [.init("Y", "T"), .init("mean", "T", .optional), .init("var", "T", .optional),
               .init("saved_mean", "T", .optional), .init("saved_var", "T", .optional)]
            : [.init("Y", "T"), .init("running_mean", statistic, .optional), .init("running_var", statistic, .optional)]
        let types = Set(["T", parameter, statistic]).map { ($0, ElementTypes.floatingPoint) }
        return OperatorContract(inputs: inputs, outputs: outputs, types: Dictionary(uniqueKeysWithValues: types))
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        try checkRank(x, rank: 2)
        let y = try context.allocate(x.dataType, x.shape)
        let parameters = try (1...4).map { try inputs.required($0) }
        if training { return try trainingRun(x, y, parameters, context) }
        _ = try x.dataType.visit(Kernel(operator: self, x: x, y: y, parameters: parameters, parallelism: context.parallelism))
        // Test mode's mean, var, saved_mean, saved_var: the running statistics unchanged.
        return Array(([y] + [parameters[2], parameters[3], parameters[2], parameters[3]]).prefix(max(outputCount, 1)))
    }

    /// Training mode: normalise by the batch's statistics, return the running ones updated.
    private func trainingRun(_ x: Tensor, _ y: Tensor, _ parameters: [Tensor], _ context: ExecutionContext) throws -> [Tensor] {
        let channels = x.shape[1], batches = x.shape[0], inner = x.shape.dims[2...].reduce(1, *)
        let count = batches * inner
        let values = x.doubles()
        var mean = [Double](repeating: 0, count: channels), variance = [Double](repeating: 0, count: channels)
        for c in 0..<channels where count > 0 {
            var sum = 0.0
            for n in 0..<batches { for i in 0..<inner { sum += values[(n * channels + c) * inner + i] } }
            mean[c] = sum / Double(count)
            var squares = 0.0
            for n in 0..<batches {
                for i in 0..<inner {
                    let d = values[(n * channels + c) * inner + i] - mean[c]
                    squares += d * d
                }
            }
            variance[c] = squares / Double(count)
        }
        let batchMean = Tensor(mean, shape: Shape([channels])), batchVariance = Tensor(variance, shape: Shape([channels]))
        _ = try x.dataType.visit(Kernel(operator: self, x: x, y: y, parameters: [parameters[0], parameters[1], batchMean, batchVariance],
                                        parallelism: context.parallelism))
        func running(_ input: Tensor, _ batch: [Double], _ name: String) throws -> Tensor {
            let old = try parameterValues(input, name, shape: Shape([channels]), as: Double.self)
            let updated = Tensor((0..<channels).map { old[$0] * momentum + batch[$0] * (1 - momentum) }, shape: input.shape.elementCount == channels ? input.shape : Shape([channels]))
            return try convert(updated, to: input.dataType, context)
        }
        let outputs = [y, try running(parameters[2], mean, "input_mean"), try running(parameters[3], variance, "input_var")]
        return Array(outputs.prefix(max(outputCount, 1)))
    }

    private struct Kernel: RealVisitor {
        let `operator`: BatchNormalization, x: Tensor, y: Tensor, parameters: [Tensor], parallelism: Parallelism
        func visit<T: RealElement>(_: T.Type) throws {
            let batches = x.shape[0], spatial = x.shape.dims[2...].reduce(1, *)
            let channels = x.shape[1] * (`operator`.perActivation ? spatial : 1)
            let inner = `operator`.perActivation ? 1 : spatial
            let values = try zip(parameters, ["scale", "B", "mean", "var"]).map { tensor, name in
                try parameterValues(tensor, name, shape: [channels], as: T.self)
            }
            // y = x · a + b with a = scale / sqrt(var + epsilon), b = B - mean · a.
            let scale = (0..<channels).map { values[0][$0] / (values[3][$0] + T(`operator`.epsilon)).squareRoot() }
            let shift = (0..<channels).map { values[1][$0] - values[2][$0] * scale[$0] }
            withExtendedLifetime(x) {
                Normalization.channelAffine(x.pointer(as: T.self), into: y.mutablePointer(as: T.self), outer: batches,
                                            channels: channels, inner: inner, scale: scale, shift: shift,
                                            activation: `operator`.activation, parallelism: parallelism)
            }
        }
    }
}

/// Standardisation of rows with a learned scale and bias: instance normalisation (a row per
/// channel), layer normalisation (a row per leading index) and group normalisation (a row per
/// group of channels). Float16 inputs compute in float.
struct RowNormalization: Operator {
    enum Kind {
        case instance
        /// Rows are everything from `axis` on.
        case layer(axis: Int)
        /// Scale and bias per channel (opset 21) or per group (opset 18).
        case group(groups: Int, perChannel: Bool)
    }
    let kind: Kind
    let epsilon: Float
    /// False for RMS normalisation: rows are divided by their root mean square, the mean not taken.
    var centered = true

    init(instance context: OperatorContext) throws {
        kind = .instance
        epsilon = try context.float("epsilon", default: 1e-5)
    }

    init(layer context: OperatorContext) throws {
        kind = .layer(axis: try context.int("axis", default: -1))
        epsilon = try context.float("epsilon", default: 1e-5)
    }

    /// RMSNormalization (and ONNX Runtime's SimplifiedLayerNormalization): layer normalisation
    /// without the mean, scale only.
    init(rms context: OperatorContext) throws {
        try self.init(layer: context)
        centered = false
    }

    init(layerAxis axis: Int, epsilon: Float, centered: Bool) {
        kind = .layer(axis: axis)
        self.epsilon = epsilon
        self.centered = centered
    }

    init(group context: OperatorContext) throws {
        let groups = try context.required("num_groups", context.int)
        guard groups > 0 else { throw OpError("num_groups must be positive, got \(groups)") }
        kind = .group(groups: groups, perChannel: context.version >= 21)
        epsilon = try context.float("epsilon", default: 1e-5)
    }

    /// Rows, their length, and how scale and bias apply (see `Normalization.normalizeRows`).
    private struct Layout {
        var rows: Int, length: Int, segments: Int, rowPeriod: Int
        /// The shape scale and bias must fit.
        var parameterShape: Shape
    }

    private func layout(_ shape: Shape) throws -> Layout {
        switch kind {
        case .instance:
            guard shape.rank >= 2 else { throw OpError.invalidArgument("input must have rank 2 or more, got shape \(shape)") }
            let channels = shape[1]
            return Layout(rows: shape[0] * channels, length: shape.dims[2...].reduce(1, *), segments: 1,
                          rowPeriod: channels, parameterShape: [channels])
        case .layer(let axis):
            guard let axis = Shape.normalize(axis: axis, rank: shape.rank) else {
                throw OpError.invalidArgument("axis \(axis) is out of range for rank \(shape.rank)")
            }
            let normalized = Shape(Array(shape.dims[axis...]))
            return Layout(rows: shape.dims[..<axis].reduce(1, *), length: normalized.elementCount,
                          segments: normalized.elementCount, rowPeriod: 1, parameterShape: normalized)
        case .group(let groups, let perChannel):
            guard shape.rank >= 2 else { throw OpError.invalidArgument("input must have rank 2 or more, got shape \(shape)") }
            let channels = shape[1]
            guard channels % groups == 0 else { throw OpError.invalidArgument("\(channels) channels do not split into \(groups) groups") }
            let spatial = shape.dims[2...].reduce(1, *)
            return Layout(rows: shape[0] * groups, length: channels / groups * spatial,
                          segments: perChannel ? channels / groups : 1, rowPeriod: groups,
                          parameterShape: [perChannel ? channels : groups])
        }
    }

    /// Shape of LayerNormalization's Mean and InvStdDev: the input's, with the normalised axes 1.
    private func statisticsDims<D>(_ dims: [D], axis: Int, one: D) -> [D] {
        dims.enumerated().map { $0.offset < axis ? $0.element : one }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        guard case .layer(let axis) = kind, let dims = x.dims else { return [x] }
        guard let axis = Shape.normalize(axis: axis, rank: dims.count) else {
            throw OpError("axis \(axis) is out of range for rank \(dims.count)")
        }
        let statistics = TensorType(.float, statisticsDims(dims, axis: axis, one: .fixed(1)))
        return [x, statistics, statistics]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let original = try inputs.required(0)
        let layout = try layout(original.shape)
        let x = try convert(original, to: original.dataType == .float16 ? .float : original.dataType, context)
        let y = try context.allocate(x.dataType, x.shape)
        var statistics: [Tensor] = []
        if case .layer(let axis) = kind, let axis = Shape.normalize(axis: axis, rank: x.shape.rank) {
            let shape = Shape(statisticsDims(x.shape.dims, axis: axis, one: 1))
            statistics = [try context.allocate(x.dataType, shape), try context.allocate(x.dataType, shape)]
        }
        if x.elementCount > 0 {
            _ = try x.dataType.visit(Kernel(operator: self, layout: layout, x: x, y: y, scale: try inputs.required(1),
                                            bias: inputs.optional(2), statistics: statistics, parallelism: context.parallelism))
        } else {
            // No rows to normalise (an empty sequence, say): statistics of nothing are zero.
            for tensor in statistics { tensor.rawPointer.initializeMemory(as: UInt8.self, repeating: 0, count: tensor.byteCount) }
        }
        return try [convert(y, to: original.dataType, context)] + statistics.map { try convert($0, to: .float, context) }
    }

    private struct Kernel: RealVisitor {
        let `operator`: RowNormalization, layout: Layout, x: Tensor, y: Tensor, scale: Tensor, bias: Tensor?
        let statistics: [Tensor], parallelism: Parallelism

        func visit<T: RealElement>(_: T.Type) throws {
            let scale = try parameterValues(scale, "scale", shape: layout.parameterShape, as: T.self)
            let bias = try bias.map { try parameterValues($0, "bias", shape: layout.parameterShape, as: T.self) }
            withExtendedLifetime(x) {
                scale.withUnsafeBufferPointer { scale in
                    (bias ?? []).withUnsafeBufferPointer { biasValues in
                        Normalization.normalizeRows(
                            x.pointer(as: T.self), into: y.mutablePointer(as: T.self), rows: layout.rows,
                            length: layout.length, epsilon: T(`operator`.epsilon), scale: scale.baseAddress!,
                            bias: bias == nil ? nil : biasValues.baseAddress, segments: layout.segments,
                            rowPeriod: layout.rowPeriod, mean: statistics.first?.mutablePointer(as: T.self),
                            inverseDeviation: statistics.last?.mutablePointer(as: T.self), centered: `operator`.centered,
                            parallelism: parallelism)
                    }
                }
            }
        }
    }
}

/// MeanVarianceNormalization: `(x - mean) / (sqrt(variance) + 1e-9)` over `axes` (default
/// [0, 2, 3]), composed from the reduction and broadcasting kernels as the ONNX function is.
struct MeanVarianceNormalization: Operator {
    let axes: [Int]

    init(_ context: OperatorContext) throws {
        axes = try context.ints("axes") ?? [0, 2, 3]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let mean = Reduce(.mean, axes: axes, keepDims: true)
        let centered = try BinaryFunction.arithmetic(.subtract).apply(x, try mean.run([x], context)[0], context)
        let squares = try BinaryFunction.arithmetic(.multiply).apply(centered, centered, context)
        let deviation = try RealUnary(function: .sqrt).run(try mean.run([squares], context), context)[0]
        let epsilon = try convert(Tensor(scalar: Float(1e-9)), to: x.dataType, context)
        let denominator = try BinaryFunction.arithmetic(.add).apply(deviation, epsilon, context)
        return [try BinaryFunction.arithmetic(.divide).apply(centered, denominator, context)]
    }
}

/// LRN: local response normalisation across channels.
struct LocalResponseNormalization: UnaryElementwise {
    let size: Int
    let alpha: Float, beta: Float, bias: Float

    init(_ context: OperatorContext) throws {
        size = try context.required("size", context.int)
        guard size > 0 else { throw OpError("size must be positive, got \(size)") }
        alpha = try context.float("alpha", default: 1e-4)
        beta = try context.float("beta", default: 0.75)
        bias = try context.float("bias", default: 1)
    }

    func compute(_ x: Tensor, into y: Tensor, _ parallelism: Parallelism) throws {
        guard x.shape.rank >= 2 else { throw OpError.invalidArgument("input must have rank 2 or more, got shape \(x.shape)") }
        try requireKernel(x.dataType.visit(Kernel(operator: self, x: x, y: y, parallelism: parallelism)), x)
    }

    private struct Kernel: RealVisitor {
        let `operator`: LocalResponseNormalization, x: Tensor, y: Tensor, parallelism: Parallelism
        func visit<T: RealElement>(_: T.Type) {
            withExtendedLifetime(x) {
                Normalization.localResponse(
                    x.pointer(as: T.self), into: y.mutablePointer(as: T.self), batches: x.shape[0], channels: x.shape[1],
                    inner: x.shape.dims[2...].reduce(1, *), size: `operator`.size, alpha: T(`operator`.alpha),
                    beta: T(`operator`.beta), bias: T(`operator`.bias), parallelism: parallelism)
            }
        }
    }
}

extension RowNormalization {
    /// LayerNormalization 17's schema.
    static let layerNormalization = OperatorContract(
        inputs: [.init("X", "T"), .init("Scale", "T"), .init("B", "T", .optional)],
        outputs: [.init("Y", "T"), .init("Mean", "U", .optional), .init("InvStdDev", "U", .optional)],
        types: ["T": ElementTypes.floatingPoint, "U": [.float]])
    /// ONNX Runtime's contrib LayerNormalization 1 (default domain): Scale and B of their own
    /// floating-point type V.
    static let contribLayerNormalization = OperatorContract(
        inputs: [.init("X", "T"), .init("Scale", "V"), .init("B", "V", .optional)],
        outputs: [.init("Y", "V"), .init("Mean", "U", .optional), .init("InvStdDev", "U", .optional)],
        types: ["T": ElementTypes.floatingPoint, "V": ElementTypes.floatingPoint, "U": [.float, .double]])
}
