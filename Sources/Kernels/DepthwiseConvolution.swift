extension Convolution {
    // Shapes: input [N, C, *in] (1 or 2 spatial axes); weights [C·multiplier, 1, *kernel];
    //         output [N, C·multiplier, *out]; output channel o reads input channel o / multiplier.
    /// Depthwise convolution (groups == input channels). Each input plane is first copied into a
    /// zero-padded buffer, its columns split by phase of the stride (for stride 2: even columns,
    /// then odd ones), so that every kernel tap reads a contiguous run: an output row is then a few
    /// plain loops over its width with no edge cases, finished by the epilogue while in L1.
    /// Its naive twin is `Convolution.reference`.
    static func depthwise(input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                          output: UnsafeMutablePointer<Float>, layout: ConvolutionLayout,
                          epilogue: Epilogue, parallelism: Parallelism) {
        let volume = layout.window.volume
        let height = volume.height, width = volume.width
        let taps = layout.window.kernelCount, inputCount = layout.window.inputCount, outputCount = layout.window.outputCount
        let multiplier = layout.outputChannels / layout.inputChannels
        let planes = layout.batch * layout.outputChannels
        // The padded extent the outputs read, and its columns per stride phase.
        let paddedHeight = (height.output - 1) * height.stride + (height.kernel - 1) * height.dilation + 1
        let paddedWidth = (width.output - 1) * width.stride + (width.kernel - 1) * width.dilation + 1
        let phaseWidth = (paddedWidth + width.stride - 1) / width.stride
        let rowSize = width.stride * phaseWidth
        let planeWork = outputCount * taps
        parallelism.forEachChunk(planes, minimumChunk: Swift.max(1, (1 << 15) / Swift.max(planeWork, 1))) { chunk in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: paddedHeight * rowSize) { buffer in
                let padded = buffer.baseAddress!
                var lastSource = -1
                for plane in chunk {
                    let image = plane / layout.outputChannels, channel = plane % layout.outputChannels
                    let sourcePlane = image * layout.inputChannels + channel / multiplier
                    // With a multiplier above 1, consecutive channels share the padded input.
                    if sourcePlane != lastSource {
                        pad(input + sourcePlane * inputCount, into: padded, rows: paddedHeight, rowSize: rowSize,
                            phaseWidth: phaseWidth, height: height, width: width)
                        lastSource = sourcePlane
                    }
                    let kernel = weights + channel * taps
                    let imageOffset = image * layout.outputChannels * outputCount
                    for oh in 0..<height.output {
                        let row = output + imageOffset + channel * outputCount + oh * width.output
                        row.update(repeating: 0, count: width.output)
                        for kh in 0..<height.kernel {
                            let line = UnsafePointer(padded + (oh * height.stride + kh * height.dilation) * rowSize)
                            accumulateRow(row, count: width.output, line: line, taps: kernel + kh * width.kernel,
                                          width: width, phaseWidth: phaseWidth)
                        }
                        epilogue.apply(output, offset: imageOffset + oh * width.output, ld: outputCount,
                                       rows: channel..<(channel + 1), columns: 0..<width.output)
                    }
                }
            }
        }
    }

    /// Copies one input plane into the padded, phase-split buffer: padded column c (input column
    /// c − pad) goes to `(c % stride) · phaseWidth + c / stride` of its row; padding is zero.
    @inline(__always)
    private static func pad(_ source: UnsafePointer<Float>, into padded: UnsafeMutablePointer<Float>, rows: Int, rowSize: Int,
                            phaseWidth: Int, height: WindowAxis, width: WindowAxis) {
        let stride = width.stride
        for r in 0..<rows {
            let target = padded + r * rowSize, ih = r - height.pad
            guard ih >= 0 && ih < height.input else {
                target.update(repeating: 0, count: rowSize)
                continue
            }
            let line = source + ih * width.input
            for phase in 0..<stride {
                // Phase slot j holds padded column j·stride + phase, i.e. input column j·stride + phase − pad.
                let out = target + phase * phaseWidth
                let offset = phase - width.pad
                let lo = Swift.min(phaseWidth, offset >= 0 ? 0 : (-offset + stride - 1) / stride)
                let hi = Swift.max(lo, Swift.min(phaseWidth, width.input - offset <= 0 ? 0 : (width.input - offset + stride - 1) / stride))
                out.update(repeating: 0, count: lo)
                let from = line + offset
                if stride == 1 {
                    (out + lo).update(from: from + lo, count: hi - lo)
                } else {
                    for j in lo..<hi { out[j] = from[j * stride] }
                }
                (out + hi).update(repeating: 0, count: phaseWidth - hi)
            }
        }
    }

    /// Adds one kernel row's contribution, `row[o] += Σ_k taps[k] · padded[o·stride + k·dilation]`,
    /// where padded column c lives at `line[(c % stride) · phaseWidth + c / stride]`.
    @inline(__always)
    private static func accumulateRow(_ row: UnsafeMutablePointer<Float>, count: Int, line: UnsafePointer<Float>,
                                      taps: UnsafePointer<Float>, width: WindowAxis, phaseWidth: Int) {
        func tap(_ k: Int) -> UnsafePointer<Float> {
            let column = k * width.dilation
            return line + (column % width.stride) * phaseWidth + column / width.stride
        }
        if width.kernel == 3 {
            // The common 3-tap row in one pass.
            let (p0, p1, p2) = (tap(0), tap(1), tap(2))
            let (w0, w1, w2) = (taps[0], taps[1], taps[2])
            for o in 0..<count { row[o] += w0 * p0[o] + w1 * p1[o] + w2 * p2[o] }
            return
        }
        for k in 0..<width.kernel {
            let p = tap(k), weight = taps[k]
            for o in 0..<count { row[o] += weight * p[o] }
        }
    }
}
