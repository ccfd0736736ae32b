import Kernels
import Tensors

/// Linear quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, and the
/// quantized products QLinearMatMul and QLinearConv.
///
/// Values are computed in float, as ONNX Runtime does: quantized inputs minus their zero points
/// widen to float, products run through sgemm (exact while every partial sum stays below 2^24,
/// checked per run from the operands' magnitudes; otherwise an exact double product), and
/// results are requantized as `round_half_even(acc × scale) + zero_point`, clamped.
enum QuantizationOperators {
    static let definitions: [OperatorDefinition] = [
        // The output's type is the zero point's, else output_dtype's, else uint8 (the operator's rule).
        OperatorDefinition("QuantizeLinear", versions: [10, 13, 19, 21, 23, 24, 25, 28], contracts: { QuantizeLinear.contract($0) }) {
            try QuantizeLinear($0)
        },
        OperatorDefinition("DequantizeLinear", versions: [10, 13, 19, 21, 23, 24, 25, 28], contracts: { DequantizeLinear.contract($0) }) {
            try DequantizeLinear($0)
        },
        OperatorDefinition("DynamicQuantizeLinear", versions: [11], contract: OperatorContract(
            inputs: [.init("x", "T1")], outputs: [.init("y", "T2"), .init("y_scale", .float), .init("y_zero_point", "T2")],
            types: ["T1": [.float], "T2": [.uint8]])) { _ in DynamicQuantizeLinear() },
        // int8 and uint8 only (ONNX 21 adds the float8 types); the scales are float (TS from 21:
        // float or float16), the zero points of their operands' types.
        OperatorDefinition("QLinearMatMul", versions: [10, 21], contracts: { version in
            let scale: (String) -> OperatorContract.Parameter = { version < 21 ? .init($0, .float) : .init($0, "TS") }
            return OperatorContract(
                inputs: [.init("a", "T1"), scale("a_scale"), .init("a_zero_point", "T1"), .init("b", "T2"), scale("b_scale"),
                         .init("b_zero_point", "T2"), scale("y_scale"), .init("y_zero_point", "T3")],
                outputs: [.init("y", "T3")],
                types: ["T1": [.int8, .uint8], "T2": [.int8, .uint8], "T3": [.int8, .uint8]].merging(version < 21 ? [:] : ["TS": [.float, .float16]]) { a, _ in a })
        }) { try QLinearMatMul($0) },
        OperatorDefinition("QLinearConv", versions: [10], contract: OperatorContract(
            inputs: [.init("x", "T1"), .init("x_scale", .float), .init("x_zero_point", "T1"), .init("w", "T2"), .init("w_scale", .float),
                     .init("w_zero_point", "T2"), .init("y_scale", .float), .init("y_zero_point", "T3"), .init("B", "T4", .optional)],
            outputs: [.init("y", "T3")], types: ["T1": [.int8, .uint8], "T2": [.int8, .uint8], "T3": [.int8, .uint8], "T4": [.int32]])) {
            try QLinearConv($0)
        },
        // QuantizeLinear then DequantizeLinear on a float tensor, per tensor (made by
        // `QuantizeDequantizeFusion`; the scale and zero point in its activation attributes).
        OperatorDefinition("QuantizeDequantize", domain: OperatorRegistry.internalDomain, versions: [1],
                           contract: .unary([.float])) { context in
            guard let activation = try Activation(fusedAttributesOf: context), case .quantizeDequantize = activation else {
                throw OpError("QuantizeDequantize needs its activation attributes")
            }
            return ActivationOperator(activation)
        },
    ]

    /// Types a quantized value may have (QuantizeLinear's outputs, DequantizeLinear's inputs).
    static let quantizedTypes: Set<DataType> = [
        .int8, .uint8, .int16, .uint16, .int4, .uint4, .int2, .uint2,
        .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float4e2m1,
    ]

    /// Types a scale may have.
    static let scaleTypes: Set<DataType> = [.float, .float16, .bfloat16]

    /// The integer range of a quantized integer type; nil for the float formats.
    static func range(_ type: DataType) -> ClosedRange<Float>? {
        switch type {
        case .int8: -128...127
        case .uint8: 0...255
        case .int16: -32768...32767
        case .uint16: 0...65535
        case .int4: -8...7
        case .uint4: 0...15
        case .int2: -2...1
        case .uint2: 0...3
        default: nil
        }
    }

    /// The elements of `x` as float values (exact for every quantized type).
    static func floats(_ x: Tensor, _ context: ExecutionContext) throws -> [Float] {
        try convert(x, to: .float, context).scalars(as: Float.self)
    }

    /// `values` (already rounded and within `type`'s range, or float for the float formats)
    /// stored as `type`.
    static func store(_ values: UnsafeBufferPointer<Float>, as type: DataType, shape: Shape, saturate: Bool = true,
                      _ context: ExecutionContext) throws -> Tensor {
        let wide = try context.allocate(.float, shape)
        if let base = values.baseAddress { wide.mutablePointer(as: Float.self).update(from: base, count: values.count) }
        return try convert(wide, to: type, saturate: saturate, context)
    }

    /// `round_half_even(value × scale) + zeroPoint`, clamped to `range`: requantization.
    @inline(__always)
    static func requantize(_ value: Float, scale: Float, zeroPoint: Float, range: ClosedRange<Float>) -> Float {
        Swift.min(Swift.max((value * scale).rounded(.toNearestOrEven) + zeroPoint, range.lowerBound), range.upperBound)
    }
}

