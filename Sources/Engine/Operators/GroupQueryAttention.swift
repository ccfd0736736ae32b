import Kernels
import Tensors

/// com.microsoft GroupQueryAttention as ONNX Runtime's CPU provider runs it (the attention of the
/// Llama-like decoders onnxruntime.transformers and onnxruntime-genai write): query [B, S, N·H]
/// with key and value [B, S, Nk·H], or all three packed in one [B, S, (N + 2·Nk)·H]; a BNSH cache
/// past_key/past_value [B, Nk, P, H]; present_key/present_value [B, Nk, max(total, P), H] holding
/// each item's cached rows, then its new ones, then zeros. Item b holds `seqlens_k[b] + 1` tokens
/// after the step; the step is a first prompt (S equals total_sequence_length: nothing cached), the
/// next chunk of a prompt (batch 1) or one new token per item, as ONNX Runtime decides. Optional
/// rotary embedding of Q and the new K (cos/sin caches, half-split or interleaved), a left window
/// (`local_window_size` W: a query sees itself and the W − 1 keys before it, as ONNX Runtime 1.32
/// counts; W = 0 sees nothing), a soft cap (ignored when not positive, as there), bidirectional
/// attention (`causal` 0). Runs on the fused attention kernel, query head h reading KV head
/// h / (N / Nk).
struct GroupQueryAttention: Operator {
    let heads: Int, kvHeads: Int
    let scale: Float?
    let softcap: Float
    let localWindow: Int
    let causal: Bool
    let rotary: Bool, interleaved: Bool
    let outputCount: Int

    /// Inputs after sin_cache, none of which this implementation reads.
    private static let unsupportedInputs = [(9, "position_ids"), (10, "attention_bias"), (11, "head_sink"), (12, "k_scale"),
                                            (13, "v_scale"), (14, "q_norm_weight"), (15, "k_norm_weight"), (16, "query_seqlens")]

