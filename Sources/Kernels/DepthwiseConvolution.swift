extension Convolution {
    // Shapes: input [N, C, *in] (1 or 2 spatial axes); weights [C·multiplier, 1, *kernel];
    //         output [N, C·multiplier, *out]; output channel o reads input channel o / multiplier.
    /// Depthwise convolution (groups == input channels): each output plane is built row by row with
    /// loops over the output width, one pass per kernel tap, and finished by the epilogue while
    /// the row is in L1. Its naive twin is `Convolution.reference`.
    static func depthwise(input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                          output: UnsafeMutablePointer<Float>, layout: ConvolutionLayout,
                          epilogue: Epilogue, parallelism: Parallelism) {
        let volume = layout.window.volume
        let height = volume.height, width = volume.width
        let taps = layout.window.kernelCount, inputCount = layout.window.inputCount, outputCount = layout.window.outputCount
        let multiplier = layout.outputChannels / layout.inputChannels
        let planes = layout.batch * layout.outputChannels
        let planeWork = outputCount * taps
        parallelism.forEachChunk(planes, minimumChunk: Swift.max(1, (1 << 15) / Swift.max(planeWork, 1))) { chunk in
            for plane in chunk {
                let image = plane / layout.outputChannels, channel = plane % layout.outputChannels
                let source = input + (image * layout.inputChannels + channel / multiplier) * inputCount
                let kernel = weights + channel * taps
                let imageOffset = image * layout.outputChannels * outputCount
                for oh in 0..<height.output {
                    let row = output + imageOffset + channel * outputCount + oh * width.output
                    row.update(repeating: 0, count: width.output)
                    for kh in 0..<height.kernel {
                        let ih = oh * height.stride - height.pad + kh * height.dilation
                        if ih < 0 || ih >= height.input { continue }
                        accumulateRow(row, from: source + ih * width.input, taps: kernel + kh * width.kernel, width: width)
                    }
                    epilogue.apply(output, offset: imageOffset + oh * width.output, ld: outputCount,
                                   rows: channel..<(channel + 1), columns: 0..<width.output)
                }
            }
        }
    }

    /// Adds one kernel row's contribution, `row[o] += Σ_k taps[k] · source[o·stride − pad + k·dilation]`,
    /// over the output pixels where each tap lands inside the input.
    @inline(__always)
    private static func accumulateRow(_ row: UnsafeMutablePointer<Float>, from source: UnsafePointer<Float>,
                                      taps: UnsafePointer<Float>, width: WindowAxis) {
        let stride = width.stride
        var interior = 0..<0
        if width.kernel == 3 && width.dilation == 1 {
            // The common 3-tap row: one pass over the pixels where all three taps are inside.
            let first = width.validOutputs(offset: -width.pad), last = width.validOutputs(offset: 2 - width.pad)
            let lo = Swift.max(first.lowerBound, last.lowerBound), hi = Swift.min(first.upperBound, last.upperBound)
            if lo < hi {
                interior = lo..<hi
                let w0 = taps[0], w1 = taps[1], w2 = taps[2]
                let base = source - width.pad
                if stride == 1 {
                    for o in interior { row[o] += w0 * base[o] + w1 * base[o + 1] + w2 * base[o + 2] }
                } else {
                    for o in interior {
                        let at = base + o * stride
                        row[o] += w0 * at[0] + w1 * at[1] + w2 * at[2]
                    }
                }
            }
        }
        for k in 0..<width.kernel {
            let offset = k * width.dilation - width.pad
            let valid = width.validOutputs(offset: offset)
            let weight = taps[k]
            let from = source + offset
            func add(_ part: Range<Int>) {
                if stride == 1 {
                    for o in part { row[o] += weight * from[o] }
                } else {
                    for o in part { row[o] += weight * from[o * stride] }
                }
            }
            // Pixels the fused pass did not cover: all of them, or the edges around `interior`.
            if interior.isEmpty {
                add(valid)
            } else {
                add(valid.lowerBound..<Swift.max(valid.lowerBound, interior.lowerBound))
                add(Swift.min(valid.upperBound, interior.upperBound)..<valid.upperBound)
            }
        }
    }
}
