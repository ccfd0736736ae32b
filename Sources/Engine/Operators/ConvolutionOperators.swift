import Kernels
internal import Synchronization
import Tensors

/// Convolutions: Conv, ConvTranspose, and FusedConv (a Conv whose bias, residual Add and
/// activation run in its epilogue; made by the fusion passes).
enum ConvolutionOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("Conv", versions: [1, 11, 22], contract: contract()) { try Conv($0, fused: false) },
        OperatorDefinition("ConvTranspose", versions: [1, 11, 22], contract: contract()) { try ConvTranspose($0) },
        OperatorDefinition("ConvInteger", versions: [10], contract: OperatorContract(
            inputs: [.init("x", "T1"), .init("w", "T2"), .init("x_zero_point", "T1", .optional), .init("w_zero_point", "T2", .optional)],
            outputs: [.init("y", "T3")], types: ["T1": [.int8, .uint8], "T2": [.int8, .uint8], "T3": [.int32]])) { try ConvInteger($0) },
        // Conv's inputs and the residual Z and input scale S of the fusion passes.
        OperatorDefinition("FusedConv", domain: OperatorRegistry.internalDomain, versions: [1],
                           contract: contract([.init("Z", "T", .optional), .init("S", "T", .optional)])) { try Conv($0, fused: true) },
    ]

    /// X, W and the optional B (with `extra`) of one floating-point type T, to Y of T. Float runs
    /// the fast kernels, the others the reference ones.
    static func contract(_ extra: [OperatorContract.Parameter] = []) -> OperatorContract {
        OperatorContract(inputs: [.init("X", "T"), .init("W", "T"), .init("B", "T", .optional)] + extra, outputs: [.init("Y", "T")],
                         types: ["T": ElementTypes.floatingPoint])
    }
}

/// Conv, and FusedConv: Conv attributes plus `activation`/`activation_params`, an optional
/// 4th input (a residual added before the activation) and an optional 5th (a factor X is
/// multiplied by first, broadcasting as Mul does: see `ConvInputScaleFusion`);
/// `activation_before_residual`/`…_params` (a QDQ model's rounding) applies to the product and
/// bias before the residual is added.
/// Inputs: X [N, C, *spatial], W [M, C/group, *kernel], B [M] (optional), Z residual (FusedConv),
/// S scale (FusedConv; for the fast path X and S are [N, C, *spatial] and [N or 1, C, 1, …], either way round).
struct Conv: Operator {
    let attributes: SlidingWindowAttributes
    let groups: Int
    let activation: Activation?
    /// Applied to product + bias before the residual is added (see `Epilogue.beforeResidual`).
    let beforeResidual: Activation?
    /// Winograd's transform of constant weights, made on first use (the input size decides whether
    /// a layer uses Winograd, and it is not known at load); nil when the weights are an input.
    let winogradWeights: WinogradWeights?
    /// The layout and output shape for the X and W shapes of the last run.
    let layouts = ShapeMemo<(layout: ConvolutionLayout, shape: Shape)>()

    init(_ context: OperatorContext, fused: Bool) throws {
        attributes = try SlidingWindowAttributes(context)
        groups = try context.int("group", default: 1)
        guard groups >= 1 else { throw OpError("group \(groups) must be positive") }
        activation = fused ? try Activation(fusedAttributesOf: context) : nil
        beforeResidual = fused ? try Activation(fusedAttributesOf: context, attribute: "activation_before_residual") : nil
        winogradWeights = context.constant(1) == nil ? nil : WinogradWeights()
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard var x = inputs.first ?? nil else { return [] }
        try checkRounding(x.dataType)
        if let scale = inputs.type(4) {
            x = TensorType(x.dataType, try TensorType.broadcast([x.dims, scale.dims]))
        }
        let w = inputs.count > 1 ? inputs[1] : nil
        guard let dims = x.dims else { return [TensorType(x.dataType, nil)] }
        guard dims.count >= 3 else { throw OpError("X must have rank 3 or more, not \(dims.count)") }
        let channels: Dim = w?.dims.map { $0.first ?? .unknown } ?? .unknown
        let kernel = Self.kernel(attributes, weights: w, rank: dims.count)
        var spatial = [Dim](repeating: .unknown, count: dims.count - 2)
        if let kernel, kernel.count == spatial.count {
            spatial = try attributes.outputDims(input: Array(dims.dropFirst(2)), kernel: kernel)
        }
        return [TensorType(x.dataType, [dims[0], channels] + spatial)]
    }

