import Tensors

/// Where low-precision values widen, the one rule for them (see `DataType.computeType`): before a
/// node whose operator does not take them as they are (the conversions in `native`), each
/// low-precision input is cast to its compute type (bfloat16, float8 and float4 to float; 4- and
/// 2-bit integers to int8 or uint8), and each result the operator then produces in that compute
/// type is cast back to the (first) low-precision input type after it. The plan builder inserts
/// those casts as steps of their own; kernels only ever see their usual types.
///
/// float16 has kernels of its own, but the operators that accumulate long sums (products and
/// averaging pools, `float16InFloat`) widen it the same way: ONNX Runtime's CPU provider computes
/// them in float (it casts around them) and rounds each result to float16 once.
struct LowPrecisionWidening {
    /// Operators that read and write low-precision types themselves.
    /// (The sequence and optional operators move tensors without computing with them.)
    static let native: Set<String> = [
        "Cast", "CastLike", "QuantizeLinear", "DequantizeLinear", "BitCast",
        "SequenceConstruct", "SequenceInsert", "SequenceAt", "SequenceErase", "SplitToSequence", "ConcatFromSequence",
        "SequenceMap", "Optional", "OptionalGetElement", "OptionalHasElement",
    ]
    /// Operators that read bfloat16 themselves, to round where ONNX's reference rounds (ONNX
    /// Runtime's CPU provider has no bfloat16 kernel for them; see `BFloat16Rounding`).
    static let bfloat16Native: Set<String> = ["Attention", "Softmax"]
    /// Operators that compute float16 in float.
    static let float16InFloat: Set<String> = [
        "Conv", "ConvTranspose", "FusedConv", "DeformConv", "Gemm", "FusedGemm", "MatMul", "AveragePool", "GlobalAveragePool",
    ]

    /// The low-precision type results narrow back to.
    let lowPrecision: DataType
    /// Input positions to widen, with the name and type of the widened value.
    let widenedInputs: [(Int, (name: String, type: TensorType))]

    /// The widening a node needs, or nil when it reads no low-precision value (of known type) or
    /// converts them itself.
    init?(_ node: Node, step: Int, inputTypes: [TensorType?]) {
        let defaultDomain = node.domain.isEmpty || node.domain == "ai.onnx"
        guard defaultDomain ? !Self.native.contains(node.opType) : true else { return nil }
        var widened: [(Int, (name: String, type: TensorType))] = []
        var first: DataType?
        let widensFloat16 = Self.float16InFloat.contains(node.opType)
        let readsBFloat16 = defaultDomain && Self.bfloat16Native.contains(node.opType)
        for (position, type) in inputTypes.enumerated() {
            guard let type, !(readsBFloat16 && type.dataType == .bfloat16), let wide = type.dataType.computeType ?? (widensFloat16 && type.dataType == .float16 ? .float : nil) else { continue }
            first = first ?? type.dataType
            widened.append((position, (Self.wideName(node.inputs[position], step: step), TensorType(wide, type.dims))))
        }
        guard let first else { return nil }
        lowPrecision = first
        widenedInputs = widened
    }

    /// The type a result of type `wide` narrows back to, or nil when it stays (an index, a flag).
    func narrowedType(_ wide: TensorType) -> TensorType? {
        wide.dataType == (lowPrecision.computeType ?? .float) ? TensorType(lowPrecision, wide.dims) : nil
    }

    /// The name of the widened form of `name` for the node at `step` (unique: several nodes may
    /// widen one value).
    static func wideName(_ name: String, step: Int) -> String { "\(name)#widened@\(step)" }

    /// A step converting value `source` into `target`.
    static func conversion(from source: String, to target: (name: String, type: TensorType), label: String,
                           slot: (String) -> Int) -> ExecutionPlan.Step {
        ExecutionPlan.Step(op: Cast(target: target.type.dataType), label: "\(label) (\(target.type.dataType) conversion)",
                           opType: "Cast", inputs: [slot(source)], outputs: [slot(target.name)])
    }
}
