import Kernels
import Tensors

// ONNX Runtime's quantized contrib operators (com.microsoft, listed in MicrosoftOperators.swift),
// written in QOperator-format models by its quantizer. Each is defined as its float operator
// between the dequantization of its inputs and the quantization of its output, and computed that
// way: ONNX Runtime's x86 kernels approximate the same float formula (lookup tables, fixed-point
// multipliers), so results may differ from its by one quantization step where a value falls
// within rounding of a half.

/// A float operator between DequantizeLinear of its operands and QuantizeLinear of its result.
struct QuantizedFloatOperator: Operator {
    /// Positions of an operand's value, scale and zero point among the node's inputs.
    struct Operand: Sendable {
        let value: Int, scale: Int, zeroPoint: Int
    }

    let inner: any Operator
    let operands: [Operand]
    /// Positions of the output's scale and zero point.
    let outputScale: Int, outputZeroPoint: Int
    /// QLinearConcat: the operands' types are checked here (`checkTriples`).
    var checksTriples = false

    /// `opType` (a default-domain operator of `opset`) with the node's attributes except
    /// `dropping`, between the quantization of `operands` and of the output.
    init(_ context: OperatorContext, opType: String, opset: Int = 13, operands: [Operand], output: (scale: Int, zeroPoint: Int),
         dropping: Set<String> = []) throws {
        if try context.int("channels_last", default: 0) != 0 {
            throw OpError("channels_last 1 is not supported (NCHW only)")
        }
        var attributes = context.node.attributes
        for name in dropping.union(["channels_last"]) { attributes[name] = nil }
        let node = Node(name: context.node.name, opType: opType, inputs: operands.map { "x\($0.value)" }, outputs: ["y"],
                        attributes: attributes)
        inner = try OperatorRegistry.make(node, opsets: ["": opset], constants: [])
        self.operands = operands
        (outputScale, outputZeroPoint) = output
    }

    // QuantizeLinear's and DequantizeLinear's computations: they check no types (their contracts
    // do, for their own nodes); the types here are this node's contract's, and for QLinearConcat's
    // triples `checkTriples`.
    private static let dequantize = DequantizeLinear(attributes: QuantizationAttributes())
    private static let quantize = QuantizeLinear(attributes: QuantizationAttributes())

