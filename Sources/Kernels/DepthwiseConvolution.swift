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
                        let top = UnsafePointer(padded + oh * height.stride * rowSize)
                        if height.kernel == 3 && width.kernel == 3 {
                            row3x3(row, count: width.output, top: top, lineStride: height.dilation * rowSize,
                                   taps: kernel, width: width, phaseWidth: phaseWidth)
                            continue
                        }
                        row.update(repeating: 0, count: width.output)
                        for kh in 0..<height.kernel {
                            accumulateRow(row, count: width.output, line: top + kh * height.dilation * rowSize,
                                          taps: kernel + kh * width.kernel, width: width, phaseWidth: phaseWidth)
                        }
                    }
                    // The plane is in L1 still.
                    epilogue.apply(output, offset: imageOffset, ld: outputCount, rows: channel..<(channel + 1),
                                   columns: 0..<outputCount)
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
            // Phase slot j holds padded column j·stride + phase, i.e. input column j·stride + phase − pad;
            // these are the slots that fall inside the input.
            func slots(_ phase: Int) -> Range<Int> {
                let offset = phase - width.pad
                let lo = Swift.min(phaseWidth, offset >= 0 ? 0 : (-offset + stride - 1) / stride)
                return lo..<Swift.max(lo, Swift.min(phaseWidth, width.input - offset <= 0 ? 0 : (width.input - offset + stride - 1) / stride))
            }
            for phase in 0..<stride {
                let out = target + phase * phaseWidth, valid = slots(phase)
                out.update(repeating: 0, count: valid.lowerBound)
                (out + valid.upperBound).update(repeating: 0, count: phaseWidth - valid.upperBound)
            }
            if stride == 1 {
                let valid = slots(0)
                (target + valid.lowerBound).update(from: line + valid.lowerBound - width.pad, count: valid.count)
                continue
            }
            var shared = 0..<0
            if stride == 2 {
                // Both phases at once: eight input columns split into four even and four odd ones.
                let even = slots(0), odd = slots(1)
                let lo = Swift.max(even.lowerBound, odd.lowerBound), hi = Swift.min(even.upperBound, odd.upperBound)
                var j = lo
                while j + 4 <= hi {
                    let pair = UnsafeRawPointer(line + 2 * j - width.pad).loadUnaligned(as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(target + j).storeBytes(of: pair.evenHalf, as: SIMD4<Float>.self)
                    UnsafeMutableRawPointer(target + phaseWidth + j).storeBytes(of: pair.oddHalf, as: SIMD4<Float>.self)
                    j += 4
                }
                shared = lo..<Swift.max(lo, j)
            }
            for phase in 0..<stride {
                let out = target + phase * phaseWidth, from = line + phase - width.pad, valid = slots(phase)
                for j in valid.lowerBound..<Swift.max(valid.lowerBound, Swift.min(valid.upperBound, shared.lowerBound)) {
                    out[j] = from[j * stride]
                }
                for j in Swift.min(valid.upperBound, Swift.max(valid.lowerBound, shared.upperBound))..<valid.upperBound {
                    out[j] = from[j * stride]
                }
            }
        }
    }

    /// One output row of a 3×3 kernel in a single pass: nine taps read from three padded rows
    /// `lineStride` apart, one store per output.
    @inline(__always)
    private static func row3x3(_ row: UnsafeMutablePointer<Float>, count: Int, top: UnsafePointer<Float>, lineStride: Int,
                               taps: UnsafePointer<Float>, width: WindowAxis, phaseWidth: Int) {
        func column(_ k: Int) -> Int {
            let position = k * width.dilation
            return (position % width.stride) * phaseWidth + position / width.stride
        }
        let (c0, c1, c2) = (column(0), column(1), column(2))
        let (a0, a1, a2) = (top + c0, top + c1, top + c2)
        let (b0, b1, b2) = (a0 + lineStride, a1 + lineStride, a2 + lineStride)
        let (d0, d1, d2) = (b0 + lineStride, b1 + lineStride, b2 + lineStride)
        let (w0, w1, w2, w3, w4, w5, w6, w7, w8) = (taps[0], taps[1], taps[2], taps[3], taps[4], taps[5], taps[6], taps[7], taps[8])
        for o in 0..<count {
            row[o] = w0 * a0[o] + w1 * a1[o] + w2 * a2[o] + w3 * b0[o] + w4 * b1[o] + w5 * b2[o]
                + w6 * d0[o] + w7 * d1[o] + w8 * d2[o]
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
        for k in 0..<width.kernel {
            let p = tap(k), weight = taps[k]
            for o in 0..<count { row[o] += weight * p[o] }
        }
    }
}