/// How one scale (and zero point) tensor maps onto the elements of x: one value for all, one per
/// index along `axis`, or one per block of `blockSize` indices along `axis`.
struct QuantizationLayout {
    let outer: Int, length: Int, inner: Int
    /// Indices along the axis per value (`length` for one value for all).
    let blockSize: Int
    /// Values along the axis (1, `length` or the number of blocks).
    let blocks: Int
    let perTensor: Bool
    /// True when the parameters have x's shape with the axis in blocks (else one per axis index).
    let blocked: Bool

    /// The layout of a scale of shape `scale` over an x of shape `x`; throws for shapes the
    /// spec does not allow.
    init(x: Shape, scale: Shape, axis: Int, blockSize: Int, _ what: String = "the scale") throws {
        guard blockSize >= 0 else { throw OpError("block_size \(blockSize) must not be negative") }
        if scale.elementCount == 1 {
            (outer, length, inner, self.blockSize, blocks, perTensor, blocked) = (1, x.elementCount, 1, Swift.max(x.elementCount, 1), 1, true, false)
            return
        }
        guard x.rank > 0 else { throw OpError.invalidArgument("\(what) \(scale) does not fit a scalar input") }
        let axisIndex = try Layout.axis(axis, rank: x.rank)
        outer = x.dims[..<axisIndex].reduce(1, *)
        length = x[axisIndex]
        inner = x.dims[(axisIndex + 1)...].reduce(1, *)
        perTensor = false
        blocked = blockSize > 0
        if blockSize == 0 {
            guard scale.rank == 1, scale[0] == length else {
                throw OpError.invalidArgument("\(what) \(scale) must be a scalar or hold one value per index of axis \(axisIndex) of \(x)")
            }
            (self.blockSize, blocks) = (1, length)
        } else {
            let count = length / blockSize + (length % blockSize == 0 ? 0 : 1)
            var expected = x.dims
            expected[axisIndex] = count
            guard scale.dims == expected else {
                throw OpError.invalidArgument("\(what) \(scale) must have shape \(Shape(expected)) for blocks of \(blockSize) along axis \(axisIndex) of \(x)")
            }
            (self.blockSize, blocks) = (blockSize, count)
        }
    }

    /// Calls `body(elementIndex, parameterIndex)` for every element of x.
    @inline(__always)
    func forEach(_ body: (Int, Int) -> Void) {
        if perTensor {
            for i in 0..<length { body(i, 0) }
            return
        }
        // Per axis, the parameter is the index along the axis; blocked, the parameters have x's
        // shape with the axis divided into blocks.
        var index = 0
        for o in 0..<outer {
            for a in 0..<length {
                if blocked {
                    let base = (o * blocks + a / blockSize) * inner
                    for i in 0..<inner { body(index + i, base + i) }
                } else {
                    for i in 0..<inner { body(index + i, a) }
                }
                index += inner
            }
        }
    }
}

/// The attributes QuantizeLinear and DequantizeLinear share.
struct QuantizationAttributes: Sendable {
    let axis: Int
    let blockSize: Int
    /// `output_dtype`, when set.
    let outputType: DataType?
    let saturate: Bool

    /// The defaults: per tensor, or per index of axis 1; the zero point's type; saturating.
    init() { (axis, blockSize, outputType, saturate) = (1, 0, nil, true) }

    init(_ context: OperatorContext) throws {
        axis = context.version >= 13 ? try context.int("axis", default: 1) : 1
        blockSize = context.version >= 21 ? try context.int("block_size", default: 0) : 0
        guard blockSize >= 0 else { throw OpError("block_size \(blockSize) must not be negative") }
        saturate = try context.int("saturate", default: 1) != 0
        let code = context.version >= 21 ? try context.int("output_dtype", default: 0) : 0
        if code == 0 {
            outputType = nil
        } else {
            guard let type = Int32(exactly: code).flatMap(DataType.init(rawValue:)) else {
                throw OpError("output_dtype \(code) is not a supported element type")
            }
            outputType = type
        }
    }
}

/// QuantizeLinear: `y = saturate(round_half_even(x / y_scale) + y_zero_point)` (float8: the
/// quotient cast; float4: quotient plus zero point, cast). y's type is the zero point's, else
/// `output_dtype`, else uint8.
struct QuantizeLinear: Operator {
    let attributes: QuantizationAttributes

    init(attributes: QuantizationAttributes) { self.attributes = attributes }

    init(_ context: OperatorContext) throws {
        attributes = try QuantizationAttributes(context)
        if let type = attributes.outputType { try checkElementType(type, QuantizationOperators.quantizedTypes, role: "output_dtype") }
    }

