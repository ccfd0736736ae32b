import Kernels
import Tensors

/// ONNX Runtime's transformer contrib operators (com.microsoft, listed in MicrosoftOperators.swift):
/// what its transformer optimiser fuses BERT and GPT-2 graphs into. Attention runs the fused
/// kernel of ONNX Attention; the normalisations reuse `RowNormalization`.
enum MicrosoftTransformerOperators {
    /// ONNX Runtime registers SimplifiedLayerNormalization in the default domain at version 1,
    /// outside ONNX's own history, so a node of it resolves to whatever opset the model imports.
    private static let everyOpset = Array(1...OperatorRegistry.latestOpset)

    /// The default-domain operators of this family (the com.microsoft ones are in that domain's table).
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("SimplifiedLayerNormalization", versions: everyOpset, contract: simplifiedLayerNormalization) {
            try SimplifiedLayerNormalization($0)
        },
    ]

    /// ONNX Runtime's schema: X of T, scale of V (both any floating-point type), Y and inv_std_var.
    static let simplifiedLayerNormalization = OperatorContract(
        inputs: [.init("X", "T"), .init("scale", "V")], outputs: [.init("Y", "V"), .init("inv_std_var", "U", .optional)],
        types: ["T": ElementTypes.floatingPoint, "V": ElementTypes.floatingPoint, "U": [.float, .double]])
}

/// `activation(x + bias)`, the bias (input 1, optional) broadcast along the last axis: Gelu,
/// BiasGelu, FastGelu (tanh approximation) and QuickGelu (`x · sigmoid(alpha · x)`).
struct BiasActivation: Operator {
    enum Function: Sendable {
        case gelu, geluTanh
        case quick(alpha: Float)
    }
    let function: Function

    init(_ function: Function) { self.function = function }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [x]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let original = try inputs.required(0)
        var x = try convert(original, to: .float, context)
        if let bias = inputs.optional(1) {
            x = try BinaryFunction.arithmetic(.add).apply(x, try convert(bias, to: .float, context), context)
        }
        let y = try context.allocate(.float, x.shape)
        let function = function
        withExtendedLifetime(x) {
            let source = x.pointer(as: Float.self), target = y.mutablePointer(as: Float.self)
            context.parallelism.forEachChunk(x.elementCount, minimumChunk: BroadcastLayout.defaultGrain) { range in
                switch function {
                case .gelu: Activation.gelu.apply(source + range.lowerBound, into: target + range.lowerBound, count: range.count)
                case .geluTanh: Activation.geluTanh.apply(source + range.lowerBound, into: target + range.lowerBound, count: range.count)
                case .quick(let alpha):
                    for i in range { target[i] = source[i] / (1 + Float.exp(-alpha * source[i])) }
                }
            }
        }
        return [try convert(y, to: original.dataType, context)]
    }
}

/// SimplifiedLayerNormalization: RMS normalisation with outputs Y and inv_std_var.
struct SimplifiedLayerNormalization: Operator {
    let normalization: RowNormalization

    init(_ context: OperatorContext) throws {
        normalization = try RowNormalization(rms: context)
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        let types = try normalization.outputTypes(inputs)
        return types.isEmpty ? [] : [types[0]] + types.dropFirst(2)
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let outputs = try normalization.run(Array(inputs.prefix(2)), context)
        return [outputs[0]] + outputs.dropFirst(2)
    }
}

/// SkipLayerNormalization and SkipSimplifiedLayerNormalization: `sum = input + skip (+ bias)`,
/// then layer (or RMS) normalisation over the last axis. Outputs: output, mean, inv_std_var,
/// input_skip_bias_sum.
struct SkipNormalization: Operator {
    let normalization: RowNormalization
    let centered: Bool

    init(_ context: OperatorContext, centered: Bool) throws {
        self.centered = centered
        normalization = RowNormalization(layerAxis: -1, epsilon: try context.float("epsilon", default: 1e-12), centered: centered)
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [x, nil, nil, x]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let input = try inputs.required(0), skip = try inputs.required(1), gamma = try inputs.required(2)
        guard input.shape.rank >= 1, let hidden = input.shape.dims.last, skip.shape.dims.last == hidden else {
            throw OpError.invalidArgument("input \(input.shape) and skip \(skip.shape) must end in one hidden size")
        }
        let beta = centered ? inputs.optional(3) : nil
        let bias = centered ? inputs.optional(4) : inputs.optional(3)
        var sum = try BinaryFunction.arithmetic(.add).apply(input, skip, context)
        guard sum.shape == input.shape else {
            throw OpError.invalidArgument("skip \(skip.shape) does not broadcast to input \(input.shape)")
        }
        if let bias {
            guard bias.shape.dims == [hidden] else { throw OpError.invalidArgument("bias \(bias.shape) must be [\(hidden)]") }
            sum = try BinaryFunction.arithmetic(.add).apply(sum, bias, context)
        }
        let outputs = try normalization.run([sum, gamma, beta], context)
        return outputs + [sum]
    }
}