    /// The kernel size for type inference: `kernel_shape`, or the weights' spatial dimensions when known.
    static func kernel(_ attributes: SlidingWindowAttributes, weights: TensorType?, rank: Int) -> [Int]? {
        if let kernelShape = attributes.kernelShape { return kernelShape }
        guard let dims = weights?.dims, dims.count == rank else { return nil }
        let sizes = dims.dropFirst(2).compactMap(\.value)
        return sizes.count == rank - 2 ? sizes : nil
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        guard let first = inputs.first ?? nil, let w = inputs.count > 1 ? inputs[1] : nil else {
            throw OpError("Conv needs inputs X and W")
        }
        try checkRounding(first.dataType)
        let (x, scale) = try scaledInput(first, inputs.count > 4 ? inputs[4] : nil, w: w, context)
        let (layout, shape) = try layouts.value(x.shape, w.shape) {
            let layout = try self.layout(x: x.shape, w: w.shape)
            return (layout, Shape([x.shape[0], layout.outputChannels] + layout.window.outputSize))
        }
        let outputs = layout.outputChannels
        let bias = inputs.count > 2 ? inputs[2] : nil
        if let bias, bias.shape.elementCount != outputs || bias.shape.rank != 1 {
            throw OpError("B must be a vector of \(outputs) \(x.dataType) values, not \(bias.shape)")
        }
        let residual = inputs.count > 3 ? inputs[3] : nil
        if let scale {
            // `scaledInput` only leaves a scale for a pointwise layout and a float X.
            if let residual, residual.shape != shape {
                let product = try BinaryFunction.arithmetic(.multiply).apply(x, scale, context)
                return try run([product, w, bias, residual], context)
            }
            return [try convolveScaled(x, w, scale: scale, bias: bias, residual: residual, layout: layout, shape: shape,
                                       ownsResidual: context.isHandedOver(3), context)]
        }
        guard let residual, residual.shape != shape else {
            return [try convolve(x, w, bias: bias, residual: residual, activation: activation, beforeResidual: beforeResidual,
                                 layout: layout, shape: shape, ownsResidual: context.isHandedOver(3), context)]
        }
        // A residual of another shape: broadcast it, or the convolution's result, first.
        guard let target = Shape.broadcast(shape, residual.shape) else {
            throw OpError.invalidArgument("the residual \(residual.shape) does not broadcast with the output \(shape)")
        }
        let expandedResidual = try context.allocate(x.dataType, target)
        try BroadcastCopy.copy(residual, to: target, into: expandedResidual.rawPointer)
        if target == shape {
            return [try convolve(x, w, bias: bias, residual: expandedResidual, activation: activation,
                                 beforeResidual: beforeResidual, layout: layout, shape: shape, ownsResidual: true, context)]
        }
        let product = try convolve(x, w, bias: bias, residual: nil, activation: beforeResidual, beforeResidual: nil,
                                   layout: layout, shape: shape, ownsResidual: false, context)
        let result = try context.allocate(x.dataType, target)
        try BroadcastCopy.copy(product, to: target, into: result.rawPointer)
        try Self.addResidual(expandedResidual, into: result, activation: activation)
        return [result]
    }

    /// A QDQ rounding (`Activation.quantizeDequantize`) was fused from a QuantizeDequantize, which takes float only.
    private func checkRounding(_ type: DataType) throws {
        for case .quantizeDequantize? in [activation, beforeResidual] where type != .float {
            throw OpError("a fused QuantizeDequantize takes float, not \(type)")
        }
    }