    private func outputType(zeroPoint: DataType?) throws -> DataType {
        if let zeroPoint, let declared = attributes.outputType, declared != zeroPoint {
            throw OpError("output_dtype \(declared) differs from the zero point's type \(zeroPoint)")
        }
        // The zero point's type is the contract's; output_dtype's was checked with the attributes.
        return zeroPoint ?? attributes.outputType ?? .uint8
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        let hasZeroPoint = inputs.count > 2 && inputs[2] != nil
        if hasZeroPoint && inputs.type(2) == nil { return [] }
        return [TensorType(try outputType(zeroPoint: inputs.type(2)?.dataType), inputs.type(0)?.dims)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0), scale = try inputs.required(1), zeroPoint = inputs.optional(2)
        let type = try outputType(zeroPoint: zeroPoint?.dataType)
        let layout = try QuantizationLayout(x: x.shape, scale: scale.shape, axis: attributes.axis, blockSize: attributes.blockSize)
        if let zeroPoint, zeroPoint.shape != scale.shape && !(zeroPoint.elementCount == 1 && scale.elementCount == 1) {
            throw OpError.invalidArgument("y_zero_point \(zeroPoint.shape) must have the scale's shape \(scale.shape)")
        }
        let wide = try convert(x, to: .float, context)
        let values = wide.pointer(as: Float.self)
        let scales = try QuantizationOperators.floats(scale, context)
        let zeros = try zeroPoint.map { try QuantizationOperators.floats($0, context) }
        if let range = QuantizationOperators.range(type), type.byteSize == type.bitWidth / 8 {
            // The 8- and 16-bit integers: written directly.
            struct Writer: IntegerVisitor {
                let values: UnsafePointer<Float>, scales: [Float], zeros: [Float]?, range: ClosedRange<Float>
                let layout: QuantizationLayout, y: Tensor
                func visit<T: ArithmeticElement & FixedWidthInteger>(_: T.Type) {
                    let target = y.mutablePointer(as: T.self)
                    layout.forEach { i, p in
                        let q = (values[i] / scales[p]).rounded(.toNearestOrEven) + (zeros?[p] ?? 0)
                        // NaN quantizes to the zero point's side of the range, as MLAS's max/min do.
                        target[i] = T(Swift.min(Swift.max(q.isNaN ? range.lowerBound : q, range.lowerBound), range.upperBound))
                    }
                }
            }
            let y = try context.allocate(type, x.shape)
            _ = try type.visit(Writer(values: values, scales: scales, zeros: zeros, range: range, layout: layout, y: y))
            withExtendedLifetime(wide) {}
            return [y]
        }
        var result = [Float](repeating: 0, count: x.elementCount)
        if let range = QuantizationOperators.range(type) {
            layout.forEach { i, p in
                let q = (values[i] / scales[p]).rounded(.toNearestOrEven) + (zeros?[p] ?? 0)
                result[i] = Swift.min(Swift.max(q.isNaN ? range.lowerBound : q, range.lowerBound), range.upperBound)
            }
        } else {
            // Float formats: float8 ignores its (zero) zero point; float4 adds it before the cast.
            let addsZero = type == .float4e2m1
            layout.forEach { i, p in result[i] = values[i] / scales[p] + (addsZero ? zeros?[p] ?? 0 : 0) }
        }
        withExtendedLifetime(wide) {}
        return [try result.withUnsafeBufferPointer { try QuantizationOperators.store($0, as: type, shape: x.shape, saturate: attributes.saturate, context) }]
    }
}

/// DequantizeLinear: `y = (x − x_zero_point) × x_scale`, in the scale's type (or `output_dtype`).
struct DequantizeLinear: Operator {
    let attributes: QuantizationAttributes

    init(attributes: QuantizationAttributes) { self.attributes = attributes }

    init(_ context: OperatorContext) throws {
        attributes = try QuantizationAttributes(context)
        if let type = attributes.outputType { try checkElementType(type, QuantizationOperators.scaleTypes, role: "output_dtype") }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let scale = inputs.type(1) else { return [] }
        return [TensorType(attributes.outputType ?? scale.dataType, inputs.type(0)?.dims)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0), scale = try inputs.required(1), zeroPoint = inputs.optional(2)
        let layout = try QuantizationLayout(x: x.shape, scale: scale.shape, axis: attributes.axis, blockSize: attributes.blockSize)
        if let zeroPoint {
            guard zeroPoint.shape == scale.shape || (zeroPoint.elementCount == 1 && scale.elementCount == 1) else {
                throw OpError.invalidArgument("x_zero_point \(zeroPoint.shape) must have the scale's shape \(scale.shape)")
            }
        }
        // The float formats have no zero point (it must be 0); ONNX Runtime ignores it.
        let usesZero = QuantizationOperators.range(x.dataType) != nil || x.dataType == .int32
        let scales = try QuantizationOperators.floats(scale, context)
        let zeros = usesZero ? try zeroPoint.map { try QuantizationOperators.floats($0, context) } : nil
        let y = try context.allocate(.float, x.shape)
        let target = y.mutablePointer(as: Float.self)
        // The 8- and 16-bit integers are read directly; the other types through float.
        struct Reader: IntegerVisitor {
            let x: Tensor, target: UnsafeMutablePointer<Float>, scales: [Float], zeros: [Float]?, layout: QuantizationLayout
            func visit<T: ArithmeticElement & FixedWidthInteger>(_: T.Type) {
                let source = x.pointer(as: T.self)
                layout.forEach { i, p in target[i] = (Float(source[i]) - (zeros?[p] ?? 0)) * scales[p] }
            }
        }
        if [.int8, .uint8, .int16, .uint16].contains(x.dataType) {
            _ = try x.dataType.visit(Reader(x: x, target: target, scales: scales, zeros: zeros, layout: layout))
        } else {
            let wide = try convert(x, to: .float, context)
            let values = wide.pointer(as: Float.self)
            layout.forEach { i, p in target[i] = (values[i] - (zeros?[p] ?? 0)) * scales[p] }
            withExtendedLifetime(wide) {}
        }
        return [try convert(y, to: attributes.outputType ?? scale.dataType, context)]
    }
}

