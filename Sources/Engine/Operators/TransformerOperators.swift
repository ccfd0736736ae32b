import Kernels
import Tensors

/// The ONNX operators of transformer models besides Attention: RMS normalisation, rotary
/// position embeddings, the SwiGLU gate and Swish, the KV-cache update TensorScatter, and the
/// stateful causal convolution of Mamba-style layers (CausalConvWithState), and the recurrent
/// LinearAttention of (gated) DeltaNet layers.
enum TransformerOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("RMSNormalization", versions: [23], contract: OperatorContract(
            inputs: [.init("X", "T"), .init("scale", "V")], outputs: [.init("Y", "V")],
            types: ["T": ElementTypes.floatingPoint, "V": ElementTypes.floatingPoint])) { try RMSNormalization($0) },
        // float and float16 (ONNX's bfloat16 widens to float before it); com.microsoft's form,
        // which shares the operator, checks its own inputs.
        OperatorDefinition("RotaryEmbedding", versions: [23], contract: OperatorContract(
            inputs: [.init("X", "T"), .init("cos_cache", "T"), .init("sin_cache", "T"), .init("position_ids", "M", .optional)],
            outputs: [.init("Y", "T")], types: ["T": [.float, .float16], "M": [.int64]])) { try RotaryEmbeddingOperator(onnx: $0) },
        OperatorDefinition("SwiGLU", versions: [28], contract: OperatorContract(
            inputs: [.init("A", "T"), .init("B", "T")], outputs: [.init("Y", "T")], types: ["T": ElementTypes.floatingPoint],
            shape: .sameAs(0))) { try SwiGLU($0) },
        OperatorDefinition("Swish", versions: [24], contract: .unary(ElementTypes.floatingPoint)) { context in BiasActivation(.quick(alpha: try context.float("alpha", default: 1))) },
        // Any element type of a fixed width (ONNX's list, less strings).
        OperatorDefinition("TensorScatter", versions: [24], contract: OperatorContract(
            inputs: [.init("past_cache", "T"), .init("update", "T"), .init("write_indices", .int64, .optional)],
            outputs: [.init("present_cache", "T")], types: ["T": Set(DataType.allCases).subtracting([.string, .int2, .uint2])],
            shape: .sameAs(0))) { try TensorScatter($0) },
        OperatorDefinition("CausalConvWithState", versions: [27], contract: OperatorContract(
            inputs: [.init("input", "T"), .init("weight", "T"), .init("bias", "T", .optional), .init("past_state", "T", .optional)],
            outputs: [.init("output", "T"), .init("present_state", "T")], types: ["T": CausalConvWithState.types])) {
            try CausalConvWithState($0)
        },
        OperatorDefinition("LinearAttention", versions: [27], contract: OperatorContract(
            inputs: [.init("query", "T"), .init("key", "T"), .init("value", "T"), .init("past_state", "S", .optional),
                     .init("decay", "T", .optional), .init("beta", "T", .optional)],
            outputs: [.init("output", "T"), .init("present_state", "S")],
            types: ["T": LinearAttention.types, "S": LinearAttention.types])) { try LinearAttention($0) },
    ]
}

/// RMSNormalization: `x / sqrt(mean(x²) + epsilon) · scale` over the axes from `axis` on, in float
/// (`stash_type` 1, the only precision the spec's reference computes in).
struct RMSNormalization: Operator {
    let normalization: RowNormalization

    init(_ context: OperatorContext) throws {
        let stash = try context.int("stash_type", default: 1)
        guard stash == 1 else { throw OpError("stash_type \(stash) is not supported (only 1, float)") }
        normalization = try RowNormalization(rms: context)
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        Array(try normalization.outputTypes(inputs).prefix(1))
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        Array(try normalization.run(Array(inputs.prefix(2)), context).prefix(1))
    }
}

/// Rotary position embedding, ONNX (inputs X, cos_cache, sin_cache, position_ids) and ONNX
/// Runtime's com.microsoft form (X, position_ids, cos_cache, sin_cache; a one-element
/// position_ids is the offset of the first position). X is [B, S, H·D] (heads from `num_heads`)
/// or [B, H, S, D].
struct RotaryEmbeddingOperator: Operator {
    let interleaved: Bool
    let heads: Int?
    let rotaryDimension: Int
    /// com.microsoft: input order, position offsets.
    let microsoft: Bool