/// EmbedLayerNormalization (BERT's embeddings): `LayerNorm(word[input_ids] + position[position_ids]
/// + segment[segment_ids])`; outputs the embedding, mask_index (ones per row of `mask`, int32)
/// and the sum before normalisation.
struct EmbedLayerNormalization: Operator {
    let epsilon: Float

    init(_ context: OperatorContext) throws {
        epsilon = try context.float("epsilon", default: 1e-12)
        let maskIndexType = try context.int("mask_index_type", default: 1)
        guard maskIndexType == 0 || maskIndexType == 1 else { throw OpError("mask_index_type \(maskIndexType) is not supported") }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let word = inputs.type(2) else { return [] }
        return [TensorType(word.dataType, nil), TensorType(.int32, nil), TensorType(word.dataType, nil)]
    }

    /// Rows of `table` picked by `ids`, each checked against the table's height.
    private func rows(_ ids: Tensor, of table: Tensor, _ name: String) throws -> [Int] {
        let values = ids.integers(), height = table.shape[0]
        if let bad = values.first(where: { $0 < 0 || $0 >= height }) {
            throw OpError.invalidArgument("\(name) \(bad) is outside the embedding table's \(height) rows")
        }
        return values
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let ids = try inputs.required(0)
        let tables = try [inputs.required(2), inputs.required(3)] + (inputs.optional(4).map { [$0] } ?? [])
        let gamma = try inputs.required(5), beta = try inputs.required(6)
        guard ids.shape.rank == 2 else { throw OpError.invalidArgument("input_ids must be [batch, sequence], got \(ids.shape)") }
        let batch = ids.shape[0], length = ids.shape[1]
        let originalType = tables[0].dataType
        let floats = try tables.map { try convert($0, to: .float, context) }
        guard floats.allSatisfy({ $0.shape.rank == 2 && $0.shape[1] == floats[0].shape[1] }) else {
            throw OpError.invalidArgument("embedding tables must be 2-D with one width, got \(tables.map(\.shape))")
        }
        let hidden = floats[0].shape[1]
        var lookups = [try rows(ids, of: floats[0], "input id")]
        if let positionIDs = inputs.optional(8) {
            let values = try rows(positionIDs, of: floats[1], "position id")
            guard positionIDs.shape.dims == [batch, length] || positionIDs.shape.dims == [1, length] else {
                throw OpError.invalidArgument("position_ids \(positionIDs.shape) must be [\(batch), \(length)] or [1, \(length)]")
            }
            lookups.append(values.count == batch * length ? values : (0..<batch * length).map { values[$0 % max(length, 1)] })
        } else {
            guard length <= floats[1].shape[0] else {
                throw OpError.invalidArgument("sequence length \(length) exceeds the \(floats[1].shape[0]) positions")
            }
            lookups.append((0..<batch * length).map { $0 % max(length, 1) })
        }
        if floats.count > 2 {
            guard let segments = inputs.optional(1), segments.shape == ids.shape else {
                throw OpError.invalidArgument("segment_ids must come with segment_embedding, shaped as input_ids")
            }
            lookups.append(try rows(segments, of: floats[2], "segment id"))
        }
        for lookup in lookups where lookup.count != batch * length {
            throw OpError.invalidArgument("ids must be shaped as input_ids \(ids.shape)")
        }
        let sum = try context.allocate(.float, [batch, length, hidden])
        let target = sum.mutablePointer(as: Float.self)
        withExtendedLifetime(floats) {
            for token in 0..<(batch * length) {
                let row = target + token * hidden
                row.update(from: floats[0].pointer(as: Float.self) + lookups[0][token] * hidden, count: hidden)
                for (table, lookup) in zip(floats, lookups).dropFirst() {
                    let source = table.pointer(as: Float.self) + lookup[token] * hidden
                    for d in 0..<hidden { row[d] += source[d] }
                }
            }
        }
        let normalized = try RowNormalization(layerAxis: -1, epsilon: epsilon, centered: true)
            .run([sum, try convert(gamma, to: .float, context), try convert(beta, to: .float, context)], context)[0]
        let maskIndex = try context.allocate(.int32, [batch])
        let counts = maskIndex.mutablePointer(as: Int32.self)
        if let mask = inputs.optional(7) {
            guard mask.shape == ids.shape else { throw OpError.invalidArgument("mask \(mask.shape) must be shaped as input_ids") }
            let values = mask.integers()
            for b in 0..<batch { counts[b] = Int32(values[(b * length)..<((b + 1) * length)].filter { $0 != 0 }.count) }
        } else {
            for b in 0..<batch { counts[b] = Int32(clamping: length) }
        }
        return [try convert(normalized, to: originalType, context), maskIndex, try convert(sum, to: originalType, context)]
    }
}