    /// X and, when the weights should absorb it, the per-channel scale (FusedConv's input 4) it is
    /// to be multiplied by. The scale is left to the weights (`convolveScaled`) when X is float
    /// [N, C, *spatial], the scale [N or 1, C, 1, …], the convolution pointwise with one group,
    /// and the weights (M × C) no larger than the image's plane (pixels × C) the Mul would scale;
    /// otherwise the product is made here as Mul would make it (any broadcasting operands).
    private func scaledInput(_ a: Tensor, _ b: Tensor?, w: Tensor, _ context: ExecutionContext) throws -> (Tensor, Tensor?) {
        guard let b else { return (a, nil) }
        for (x, scale) in [(a, b), (b, a)] where Self.isChannelScale(scale, of: x) && x.dataType == .float && groups == 1 {
            guard let layout = try? layout(x: x.shape, w: w.shape), layout.algorithm == .pointwise, layout.depth > 0,
                  layout.outputChannels <= layout.window.outputCount else { break }
            return (x, scale)
        }
        return (try BinaryFunction.arithmetic(.multiply).apply(a, b, context), nil)
    }

    /// True when `scale` holds one factor per channel of each image of `x` (or one per channel for all).
    static func isChannelScale(_ scale: Tensor, of x: Tensor) -> Bool {
        let s = scale.shape, shape = x.shape
        guard shape.rank >= 3, s.rank == shape.rank, s[0] == shape[0] || s[0] == 1, s[1] == shape[1] else { return false }
        return s.dims.dropFirst(2).allSatisfy { $0 == 1 }
    }

    /// The pointwise convolution of `scale ⊙ x` with its epilogue, as `W_n · x_n` with
    /// `W_n = W · diag(scale_n)`: the M × C weights are scaled instead of the C × pixels input.
    /// Factors shared by every image scale the weights once, for one convolution of the whole
    /// batch; factors per image scale one copy of the weights per image (all of them at once,
    /// in parallel), and the images' products run as the tasks of one convolution. (A loop over
    /// the images, each scaling and then convolving, serialised the scaling and cut each image's
    /// product into tasks of its own: EfficientNet's 14×14 projections at batch 8 ran no faster
    /// on two threads than on one.)
    private func convolveScaled(_ x: Tensor, _ w: Tensor, scale: Tensor, bias: Tensor?, residual: Tensor?,
                                layout: ConvolutionLayout, shape: Shape, ownsResidual: Bool,
                                _ context: ExecutionContext) throws -> Tensor {
        let reused = ownsResidual && beforeResidual == nil ? residual : nil
        let y = try reused ?? context.allocate(.float, shape)
        let outputs = layout.outputChannels, channels = layout.inputChannels
        let perImage = scale.shape[0] != 1 && layout.batch > 1
        let copies = perImage ? layout.batch : 1
        let (rows, overflow) = outputs.multipliedReportingOverflow(by: copies)
        let (count, overflow2) = rows.multipliedReportingOverflow(by: channels)
        guard !overflow, !overflow2 else { throw OpError("\(copies) scaled copies of W are too many floats") }
        let scaled = try context.allocate(.float, [count])
        let scratchCount = perImage ? 0 : Convolution.scratchCount(layout, parallelism: context.parallelism)
        let scratch = try scratchCount > 0 ? context.allocate(.float, [scratchCount]) : nil
        let scaleStep = scale.shape[0] == 1 ? 0 : channels
        withExtendedLifetime((x, w, scale, bias, residual, scaled, scratch)) {
            let source = w.pointer(as: Float.self), factors = scale.pointer(as: Float.self)
            let target = scaled.mutablePointer(as: Float.self)
            // Rows of all the copies, each chunk cut where an image's copy ends.
            context.parallelism.forEachChunk(rows, minimumChunk: Swift.max(1, 8192 / Swift.max(channels, 1))) { chunk in
                var row = chunk.lowerBound
                while row < chunk.upperBound {
                    let image = row / outputs, first = row % outputs
                    let count = Swift.min(chunk.upperBound - row, outputs - first)
                    Convolution.scaleColumns(source + first * channels, by: factors + image * scaleStep, rows: count,
                                             columns: channels, into: target + row * channels)
                    row += count
                }
            }
            let epilogue = Epilogue(bias: bias.map { .perRow($0.pointer(as: Float.self)) },
                                    residual: reused == nil ? residual?.pointer(as: Float.self) : nil,
                                    activation: activation, beforeResidual: beforeResidual)
            Convolution.forward(input: x.pointer(as: Float.self), weights: target, output: y.mutablePointer(as: Float.self),
                                layout: layout, epilogue: epilogue, accumulate: reused != nil,
                                scratch: scratch?.mutablePointer(as: Float.self), parallelism: context.parallelism,
                                weightsPerImage: perImage ? outputs * channels : 0)
        }
        return y
    }