    init(_ context: OperatorContext) throws {
        heads = try context.required("num_heads", context.int)
        kvHeads = try context.required("kv_num_heads", context.int)
        guard heads > 0, heads <= maximumAttentionHeads, kvHeads > 0, heads % kvHeads == 0 else {
            throw OpError("num_heads \(heads) must be a multiple of kv_num_heads \(kvHeads), both in 1...\(maximumAttentionHeads)")
        }
        let scale = try context.float("scale", default: 0), softcap = try context.float("softcap", default: 0)
        guard scale.isFinite, softcap.isFinite else { throw OpError("scale \(scale) and softcap \(softcap) must be finite") }
        self.scale = scale == 0 ? nil : scale
        self.softcap = Swift.max(softcap, 0)
        let causal = try context.int("causal", default: 1)
        guard causal == 0 || causal == 1 else { throw OpError("causal must be 0 or 1, got \(causal)") }
        self.causal = causal == 1
        localWindow = try context.int("local_window_size", default: -1)
        guard localWindow == -1 || causal == 1 else { throw OpError("local_window_size must be -1 when causal is 0") }
        rotary = try context.int("do_rotary", default: 0) != 0
        interleaved = try context.int("rotary_interleaved", default: 0) != 0
        for name in ["smooth_softmax", "qk_output", "sliding_window_cache"] where try context.int(name, default: 0) != 0 {
            throw OpError("GroupQueryAttention's \(name) is not supported")
        }
        for name in ["k_quant_type", "v_quant_type"] {
            if let type = try context.string(name), type != "NONE" { throw OpError("a quantized KV cache (\(name) \(type)) is not supported") }
        }
        outputCount = context.outputCount
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(x.dataType, nil), TensorType(x.dataType, nil), TensorType(x.dataType, nil)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let original = try inputs.required(0)
        for (index, name) in Self.unsupportedInputs where inputs.optional(index) != nil {
            throw OpError("GroupQueryAttention's \(name) input is not supported")
        }
        // The caches (T_CACHE) hold the query's type (T): no quantized cache.
        try checkSameElementType([0, 3, 4].map { inputs.optional($0)?.dataType }, roles: ["query", "past_key", "past_value"])
        let query = try convert(original, to: .float, context)
        guard query.shape.rank == 3 else { throw OpError.invalidArgument("query must be [B, S, hidden], got \(query.shape)") }
        let batch = query.shape[0], length = query.shape[1], width = query.shape[2]
        let keyInput = inputs.optional(1), valueInput = inputs.optional(2)
        guard (keyInput == nil) == (valueInput == nil) else { throw OpError.invalidArgument("key and value come together") }
        let packed = keyInput == nil
        let parts = packed ? heads + 2 * kvHeads : heads
        let headSize = width / parts, kvWidth = kvHeads * headSize
        guard headSize > 0, headSize * parts == width else {
            throw OpError.invalidArgument("query \(query.shape) does not split into \(parts) heads")
        }
        let key = try keyInput.map { try convert($0, to: .float, context) }
        let value = try valueInput.map { try convert($0, to: .float, context) }
        for (tensor, role) in [(key, "key"), (value, "value")] {
            if let tensor, tensor.shape.dims != [batch, length, kvWidth] {
                throw OpError.invalidArgument("\(role) \(tensor.shape) must be [\(batch), \(length), \(kvWidth)]")
            }
        }
        let (pastKey, pastValue) = (try inputs.optional(3).map { try convert($0, to: .float, context) },
                                    try inputs.optional(4).map { try convert($0, to: .float, context) })
        guard (pastKey == nil) == (pastValue == nil) else { throw OpError.invalidArgument("past_key and past_value come together") }
        var pastCapacity = 0
        if let pastKey, let pastValue {
            pastCapacity = pastKey.shape.rank == 4 ? pastKey.shape[2] : -1
            guard pastKey.shape.dims == [batch, kvHeads, pastCapacity, headSize], pastValue.shape == pastKey.shape else {
                throw OpError.invalidArgument("past_key \(pastKey.shape) and past_value \(pastValue.shape) must be [\(batch), \(kvHeads), past, \(headSize)]")
            }
        }
        let (offsets, counts, presentLength) = try steps(inputs, batch: batch, length: length, pastCapacity: pastCapacity)

        func bsnh(_ base: UnsafeMutablePointer<Float>, _ rowWidth: Int) -> Attention.Operand {
            Attention.Operand(base: base, batchStride: length * rowWidth, headStride: headSize, rowStride: rowWidth)
        }
        let input = query.mutablePointer(as: Float.self)
        var q = bsnh(input, width)
        var k = key.map { bsnh($0.mutablePointer(as: Float.self), kvWidth) } ?? bsnh(input + heads * headSize, width)
        let v = value.map { bsnh($0.mutablePointer(as: Float.self), kvWidth) } ?? bsnh(input + (heads + kvHeads) * headSize, width)
        var rotated: [Tensor] = []
        if rotary {
            let (rotatedQuery, rotatedKey) = try rotate(q, k, inputs, batch: batch, length: length, headSize: headSize,
                                                        offsets: offsets, context)
            q = bsnh(rotatedQuery.mutablePointer(as: Float.self), heads * headSize)
            k = bsnh(rotatedKey.mutablePointer(as: Float.self), kvWidth)
            rotated = [rotatedQuery, rotatedKey]
        }
        // The caches: each item's past rows, its new rows after them, zeros beyond.
        let presentKey = try context.allocate(.float, [batch, kvHeads, presentLength, headSize])
        let presentValue = try context.allocate(.float, [batch, kvHeads, presentLength, headSize])
        withExtendedLifetime((query, key, value, pastKey, pastValue, rotated)) {
            for (present, past, source) in [(presentKey, pastKey, k), (presentValue, pastValue, v)] {
                let target = present.mutablePointer(as: Float.self)
                target.update(repeating: 0, count: present.elementCount)
                for b in 0..<batch {
                    for h in 0..<kvHeads {
                        let head = target + (b * kvHeads + h) * presentLength * headSize
                        if let past, offsets[b] > 0 {
                            head.update(from: past.pointer(as: Float.self) + (b * kvHeads + h) * pastCapacity * headSize,
                                        count: offsets[b] * headSize)
                        }
                        for s in 0..<length { (head + (offsets[b] + s) * headSize).update(from: source.row(b, h, s), count: headSize) }
                    }
                }
            }
        }
        func cache(_ tensor: Tensor) -> Attention.Operand {
            Attention.Operand(base: tensor.mutablePointer(as: Float.self), batchStride: kvHeads * presentLength * headSize,
                              headStride: presentLength * headSize, rowStride: headSize)
        }
        let y = try context.allocate(.float, [batch, length, heads * headSize])
        // A window of W keys ends at the query's own position; W = 0 leaves no key to see.
        let masking = Attention.Masking(causal: causal, leftWindow: localWindow > 0 ? localWindow - 1 : -1, queryOffsets: offsets,
                                        keyLimits: localWindow == 0 ? counts.map { _ in 0 } : counts)
        withExtendedLifetime((query, rotated, presentKey, presentValue)) {
            Attention.attention(q: q, k: cache(presentKey), v: cache(presentValue), y: bsnh(y.mutablePointer(as: Float.self), heads * headSize),
                                batch: batch, qHeads: heads, kvHeads: kvHeads, queries: length, keys: presentLength,
                                headSize: headSize, valueSize: headSize, scale: scale ?? 1 / Float(headSize).squareRoot(),
                                softcap: softcap, masking: masking, parallelism: context.parallelism)
        }
        let outputs = outputCount > 1 ? [y, presentKey, presentValue] : [y]
        return try outputs.map { try convert($0, to: original.dataType, context) }
    }