/// An additive attention mask built from ONNX Runtime's mask forms, as [batch, 1, rows, keys]
/// values 0 (attend) or `filter`: a key-length per item ([B]), end and start per item ([2B]),
/// raw 0/1 masks [B, T], [B, S, T] or [B, 1, M, M] (the top-left corner is used).
func microsoftAttentionMask(_ mask: Tensor, batch: Int, queries: Int, keys: Int, filter: Float) throws -> (values: [Float], rows: Int) {
    let values = mask.integers()
    let dims = mask.shape.dims
    switch dims.count {
    case 1 where dims[0] == batch || dims[0] == 2 * batch:
        var result = [Float](repeating: 0, count: batch * keys)
        for b in 0..<batch {
            let end = values[b], start = dims[0] == 2 * batch ? values[batch + b] : 0
            for j in 0..<keys where j >= end || j < start { result[b * keys + j] = filter }
        }
        return (result, 1)
    case 2 where dims == [batch, keys]:
        return (values.map { $0 == 0 ? filter : 0 }, 1)
    case 3 where dims == [batch, queries, keys]:
        return (values.map { $0 == 0 ? filter : 0 }, queries)
    case 4 where dims[0] == batch && dims[1] == 1 && dims[2] >= keys && dims[3] >= keys:
        var result = [Float](repeating: 0, count: batch * queries * keys)
        let pastRows = keys - queries
        for b in 0..<batch {
            for i in 0..<queries {
                for j in 0..<keys where values[(b * dims[2] + pastRows + i) * dims[3] + j] == 0 {
                    result[(b * queries + i) * keys + j] = filter
                }
            }
        }
        return (result, queries)
    default:
        throw OpError.invalidArgument("mask \(mask.shape) fits none of [\(batch)], [\(2 * batch)], [\(batch), \(keys)],"
                                      + " [\(batch), \(queries), \(keys)] or [\(batch), 1, max, max]")
    }
}

/// Runs the fused attention kernel over operands already laid out, with ONNX Runtime's masks:
/// an optional additive mask [B, 1, maskRows, keys] and an optional attention bias
/// [B or 1, N or 1, S, keys], combined into one additive mask.
func runMicrosoftAttention(
    q: Attention.Operand, k: Attention.Operand, v: Attention.Operand, y: Attention.Operand,
    batch: Int, heads: Int, kvHeads: Int, queries: Int, keys: Int, headSize: Int, valueSize: Int, scale: Float,
    causal: Bool, past: Int, mask: (values: [Float], rows: Int)?, attentionBias: Tensor?, context: ExecutionContext
) throws {
    var masking = Attention.Masking(causal: causal, queryOffsets: Array(repeating: past, count: batch))
    var values: [Float] = []
    if let attentionBias {
        let dims = attentionBias.shape.dims
        guard dims.count == 4, dims[0] == batch || dims[0] == 1, dims[1] == heads || dims[1] == 1,
              dims[2] == queries, dims[3] == keys else {
            throw OpError.invalidArgument("attention_bias \(attentionBias.shape) must be [\(batch) or 1, \(heads) or 1, \(queries), \(keys)]")
        }
        let bias = try convert(attentionBias, to: .float, context).scalars(as: Float.self)
        let biasBatch = dims[0] == 1 ? 0 : dims[1] * queries * keys, biasHead = dims[1] == 1 ? 0 : queries * keys
        values = [Float](repeating: 0, count: batch * dims[1] * queries * keys)
        for b in 0..<batch {
            for h in 0..<dims[1] {
                for i in 0..<queries {
                    let target = ((b * dims[1] + h) * queries + i) * keys
                    let source = b * biasBatch + h * biasHead + i * keys
                    for j in 0..<keys { values[target + j] = bias[source + j] }
                    if let mask {
                        let row = (b * mask.rows + (mask.rows == 1 ? 0 : i)) * keys
                        for j in 0..<keys { values[target + j] += mask.values[row + j] }
                    }
                }
            }
        }
        masking.maskStrides = (dims[1] * queries * keys, dims[1] == 1 ? 0 : queries * keys, keys)
    } else if let mask {
        values = mask.values
        masking.maskStrides = (mask.rows * keys, 0, mask.rows == 1 ? 0 : keys)
    }
    masking.maskColumns = keys
    values.withUnsafeBufferPointer { values in
        masking.mask = values.isEmpty ? nil : values.baseAddress
        Attention.attention(q: q, k: k, v: v, y: y, batch: batch, qHeads: heads, kvHeads: kvHeads, queries: queries,
                            keys: keys, headSize: headSize, valueSize: valueSize, scale: scale, masking: masking,
                            parallelism: context.parallelism)
    }
}