    /// The layout of this convolution of an X and W of these shapes; throws when they do not fit.
    func layout(x: Shape, w: Shape) throws -> ConvolutionLayout {
        guard x.rank >= 3, w.rank == x.rank else {
            throw OpError.invalidArgument("X \(x) and W \(w) must have the same rank, 3 or more")
        }
        let channels = x[1], outputs = w[0]
        guard channels == w[1] * groups, outputs % groups == 0 else {
            throw OpError.invalidArgument("X \(x) and W \(w) do not fit group \(groups)")
        }
        let (window, _) = try attributes.window(input: Array(x.dims.dropFirst(2)), kernel: Array(w.dims.dropFirst(2)))
        return ConvolutionLayout(batch: x[0], inputChannels: channels, outputChannels: outputs, groups: groups, window: window)
    }

    /// The convolution with its epilogue; the residual (if any) already has the output's shape.
    /// When nothing else reads the residual's buffer any more (`ownsResidual`) and the layout is a
    /// product (pointwise or im2col), the output is made in that buffer: the product is added to
    /// the residual already there (sgemm beta 1; with a step before the residual, by the
    /// epilogue from each task's block of product in scratch) instead of OpenBLAS clearing a new buffer and
    /// the epilogue reading the residual from a third one.
    private func convolve(_ x: Tensor, _ w: Tensor, bias: Tensor?, residual: Tensor?, activation: Activation?,
                          beforeResidual: Activation?, layout: ConvolutionLayout, shape: Shape, ownsResidual: Bool,
                          _ context: ExecutionContext) throws -> Tensor {
        let inPlace = ownsResidual && x.dataType == .float && layout.depth > 0 && Convolution.accumulates(layout)
        let reused = inPlace ? residual : nil
        let y = try reused ?? context.allocate(x.dataType, shape)
        guard x.dataType == .float, layout.depth > 0 else {
            Self.reference(x, w, bias: bias, residual: residual, activation: activation, beforeResidual: beforeResidual,
                           into: y, layout: layout)
            return y
        }
        let scratchCount = Convolution.scratchCount(layout, parallelism: context.parallelism,
                                                    productApart: inPlace && beforeResidual != nil)
        let scratch = try scratchCount > 0 ? context.allocate(.float, [scratchCount]) : nil
        let transformed = layout.algorithm != .winograd ? nil : winogradWeights?.get(w) ?? WinogradWeights.transform(w)
        withExtendedLifetime((scratch, transformed)) {
            let epilogue = Epilogue(bias: bias.map { .perRow($0.pointer(as: Float.self)) },
                                    residual: reused == nil ? residual?.pointer(as: Float.self) : nil, activation: activation,
                                    beforeResidual: beforeResidual)
            Convolution.forward(input: x.pointer(as: Float.self), weights: (transformed ?? w).pointer(as: Float.self),
                                output: y.mutablePointer(as: Float.self), layout: layout, epilogue: epilogue,
                                accumulate: reused != nil, scratch: scratch?.mutablePointer(as: Float.self),
                                parallelism: context.parallelism)
        }
        return y
    }