/// DynamicQuantizeLinear: uint8 quantization of x with the scale and zero point that map
/// [min(0, min x), max(0, max x)] onto [0, 255].
struct DynamicQuantizeLinear: Operator {
    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(.uint8, x.dims), TensorType(.float, shape: []), TensorType(.uint8, shape: [])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let (scale, zeroPoint) = Self.parameters(x.pointer(as: Float.self), count: x.elementCount)
        let y = try context.allocate(.uint8, x.shape)
        Self.quantize(x.pointer(as: Float.self), count: x.elementCount, scale: scale, zeroPoint: zeroPoint,
                      into: y.mutablePointer(as: UInt8.self))
        withExtendedLifetime(x) {}
        return [y, Tensor(scalar: scale), Tensor(scalar: UInt8(zeroPoint))]
    }

    /// Lanes of the vectorised loops.
    typealias Lanes = SIMD16<Float>

    /// `round_half_even(x / scale) + zeroPoint` clamped to 0...255 (NaN: 0), 16 values at a time.
    static func quantize(_ source: UnsafePointer<Float>, count: Int, scale: Float, zeroPoint: Float, into target: UnsafeMutablePointer<UInt8>) {
        var i = 0
        while i + Lanes.scalarCount <= count {
            let x = UnsafeRawPointer(source + i).loadUnaligned(as: Lanes.self)
            var q = (x / scale).rounded(.toNearestOrEven) + zeroPoint
            // Comparisons with NaN are false: NaN ends as 0.
            q.replace(with: 0, where: .!(q .>= 0))
            q.replace(with: 255, where: q .> 255)
            // q is an integer in 0...255: plus 2^23 it is the low byte of the float's bits (the
            // standard library's float-to-integer vector conversion is an element-wise generic call).
            let bits = unsafeBitCast(q + 8_388_608, to: SIMD16<UInt32>.self)
            UnsafeMutableRawPointer(target + i).storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: bits), as: SIMD16<UInt8>.self)
            i += Lanes.scalarCount
        }
        for j in i..<count {
            let q = (source[j] / scale).rounded(.toNearestOrEven) + zeroPoint
            target[j] = q.isNaN ? 0 : UInt8(Swift.min(Swift.max(q, 0), 255))
        }
    }

    /// The scale and (rounded) zero point for `count` floats (NaNs ignored).
    static func parameters(_ values: UnsafePointer<Float>, count: Int) -> (scale: Float, zeroPoint: Float) {
        // Comparisons with NaN are false, so a NaN never replaces a bound.
        var lowLanes = Lanes(repeating: 0), highLanes = Lanes(repeating: 0)
        var i = 0
        while i + Lanes.scalarCount <= count {
            let x = UnsafeRawPointer(values + i).loadUnaligned(as: Lanes.self)
            lowLanes.replace(with: x, where: x .< lowLanes)
            highLanes.replace(with: x, where: x .> highLanes)
            i += Lanes.scalarCount
        }
        var low = lowLanes.min(), high = highLanes.max()
        for j in i..<count where !values[j].isNaN {
            low = Swift.min(low, values[j])
            high = Swift.max(high, values[j])
        }
        let scale = (high == low ? 1 : high - low) / 255
        let zeroPoint = Swift.min(Swift.max(0 - low / scale, 0), 255).rounded(.toNearestOrEven)
        // Infinite inputs make the scale infinite and the zero point NaN: 0 then.
        return (scale, zeroPoint.isNaN ? 0 : zeroPoint)
    }
}

/// Integer products in float: operands minus zero points widened to float. Matrix products run
/// through `IntegerGemm` (sgemm over depth chunks whose partial sums stay below 2^24, added in
/// int32), exact for every size; convolutions likewise (`convolution`).
enum IntegerProduct {
    /// Largest integer float represents exactly, with all smaller ones.
    static let exactLimit = Float(IntegerGemm.exactLimit)

    /// `x − zeroPoint` as float, the zero point a scalar or one value per index of `axis`
    /// (`zeroPoint` nil: 0), and the largest magnitude among the results.
    static func centered(_ x: Tensor, zeroPoint: Tensor?, axis: Int, _ what: String,
                         _ context: ExecutionContext) throws -> (values: Tensor, magnitude: Float) {
        let result = try context.allocate(.float, x.shape)
        let target = result.mutablePointer(as: Float.self)
        let zeros = try zeroPoint.map { try QuantizationOperators.floats($0, context) } ?? [0]
        let layout = try QuantizationLayout(x: x.shape, scale: zeros.count == 1 ? [] : [zeros.count], axis: axis, blockSize: 0,
                                            "\(what)'s zero point \(zeroPoint?.shape ?? [])")
        // Runs of `inner` consecutive elements share one zero point (all of x for a scalar one).
        let (runs, run) = layout.perTensor ? (1, x.elementCount) : (layout.outer * layout.length, layout.inner)
        struct Centering: IntegerVisitor {
            let x: Tensor, target: UnsafeMutablePointer<Float>, zeros: [Float], runs: Int, run: Int, length: Int
            func visit<T: ArithmeticElement & FixedWidthInteger>(_: T.Type) -> Float {
                let source = x.pointer(as: T.self)
                var magnitude: Float = 0
                for r in 0..<runs {
                    let zero = zeros[zeros.count == 1 ? 0 : r % length]
                    magnitude = Swift.max(magnitude, IntegerProduct.center(source + r * run, into: target + r * run, count: run, zero: zero))
                }
                return magnitude
            }
        }
        if x.elementCount == 0 { return (result, 0) }
        if let magnitude = try x.dataType.visit(Centering(x: x, target: target, zeros: zeros, runs: runs, run: run, length: layout.length)) {
            withExtendedLifetime(x) {}
            return (result, magnitude)
        }
        // Other types (not the 8-bit products' own) through float.
        let wide = try convert(x, to: .float, context)
        let source = wide.pointer(as: Float.self)
        var magnitude: Float = 0
        layout.forEach { i, p in
            target[i] = source[i] - zeros[zeros.count == 1 ? 0 : p]
            magnitude = Swift.max(magnitude, Swift.abs(target[i]))
        }
        withExtendedLifetime(wide) {}
        return (result, magnitude)
    }

