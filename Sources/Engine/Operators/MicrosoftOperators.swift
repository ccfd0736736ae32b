/// ONNX Runtime's contrib operators, domain `com.microsoft`: the ones its quantizer (QOperator
/// format) and its transformer optimizer write into models. One line per operator; the
/// implementations live with their families.
enum MicrosoftOperators {
    static let domain = "com.microsoft"

    static let definitions: [OperatorDefinition] = [
        // Quantized (QOperator format, onnxruntime.quantization): QuantizedContribOperators.swift
        OperatorDefinition("QLinearAdd", versions: [1]) { try QuantizedFloatOperator.binary($0, "Add") },
        OperatorDefinition("QLinearMul", versions: [1]) { try QuantizedFloatOperator.binary($0, "Mul") },
        OperatorDefinition("QLinearSigmoid", versions: [1]) { try QuantizedFloatOperator.unary($0, "Sigmoid") },
        OperatorDefinition("QLinearLeakyRelu", versions: [1]) { try QuantizedFloatOperator.unary($0, "LeakyRelu") },
        OperatorDefinition("QLinearGlobalAveragePool", versions: [1]) { try QuantizedFloatOperator.unary($0, "GlobalAveragePool") },
        OperatorDefinition("QLinearAveragePool", versions: [1]) { try QuantizedFloatOperator.unary($0, "AveragePool", opset: 19) },
        OperatorDefinition("QLinearConcat", versions: [1]) { try QuantizedFloatOperator.concat($0) },
        OperatorDefinition("QGemm", versions: [1]) { try QGemm($0) },
        OperatorDefinition("MatMulIntegerToFloat", versions: [1]) { try IntegerMatMulToFloat($0, quantizesA: false) },
        OperatorDefinition("DynamicQuantizeMatMul", versions: [1]) { try IntegerMatMulToFloat($0, quantizesA: true) },
        // Transformer fusions (onnxruntime.transformers.optimizer): MicrosoftTransformerOperators.swift
        OperatorDefinition("Attention", versions: [1]) { try PackedAttention($0) },
        OperatorDefinition("MultiHeadAttention", versions: [1]) { try MultiHeadAttention($0) },
        OperatorDefinition("GroupQueryAttention", versions: [1]) { try GroupQueryAttention($0) },
        OperatorDefinition("SkipLayerNormalization", versions: [1]) { try SkipNormalization($0, centered: true) },
        OperatorDefinition("SkipSimplifiedLayerNormalization", versions: [1]) { try SkipNormalization($0, centered: false) },
        OperatorDefinition("SimplifiedLayerNormalization", versions: [1]) { try SimplifiedLayerNormalization($0) },
        OperatorDefinition("EmbedLayerNormalization", versions: [1]) { try EmbedLayerNormalization($0) },
        OperatorDefinition("Gelu", versions: [1]) { _ in BiasActivation(.gelu) },
        OperatorDefinition("BiasGelu", versions: [1]) { _ in BiasActivation(.gelu) },
        OperatorDefinition("FastGelu", versions: [1]) { _ in BiasActivation(.geluTanh) },
        OperatorDefinition("QuickGelu", versions: [1]) { BiasActivation(.quick(alpha: try $0.float("alpha", default: 1.702))) },
        OperatorDefinition("RotaryEmbedding", versions: [1]) { try RotaryEmbeddingOperator(microsoft: $0) },
    ]
}
