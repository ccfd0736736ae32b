/// ONNX Runtime's contrib operators, domain `com.microsoft`: the ones its quantizer (QOperator
/// format) and its transformer optimizer write into models. One line per operator; the
/// implementations live with their families.
enum MicrosoftOperators {
    static let domain = "com.microsoft"

    static let definitions: [OperatorDefinition] = [
        // Quantized (QOperator format): QuantizedContribOperators.swift
        OperatorDefinition("QLinearAdd", versions: [1]) { try QuantizedFloatOperator.binary($0, "Add") },
        OperatorDefinition("QLinearMul", versions: [1]) { try QuantizedFloatOperator.binary($0, "Mul") },
        OperatorDefinition("QLinearSigmoid", versions: [1]) { try QuantizedFloatOperator.unary($0, "Sigmoid") },
        OperatorDefinition("QLinearLeakyRelu", versions: [1]) { try QuantizedFloatOperator.unary($0, "LeakyRelu") },
        OperatorDefinition("QLinearGlobalAveragePool", versions: [1]) { try QuantizedFloatOperator.unary($0, "GlobalAveragePool") },
        OperatorDefinition("QLinearAveragePool", versions: [1]) { try QuantizedFloatOperator.unary($0, "AveragePool", opset: 19) },
        OperatorDefinition("QLinearConcat", versions: [1]) { try QuantizedFloatOperator.concat($0) },
        OperatorDefinition("MatMulIntegerToFloat", versions: [1]) { _ in IntegerMatMulToFloat(quantizesA: false) },
        OperatorDefinition("DynamicQuantizeMatMul", versions: [1]) { _ in IntegerMatMulToFloat(quantizesA: true) },
    ]
}