    /// `count` integers minus `zero` into `target`, returning the largest magnitude among the
    /// results (from the run's extremes, so that the loops vectorise).
    @inline(__always)
    static func center<T: FixedWidthInteger>(_ source: UnsafePointer<T>, into target: UnsafeMutablePointer<Float>, count: Int,
                                             zero: Float) -> Float {
        if count == 0 { return 0 }
        var low = T.max, high = T.min
        for i in 0..<count {
            low = Swift.min(low, source[i])
            high = Swift.max(high, source[i])
        }
        for i in 0..<count { target[i] = Float(source[i]) - zero }
        return Swift.max(Swift.abs(Float(low) - zero), Swift.abs(Float(high) - zero))
    }

    /// The largest sum of magnitudes over the `reduced` consecutive elements of each of the
    /// `groups` groups of `values`, strided as: element (g, r) at `g / inner * reduced * inner +
    /// r * inner + g % inner`.
    static func largestAbsoluteSum(_ values: Tensor, groups: Int, reduced: Int, inner: Int) -> Float {
        let source = values.pointer(as: Float.self)
        var largest: Float = 0
        for g in 0..<groups {
            let base = g / inner * reduced * inner + g % inner
            var sum: Float = 0
            for r in 0..<reduced { sum += Swift.abs(source[base + r * inner]) }
            largest = Swift.max(largest, sum)
        }
        withExtendedLifetime(values) {}
        return largest
    }

    /// `conv(x, w)` of a centred integer input (magnitudes at most `xMagnitude`) and prepared
    /// weights, as exact int32 sums. The float convolution when every partial sum stays below 2^24
    /// and its layout adds the products as they are (im2col, pointwise or depthwise, not Winograd,
    /// whose transforms take fractions); else im2col and sgemm over the weights' depth chunks
    /// (`IntegerConvolution`).
    static func convolution(_ x: Tensor, magnitude xMagnitude: Float, _ w: IntegerConvolutionWeights, conv: Conv,
                            _ context: ExecutionContext) throws -> Tensor {
        let layout = try conv.layout(x: x.shape, w: w.values.shape)
        if isExactInFloat(left: xMagnitude, right: w.magnitude) && layout.algorithm != .winograd {
            return try convert(try conv.run([x, w.values], context)[0], to: .int32, context)
        }
        let y = try context.allocate(.int32, Shape([layout.batch, layout.outputChannels] + layout.window.outputSize))
        if y.elementCount == 0 { return y }
        guard w.chunks.count == layout.groups, w.chunks.allSatisfy({ $0.last?.upperBound ?? 0 == layout.depth }) else {
            throw OpError("the prepared weights \(w.values.shape) do not fit this convolution")
        }
        let scratch = try context.allocate(.float, [IntegerConvolution.scratchCount(layout)])
        IntegerConvolution.forward(input: x.pointer(as: Float.self), weights: w.values.pointer(as: Float.self),
                                   output: y.mutablePointer(as: Int32.self), layout: layout, chunks: w.chunks,
                                   scratch: scratch.mutablePointer(as: Float.self), parallelism: context.parallelism)
        withExtendedLifetime((x, w.values, scratch)) {}
        return y
    }

    /// True when a product whose left operand's magnitudes are at most `left` and whose right
    /// operand's columns (the sums each output reduces) have magnitude sums at most `right` has
    /// every partial sum below 2^24 (the float path is exact).
    static func isExactInFloat(left: Float, right: Float) -> Bool {
        (Double(left) * Double(right)) < Double(exactLimit)
    }

    /// Checks that a zero point has its operand's element type.
    static func checkZeroPoint(_ zero: Tensor?, of operand: Tensor, _ name: String) throws {
        if let zero, zero.dataType != operand.dataType {
            throw OpError("\(name)'s zero point has element type \(zero.dataType) but \(name) has \(operand.dataType)")
        }
    }

    /// `b − bZero` in float (bZero a scalar or one value per column of b, its last axis).
    static func centeredRight(_ b: Tensor, zeroPoint bZero: Tensor?, _ context: ExecutionContext) throws -> (values: Tensor, magnitude: Float) {
        guard b.shape.rank >= 1 else { throw OpError.invalidArgument("B \(b.shape) must have rank 1 or more") }
        try checkZeroPoint(bZero, of: b, "B")
        let columnAxis = b.shape.rank - 1
        return try centered(b, zeroPoint: try vector(bZero, length: b.shape[columnAxis], "B"), axis: columnAxis, "B", context)
    }

