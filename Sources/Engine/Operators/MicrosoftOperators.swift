import Tensors

/// ONNX Runtime's contrib operators, domain `com.microsoft`: the ones its quantizer (QOperator
/// format) and its transformer optimizer write into models. One line per operator; the
/// implementations live with their families.
enum MicrosoftOperators {
    static let domain = "com.microsoft"

    static let definitions: [OperatorDefinition] = [
        // Quantized (QOperator format, onnxruntime.quantization): QuantizedContribOperators.swift
        OperatorDefinition("QLinearAdd", versions: [1], contract: Contracts.quantizedBinary) { try QuantizedFloatOperator.binary($0, "Add") },
        OperatorDefinition("QLinearMul", versions: [1], contract: Contracts.quantizedBinary) { try QuantizedFloatOperator.binary($0, "Mul") },
        OperatorDefinition("QLinearSigmoid", versions: [1], contract: Contracts.quantizedUnary(scale: "X_scale", zeroPoint: "X_zero_point", "Y_scale", "Y_zero_point")) {
            try QuantizedFloatOperator.unary($0, "Sigmoid")
        },
        OperatorDefinition("QLinearLeakyRelu", versions: [1], contract: Contracts.quantizedUnary(scale: "X_scale", zeroPoint: "X_zero_point", "Y_scale", "Y_zero_point")) {
            try QuantizedFloatOperator.unary($0, "LeakyRelu")
        },
        OperatorDefinition("QLinearGlobalAveragePool", versions: [1], contract: Contracts.quantizedUnary(scale: "x_scale", zeroPoint: "x_zero_point", "y_scale", "y_zero_point", zeroPointsRequired: true)) {
            try QuantizedFloatOperator.unary($0, "GlobalAveragePool")
        },
        OperatorDefinition("QLinearAveragePool", versions: [1], contract: Contracts.quantizedUnary(scale: "x_scale", zeroPoint: "x_zero_point", "y_scale", "y_zero_point")) {
            try QuantizedFloatOperator.unary($0, "AveragePool", opset: 19)
        },
        // Its inputs are (value, scale, zero point) triples: TV per position (a value must still be
        // int8 or uint8, the operator's check).
        OperatorDefinition("QLinearConcat", versions: [1], contract: OperatorContract(
            inputs: [.init("Y_scale", "TF"), .init("Y_zero_point", "T8"), .init("inputs", "TV", .variadic(min: 1), homogeneous: false)],
            outputs: [.init("Y", "T8")], types: ["TF": [.float], "T8": Contracts.bytes, "TV": [.float, .int8, .uint8]])) {
            try QuantizedFloatOperator.concat($0)
        },
        OperatorDefinition("QGemm", versions: [1], contract: OperatorContract(
            inputs: [.init("A", "TA"), .init("a_scale", "T"), .init("a_zero_point", "TA"), .init("B", "TB"), .init("b_scale", "T"),
                     .init("b_zero_point", "TB"), .init("C", "TC", .optional), .init("y_scale", "T", .optional),
                     .init("y_zero_point", "TYZ", .optional)],
            outputs: [.init("Y", "TY")],
            types: ["T": [.float], "TA": Contracts.bytes, "TB": Contracts.bytes, "TC": [.int32], "TYZ": Contracts.bytes,
                    "TY": [.float, .int8, .uint8]])) { try QGemm($0) },
        // T3 float only: the result is float (ONNX Runtime's float16 form would give float16).
        OperatorDefinition("MatMulIntegerToFloat", versions: [1], contract: OperatorContract(
            inputs: [.init("A", "T1"), .init("B", "T2"), .init("a_scale", "T3"), .init("b_scale", "T3"), .init("a_zero_point", "T1", .optional),
                     .init("b_zero_point", "T2", .optional), .init("bias", "T3", .optional)],
            outputs: [.init("Y", "T3")], types: ["T1": Contracts.bytes, "T2": Contracts.bytes, "T3": [.float]])) {
            try IntegerMatMulToFloat($0, quantizesA: false)
        },
        OperatorDefinition("DynamicQuantizeMatMul", versions: [1], contract: OperatorContract(
            inputs: [.init("A", "T1"), .init("B", "T2"), .init("b_scale", "T1"), .init("b_zero_point", "T2", .optional), .init("bias", "T1", .optional)],
            outputs: [.init("Y", "T1")], types: ["T1": [.float], "T2": Contracts.bytes])) { try IntegerMatMulToFloat($0, quantizesA: true) },
        // Transformer fusions (onnxruntime.transformers.optimizer): MicrosoftTransformerOperators.swift
        OperatorDefinition("Attention", versions: [1], contract: OperatorContract(
            inputs: [.init("input", "T"), .init("weights", "T"), .init("bias", "T", .optional), .init("mask_index", "M", .optional),
                     .init("past", "T", .optional), .init("attention_bias", "T", .optional), .init("past_sequence_length", "M", .optional)],
            outputs: [.init("output", "T"), .init("present", "T", .optional)],
            types: ["T": Contracts.attention, "M": [.int32]])) { try PackedAttention($0) },
        OperatorDefinition("MultiHeadAttention", versions: [1], contract: OperatorContract(
            inputs: [.init("query", "T"), .init("key", "T", .optional), .init("value", "T", .optional), .init("bias", "T", .optional),
                     .init("key_padding_mask", "M", .optional), .init("attention_bias", "T", .optional), .init("past_key", "T", .optional),
                     .init("past_value", "T", .optional), .init("past_sequence_length", "M", .optional),
                     .init("cache_indirection", "M", .optional)],
            outputs: [.init("output", "T"), .init("present_key", "T", .optional), .init("present_value", "T", .optional),
                      .init("qk", "QK", .optional)],
            types: ["T": Contracts.attention, "QK": Contracts.attention, "M": [.int32]])) { try MultiHeadAttention($0) },
        // No quantized (int8, uint8, float8) cache; the caches' type is the query's (the operator's check).
        OperatorDefinition("GroupQueryAttention", versions: [1], contract: OperatorContract(
            inputs: [.init("query", "T"), .init("key", "T", .optional), .init("value", "T", .optional), .init("past_key", "T_CACHE", .optional),
                     .init("past_value", "T_CACHE", .optional), .init("seqlens_k", "M"), .init("total_sequence_length", "M"),
                     .init("cos_cache", "T", .optional), .init("sin_cache", "T", .optional), .init("position_ids", .int64, .optional),
                     .init("attention_bias", "T", .optional), .init("head_sink", "T", .optional), .init("k_scale", "T_KV_SCALE", .optional),
                     .init("v_scale", "T_KV_SCALE", .optional), .init("q_norm_weight", "T", .optional), .init("k_norm_weight", "T", .optional),
                     .init("query_seqlens", "M", .optional)],
            outputs: [.init("output", "T"), .init("present_key", "T_CACHE", .optional), .init("present_value", "T_CACHE", .optional),
                      .init("output_qk", "T", .optional)],
            types: ["T": Contracts.attention, "T_CACHE": Contracts.attention, "T_KV_SCALE": [.float], "M": [.int32]])) {
            try GroupQueryAttention($0)
        },
        OperatorDefinition("SkipLayerNormalization", versions: [1], contract: OperatorContract(
            inputs: [.init("input", "T"), .init("skip", "T"), .init("gamma", "T"), .init("beta", "T", .optional), .init("bias", "T", .optional)],
            outputs: Contracts.skipNormalizationOutputs, types: ["T": Contracts.attention, "U": [.float]])) {
            try SkipNormalization($0, centered: true)
        },
        OperatorDefinition("SkipSimplifiedLayerNormalization", versions: [1], contract: OperatorContract(
            inputs: [.init("input", "T"), .init("skip", "T"), .init("gamma", "T"), .init("bias", "T", .optional)],
            outputs: Contracts.skipNormalizationOutputs, types: ["T": Contracts.attention, "U": [.float]])) {
            try SkipNormalization($0, centered: false)
        },
        // ONNX Runtime defines it in the default domain only (MicrosoftTransformerOperators); the
        // same form here.
        OperatorDefinition("SimplifiedLayerNormalization", versions: [1], contract: MicrosoftTransformerOperators.simplifiedLayerNormalization) {
            try SimplifiedLayerNormalization($0)
        },
        OperatorDefinition("EmbedLayerNormalization", versions: [1], contract: OperatorContract(
            inputs: [.init("input_ids", "T1"), .init("segment_ids", "T1", .optional), .init("word_embedding", "T"),
                     .init("position_embedding", "T"), .init("segment_embedding", "T", .optional), .init("gamma", "T"), .init("beta", "T"),
                     .init("mask", "T1", .optional), .init("position_ids", "T1", .optional)],
            outputs: [.init("output", "T"), .init("mask_index", "T1", .optional), .init("embedding_sum", "T", .optional)],
            types: ["T1": [.int32], "T": [.float, .float16]])) { try EmbedLayerNormalization($0) },
        OperatorDefinition("Gelu", versions: [1], contract: .unary(ElementTypes.floatingPoint)) { _ in BiasActivation(.gelu) },
        OperatorDefinition("BiasGelu", versions: [1], contract: OperatorContract(
            inputs: [.init("A", "T"), .init("B", "T")], outputs: [.init("C", "T")], types: ["T": ElementTypes.floatingPoint])) {
            _ in BiasActivation(.gelu)
        },
        OperatorDefinition("FastGelu", versions: [1], contract: OperatorContract(
            inputs: [.init("X", "T"), .init("bias", "T", .optional)], outputs: [.init("Y", "T")], types: ["T": ElementTypes.floatingPoint])) {
            _ in BiasActivation(.geluTanh)
        },
        OperatorDefinition("QuickGelu", versions: [1], contract: .unary(ElementTypes.floatingPoint)) {
            BiasActivation(.quick(alpha: try $0.float("alpha", default: 1.702)))
        },
        OperatorDefinition("RotaryEmbedding", versions: [1], contract: OperatorContract(
            inputs: [.init("input", "T"), .init("position_ids", "M"), .init("cos_cache", "T"), .init("sin_cache", "T")],
            outputs: [.init("output", "T")], types: ["T": Contracts.attention, "M": [.int64]])) { try RotaryEmbeddingOperator(microsoft: $0) },
    ]