    /// The reference convolution, for double and float16 (and empty products).
    private static func reference(_ x: Tensor, _ w: Tensor, bias: Tensor?, residual: Tensor?, activation: Activation?,
                                  beforeResidual: Activation?, into y: Tensor, layout: ConvolutionLayout) {
        struct Visitor: FloatingVisitor {
            let x: Tensor, w: Tensor, bias: Tensor?, residual: Tensor?, activation: Activation?, beforeResidual: Activation?
            let y: Tensor, layout: ConvolutionLayout
            func visit<T: FloatingElement>(_ type: T.Type) {
                Convolution.reference(input: x.pointer(as: T.self), weights: w.pointer(as: T.self),
                                      bias: bias?.pointer(as: T.self), residual: residual?.pointer(as: T.self),
                                      activation: activation, beforeResidual: beforeResidual,
                                      output: y.mutablePointer(as: T.self), layout: layout)
            }
        }
        _ = try? x.dataType.visit(Visitor(x: x, w: w, bias: bias, residual: residual, activation: activation,
                                          beforeResidual: beforeResidual, y: y, layout: layout))
    }

    /// `result = activation(result + residual)`, both of one shape.
    private static func addResidual(_ residual: Tensor, into result: Tensor, activation: Activation?) throws {
        struct Visitor: FloatingVisitor {
            let residual: Tensor, result: Tensor, activation: Activation?
            func visit<T: FloatingElement>(_ type: T.Type) {
                let source = residual.pointer(as: T.self), target = result.mutablePointer(as: T.self)
                for i in 0..<result.elementCount {
                    let sum = target[i] + source[i]
                    target[i] = activation.map { T(Float($0(Float(sum)))) } ?? sum
                }
            }
        }
        _ = try result.dataType.visit(Visitor(residual: residual, result: result, activation: activation))
    }
}

/// ConvInteger: Conv of `x − x_zero_point` (a scalar) and `w − w_zero_point` (a scalar or one
/// per output channel), on 8-bit integers, into int32, exactly (`IntegerProduct.convolution`).
struct ConvInteger: Operator {
    let conv: Conv
    /// The constant weights prepared at load; nil when w or its zero point is not constant.
    let weights: IntegerConvolutionWeights?

    init(_ context: OperatorContext) throws {
        let conv = try Conv(OperatorContext(node: context.node, version: 11, constants: []), fused: false)
        self.conv = conv
        weights = try IntegerConvolutionWeights(context, w: 1, zeroPoint: 3, groups: conv.groups)
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        let types = try conv.outputTypes(inputs.prefix(2).map { $0.map { TensorType(.double, $0.dims) } })
        return types.map { $0.map { TensorType(.int32, $0.dims) } }
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        guard let x = inputs.first ?? nil, let w = inputs.count > 1 ? inputs[1] : nil else {
            throw OpError("ConvInteger needs inputs x and w")
        }
        let xZero = inputs.count > 2 ? inputs[2] : nil, wZero = inputs.count > 3 ? inputs[3] : nil
        if let xZero, xZero.elementCount != 1 { throw OpError.invalidArgument("x_zero_point must be a scalar, not \(xZero.shape)") }
        let (centeredX, xMagnitude) = try IntegerProduct.centered(x, zeroPoint: xZero, axis: 0, "x", context)
        let prepared = try weights ?? IntegerConvolutionWeights(w, zeroPoint: wZero, groups: conv.groups, context)
        // Exact integer sums; int32 wraps on overflow as ONNX Runtime's accumulator does.
        return [try IntegerProduct.convolution(centeredX, magnitude: xMagnitude, prepared, conv: conv, context)]
    }
}

/// Winograd-transformed weights of one Conv, made once by the first run that needs them.
final class WinogradWeights: Sendable {
    private let cache = Mutex<Tensor?>(nil)