    /// `(a − aZero) · (b − bZero)` with MatMul's shapes, as int32 (exact, wrapping as ONNX
    /// Runtime's accumulator does). `aZero` is a scalar or one value per row of a (its
    /// second-to-last axis), `bZero` a scalar or one per column of b (its last axis). `weights`:
    /// b and bZero prepared at load time.
    static func matMul(_ a: Tensor, zeroPoint aZero: Tensor?, _ b: Tensor, zeroPoint bZero: Tensor?, weights: IntegerWeights? = nil,
                       _ context: ExecutionContext) throws -> Tensor {
        guard a.shape.rank >= 1, b.shape.rank >= 1 else { throw OpError.invalidArgument("A \(a.shape) and B \(b.shape) must have rank 1 or more") }
        try checkZeroPoint(aZero, of: a, "A")
        let rowAxis = Swift.max(a.shape.rank - 2, 0)
        let (left, leftMagnitude) = try centered(a, zeroPoint: try vector(aZero, length: a.shape[rowAxis], "A"), axis: rowAxis, "A", context)
        if let weights, weights.values.shape != b.shape { throw OpError("the prepared weights do not fit B \(b.shape)") }
        let right = try weights?.values ?? centeredRight(b, zeroPoint: bZero, context).values
        let shapes = try MatMul.Geometry(a.shape, b.shape)
        let y = try context.allocate(.int32, shapes.output)
        if y.elementCount == 0 { return y }
        let (rows, n, k, items, offsets) = (shapes.rows, shapes.n, shapes.k, shapes.items, shapes.offsets())
        let bBatch = shapes.bBatch
        let rightValues = right.pointer(as: Float.self)
        // Depth chunks per matrix of B: prepared for any 8-bit A, or for this A's magnitude.
        let chunks = weights?.chunks ?? (0..<bBatch.elementCount).map {
            IntegerGemm.depthChunks(b: rightValues + $0 * k * n, k: k, n: n, ldb: n, leftMagnitude: leftMagnitude)
        }
        let matrix = Swift.max(k * n, 1)
        let scratch = try context.allocate(.float, [y.elementCount])
        IntegerGemm.multiply(m: rows, n: n, k: k, a: left.pointer(as: Float.self), lda: k, b: rightValues, ldb: n,
                             c: y.mutablePointer(as: Int32.self), ldc: n, scratch: scratch.mutablePointer(as: Float.self),
                             chunks: { chunks[offsets[$0].b / matrix] }, batch: items, batchOffsets: { offsets[$0] },
                             parallelism: context.parallelism)
        withExtendedLifetime((left, right, scratch)) {}
        return y
    }

    /// A zero point as a scalar or a vector of `length` (a [..., length, 1] or [..., 1, length]
    /// tensor of that many values flattened), or an error.
    private static func vector(_ zero: Tensor?, length: Int, _ name: String) throws -> Tensor? {
        guard let zero, zero.elementCount != 1 else { return zero.map { $0.reshaped([]) } }
        guard zero.elementCount == length, zero.shape.dims.filter({ $0 != 1 }).count <= 1 else {
            throw OpError.invalidArgument("\(name)'s zero point \(zero.shape) must be a scalar or hold \(length) values")
        }
        return zero.reshaped([length])
    }
}

/// The weights of an integer convolution (QLinearConv, ConvInteger) minus their zero points (a
/// scalar or one per output channel), with the largest magnitude sum of one output channel's
/// weights and each group's depth chunks for any 8-bit input (`IntegerConvolution.depthChunks`
/// at magnitude 255). Made at load for constant weights, else per run.
struct IntegerConvolutionWeights: Sendable {
    let values: Tensor
    let magnitude: Float
    let chunks: [[Range<Int>]]

    /// W at input `index` and its zero point at `zeroPointIndex` when both are constant (or the
    /// zero point absent); nil otherwise.
    init?(_ context: OperatorContext, w index: Int, zeroPoint zeroPointIndex: Int, groups: Int) throws {
        guard let w = context.constant(index), context.constant(zeroPointIndex) != nil || !context.hasInput(zeroPointIndex) else { return nil }
        let serial = ExecutionContext(pool: BufferPool(retainLimit: 0), parallelism: .serial)
        try self.init(w, zeroPoint: context.constant(zeroPointIndex), groups: groups, serial)
    }

    init(_ w: Tensor, zeroPoint: Tensor?, groups: Int, _ context: ExecutionContext) throws {
        try checkElementType(w.dataType, [.int8, .uint8], role: "w")
        guard w.shape.rank >= 3 else { throw OpError.invalidArgument("w must have rank 3 or more, not \(w.shape)") }
        let channels = w.shape[0]
        guard groups >= 1, channels % groups == 0 else { throw OpError.invalidArgument("w \(w.shape) does not fit group \(groups)") }
        (values, _) = try IntegerProduct.centered(w, zeroPoint: zeroPoint, axis: 0, "w", context)
        let depth = channels == 0 ? 0 : w.elementCount / channels
        magnitude = IntegerProduct.largestAbsoluteSum(values, groups: channels, reduced: depth, inner: 1)
        chunks = IntegerConvolution.depthChunks(weights: values.pointer(as: Float.self), outputChannels: channels, groups: groups,
                                                depth: depth, inputMagnitude: IntegerGemm.largestCenteredMagnitude)
        withExtendedLifetime(values) {}
    }
}

/// The constant B (and its zero point) of an integer matrix product, prepared at load time:
/// minus its zero points in float, with the depth chunks of each of its matrices for any 8-bit A.
struct IntegerWeights: Sendable {
    let values: Tensor
    let chunks: [[Range<Int>]]

    /// B at input `index` and its zero point at `zeroPointIndex` when both are constant (or the
    /// zero point absent); nil otherwise.
    init?(_ context: OperatorContext, b index: Int, zeroPoint zeroPointIndex: Int) throws {
        guard let b = context.constant(index), context.constant(zeroPointIndex) != nil || !context.hasInput(zeroPointIndex) else { return nil }
        try self.init(b: b, zeroPoint: context.constant(zeroPointIndex))
    }

