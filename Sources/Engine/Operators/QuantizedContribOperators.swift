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

    private static let dequantize = DequantizeLinear(attributes: QuantizationAttributes())
    private static let quantize = QuantizeLinear(attributes: QuantizationAttributes())

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        for operand in operands {
            if let type = inputs.type(operand.value) { try checkElementType(type.dataType, [.int8, .uint8], role: "input \(operand.value)") }
        }
        let floats = operands.map { inputs.type($0.value).map { TensorType(.float, $0.dims) } }
        let types = try inner.outputTypes(floats)
        let output = inputs.type(outputZeroPoint)?.dataType ?? inputs.type(operands[0].value)?.dataType ?? .uint8
        return [TensorType(output, (types.first ?? nil)?.dims)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        var floats: [Tensor?] = []
        for operand in operands {
            let value = try inputs.required(operand.value)
            try checkElementType(value.dataType, [.int8, .uint8], role: "input \(operand.value)")
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
        return try QuantizedFloatOperator(context, opType: "Concat", operands: (0..<count).map { Operand(value: 2 + 3 * $0, scale: 3 + 3 * $0, zeroPoint: 4 + 3 * $0) },
                                          output: (0, 1))
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
            try checkElementType(a.dataType, [.float], role: "A")
            let quantized = try DynamicQuantizeLinear().run([a], context)
            (a, aScale, aZero) = (quantized[0], quantized[1], quantized[2])
            (bScale, bZero, bias) = (try inputs.required(2), inputs.optional(3), inputs.optional(4))
        } else {
            (aScale, bScale, aZero, bZero, bias) = (try inputs.required(2), try inputs.required(3), inputs.optional(4), inputs.optional(5), inputs.optional(6))
        }
        try checkElementType(a.dataType, [.int8, .uint8], role: "A")
        try checkElementType(b.dataType, [.int8, .uint8], role: "B")
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
