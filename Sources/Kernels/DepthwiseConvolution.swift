extension Convolution {
    // Shapes: input [N, C, *in] (1 or 2 spatial axes); weights [C·multiplier, 1, *kernel];
    //         output [N, C·multiplier, *out]; output channel o reads input channel o / multiplier.
    /// Depthwise convolution (groups == input channels), any kernel size, stride and dilation.
    ///
    /// Each input plane is first copied into a zero-padded buffer whose rows and columns are split
    /// by phase of the stride (for stride 2: even rows, then odd ones; in each row even columns,
    /// then odd ones). In that buffer, the input that tap t of output (oh, ow) reads sits at
    /// `oh · rowSize + ow + tapOffsets[t]` for every output: the whole plane is one flat loop of
    /// 8-wide vectors, `wide[q] = Σ_t w[t] · padded[q + tapOffsets[t]]`, with no edge cases. `wide`
    /// has `rowSize` columns per output row (the ones past the output width are computed and
    /// dropped); the valid ones are copied out and finished by the epilogue while in L1.
    /// Parallel over planes (channels of all images). Its naive twin is `Convolution.reference`.
    static func depthwise(input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                          output: UnsafeMutablePointer<Float>, layout: ConvolutionLayout,
                          epilogue: Epilogue, parallelism: Parallelism) {
        let volume = layout.window.volume
        let height = volume.height, width = volume.width
        let taps = layout.window.kernelCount, inputCount = layout.window.inputCount, outputCount = layout.window.outputCount
        let multiplier = layout.outputChannels / layout.inputChannels
        let planes = layout.batch * layout.outputChannels
        // The padded extent the outputs read, and its rows and columns per stride phase.
        let paddedHeight = (height.output - 1) * height.stride + (height.kernel - 1) * height.dilation + 1
        let paddedWidth = (width.output - 1) * width.stride + (width.kernel - 1) * width.dilation + 1
        let phaseWidth = (paddedWidth + width.stride - 1) / width.stride
        let phaseHeight = (paddedHeight + height.stride - 1) / height.stride
        let rowSize = width.stride * phaseWidth
        let tapOffsets = (0..<taps).map { tap in
            let row = tap / width.kernel * height.dilation, column = tap % width.kernel * width.dilation
            return ((row % height.stride) * phaseHeight + row / height.stride) * rowSize
                + (column % width.stride) * phaseWidth + column / width.stride
        }
        // Wide outputs computed: up to the last valid one, in whole blocks of vectors.
        let wideCount = ((height.output - 1) * rowSize + width.output + Self.depthwiseBlock - 1)
            / Self.depthwiseBlock * Self.depthwiseBlock
        // The last block reads at most this far (its garbage columns run into the next rows).
        let paddedCount = Swift.max(height.stride * phaseHeight * rowSize, wideCount + (tapOffsets.max() ?? 0))
        let planeWork = wideCount * taps
        parallelism.forEachChunk(planes, minimumChunk: Swift.max(1, (1 << 15) / Swift.max(planeWork, 1))) { chunk in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: paddedCount + wideCount) { buffer in
                let padded = buffer.baseAddress!, wide = padded + paddedCount
                // Cells no input lands in stay zero (the garbage columns read some of them).
                padded.initialize(repeating: 0, count: paddedCount)
                var lastSource = -1
                for plane in chunk {
                    let image = plane / layout.outputChannels, channel = plane % layout.outputChannels
                    let sourcePlane = image * layout.inputChannels + channel / multiplier
                    // With a multiplier above 1, consecutive channels share the padded input.
                    if sourcePlane != lastSource {
                        pad(input + sourcePlane * inputCount, into: padded, rows: paddedHeight, rowSize: rowSize,
                            phaseWidth: phaseWidth, phaseHeight: phaseHeight, height: height, width: width)
                        lastSource = sourcePlane
                    }
                    tapSums(UnsafePointer(padded), offsets: tapOffsets, weights: weights + channel * taps,
                            into: wide, count: wideCount)
                    let imageOffset = image * layout.outputChannels * outputCount
                    let target = output + imageOffset + channel * outputCount
                    for oh in 0..<height.output {
                        (target + oh * width.output).update(from: wide + oh * rowSize, count: width.output)
                    }
                    // The plane is in L1 still.
                    epilogue.apply(output, offset: imageOffset, ld: outputCount, rows: channel..<(channel + 1),
                                   columns: 0..<outputCount)
                }
            }
        }
    }

    /// Outputs `depthwise` computes per step of its flat loop: four vectors of eight.
    static let depthwiseBlock = 32

    // Shapes: padded[count + max(offsets)]; weights[offsets.count]; wide[count], count a multiple of 32.
    /// `wide[q] = Σ_t weights[t] · padded[q + offsets[t]]`, 32 outputs at a time in four vector sums.
    @inline(__always)
    private static func tapSums(_ padded: UnsafePointer<Float>, offsets: [Int], weights: UnsafePointer<Float>,
                                into wide: UnsafeMutablePointer<Float>, count: Int) {
        offsets.withUnsafeBufferPointer { offsets in
            let source = UnsafeRawPointer(padded), target = UnsafeMutableRawPointer(wide)
            var q = 0
            while q < count {
                var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
                for t in 0..<offsets.count {
                    let w = SIMD8<Float>(repeating: weights[t])
                    let at = (q + offsets[t]) * MemoryLayout<Float>.stride
                    s0 += w * source.loadUnaligned(fromByteOffset: at, as: SIMD8<Float>.self)
                    s1 += w * source.loadUnaligned(fromByteOffset: at + 32, as: SIMD8<Float>.self)
                    s2 += w * source.loadUnaligned(fromByteOffset: at + 64, as: SIMD8<Float>.self)
                    s3 += w * source.loadUnaligned(fromByteOffset: at + 96, as: SIMD8<Float>.self)
                }
                let at = q * MemoryLayout<Float>.stride
                target.storeBytes(of: s0, toByteOffset: at, as: SIMD8<Float>.self)
                target.storeBytes(of: s1, toByteOffset: at + 32, as: SIMD8<Float>.self)
                target.storeBytes(of: s2, toByteOffset: at + 64, as: SIMD8<Float>.self)
                target.storeBytes(of: s3, toByteOffset: at + 96, as: SIMD8<Float>.self)
                q += 32
            }
        }
    }

    /// Copies one input plane into the padded, phase-split buffer: padded row r (input row r − pad)
    /// goes to row `(r % stride) · phaseHeight + r / stride`, padded column c (input column c − pad)
    /// to `(c % stride) · phaseWidth + c / stride` of its row; padding is zero.
    @inline(__always)
    private static func pad(_ source: UnsafePointer<Float>, into padded: UnsafeMutablePointer<Float>, rows: Int, rowSize: Int,
                            phaseWidth: Int, phaseHeight: Int, height: WindowAxis, width: WindowAxis) {
        let stride = width.stride
        for r in 0..<rows {
            let target = padded + ((r % height.stride) * phaseHeight + r / height.stride) * rowSize, ih = r - height.pad
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
}
