import Kernels
import Tensors

/// LinearAttention (27): the recurrent attention of linear-attention, DeltaNet and gated
/// DeltaNet layers, run token by token as the spec defines it. Per batch item and key/value head
/// a state S [d_k, d_v] (from `past_state`, else zeros) is updated at each step t:
/// `gated` and `gated_delta` first scale row i of S by exp(decay) (per key dimension, or one per
/// head); `delta` and `gated_delta` replace v by β·(v − Sᵀk); then S += k ⊗ v; each query head of
/// the group sharing that state reads `scale · qᵀS`. Query, key, value, decay and beta are packed
/// [B, T, heads·d]; computed in float for float16 and bfloat16; `present_state` is S after the
/// last step, in `past_state`'s type (the output's without it).
struct LinearAttention: Operator {
    let queryHeads: Int, keyValueHeads: Int
    let gating: Bool, deltaCorrection: Bool
    let scale: Float

    static let types: Set<DataType> = [.float, .float16, .bfloat16]

    init(_ context: OperatorContext) throws {
        queryHeads = try context.required("q_num_heads", context.int)
        keyValueHeads = try context.required("kv_num_heads", context.int)
        guard queryHeads > 0, keyValueHeads > 0, queryHeads % keyValueHeads == 0, queryHeads <= 1 << 16 else {
            throw OpError("q_num_heads (\(queryHeads)) must be a positive multiple of kv_num_heads (\(keyValueHeads)), at most 65536")
        }
        let rule = try context.string("update_rule", default: "gated_delta")
        switch rule {
        case "linear": (gating, deltaCorrection) = (false, false)
        case "gated": (gating, deltaCorrection) = (true, false)
        case "delta": (gating, deltaCorrection) = (false, true)
        case "gated_delta": (gating, deltaCorrection) = (true, true)
        default: throw OpError("update_rule must be linear, gated, delta or gated_delta, got '\(rule)'")
        }
        scale = try context.float("scale", default: 0)
        guard scale.isFinite else { throw OpError("scale \(scale) is not finite") }
        if gating != context.hasInput(4) {
            throw OpError("update_rule '\(rule)' \(gating ? "requires" : "forbids") the decay input")
        }
        if deltaCorrection != context.hasInput(5) {
            throw OpError("update_rule '\(rule)' \(deltaCorrection ? "requires" : "forbids") the beta input")
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let query = inputs.type(0) else { return [] }
        let stateType = inputs.type(3)?.dataType ?? query.dataType
        return [TensorType(query.dataType, query.dims.map { dims in dims.count == 3 ? [dims[0], dims[1], .unknown] : dims }),
                TensorType(stateType, [Dim](repeating: .unknown, count: 4))]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let query = try inputs.required(0), key = try inputs.required(1), value = try inputs.required(2)
        let past = inputs.optional(3), decay = inputs.optional(4), beta = inputs.optional(5)
        for (tensor, name) in [(query, "query"), (key, "key"), (value, "value")] where tensor.shape.rank != 3 {
            throw OpError.invalidArgument("\(name) must be [batch, length, heads·size], got \(tensor.shape)")
        }
        let (batch, length) = (query.shape[0], query.shape[1])
        guard query.shape[2] % queryHeads == 0, key.shape[2] % keyValueHeads == 0, value.shape[2] % keyValueHeads == 0 else {
            throw OpError.invalidArgument("query \(query.shape), key \(key.shape) and value \(value.shape) do not split into"
                                          + " \(queryHeads) query and \(keyValueHeads) key/value heads")
        }
        let dk = query.shape[2] / queryHeads, dv = value.shape[2] / keyValueHeads
        guard key.shape == Shape([batch, length, keyValueHeads * dk]), value.shape[0] == batch, value.shape[1] == length else {
            throw OpError.invalidArgument("key must be [\(batch), \(length), \(keyValueHeads * dk)] and value [\(batch), \(length), ·]"
                                          + " beside query \(query.shape), got \(key.shape) and \(value.shape)")
        }
        let stateShape = try Layout.checkedShape([batch, keyValueHeads, dk, dv])
        if let past, past.shape != stateShape { throw OpError.invalidArgument("past_state must be \(stateShape), got \(past.shape)") }
        var decayWidth = 0, betaWidth = 0
        if let decay {
            guard decay.shape.rank == 3, decay.shape[0] == batch, decay.shape[1] == length,
                  decay.shape[2] == keyValueHeads || decay.shape[2] == keyValueHeads * dk else {
                throw OpError.invalidArgument("decay must be [\(batch), \(length), \(keyValueHeads)] or [\(batch), \(length), \(keyValueHeads * dk)], got \(decay.shape)")
            }
            decayWidth = decay.shape[2]
        }
        if let beta {
            guard beta.shape.rank == 3, beta.shape[0] == batch, beta.shape[1] == length,
                  beta.shape[2] == keyValueHeads || beta.shape[2] == 1 else {
                throw OpError.invalidArgument("beta must be [\(batch), \(length), \(keyValueHeads)] or [\(batch), \(length), 1], got \(beta.shape)")
            }
            betaWidth = beta.shape[2]
        }
        let q = try convert(query, to: .float, context), k = try convert(key, to: .float, context), v = try convert(value, to: .float, context)
        let g = try decay.map { try convert($0, to: .float, context) }, b = try beta.map { try convert($0, to: .float, context) }
        let state = try context.allocate(.float, stateShape)
        if let past {
            let initial = try convert(past, to: .float, context)
            withExtendedLifetime(initial) { state.mutablePointer(as: Float.self).update(from: initial.pointer(as: Float.self), count: state.elementCount) }
        } else {
            state.mutablePointer(as: Float.self).update(repeating: 0, count: state.elementCount)
        }
        let output = try context.allocate(.float, Shape([batch, length, queryHeads * dv]))
        let group = queryHeads / keyValueHeads
        let factor = scale == 0 ? 1 / Float(dk).squareRoot() : scale
        let (gating, deltaCorrection) = (gating, deltaCorrection)
        withExtendedLifetime((q, k, v, g, b)) {
            let qs = q.pointer(as: Float.self), ks = k.pointer(as: Float.self), vs = v.pointer(as: Float.self)
            let gs = g?.pointer(as: Float.self), bs = b?.pointer(as: Float.self)
            let states = state.mutablePointer(as: Float.self), out = output.mutablePointer(as: Float.self)
            // Each (batch item, key/value head) is an independent recurrence.
            context.parallelism.forEachChunk(batch * keyValueHeads) { range in
                var update = [Float](repeating: 0, count: dv)
                for pair in range {
                    let (n, h) = pair.quotientAndRemainder(dividingBy: keyValueHeads)
                    let s = states + pair * dk * dv
                    for t in 0..<length {
                        let row = n * length + t
                        let kt = ks + row * keyValueHeads * dk + h * dk, vt = vs + row * keyValueHeads * dv + h * dv
                        if gating, let gs {
                            for i in 0..<dk {
                                let factor = Float.exp(decayWidth == keyValueHeads ? gs[row * decayWidth + h] : gs[row * decayWidth + h * dk + i])
                                for j in 0..<dv { s[i * dv + j] *= factor }
                            }
                        }
                        if deltaCorrection, let bs {
                            let rate = bs[row * betaWidth + (betaWidth == 1 ? 0 : h)]
                            for j in 0..<dv { update[j] = vt[j] }
                            for i in 0..<dk {
                                let ki = kt[i]
                                for j in 0..<dv { update[j] -= s[i * dv + j] * ki }
                            }
                            for j in 0..<dv { update[j] *= rate }
                        } else {
                            for j in 0..<dv { update[j] = vt[j] }
                        }
                        for i in 0..<dk {
                            let ki = kt[i]
                            for j in 0..<dv { s[i * dv + j] += ki * update[j] }
                        }
                        for member in 0..<group {
                            let head = h * group + member
                            let qt = qs + row * queryHeads * dk + head * dk, ot = out + row * queryHeads * dv + head * dv
                            for j in 0..<dv { ot[j] = 0 }
                            for i in 0..<dk {
                                let qi = qt[i]
                                for j in 0..<dv { ot[j] += qi * s[i * dv + j] }
                            }
                            for j in 0..<dv { ot[j] *= factor }
                        }
                    }
                }
            }
        }
        let stateType = past?.dataType ?? query.dataType
        return [try convert(output, to: query.dataType, context), try convert(state, to: stateType, context)]
    }
}