    /// A constant B and its zero point (nil: 0), centred and chunked.
    init(b: Tensor, zeroPoint: Tensor?) throws {
        try checkElementType(b.dataType, [.int8, .uint8], role: "B")
        let serial = ExecutionContext(pool: BufferPool(retainLimit: 0), parallelism: .serial)
        values = try IntegerProduct.centeredRight(b, zeroPoint: zeroPoint, serial).values
        let dims = b.shape.rank == 1 ? b.shape.dims + [1] : b.shape.dims
        let k = dims[dims.count - 2], n = dims[dims.count - 1], pointer = values.pointer(as: Float.self)
        chunks = (0..<dims.dropLast(2).reduce(1, *)).map {
            IntegerGemm.depthChunks(b: pointer + $0 * k * n, k: k, n: n, ldb: n, leftMagnitude: IntegerGemm.largestCenteredMagnitude)
        }
        withExtendedLifetime(values) {}
    }
}

/// Requantization of int32 accumulators: `round(acc × scale[c]) + zeroPoint[c]`,
/// clamped, with the scale and zero point per output column (QLinearMatMul) or per output
/// channel (QLinearConv).
struct Requantization {
    let scales: [Float]
    let zeroPoints: [Float]
    let type: DataType
    let range: ClosedRange<Float>

    /// `inputScale × weightScale[c] / outputScale` per c, as ONNX Runtime computes it.
    init(inputScale: Tensor, weightScale: Tensor, outputScale: Tensor, outputZeroPoint: Tensor?, channels: Int,
         _ context: ExecutionContext) throws {
        let a = try QuantizationOperators.floats(inputScale, context)
        let b = try QuantizationOperators.floats(weightScale, context)
        let y = try QuantizationOperators.floats(outputScale, context)
        guard a.count == 1, y.count == 1 else { throw OpError.invalidArgument("the input and output scales must be scalars") }
        guard b.count == 1 || b.count == channels else {
            throw OpError.invalidArgument("the weight scale \(weightScale.shape) must be a scalar or hold \(channels) values")
        }
        scales = (0..<channels).map { a[0] * b[b.count == 1 ? 0 : $0] / y[0] }
        type = outputZeroPoint?.dataType ?? .uint8
        guard let range = QuantizationOperators.range(type), type == .uint8 || type == .int8 else {
            throw OpError("the output zero point must be uint8 or int8, not \(type)")
        }
        self.range = range
        let zeros = try outputZeroPoint.map { try QuantizationOperators.floats($0, context) } ?? [0]
        guard zeros.count == 1 else { throw OpError.invalidArgument("the output zero point must be a scalar") }
        zeroPoints = Array(repeating: zeros[0], count: channels)
    }

    /// `acc` (int32 sums) requantized into a new tensor; channel of element i is `i / inner % channels`.
    func apply(_ acc: Tensor, bias: [Int32]?, inner: Int, _ context: ExecutionContext) throws -> Tensor {
        guard acc.dataType == .int32 else { throw OpError("an integer product accumulated in \(acc.dataType)") }
        let y = try context.allocate(type, acc.shape)
        let count = acc.elementCount, channels = scales.count
        if count == 0 { return y }
        guard inner > 0, channels > 0, count % inner == 0 else { throw OpError("the requantized product \(acc.shape) does not fit \(channels) channels") }
        let sums = acc.pointer(as: Int32.self)
        // Runs of `inner` elements share a channel; the values are rounded and clamped to the
        // type's range, so they convert exactly.
        func store<T: FixedWidthInteger & TensorElement>(_: T.Type) {
            let target = y.mutablePointer(as: T.self)
            for run in 0..<(count / inner) {
                let c = run % channels
                let scale = scales[c], zero = zeroPoints[c], add = bias?[c] ?? 0, base = run * inner
                for i in base..<(base + inner) {
                    let value = QuantizationOperators.requantize(Float(sums[i] &+ add), scale: scale, zeroPoint: zero, range: range)
                    // NaN (a NaN or infinite scale from the model) stores 0, as a Cast of NaN does.
                    target[i] = value.isNaN ? 0 : T(Int32(value))
                }
            }
        }
        if type == .int8 { store(Int8.self) } else { store(UInt8.self) }
        withExtendedLifetime(acc) {}
        return y
    }
}

/// QLinearMatMul: MatMul of `a − a_zero_point` and `b − b_zero_point` (per tensor, or b's per
/// column), requantized with `a_scale × b_scale / y_scale` and `y_zero_point`.
struct QLinearMatMul: Operator {
    /// A constant b (and zero point) prepared at load time.
    let weights: IntegerWeights?

    init(_ context: OperatorContext) throws { weights = try IntegerWeights(context, b: 3, zeroPoint: 5) }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        let output = inputs.type(7)?.dataType ?? .uint8
        guard let a = inputs.type(0), let b = inputs.type(3) else { return [TensorType(output, nil)] }
        let types = try MatMul().outputTypes([TensorType(.float, a.dims), TensorType(.float, b.dims)])
        return [TensorType(output, types.first??.dims)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let a = try inputs.required(0), b = try inputs.required(3)
        if let zero = inputs.optional(2), zero.elementCount != 1 { throw OpError.invalidArgument("a_zero_point must be a scalar, not \(zero.shape)") }
        guard b.shape.rank >= 1 else { throw OpError.invalidArgument("b must have rank 1 or more") }
        let columns = b.shape[b.shape.rank - 1]
        let product = try IntegerProduct.matMul(a, zeroPoint: inputs.optional(2), b, zeroPoint: inputs.optional(5), weights: weights, context)
        let requantization = try Requantization(inputScale: try inputs.required(1), weightScale: try inputs.required(4),
                                                outputScale: try inputs.required(6), outputZeroPoint: inputs.optional(7),
                                                channels: b.shape.rank == 1 ? 1 : columns, context)
        return [try requantization.apply(product, bias: nil, inner: 1, context)]
    }
}