/// The attributes com.microsoft's Attention and MultiHeadAttention share.
private struct AttentionAttributes {
    let heads: Int
    let causal: Bool
    let filter: Float
    let scale: Float?

    init(_ context: OperatorContext) throws {
        heads = try context.required("num_heads", context.int)
        guard heads > 0, heads <= maximumAttentionHeads else { throw OpError("num_heads must be in 1...\(maximumAttentionHeads), got \(heads)") }
        causal = try context.int("unidirectional", default: 0) != 0
        filter = try context.float("mask_filter_value", default: -10000)
        let scale = try context.float("scale", default: 0)
        self.scale = scale == 0 ? nil : scale
    }
}

/// com.microsoft Attention (BERT, GPT-2): Q, K and V from one product `input · weights + bias`
/// ([B, S, in] · [in, Hq + Hk + Hv]), read in place from the product's rows; an optional past
/// [2, B, N, P, D] and present output; `unidirectional` is causal.
struct PackedAttention: Operator {
    let heads: Int
    let causal: Bool
    let sizes: [Int]?
    let filter: Float
    let scale: Float?
    let outputCount: Int

    init(_ context: OperatorContext) throws {
        let common = try AttentionAttributes(context)
        (heads, causal, filter, scale, outputCount) = (common.heads, common.causal, common.filter, common.scale, context.outputCount)
        let heads = heads, sizes = try context.ints("qkv_hidden_sizes")
        if let sizes, sizes.count != 3 || sizes.contains(where: { $0 <= 0 || $0 % heads != 0 }) || sizes[0] != sizes[1] {
            throw OpError("qkv_hidden_sizes \(sizes) must be three positive multiples of num_heads, Q's equal to K's")
        }
        self.sizes = sizes
        if try context.int("do_rotary", default: 0) != 0 { throw OpError("do_rotary is not supported") }
        if try context.int("past_present_share_buffer", default: 0) != 0 { throw OpError("past_present_share_buffer is not supported") }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(x.dataType, nil), TensorType(x.dataType, nil)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let original = try inputs.required(0)
        let x = try convert(original, to: .float, context), weights = try convert(try inputs.required(1), to: .float, context)
        guard x.shape.rank == 3, weights.shape.rank == 2, weights.shape[0] == x.shape[2] else {
            throw OpError.invalidArgument("input \(x.shape) and weights \(weights.shape) must be [B, S, in] and [in, 3·hidden]")
        }
        let batch = x.shape[0], length = x.shape[1], width = weights.shape[1]
        let sizes = sizes ?? [width / 3, width / 3, width / 3]
        guard sizes.reduce(0, +) == width, sizes.allSatisfy({ $0 > 0 && $0 % heads == 0 }) else {
            throw OpError.invalidArgument("weights \(weights.shape) do not split into Q, K, V of \(sizes) over \(heads) heads")
        }
        let headSize = sizes[0] / heads, valueSize = sizes[2] / heads
        let bias = try inputs.optional(2).map { try convert($0, to: .float, context) }
        if let bias, bias.shape.dims != [width] { throw OpError.invalidArgument("bias \(bias.shape) must be [\(width)]") }
        // QKV = input · weights + bias, [B·S, width].
        let qkv = try context.allocate(.float, [batch * length, width])
        withExtendedLifetime((x, weights, bias)) {
            let epilogue = Epilogue(bias: bias.map { .perColumn($0.pointer(as: Float.self)) })
            Gemm.multiply(m: batch * length, n: width, k: x.shape[2], a: x.pointer(as: Float.self), lda: x.shape[2],
                          b: weights.pointer(as: Float.self), ldb: width, c: qkv.mutablePointer(as: Float.self), ldc: width,
                          epilogue: epilogue, parallelism: context.parallelism)
        }
        let base = qkv.mutablePointer(as: Float.self)
        func packed(_ offset: Int, _ size: Int) -> Attention.Operand {
            Attention.Operand(base: base + offset, batchStride: length * width, headStride: size, rowStride: width)
        }
        var k = packed(sizes[0], headSize), v = packed(sizes[0] + sizes[1], valueSize)
        // The cache: present [2, B, N, P + S, D] = past ++ new.
        var pastLength = 0, present: Tensor?
        if let past = inputs.optional(4) {
            guard headSize == valueSize, past.shape.rank == 5, past.shape[0] == 2, past.shape[1] == batch, past.shape[2] == heads,
                  past.shape[4] == headSize else {
                throw OpError.invalidArgument("past \(past.shape) must be [2, \(batch), \(heads), past, \(headSize)]")
            }
            pastLength = past.shape[3]
        }
        let keys = pastLength + length
        if inputs.optional(4) != nil || outputCount > 1, headSize == valueSize {
            let cache = try context.allocate(.float, [2, batch, heads, keys, headSize])
            let past = try inputs.optional(4).map { try convert($0, to: .float, context) }
            let target = cache.mutablePointer(as: Float.self)
            withExtendedLifetime(past) {
                for (half, operand) in [k, v].enumerated() {
                    for b in 0..<batch {
                        for h in 0..<heads {
                            let head = target + ((half * batch + b) * heads + h) * keys * headSize
                            if let past, pastLength > 0 {
                                head.update(from: past.pointer(as: Float.self) + ((half * batch + b) * heads + h) * pastLength * headSize,
                                            count: pastLength * headSize)
                            }
                            for s in 0..<length { (head + (pastLength + s) * headSize).update(from: operand.row(b, h, s), count: headSize) }
                        }
                    }
                }
            }
            k = Attention.Operand(base: target, batchStride: heads * keys * headSize, headStride: keys * headSize, rowStride: headSize)
            v = k
            v.base = target + batch * heads * keys * headSize
            present = cache
        }
        let mask = try inputs.optional(3).map { try microsoftAttentionMask($0, batch: batch, queries: length, keys: keys, filter: filter) }
        let y = try context.allocate(.float, [batch, length, sizes[2]])
        let yOperand = Attention.Operand(base: y.mutablePointer(as: Float.self), batchStride: length * sizes[2],
                                         headStride: valueSize, rowStride: sizes[2])
        try withExtendedLifetime((qkv, present)) {
            try runMicrosoftAttention(q: packed(0, headSize), k: k, v: v, y: yOperand, batch: batch, heads: heads, kvHeads: heads,
                                      queries: length, keys: keys, headSize: headSize, valueSize: valueSize,
                                      scale: scale ?? 1 / Float(headSize).squareRoot(), causal: causal, past: pastLength,
                                      mask: mask, attentionBias: inputs.optional(5), context: context)
        }
        return [try convert(y, to: original.dataType, context)] + (try present.map { [try convert($0, to: original.dataType, context)] } ?? [])
    }
}

