import Kernels
import Tensors

/// Scaled dot-product attention (ONNX `Attention`, opsets 23–25), run by the fused kernel
/// `Attention.attention` (online softmax over key tiles, heads read in place).
enum AttentionOperators {
    static let definitions: [OperatorDefinition] = [
        // Q and K of T1, V of T2 (each float, double, float16 or bfloat16), a bool or T1-like mask U;
        // nonpad_kv_seqlen came in 24.
        OperatorDefinition("Attention", versions: [23, 24, 25], contracts: { version in
            let types = ScaledDotProductAttention.elementTypes
            return OperatorContract(
                inputs: [.init("Q", "T1"), .init("K", "T1"), .init("V", "T2"), .init("attn_mask", "U", .optional),
                         .init("past_key", "T1", .optional), .init("past_value", "T2", .optional)]
                    + (version < 24 ? [] : [.init("nonpad_kv_seqlen", .int64, .optional)]),
                outputs: [.init("Y", "T1"), .init("present_key", "T1", .optional), .init("present_value", "T2", .optional),
                          .init("qk_matmul_output", "T1", .optional)],
                types: ["T1": types, "T2": types, "U": types.union([.bool])])
        }) { try ScaledDotProductAttention($0) },
    ]
}

/// Heads beyond this are refused: no model has them, and a head count from a model file must not
/// make the task count overflow.
let maximumAttentionHeads = 1 << 16

/// A window or offset beyond any real sequence; larger values are clamped to it so that position
/// arithmetic cannot overflow (a window that wide already spans every key).
let attentionPositionBound = 1 << 40

/// Q, K, V in one of two layouts: [B, S, H·D] (3-D, heads from attributes) or [B, H, S, D].
struct AttentionInput {
    let tensor: Tensor
    let heads: Int, length: Int, headSize: Int
    let operand: Attention.Operand

    init(_ tensor: Tensor, heads attribute: Int?, role: String) throws {
        self.tensor = tensor
        let dims = tensor.shape.dims
        switch dims.count {
        case 3:
            guard let heads = attribute else {
                throw OpError("3-D \(role) needs the q_num_heads and kv_num_heads attributes")
            }
            guard heads > 0, heads <= maximumAttentionHeads, dims[2] % heads == 0, dims[2] >= heads else {
                throw OpError.invalidArgument("\(role) hidden size \(dims[2]) does not split into \(heads) heads")
            }
            self.heads = heads
            length = dims[1]
            headSize = dims[2] / heads
            operand = Attention.Operand(base: tensor.mutablePointer(as: Float.self), batchStride: dims[1] * dims[2],
                                        headStride: headSize, rowStride: dims[2])
        case 4:
            guard dims[1] <= maximumAttentionHeads else { throw OpError.invalidArgument("\(role) has \(dims[1]) heads") }
            heads = dims[1]
            length = dims[2]
            headSize = dims[3]
            operand = Attention.Operand(base: tensor.mutablePointer(as: Float.self), batchStride: dims[1] * dims[2] * dims[3],
                                        headStride: dims[2] * dims[3], rowStride: dims[3])
        default:
            throw OpError.invalidArgument("\(role) must have rank 3 or 4, got shape \(tensor.shape)")
        }
    }
}

/// ONNX Attention: `softmax(softcap(scale · Q·Kᵀ) + mask) · V` with grouped-query heads, a KV
/// cache (past_key/past_value in, present_key/present_value out), causal and sliding-window
/// masks, padded keys (nonpad_kv_seqlen) and the optional score output (qk_matmul_output).
/// Float16 and double compute in float, as ONNX Runtime's CPU provider does for float16 (within
/// the node tests' tolerance of ONNX's reference, which rounds every step to float16). bfloat16,
/// which ONNX Runtime's CPU provider lacks, is rounded where the reference rounds it
/// (`Attention.roundingToBFloat16`): one float rounding is a bfloat16 step (0.4%) off it.
struct ScaledDotProductAttention: Operator {
    /// Element types of Q, K, V and a float mask.
    static let elementTypes = ElementTypes.floatingPoint.union([.bfloat16])
    let causal: Bool
    let qHeads: Int?, kvHeads: Int?
    let scoreStage: Attention.ScoreStage
    let scale: Float?
    let softcap: Float
    /// softmax_precision asks for a float (or wider) softmax: bfloat16 then rounds only its result.
    let softmaxInFloat: Bool
    let leftWindow: Int, rightWindow: Int
    let outputCount: Int
    /// Opset 25: head-count attributes are an error with 4-D inputs.
    let headsOnlyFor3D: Bool

