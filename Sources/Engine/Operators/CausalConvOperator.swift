import Kernels
import Tensors

/// CausalConvWithState (27): the causal depthwise 1-D convolution of Mamba and Gated DeltaNet
/// layers, with the carry state that makes decoding incremental. The input [B, C, L] is appended
/// to `past_state` [B, C, k − 1] (zeros without it); output[b, c, t] = bias[c] + Σⱼ weight[c, 0, j] ·
/// padded[b, c, t + j], then SiLU when `activation` is silu or swish; `present_state` is the last
/// k − 1 positions of the padded sequence. Computed in float for float16 and bfloat16.
struct CausalConvWithState: Operator {
    let silu: Bool

    init(_ context: OperatorContext) throws {
        switch try context.string("activation", default: "none") {
        case "none": silu = false
        case "silu", "swish": silu = true
        case let other: throw OpError("activation must be 'silu', 'swish' or 'none', got '\(other)'")
        }
    }

    static let types: Set<DataType> = [.float, .float16, .bfloat16]

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        let dims = x.dims
        let kernel = inputs.type(1)?.dims?.last?.value
        let state: [Dim] = [dims?[0] ?? .unknown, dims?[1] ?? .unknown, kernel.map { .fixed(max($0 - 1, 0)) } ?? .unknown]
        return [x, TensorType(x.dataType, dims == nil && kernel == nil ? nil : state)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let input = try inputs.required(0), weight = try inputs.required(1)
        let bias = inputs.optional(2), past = inputs.optional(3)
        guard input.shape.rank == 3 else { throw OpError.invalidArgument("input must be [batch, channels, length], got \(input.shape)") }
        let (batch, channels, length) = (input.shape[0], input.shape[1], input.shape[2])
        guard weight.shape.rank == 3, weight.shape[0] == channels, weight.shape[1] == 1, weight.shape[2] >= 1 else {
            throw OpError.invalidArgument("weight must be [\(channels), 1, k] with k ≥ 1, got \(weight.shape)")
        }
        let kernel = weight.shape[2], carried = kernel - 1
        if let bias, bias.shape != Shape([channels]) {
            throw OpError.invalidArgument("bias must be [\(channels)], got \(bias.shape)")
        }
        if let past, past.shape != Shape([batch, channels, carried]) {
            throw OpError.invalidArgument("past_state must be [\(batch), \(channels), \(carried)], got \(past.shape)")
        }
        let span = try Layout.checkedShape([batch, channels, carried + length])
        let x = try convert(input, to: .float, context), w = try convert(weight, to: .float, context)
        let b = try bias.map { try convert($0, to: .float, context) }, state = try past.map { try convert($0, to: .float, context) }
        let output = try context.allocate(.float, input.shape)
        let present = try context.allocate(.float, Shape([batch, channels, carried]))
        let silu = silu
        // One row (b, c) at a time: the padded sequence in a scratch row, then the taps.
        let rows = batch * channels, paddedLength = span[2]
        withExtendedLifetime((x, w, b, state)) {
            let source = x.pointer(as: Float.self), taps = w.pointer(as: Float.self)
            let biases = b?.pointer(as: Float.self), previous = state?.pointer(as: Float.self)
            let target = output.mutablePointer(as: Float.self), carry = present.mutablePointer(as: Float.self)
            context.parallelism.forEachChunk(rows, minimumChunk: max(1, 4096 / max(paddedLength * kernel, 1))) { range in
                let padded = UnsafeMutablePointer<Float>.allocate(capacity: max(paddedLength, 1))
                defer { padded.deallocate() }
                for row in range {
                    let channel = row % channels
                    if let previous {
                        padded.update(from: previous + row * carried, count: carried)
                    } else {
                        padded.update(repeating: 0, count: carried)
                    }
                    (padded + carried).update(from: source + row * length, count: length)
                    let tap = taps + channel * kernel, shift = biases?[channel] ?? 0
                    let out = target + row * length
                    for t in 0..<length {
                        var sum = shift
                        for j in 0..<kernel { sum += tap[j] * padded[t + j] }
                        out[t] = silu ? sum / (1 + Float.exp(-sum)) : sum
                    }
                    (carry + row * carried).update(from: padded + length, count: carried)
                }
            }
        }
        return [try convert(output, to: input.dataType, context), try convert(present, to: input.dataType, context)]
    }
}