    /// Per item, the rows cached before this step (where its new rows go) and the rows cached
    /// after it, and the present caches' length: from seqlens_k and total_sequence_length, as
    /// ONNX Runtime reads them, checked against the past cache and the present length.
    private func steps(_ inputs: [Tensor?], batch: Int, length: Int, pastCapacity: Int) throws -> ([Int], [Int], Int) {
        let seqlens = try inputs.required(5), totalInput = try inputs.required(6)
        guard seqlens.shape.dims == [batch] else { throw OpError.invalidArgument("seqlens_k \(seqlens.shape) must be [\(batch)]") }
        guard totalInput.elementCount == 1 else {
            throw OpError.invalidArgument("total_sequence_length must be one value, got shape \(totalInput.shape)")
        }
        let total = totalInput.integers()[0]
        guard total >= 1 else { throw OpError.invalidArgument("total_sequence_length \(total) must be positive") }
        // A growing cache gains this step's rows; a fixed buffer already holds the total.
        guard total == pastCapacity + length || total <= pastCapacity else {
            throw OpError.invalidArgument("total_sequence_length \(total) must be the past's \(pastCapacity) rows plus the \(length) new ones,"
                                          + " or at most the past's when it is a fixed buffer")
        }
        let presentLength = Swift.max(total, pastCapacity)
        let subsequentPrompt = length > 1 && length != total
        if subsequentPrompt && batch != 1 {
            throw OpError.invalidArgument("a prompt chunk after cached tokens (sequence length \(length), total \(total)) needs batch 1, got \(batch)")
        }
        let firstPrompt = !subsequentPrompt && length == total
        var offsets: [Int] = [], counts: [Int] = []
        for (b, value) in seqlens.integers().enumerated() {
            let count = value + 1, offset = firstPrompt ? 0 : count - length
            guard count >= 1, count <= presentLength, offset >= 0, offset <= pastCapacity, offset + length <= presentLength else {
                throw OpError.invalidArgument("seqlens_k[\(b)] = \(value) does not fit \(length) new tokens after a past of \(pastCapacity)"
                                              + " rows in a cache of \(presentLength)")
            }
            offsets.append(offset)
            counts.append(count)
        }
        return (offsets, counts, presentLength)
    }

    /// Q and the new K rotated at each token's position (the offset of its item plus its row),
    /// into new [B, S, N·H] and [B, S, Nk·H] tensors.
    private func rotate(_ q: Attention.Operand, _ k: Attention.Operand, _ inputs: [Tensor?], batch: Int, length: Int, headSize: Int,
                        offsets: [Int], _ context: ExecutionContext) throws -> (Tensor, Tensor) {
        guard let cosInput = inputs.optional(7), let sinInput = inputs.optional(8) else {
            throw OpError.invalidArgument("do_rotary needs cos_cache and sin_cache")
        }
        let cos = try convert(cosInput, to: .float, context), sin = try convert(sinInput, to: .float, context)
        guard cos.shape.rank == 2, cos.shape == sin.shape, cos.shape[1] > 0, 2 * cos.shape[1] <= headSize else {
            throw OpError.invalidArgument("cos_cache \(cos.shape) and sin_cache \(sin.shape) must be [positions, at most \(headSize / 2)]")
        }
        var positions: [Int] = []
        for b in 0..<batch {
            for s in 0..<length { positions.append(offsets[b] + s) }
        }
        if let last = positions.max(), last >= cos.shape[0] {
            throw OpError.invalidArgument("position \(last) is outside the rotary caches' \(cos.shape[0]) rows")
        }
        let rotatedQuery = try context.allocate(.float, [batch, length, heads * headSize])
        let rotatedKey = try context.allocate(.float, [batch, length, kvHeads * headSize])
        for (source, target, count) in [(q, rotatedQuery, heads), (k, rotatedKey, kvHeads)] {
            let operand = Attention.Operand(base: target.mutablePointer(as: Float.self), batchStride: length * count * headSize,
                                            headStride: headSize, rowStride: count * headSize)
            withExtendedLifetime((cos, sin)) {
                positions.withUnsafeBufferPointer { rows in
                    guard let rows = rows.baseAddress else { return }
                    RotaryEmbedding.rotate(source, into: operand, batch: batch, heads: count, length: length, headSize: headSize,
                                           rotaryDimension: 2 * cos.shape[1], interleaved: interleaved,
                                           cos: cos.pointer(as: Float.self), sin: sin.pointer(as: Float.self), tableRows: rows,
                                           parallelism: context.parallelism)
                }
            }
        }
        return (rotatedQuery, rotatedKey)
    }
}