    init(_ context: OperatorContext) throws {
        causal = try context.int("is_causal", default: 0) != 0
        qHeads = try context.int("q_num_heads")
        kvHeads = try context.int("kv_num_heads")
        // The reference's order: the soft cap comes first, so modes 0 and 1 both give the capped product.
        switch try context.int("qk_matmul_output_mode", default: 0) {
        case 0, 1: scoreStage = .product
        case 2: scoreStage = .biased
        case 3: scoreStage = .softmax
        case let mode: throw OpError("qk_matmul_output_mode must be 0, 1, 2 or 3, got \(mode)")
        }
        scale = try context.float("scale")
        softcap = try context.float("softcap", default: 0)
        // float16 counts as float here: its steps round far below a bfloat16 step.
        let precision = try context.int("softmax_precision")
        softmaxInFloat = precision.map { code in [DataType.float, .float16, .double].contains { Int($0.rawValue) == code } } ?? false
        let left = try context.int("left_window_size", default: -1), right = try context.int("right_window_size", default: -1)
        guard left >= -1, right >= -1 else { throw OpError("window sizes must be -1 or nonnegative, got \(left) and \(right)") }
        leftWindow = min(left, attentionPositionBound)
        rightWindow = min(right, attentionPositionBound)
        outputCount = max(context.outputCount, 1)
        headsOnlyFor3D = context.version >= 25
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let q = inputs.type(0) else { return [] }
        let kType = inputs.type(1)?.dataType ?? q.dataType
        let present = TensorType(kType, nil), presentValue = TensorType(inputs.type(2)?.dataType ?? q.dataType, nil)
        return [TensorType(q.dataType, nil), present, presentValue, TensorType(q.dataType, nil)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let originals = try (0..<3).map { try inputs.required($0) }
        let q = try AttentionInput(convert(originals[0], to: .float, context), heads: qHeads, role: "Q")
        let rank = originals[0].shape.rank
        if headsOnlyFor3D, rank == 4, qHeads != nil || kvHeads != nil {
            throw OpError.invalidArgument("q_num_heads and kv_num_heads must not be given for 4-D inputs")
        }
        guard originals[1].shape.rank == rank, originals[2].shape.rank == rank else {
            throw OpError.invalidArgument("Q, K and V must have one rank, got \(originals.map(\.shape))")
        }
        let k = try AttentionInput(convert(originals[1], to: .float, context), heads: kvHeads, role: "K")
        let v = try AttentionInput(convert(originals[2], to: .float, context), heads: kvHeads, role: "V")
        let batch = q.tensor.shape[0]
        guard k.tensor.shape[0] == batch, v.tensor.shape[0] == batch else {
            throw OpError.invalidArgument("Q, K and V must have one batch size, got \(originals.map(\.shape))")
        }
        guard k.heads == v.heads, k.length == v.length else {
            throw OpError.invalidArgument("K and V must have one head count and sequence length, got \(k.tensor.shape) and \(v.tensor.shape)")
        }
        guard k.heads > 0, q.heads % k.heads == 0 else {
            throw OpError.invalidArgument("\(q.heads) query heads do not group over \(k.heads) key/value heads")
        }
        guard q.headSize == k.headSize else {
            throw OpError.invalidArgument("Q and K head sizes differ: \(q.headSize) and \(k.headSize)")
        }

        // The cache: present = past ++ new along the sequence, in [B, H, S, D].
        let pastKey = inputs.optional(4), pastValue = inputs.optional(5), nonpad = inputs.optional(6)
        guard (pastKey == nil) == (pastValue == nil) else { throw OpError.invalidArgument("past_key and past_value come together") }
        guard nonpad == nil || pastKey == nil else {
            throw OpError.invalidArgument("nonpad_kv_seqlen cannot be combined with past_key and past_value")
        }
        var pastLength = 0
        if let pastKey, let pastValue {
            let expectedKey = [batch, k.heads, pastKey.shape.rank == 4 ? pastKey.shape[2] : -1, k.headSize]
            pastLength = expectedKey[2]
            guard pastKey.shape.dims == expectedKey, pastValue.shape.dims == [batch, v.heads, pastLength, v.headSize] else {
                throw OpError.invalidArgument("past_key \(pastKey.shape) and past_value \(pastValue.shape) do not fit"
                                              + " K \(k.tensor.shape) and V \(v.tensor.shape)")
            }
        }
        let keys = pastLength + k.length
        let needsPresent = pastKey != nil || outputCount > 1
        let presentKey = try needsPresent ? concatenatedCache(pastKey, k, context) : nil
        let presentValue = try needsPresent ? concatenatedCache(pastValue, v, context) : nil
        let kOperand = presentKey.map(Self.contiguousOperand) ?? k.operand
        let vOperand = presentValue.map(Self.contiguousOperand) ?? v.operand

        var masking = Attention.Masking(causal: causal, leftWindow: leftWindow, rightWindow: rightWindow)
        if pastLength > 0 { masking.queryOffsets = Array(repeating: pastLength, count: batch) }
        if let nonpad {
            guard nonpad.dataType == .int64, nonpad.shape.dims == [batch] else {
                throw OpError.invalidArgument("nonpad_kv_seqlen must be int64 of shape [\(batch)], got \(nonpad.dataType)\(nonpad.shape)")
            }
            let limits = nonpad.scalars(as: Int64.self).map { Int(max(-Int64(attentionPositionBound), min($0, Int64(attentionPositionBound)))) }
            masking.keyLimits = limits
            masking.queryOffsets = limits.map { $0 - q.length }
        }
        var maskValues: [Float] = []
        if let mask = inputs.optional(3) {
            let (values, strides) = try Self.mask(mask, batch: batch, heads: q.heads, queries: q.length, keys: keys, context)
            maskValues = values
            masking.maskStrides = strides
            masking.maskColumns = mask.shape.dims.last ?? 1
            // An empty mask (no columns) hides every key.
            if values.isEmpty { masking.keyLimits = Array(repeating: 0, count: batch) }
        }

        let valueSize = v.headSize
        guard case (let width, false) = q.heads.multipliedReportingOverflow(by: valueSize) else {
            throw OpError.invalidArgument("output width \(q.heads) × \(valueSize) overflows")
        }
        let y = try context.allocate(.float, rank == 3 ? [batch, q.length, width] : [batch, q.heads, q.length, valueSize])
        let yOperand = rank == 3
            ? Attention.Operand(base: y.mutablePointer(as: Float.self), batchStride: q.length * width, headStride: valueSize, rowStride: width)
            : Self.contiguousOperand(y)
        let scores = outputCount > 3 ? try context.allocate(.float, [batch, q.heads, q.length, keys]) : nil
        let scale = scale ?? 1 / Float(q.headSize).squareRoot()
        withExtendedLifetime((q.tensor, k.tensor, v.tensor, presentKey, presentValue)) {
            maskValues.withUnsafeBufferPointer { maskValues in
                masking.mask = maskValues.isEmpty ? nil : maskValues.baseAddress
                let scores = scores.map { ($0.mutablePointer(as: Float.self), scoreStage) }
                if originals[0].dataType == .bfloat16 {
                    Attention.roundingToBFloat16(
                        q: q.operand, k: kOperand, v: vOperand, y: yOperand, batch: batch, qHeads: q.heads, kvHeads: k.heads,
                        queries: q.length, keys: keys, headSize: q.headSize, valueSize: valueSize, scale: scale,
                        softcap: softcap, softmaxInFloat: softmaxInFloat, masking: masking, scores: scores,
                        parallelism: context.parallelism)
                } else {
                    Attention.attention(
                        q: q.operand, k: kOperand, v: vOperand, y: yOperand, batch: batch, qHeads: q.heads, kvHeads: k.heads,
                        queries: q.length, keys: keys, headSize: q.headSize, valueSize: valueSize, scale: scale, softcap: softcap,
                        masking: masking, scores: scores, parallelism: context.parallelism)
                }
            }
        }
        var outputs = [try convert(y, to: originals[0].dataType, context)]
        if let presentKey, let presentValue, outputCount > 1 {
            outputs += [try convert(presentKey, to: originals[1].dataType, context),
                        try convert(presentValue, to: originals[2].dataType, context)]
        }
        if let scores { outputs.append(try convert(scores, to: originals[0].dataType, context)) }
        return outputs
    }

    /// The operand of a contiguous [B, H, S, D] tensor.
    private static func contiguousOperand(_ tensor: Tensor) -> Attention.Operand {
        let dims = tensor.shape.dims
        return Attention.Operand(base: tensor.mutablePointer(as: Float.self), batchStride: dims[1] * dims[2] * dims[3],
                                 headStride: dims[2] * dims[3], rowStride: dims[3])
    }

    /// An attention mask as additive float values (bool: 0 where true, −∞ where false) and its
    /// broadcast strides over [batch, heads, queries]; its last axis may be shorter than the keys.
    private static func mask(_ mask: Tensor, batch: Int, heads: Int, queries: Int, keys: Int,
                             _ context: ExecutionContext) throws -> ([Float], (batch: Int, head: Int, row: Int)) {
        let dims = mask.shape.dims
        guard (1...4).contains(dims.count) else { throw OpError.invalidArgument("attn_mask must have rank 1 to 4, got \(mask.shape)") }
        let padded = [Int](repeating: 1, count: 4 - dims.count) + dims
        let target = [batch, heads, queries]
        var strides = [0, 0, 0]
        var running = padded[3]
        for axis in [2, 1, 0] {
            guard padded[axis] == target[axis] || padded[axis] == 1 else {
                throw OpError.invalidArgument("attn_mask \(mask.shape) does not broadcast to [\(batch), \(heads), \(queries), \(keys)]")
            }
            strides[axis] = padded[axis] == 1 ? 0 : running
            running *= padded[axis]
        }
        guard padded[3] <= keys else {
            throw OpError.invalidArgument("attn_mask \(mask.shape) has more columns than the \(keys) keys")
        }
        let values: [Float]
        if mask.dataType == .bool {
            values = mask.scalars(as: Bool.self).map { $0 ? 0 : -.infinity }
        } else {
            values = try convert(mask, to: .float, context).scalars(as: Float.self)
        }
        return (values, (strides[0], strides[1], strides[2]))
    }
}

/// `past ++ input` along the sequence as a float [B, N, P + S, H] (`past` nil: the input alone).
func concatenatedCache(_ past: Tensor?, _ input: AttentionInput, _ context: ExecutionContext) throws -> Tensor {
    let batch = input.tensor.shape[0], heads = input.heads, size = input.headSize
    let pastLength = past?.shape[2] ?? 0
    let keys = pastLength + input.length
    let result = try context.allocate(.float, [batch, heads, keys, size])
    let past = try past.map { try convert($0, to: .float, context) }
    let target = result.mutablePointer(as: Float.self)
    withExtendedLifetime((past, input.tensor)) {
        for b in 0..<batch {
            for h in 0..<heads {
                let head = target + (b * heads + h) * keys * size
                if let past, pastLength > 0 {
                    head.update(from: past.pointer(as: Float.self) + (b * heads + h) * pastLength * size, count: pastLength * size)
                }
                for s in 0..<input.length { (head + (pastLength + s) * size).update(from: input.operand.row(b, h, s), count: size) }
            }
        }
    }
    return result
}