    /// The element types and formals several of these contracts share.
    private enum Contracts {
        static let bytes: Set<DataType> = [.int8, .uint8]
        /// The attention and normalisation fusions' T: ONNX Runtime's float, float16 and bfloat16
        /// (bfloat16 reaches them widened to float).
        static let attention: Set<DataType> = [.float, .float16]
        static let skipNormalizationOutputs: [OperatorContract.Parameter] = [
            .init("output", "T"), .init("mean", "U", .optional), .init("inv_std_var", "U", .optional),
            .init("input_skip_bias_sum", "T", .optional),
        ]

        /// QLinearAdd and QLinearMul.
        static let quantizedBinary = OperatorContract(
            inputs: [.init("A", "T"), .init("A_scale", .float), .init("A_zero_point", "T", .optional), .init("B", "T"), .init("B_scale", .float),
                     .init("B_zero_point", "T", .optional), .init("C_scale", .float), .init("C_zero_point", "T", .optional)],
            outputs: [.init("C", "T")], types: ["T": bytes])

        /// The quantized unary operators: X, its scale and zero point, Y's scale and zero point.
        static func quantizedUnary(scale: String, zeroPoint: String, _ yScale: String, _ yZeroPoint: String,
                                   zeroPointsRequired: Bool = false) -> OperatorContract {
            let arity: OperatorContract.Arity = zeroPointsRequired ? .required : .optional
            return OperatorContract(
                inputs: [.init("X", "T"), .init(scale, .float), .init(zeroPoint, "T", arity), .init(yScale, .float), .init(yZeroPoint, "T", arity)],
                outputs: [.init("Y", "T")], types: ["T": bytes])
        }
    }
}