    init(onnx context: OperatorContext) throws {
        interleaved = try context.int("interleaved", default: 0) != 0
        let heads = try context.int("num_heads", default: 0)
        self.heads = heads > 0 ? heads : nil
        rotaryDimension = try context.int("rotary_embedding_dim", default: 0)
        guard rotaryDimension >= 0 else { throw OpError("rotary_embedding_dim must not be negative, got \(rotaryDimension)") }
        microsoft = false
    }

    init(microsoft context: OperatorContext) throws {
        try self.init(onnx: context)
        self = RotaryEmbeddingOperator(interleaved: interleaved, heads: heads, rotaryDimension: rotaryDimension, microsoft: true)
        if try context.int("is_packed_batching", default: 0) != 0 { throw OpError("packed batching is not supported") }
        if let scale = try context.float("scale"), scale != 1 { throw OpError("scale \(scale) is not supported (only 1)") }
    }

    private init(interleaved: Bool, heads: Int?, rotaryDimension: Int, microsoft: Bool) {
        self.interleaved = interleaved
        self.heads = heads
        self.rotaryDimension = rotaryDimension
        self.microsoft = microsoft
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [x]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let original = try inputs.required(0)
        let positions = microsoft ? inputs.optional(1) : inputs.optional(3)
        let cos = try convert(try inputs.required(microsoft ? 2 : 1), to: .float, context)
        let sin = try convert(try inputs.required(microsoft ? 3 : 2), to: .float, context)
        let xTensor = try convert(original, to: .float, context)
        let x = try AttentionInput(xTensor, heads: heads, role: "input")
        let batch = xTensor.shape[0], length = x.length
        let dimension = rotaryDimension == 0 ? x.headSize : rotaryDimension
        guard dimension % 2 == 0, dimension <= x.headSize else {
            throw OpError.invalidArgument("rotary dimension \(dimension) must be even and at most the head size \(x.headSize)")
        }
        let half = dimension / 2
        guard cos.shape == sin.shape, cos.shape.dims.last == half else {
            throw OpError.invalidArgument("cos_cache \(cos.shape) and sin_cache \(sin.shape) must agree and end in \(half)")
        }
        let tableRows = cos.shape.dims.dropLast().reduce(1, *)
        var rows = [Int](repeating: 0, count: batch * length)
        if let positions {
            let values = positions.integers()
            if microsoft && values.count == 1 {
                // An offset: position s is offset + s (checked below, so bound it first).
                let offset = max(-1, min(values[0], tableRows))
                for index in rows.indices { rows[index] = offset + index % max(length, 1) }
            } else {
                guard positions.shape.dims == [batch, length] else {
                    throw OpError.invalidArgument("position_ids \(positions.shape) must be [\(batch), \(length)]")
                }
                rows = values
            }
            guard cos.shape.rank == 2 else { throw OpError.invalidArgument("cos_cache \(cos.shape) must be 2-D with position_ids") }
            if let bad = rows.first(where: { $0 < 0 || $0 >= tableRows }) {
                throw OpError.invalidArgument("position \(bad) is outside the cache's \(tableRows) rows")
            }
        } else {
            guard cos.shape.dims == [batch, length, half] else {
                throw OpError.invalidArgument("cos_cache \(cos.shape) must be [\(batch), \(length), \(half)] without position_ids")
            }
            for index in rows.indices { rows[index] = index }
        }
        let y = try context.allocate(.float, xTensor.shape)
        if rows.isEmpty || x.headSize == 0 { return [try convert(y, to: original.dataType, context)] }
        var yOperand = x.operand
        yOperand.base = y.mutablePointer(as: Float.self)
        withExtendedLifetime((x.tensor, cos, sin)) {
            rows.withUnsafeBufferPointer { rows in
                RotaryEmbedding.rotate(x.operand, into: yOperand, batch: batch, heads: x.heads, length: length,
                                       headSize: x.headSize, rotaryDimension: dimension, interleaved: interleaved,
                                       cos: cos.pointer(as: Float.self), sin: sin.pointer(as: Float.self),
                                       tableRows: rows.baseAddress!, parallelism: context.parallelism)
            }
        }
        return [try convert(y, to: original.dataType, context)]
    }
}