    /// QLinearConcat's inputs are (value, scale, zero point) triples of its heterogeneous TV: the
    /// value int8 or uint8, the scale float, the zero point of the value's type (the other
    /// operators' contracts say so of their operands).
    private func checkTriples(_ types: [DataType?]) throws {
        guard checksTriples else { return }
        func type(_ index: Int) -> DataType? { index < types.count ? types[index] : nil }
        for operand in operands {
            guard let value = type(operand.value) else { continue }
            let input = "inputs[\(operand.value - 2)]"
            guard value == .int8 || value == .uint8 else { throw OpError("input '\(input)' has element type \(value); a quantized value must be int8 or uint8") }
            if let scale = type(operand.scale), scale != .float {
                throw OpError("input 'inputs[\(operand.scale - 2)]' has element type \(scale); the scale of \(input) must be float")
            }
            if let zero = type(operand.zeroPoint), zero != value {
                throw OpError("input 'inputs[\(operand.zeroPoint - 2)]' has element type \(zero); the zero point of \(input) must be \(value) as it is")
            }
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        try checkTriples(inputs.indices.map { inputs.type($0)?.dataType })
        let floats = operands.map { inputs.type($0.value).map { TensorType(.float, $0.dims) } }
        let types = try inner.outputTypes(floats)
        let output = inputs.type(outputZeroPoint)?.dataType ?? inputs.type(operands[0].value)?.dataType ?? .uint8
        return [TensorType(output, (types.first ?? nil)?.dims)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        try checkTriples(inputs.map { $0?.dataType })
        var floats: [Tensor?] = []
        for operand in operands {
            let value = try inputs.required(operand.value)
            floats.append(try Self.dequantize.run([value, try inputs.required(operand.scale), inputs.optional(operand.zeroPoint)], context)[0])
        }
        let result = try inner.run(floats, context)
        guard let y = result.first else { throw OpError("the float operator produced no output") }
        // Without a zero point, the output has the first operand's type.
        let zeroPoint = try inputs.optional(outputZeroPoint)
            ?? Tensor(zeros: try inputs.required(operands[0].value).dataType, shape: [])
        return try Self.quantize.run([y, try inputs.required(outputScale), zeroPoint], context)
    }
}

extension QuantizedFloatOperator {
    /// QLinearAdd and QLinearMul: A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp.
    static func binary(_ context: OperatorContext, _ opType: String) throws -> QuantizedFloatOperator {
        try QuantizedFloatOperator(context, opType: opType, operands: [Operand(value: 0, scale: 1, zeroPoint: 2), Operand(value: 3, scale: 4, zeroPoint: 5)],
                                   output: (6, 7))
    }

    /// QLinearSigmoid, QLinearLeakyRelu, QLinearGlobalAveragePool and QLinearAveragePool:
    /// X, X_scale, X_zp, Y_scale, Y_zp.
    static func unary(_ context: OperatorContext, _ opType: String, opset: Int = 13) throws -> QuantizedFloatOperator {
        try QuantizedFloatOperator(context, opType: opType, opset: opset, operands: [Operand(value: 0, scale: 1, zeroPoint: 2)], output: (3, 4))
    }

    /// QLinearConcat: Y_scale, Y_zp, then (X, X_scale, X_zp) per input.
    static func concat(_ context: OperatorContext) throws -> QuantizedFloatOperator {
        let count = (context.inputCount - 2) / 3
        guard count >= 1, context.inputCount == 2 + 3 * count else {
            throw OpError("QLinearConcat needs Y_scale, Y_zero_point and a (value, scale, zero point) triple per input")
        }
        var concat = try QuantizedFloatOperator(context, opType: "Concat", operands: (0..<count).map { Operand(value: 2 + 3 * $0, scale: 3 + 3 * $0, zeroPoint: 4 + 3 * $0) },
                                                output: (0, 1))
        concat.checksTriples = true
        return concat
    }
}

/// MatMulIntegerToFloat: `MatMulInteger(A, B, a_zp, b_zp) × a_scale × b_scale (+ bias)`, float.
/// Inputs A, B, a_scale, b_scale, a_zero_point, b_zero_point, bias.
/// DynamicQuantizeMatMul: A (float) quantized dynamically to uint8 first; inputs A, B, b_scale,
/// b_zero_point, bias.
struct IntegerMatMulToFloat: Operator {
    let quantizesA: Bool
    /// A constant B (and zero point) prepared at load time.
    let weights: IntegerWeights?

    init(_ context: OperatorContext, quantizesA: Bool) throws {
        self.quantizesA = quantizesA
        weights = try IntegerWeights(context, b: 1, zeroPoint: quantizesA ? 3 : 5)
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let a = inputs.type(0), let b = inputs.type(1) else { return [TensorType(.float, nil)] }
        return try MatMul().outputTypes([TensorType(.float, a.dims), TensorType(.float, b.dims)])
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        var a = try inputs.required(0)
        let b = try inputs.required(1)
        let aScale: Tensor, bScale: Tensor, aZero: Tensor?, bZero: Tensor?, bias: Tensor?
        if quantizesA {
            let quantized = try DynamicQuantizeLinear().run([a], context)
            (a, aScale, aZero) = (quantized[0], quantized[1], quantized[2])
            (bScale, bZero, bias) = (try inputs.required(2), inputs.optional(3), inputs.optional(4))
        } else {
            (aScale, bScale, aZero, bZero, bias) = (try inputs.required(2), try inputs.required(3), inputs.optional(4), inputs.optional(5), inputs.optional(6))
        }
        guard b.shape.rank >= 1 else { throw OpError.invalidArgument("B must have rank 1 or more") }
        let columns = b.shape[b.shape.rank - 1]
        let product = try IntegerProduct.matMul(a, zeroPoint: aZero, b, zeroPoint: bZero, weights: weights, context)
        let aScales = try QuantizationOperators.floats(aScale, context), bScales = try QuantizationOperators.floats(bScale, context)
        guard aScales.count == 1 else { throw OpError.invalidArgument("a_scale must be a scalar, not \(aScale.shape)") }
        guard bScales.count == 1 || bScales.count == columns else {
            throw OpError.invalidArgument("b_scale \(bScale.shape) must be a scalar or hold one value per column of B \(b.shape)")
        }
        let biases = try bias.map { try QuantizationOperators.floats($0, context) }
        if let biases, biases.count != columns { throw OpError.invalidArgument("bias must hold one value per column of B \(b.shape)") }
        let y = try context.allocate(.float, product.shape)
        let target = y.mutablePointer(as: Float.self)
        let sums = product.pointer(as: Int32.self)
        for i in 0..<y.elementCount {
            let c = i % Swift.max(columns, 1)
            // ONNX Runtime: the int32 sum in float, times the combined scale, plus the bias.
            let sum = Float(sums[i])
            target[i] = sum * (aScales[0] * bScales[bScales.count == 1 ? 0 : c]) + (biases?[c] ?? 0)
        }
        withExtendedLifetime(product) {}
        return [y]
    }
}

/// QGemm (com.microsoft, written by ONNX Runtime's quantizer for Gemm in QOperator format):
/// `acc = C + (A − a_zero_point) · (B − b_zero_point)` in int32 (wrapping), A [M, K] and B [K, N]
/// after `transA`/`transB`, C an int32 bias broadcast to [M, N] (a scalar, [N], [1, N], [M, 1] or
/// [M, N]). With `y_zero_point`: `y = saturate(round(acc × s) + y_zero_point)` of its type, else
/// float `y = acc × s`, where `s = alpha × a_scale × b_scale[j] (/ y_scale when given)` per
/// column j, computed in that order as ONNX Runtime does.
/// Inputs: A, a_scale, a_zero_point, B, b_scale, b_zero_point, C, y_scale, y_zero_point.
struct QGemm: Operator {
    let alpha: Float
    let transA: Bool, transB: Bool
    /// A constant B (and zero point), transposed to [K, N] when `transB`, prepared at load time.
    let weights: IntegerWeights?

    init(_ context: OperatorContext) throws {
        alpha = try context.float("alpha", default: 1)
        transA = try context.int("transA", default: 0) != 0
        transB = try context.int("transB", default: 0) != 0
        if let b = context.constant(3), context.constant(5) != nil || !context.hasInput(5) {
            guard b.shape.rank == 2 else { throw OpError.invalidArgument("B must be a matrix, not \(b.shape)") }
            let serial = ExecutionContext(pool: BufferPool(retainLimit: 0), parallelism: .serial)
            weights = try IntegerWeights(b: try Self.oriented(b, transposed: transB, serial), zeroPoint: context.constant(5))
        } else {
            weights = nil
        }
    }

    /// `matrix` transposed when `transposed`, else itself.
    static func oriented(_ matrix: Tensor, transposed: Bool, _ context: ExecutionContext) throws -> Tensor {
        guard transposed else { return matrix }
        return try Transpose.permute(matrix, viewedAs: matrix.shape.dims, perm: [1, 0], context)
    }

    /// M, K and N from A's and B's dimensions (before transposition), or an error.
    private func geometry(_ a: [Dim], _ b: [Dim]) throws -> (m: Dim, k: Dim, n: Dim) {
        guard a.count == 2, b.count == 2 else { throw OpError.invalidArgument("A and B must be matrices") }
        let (m, ka) = transA ? (a[1], a[0]) : (a[0], a[1])
        let (kb, n) = transB ? (b[1], b[0]) : (b[0], b[1])
        if let x = ka.value, let y = kb.value, x != y { throw OpError.invalidArgument("A's inner dimension \(x) differs from B's \(y)") }
        return (m, ka.value == nil ? kb : ka, n)
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        let output = inputs.type(8)?.dataType ?? .float
        guard let a = inputs.type(0)?.dims, let b = inputs.type(3)?.dims else { return [TensorType(output, [.unknown, .unknown])] }
        let (m, _, n) = try geometry(a, b)
        return [TensorType(output, [m, n])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let a = try inputs.required(0), b = try inputs.required(3)
        let sizes = try geometry(a.shape.dims.map { .fixed($0) }, b.shape.dims.map { .fixed($0) })
        guard let m = sizes.m.value, let n = sizes.n.value else { throw OpError.invalidArgument("A \(a.shape) and B \(b.shape) do not multiply") }
        if let zero = inputs.optional(2), zero.elementCount != 1 { throw OpError.invalidArgument("a_zero_point must be a scalar, not \(zero.shape)") }
        let aScales = try QuantizationOperators.floats(try inputs.required(1), context)
        let bScales = try QuantizationOperators.floats(try inputs.required(4), context)
        guard aScales.count == 1 else { throw OpError.invalidArgument("a_scale must be a scalar") }
        guard bScales.count == 1 || bScales.count == n else { throw OpError.invalidArgument("b_scale must be a scalar or hold \(n) values") }
        if let zero = inputs.optional(5), zero.elementCount != 1 && zero.elementCount != n {
            throw OpError.invalidArgument("b_zero_point must be a scalar or hold \(n) values, not \(zero.shape)")
        }
        let yScale = try inputs.optional(7).map { try QuantizationOperators.floats($0, context) }
        if let yScale, yScale.count != 1 { throw OpError.invalidArgument("y_scale must be a scalar") }
        let yZero = inputs.optional(8)
        let left = try Self.oriented(a, transposed: transA, context)
        // Prepared weights: B already centred and oriented to [K, N] (matMul reads only its shape).
        let right = try weights?.values ?? Self.oriented(b, transposed: transB, context)
        let product = try IntegerProduct.matMul(left, zeroPoint: inputs.optional(2), right, zeroPoint: inputs.optional(5), weights: weights, context)
        guard product.shape == [m, n] else { throw OpError("the product has shape \(product.shape), not [\(m), \(n)]") }
        let sums = product.mutablePointer(as: Int32.self)
        if let c = inputs.optional(6) {
            // Row and column strides of C broadcast to [M, N].
            let strides: (row: Int, column: Int)
            switch c.shape.dims {
            case _ where c.elementCount == 1 && c.shape.rank <= 2: strides = (0, 0)
            case [n], [1, n]: strides = (0, 1)
            case [m, 1]: strides = (1, 0)
            case [m, n]: strides = (n, 1)
            default: throw OpError.invalidArgument("C \(c.shape) does not broadcast to [\(m), \(n)]")
            }
            let bias = c.pointer(as: Int32.self)
            for i in 0..<m {
                for j in 0..<n { sums[i * n + j] &+= bias[i * strides.row + j * strides.column] }
            }
            withExtendedLifetime(c) {}
        }
        let scales = (0..<Swift.max(n, 1)).map { j -> Float in
            let s = alpha * aScales[0] * bScales[bScales.count == 1 ? 0 : j]
            return yScale.map { s / $0[0] } ?? s
        }
        if let yZero {
            guard let range = QuantizationOperators.range(yZero.dataType) else {
                throw OpError("y_zero_point must be uint8 or int8, not \(yZero.dataType)")
            }
            let zeros = try QuantizationOperators.floats(yZero, context)
            guard zeros.count == 1 else { throw OpError.invalidArgument("y_zero_point must be a scalar") }
            var values = [Float](repeating: 0, count: product.elementCount)
            for i in 0..<m {
                for j in 0..<n {
                    values[i * n + j] = QuantizationOperators.requantize(Float(sums[i * n + j]), scale: scales[j], zeroPoint: zeros[0], range: range)
                }
            }
            withExtendedLifetime(product) {}
            return [try values.withUnsafeBufferPointer { try QuantizationOperators.store($0, as: yZero.dataType, shape: [m, n], context) }]
        }
        let y = try context.allocate(.float, [m, n])
        let target = y.mutablePointer(as: Float.self)
        for i in 0..<m {
            for j in 0..<n { target[i * n + j] = Float(sums[i * n + j]) * scales[j] }
        }
        withExtendedLifetime(product) {}
        return [y]
    }
}