    /// The transform of `weights`, made on the first call and kept.
    func get(_ weights: Tensor) -> Tensor {
        cache.withLock { cache in
            if let cache { return cache }
            let transformed = Self.transform(weights)
            cache = transformed
            return transformed
        }
    }

    /// The transform of float weights [M, C, 3, 3].
    static func transform(_ weights: Tensor) -> Tensor {
        let values = Winograd.transformWeights(weights.pointer(as: Float.self), outputChannels: weights.shape[0],
                                               inputChannels: weights.shape[1])
        return Tensor(values, shape: [values.count])
    }
}

/// ConvTranspose. Inputs: X [N, C, *spatial], W [C, M/group, *kernel], B [M] (optional).
/// Output sizes follow ONNX Runtime: from `output_shape` (pads derived, the odd one at the start
/// unless SAME_UPPER), from auto_pad SAME (input × stride) or VALID (no pads), or from explicit pads.
struct ConvTranspose: Operator {
    let attributes: SlidingWindowAttributes
    let groups: Int
    let outputPadding: [Int]?
    let outputShape: [Int]?

    init(_ context: OperatorContext) throws {
        attributes = try SlidingWindowAttributes(context)
        groups = try context.int("group", default: 1)
        guard groups >= 1 else { throw OpError("group \(groups) must be positive") }
        outputPadding = try context.ints("output_padding")
        outputShape = try context.ints("output_shape")
        if let outputPadding, outputPadding.contains(where: { $0 < 0 }) {
            throw OpError("output_padding \(outputPadding) must not be negative")
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.first ?? nil else { return [] }
        let w = inputs.count > 1 ? inputs[1] : nil
        guard let dims = x.dims else { return [TensorType(x.dataType, nil)] }
        guard dims.count >= 3 else { throw OpError("X must have rank 3 or more, not \(dims.count)") }
        var channels = Dim.unknown
        if let wDims = w?.dims, wDims.count >= 2, let perGroup = wDims[1].value { channels = .fixed(perGroup * groups) }
        let kernel = Conv.kernel(attributes, weights: w, rank: dims.count)
        var spatial = [Dim](repeating: .unknown, count: dims.count - 2)
        if let kernel, kernel.count == spatial.count {
            for axis in spatial.indices {
                if let size = dims[axis + 2].value, let geometry = try? self.axis(axis, rank: spatial.count, input: size, kernel: kernel[axis]) {
                    spatial[axis] = .fixed(geometry.output)
                }
            }
        }
        return [TensorType(x.dataType, [dims[0], channels] + spatial)]
    }

    /// Padding before the output and output size along one axis.
    private func axis(_ axis: Int, rank: Int, input: Int, kernel: Int) throws -> (begin: Int, output: Int) {
        // Attribute lists come from the model: one value per spatial axis (output_shape may also list N and C).
        for (name, values) in [("strides", attributes.strides), ("dilations", attributes.dilations), ("output_padding", outputPadding)] {
            if let values, values.count != rank { throw OpError("\(name) \(values) must have \(rank) values, one per spatial axis") }
        }
        if let outputShape, outputShape.count < rank { throw OpError("output_shape \(outputShape) must have at least \(rank) values") }
        let stride = attributes.strides?[axis] ?? 1
        let adjustment = outputPadding?[axis] ?? 0, span = (kernel - 1) * (attributes.dilations?[axis] ?? 1) + 1
        let full = (input - 1) * stride + adjustment + span
        if let outputShape {
            // Pads make up the difference; a larger output (less than a stride more) keeps only the bias there.
            let output = outputShape[outputShape.count - rank + axis]
            let total = Swift.max(0, full - output)
            let reach = output + total - span - adjustment
            guard output >= 0, reach >= 0, reach / stride + 1 == input else {
                throw OpError.invalidArgument("output_shape \(outputShape) does not fit input size \(input) on axis \(axis)")
            }
            return (attributes.autoPad == .sameUpper ? total / 2 : total - total / 2, output)
        }
        switch attributes.autoPad {
        case .valid:
            return (0, full)
        case .sameUpper, .sameLower:
            let output = input * stride, total = Swift.max(0, full - output)
            return (attributes.autoPad == .sameUpper ? total / 2 : total - total / 2, output)
        case .notSet:
            let begin = attributes.pads?[axis] ?? 0, end = attributes.pads?[rank + axis] ?? 0
            return (begin, full - begin - end)
        }
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        guard let x = inputs.first ?? nil, let w = inputs.count > 1 ? inputs[1] : nil else {
            throw OpError("ConvTranspose needs inputs X and W")
        }
        guard x.shape.rank >= 3, w.shape.rank == x.shape.rank else {
            throw OpError.invalidArgument("X \(x.shape) and W \(w.shape) must have the same rank, 3 or more")
        }
        let channels = x.shape[1], outputs = w.shape[1] * groups
        guard w.shape[0] == channels, channels % groups == 0 else {
            throw OpError.invalidArgument("X \(x.shape) and W \(w.shape) do not fit group \(groups)")
        }
        let rank = x.shape.rank - 2
        let input = Array(x.shape.dims.dropFirst(2)), kernel = Array(w.shape.dims.dropFirst(2))
        try attributes.check(rank: rank, kernel: kernel)
        if let outputPadding, outputPadding.count != rank { throw OpError.invalidArgument("output_padding \(outputPadding) needs \(rank) values") }
        if let outputShape, outputShape.count != rank && outputShape.count != rank + 2 {
            throw OpError.invalidArgument("output_shape \(outputShape) needs \(rank) values")
        }
        let axes = try (0..<rank).map { try axis($0, rank: rank, input: input[$0], kernel: kernel[$0]) }
        if let bad = axes.first(where: { $0.output < 0 }) { throw OpError.invalidArgument("pads leave an output size of \(bad.output)") }
        // The convolution this one transposes: its input is our output.
        let window = SpatialWindow(inputSize: axes.map(\.output), outputSize: input, kernel: kernel,
                                   strides: attributes.strides ?? Array(repeating: 1, count: rank),
                                   dilations: attributes.dilations ?? Array(repeating: 1, count: rank),
                                   padsBegin: axes.map(\.begin))
        let layout = ConvolutionLayout(batch: x.shape[0], inputChannels: outputs, outputChannels: channels, groups: groups,
                                       window: window)
        let bias = inputs.count > 2 ? inputs[2] : nil
        if let bias, bias.shape.elementCount != outputs || bias.shape.rank != 1 {
            throw OpError("B must be a vector of \(outputs) \(x.dataType) values, not \(bias.shape)")
        }
        let y = try context.allocate(x.dataType, Shape([x.shape[0], outputs] + window.inputSize))
        if x.dataType == .float && y.elementCount > 0 && layout.outputChannelsPerGroup > 0 {
            let scratch = try context.allocate(.float, [TransposedConvolution.scratchCount(layout, parallelism: context.parallelism)])
            withExtendedLifetime(scratch) {
                TransposedConvolution.forward(input: x.pointer(as: Float.self), weights: w.pointer(as: Float.self),
                                              bias: bias?.pointer(as: Float.self), output: y.mutablePointer(as: Float.self),
                                              layout: layout, scratch: scratch.mutablePointer(as: Float.self),
                                              parallelism: context.parallelism)
            }
        } else {
            struct Visitor: FloatingVisitor {
                let x: Tensor, w: Tensor, bias: Tensor?, y: Tensor, layout: ConvolutionLayout
                func visit<T: FloatingElement>(_ type: T.Type) {
                    TransposedConvolution.reference(input: x.pointer(as: T.self), weights: w.pointer(as: T.self),
                                                    bias: bias?.pointer(as: T.self), output: y.mutablePointer(as: T.self),
                                                    layout: layout)
                }
            }
            _ = try x.dataType.visit(Visitor(x: x, w: w, bias: bias, y: y, layout: layout))
        }
        return [y]
    }
}