/// QLinearConv: Conv of `x − x_zero_point` and `w − w_zero_point` (w's per output channel) plus
/// an int32 bias, requantized with `x_scale × w_scale / y_scale` and `y_zero_point`.
struct QLinearConv: Operator {
    let conv: Conv
    /// The constant weights prepared at load; nil when w or its zero point is not constant.
    let weights: IntegerConvolutionWeights?

    init(_ context: OperatorContext) throws {
        let conv = try Conv(OperatorContext(node: context.node, version: 11, constants: []), fused: false)
        self.conv = conv
        weights = try IntegerConvolutionWeights(context, w: 3, zeroPoint: 5, groups: conv.groups)
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        let output = inputs.type(7)?.dataType ?? .uint8
        guard let x = inputs.type(0) else { return [TensorType(output, nil)] }
        let types = try conv.outputTypes([TensorType(.float, x.dims), inputs.type(3).map { TensorType(.float, $0.dims) }])
        return [TensorType(output, types.first??.dims)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0), w = try inputs.required(3)
        if let zero = inputs.optional(2), zero.elementCount != 1 {
            throw OpError.invalidArgument("x_zero_point must be one \(x.dataType) value, not \(zero.shape)")
        }
        let (centeredX, xMagnitude) = try IntegerProduct.centered(x, zeroPoint: inputs.optional(2), axis: 0, "x", context)
        guard w.shape.rank >= 3 else { throw OpError.invalidArgument("w must have rank 3 or more, not \(w.shape)") }
        let prepared = try weights ?? IntegerConvolutionWeights(w, zeroPoint: inputs.optional(5), groups: conv.groups, context)
        let channels = w.shape[0]
        var bias: [Int32]? = nil
        if let b = inputs.optional(8) {
            guard b.shape.rank == 1, b.elementCount == channels else {
                throw OpError.invalidArgument("B must be a vector of \(channels) int32 values, not \(b.shape)")
            }
            bias = b.scalars(as: Int32.self)
        }
        let product = try IntegerProduct.convolution(centeredX, magnitude: xMagnitude, prepared, conv: conv, context)
        let requantization = try Requantization(inputScale: try inputs.required(1), weightScale: try inputs.required(4),
                                                outputScale: try inputs.required(6), outputZeroPoint: inputs.optional(7),
                                                channels: channels, context)
        let inner = product.shape.dims.dropFirst(2).reduce(1, *)
        return [try requantization.apply(product, bias: bias, inner: inner, context)]
    }
}

extension QuantizeLinear {
    /// QuantizeLinear's schema of `version`: x (float, float16, bfloat16 or int32), its scale
    /// (float before 19; x's type in 19 and 21; from 23 its own type, no float8e8m0) and the zero
    /// point of the quantized type, which is y's (the version's list: float8 from 19, 16- and
    /// 4-bit integers from 21, float4 and 2-bit integers from 23).
    static func contract(_ version: Int) -> OperatorContract {
        let x: Set<DataType> = [.float, .float16, .bfloat16, .int32]
        let scale: OperatorContract.Parameter = version < 19 ? .init("y_scale", .float) : .init("y_scale", version < 23 ? "T1" : "T2")
        let quantized = version < 23 ? "T2" : "T3"
        let float8: Set<DataType> = [.float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz]
        let outputs: Set<DataType> = switch version {
        case ..<19: [.int8, .uint8]
        case ..<21: float8.union([.int8, .uint8])
        case ..<23: float8.union([.int8, .uint8, .int16, .uint16, .int4, .uint4])
        default: QuantizationOperators.quantizedTypes
        }
        var types: [String: Set<DataType>] = ["T1": x, quantized: outputs]
        if version >= 23 { types["T2"] = QuantizationOperators.scaleTypes.union([.int32]) }
        return OperatorContract(inputs: [.init("x", "T1"), scale, .init("y_zero_point", quantized, .optional)],
                                outputs: [.init("y", quantized)], types: types)
    }
}

extension DequantizeLinear {
    /// DequantizeLinear's schema of `version`: x and its zero point of one quantized type (or
    /// int32), the scale float before 19, then float, float16 or bfloat16 (no float8e8m0); y the
    /// scale's type, from 23 output_dtype's (the operator's rule).
    static func contract(_ version: Int) -> OperatorContract {
        guard version >= 19 else {
            return OperatorContract(inputs: [.init("x", "T"), .init("x_scale", .float), .init("x_zero_point", "T", .optional)],
                                    outputs: [.init("y", .float)], types: ["T": [.int8, .uint8, .int32]])
        }
        var types: [String: Set<DataType>] = ["T1": QuantizationOperators.quantizedTypes.union([.int32]), "T2": QuantizationOperators.scaleTypes]
        if version >= 23 { types["T3"] = QuantizationOperators.scaleTypes }
        return OperatorContract(inputs: [.init("x", "T1"), .init("x_scale", "T2"), .init("x_zero_point", "T1", .optional)],
                                outputs: [.init("y", version < 23 ? "T2" : "T3")], types: types)
    }
}