/// com.microsoft MultiHeadAttention with separate query, key and value [B, S, N·H] (key and value
/// may instead be [B, N, L, H], cross attention's cached form), an optional bias [Dq + Dk + Dv],
/// key_padding_mask, attention_bias, past_key/past_value [B, N, P, H] and present outputs.
struct MultiHeadAttention: Operator {
    let heads: Int
    let causal: Bool
    let filter: Float
    let scale: Float?
    let outputCount: Int

    init(_ context: OperatorContext) throws {
        let common = try AttentionAttributes(context)
        (heads, causal, filter, scale, outputCount) = (common.heads, common.causal, common.filter, common.scale, context.outputCount)
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(x.dataType, nil), TensorType(x.dataType, nil), TensorType(x.dataType, nil)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let original = try inputs.required(0)
        guard let keyInput = inputs.optional(1), let valueInput = inputs.optional(2) else {
            throw OpError("packed query/key/value inputs are not supported; give query, key and value")
        }
        var tensors = try [original, keyInput, valueInput].map { try convert($0, to: .float, context) }
        guard tensors[0].shape.rank == 3 else { throw OpError.invalidArgument("query must be [B, S, hidden], got \(tensors[0].shape)") }
        if let bias = inputs.optional(3) {
            // The bias is added to the 3-D inputs: [Dq | Dk | Dv].
            let widths = tensors.map { $0.shape.rank == 3 ? $0.shape[2] : $0.shape.dims.last.map { $0 * heads } ?? 0 }
            guard bias.shape.dims == [widths.reduce(0, +)], tensors.allSatisfy({ $0.shape.rank == 3 }) else {
                throw OpError.invalidArgument("bias \(bias.shape) must be [\(widths.reduce(0, +))] over 3-D query, key and value")
            }
            let values = try convert(bias, to: .float, context)
            var offset = 0
            for index in 0..<3 {
                let part = Tensor(Array(values.scalars(as: Float.self)[offset..<(offset + widths[index])]), shape: [widths[index]])
                tensors[index] = try BinaryFunction.arithmetic(.add).apply(tensors[index], part, context)
                offset += widths[index]
            }
        }
        let q = try AttentionInput(tensors[0], heads: heads, role: "query")
        var k = try AttentionInput(tensors[1], heads: heads, role: "key")
        var v = try AttentionInput(tensors[2], heads: heads, role: "value")
        let batch = tensors[0].shape[0]
        guard k.tensor.shape[0] == batch, v.tensor.shape[0] == batch, k.length == v.length, k.heads == heads, v.heads == heads,
              k.headSize == q.headSize else {
            throw OpError.invalidArgument("query \(tensors[0].shape), key \(tensors[1].shape), value \(tensors[2].shape) do not fit \(heads) heads")
        }
        var pastLength = 0
        let pastKey = inputs.optional(6), pastValue = inputs.optional(7)
        guard (pastKey == nil) == (pastValue == nil) else { throw OpError.invalidArgument("past_key and past_value come together") }
        if let pastKey, let pastValue {
            pastLength = pastKey.shape.rank == 4 ? pastKey.shape[2] : -1
            guard pastKey.shape.dims == [batch, heads, pastLength, k.headSize], pastValue.shape.dims == [batch, heads, pastLength, v.headSize] else {
                throw OpError.invalidArgument("past_key \(pastKey.shape) and past_value \(pastValue.shape) must be [\(batch), \(heads), past, head size]")
            }
            k = try AttentionInput(try concatenatedCache(pastKey, k, context), heads: nil, role: "key")
            v = try AttentionInput(try concatenatedCache(pastValue, v, context), heads: nil, role: "value")
        }
        let keys = k.length
        let mask = try inputs.optional(4).map { try microsoftAttentionMask($0, batch: batch, queries: q.length, keys: keys, filter: filter) }
        let width = heads * v.headSize
        let y = try context.allocate(.float, [batch, q.length, width])
        let yOperand = Attention.Operand(base: y.mutablePointer(as: Float.self), batchStride: q.length * width,
                                         headStride: v.headSize, rowStride: width)
        try withExtendedLifetime((q.tensor, k.tensor, v.tensor)) {
            try runMicrosoftAttention(q: q.operand, k: k.operand, v: v.operand, y: yOperand, batch: batch, heads: heads, kvHeads: heads,
                                      queries: q.length, keys: keys, headSize: q.headSize, valueSize: v.headSize,
                                      scale: scale ?? 1 / Float(q.headSize).squareRoot(), causal: causal, past: pastLength,
                                      mask: mask, attentionBias: inputs.optional(5), context: context)
        }
        var outputs = [try convert(y, to: original.dataType, context)]
        if outputCount > 1 {
            let presentKey = try k.tensor.shape.rank == 4 ? k.tensor : concatenatedCache(nil, k, context)
            let presentValue = try v.tensor.shape.rank == 4 ? v.tensor : concatenatedCache(nil, v, context)
            outputs += [try convert(presentKey, to: original.dataType, context), try convert(presentValue, to: original.dataType, context)]
        }
        return outputs
    }
}