/// SwiGLU: `a · sigmoid(alpha · a) · b`, A and B of one shape.
struct SwiGLU: Operator {
    let alpha: Float

    init(_ context: OperatorContext) throws {
        alpha = try context.float("alpha", default: 1)
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let a = try inputs.required(0), b = try inputs.required(1)
        guard a.shape == b.shape else { throw OpError.invalidArgument("A \(a.shape) and B \(b.shape) must have one shape") }
        let x = try convert(a, to: .float, context), gate = try convert(b, to: .float, context)
        let y = try context.allocate(.float, a.shape)
        let alpha = alpha
        withExtendedLifetime((x, gate)) {
            let source = x.pointer(as: Float.self), other = gate.pointer(as: Float.self), target = y.mutablePointer(as: Float.self)
            context.parallelism.forEachChunk(a.elementCount, minimumChunk: BroadcastLayout.defaultGrain) { range in
                for i in range {
                    let value = source[i]
                    target[i] = value / (1 + Float.exp(-alpha * value)) * other[i]
                }
            }
        }
        return [try convert(y, to: a.dataType, context)]
    }
}

/// TensorScatter: a copy of `past_cache` with `update` written along `axis` from each batch
/// item's `write_indices` (0 without them); `circular` wraps around the cache length.
struct TensorScatter: Operator {
    let axis: Int
    let circular: Bool

    init(_ context: OperatorContext) throws {
        axis = try context.int("axis", default: -2)
        switch try context.string("mode", default: "linear") {
        case "linear": circular = false
        case "circular": circular = true
        case let mode: throw OpError("mode must be \"linear\" or \"circular\", got \"\(mode)\"")
        }
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let cache = try inputs.required(0), update = try inputs.required(1)
        let rank = cache.shape.rank
        guard let axis = Shape.normalize(axis: axis, rank: rank), axis > 0, update.shape.rank == rank else {
            throw OpError.invalidArgument("axis \(self.axis) must name a non-batch axis of both \(cache.shape) and \(update.shape)")
        }
        for d in 0..<rank where d != axis && cache.shape[d] != update.shape[d] {
            throw OpError.invalidArgument("update \(update.shape) does not fit past_cache \(cache.shape) outside axis \(axis)")
        }
        let capacity = cache.shape[axis], length = update.shape[axis], batch = cache.shape[0]
        guard length <= capacity else { throw OpError.invalidArgument("update \(update.shape) is longer than past_cache \(cache.shape)") }
        var starts = [Int](repeating: 0, count: batch)
        if let indices = inputs.optional(2) {
            guard indices.shape.dims == [batch] else { throw OpError.invalidArgument("write_indices \(indices.shape) must be [\(batch)]") }
            starts = indices.integers()
            for start in starts where start < 0 || (!circular && start > capacity - length) {
                throw OpError.invalidArgument("write index \(start) with \(length) rows does not fit a cache of \(capacity)")
            }
        }
        let output = try context.allocate(cache.dataType, cache.shape)
        let element = cache.dataType.byteSize
        output.rawPointer.copyMemory(from: cache.rawPointer, byteCount: cache.byteCount)
        let outer = cache.shape.dims[..<axis].reduce(1, *), perBatch = outer / max(batch, 1)
        let rowBytes = cache.shape.dims[(axis + 1)...].reduce(1, *) * element
        withExtendedLifetime(update) {
            for o in 0..<outer {
                let start = starts[o / max(perBatch, 1)]
                for s in 0..<length {
                    let row = circular ? (start % capacity + s) % capacity : start + s
                    (output.rawPointer + (o * capacity + row) * rowBytes)
                        .copyMemory(from: update.rawPointer + (o * length + s) * rowBytes, byteCount: rowBytes)
                }
            }
        }
        return [output]
    }
}
