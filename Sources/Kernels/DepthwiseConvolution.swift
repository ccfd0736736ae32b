extension Convolution {
    // Shapes: input [N, C, *in] (1 or 2 spatial axes); weights [C·multiplier, 1, *kernel];
    //         output [N, C·multiplier, *out]; output channel o reads input channel o / multiplier.
    /// Depthwise convolution (groups == input channels), any kernel size, stride and dilation.
    ///
    /// Each input plane is first copied into a zero-padded buffer split by phase of the stride into
    /// sub-planes of `phaseHeight × phaseWidth` (for stride 2: even rows and even columns, even rows
    /// and odd columns, odd rows and even columns, odd and odd). In that buffer, the input that tap t
    /// of output (oh, ow) reads sits at `oh · phaseWidth + ow + tapOffsets[t]` for every output: the
    /// whole plane is one flat loop of 8-wide vectors, `wide[q] = Σ_t w[t] · padded[q + tapOffsets[t]]`,
    /// with no edge cases. `wide` has `phaseWidth` columns per output row (the output width plus
    /// `(kernel − 1) · dilation / stride`: at stride 2 only a few past the output width are computed
    /// and dropped, not half the row); the valid ones are copied out and finished by the epilogue
    /// while in L1.
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
        let tapOffsets = (0..<taps).map { tap in
            let row = tap / width.kernel * height.dilation, column = tap % width.kernel * width.dilation
            return (((row % height.stride) * width.stride + column % width.stride) * phaseHeight + row / height.stride)
                * phaseWidth + column / width.stride
        }
        // Wide outputs computed: up to the last valid one, in whole vectors.
        let wideCount = ((height.output - 1) * phaseWidth + width.output + 7) / 8 * 8
        // The last vector reads at most this far (its garbage columns run into the next rows).
        let paddedCount = Swift.max(height.stride * width.stride * phaseHeight * phaseWidth,
                                    wideCount + (tapOffsets.max() ?? 0))
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
                        pad(input + sourcePlane * inputCount, into: padded, rows: paddedHeight,
                            phaseWidth: phaseWidth, phaseHeight: phaseHeight, height: height, width: width)
                        lastSource = sourcePlane
                    }
                    tapSums(UnsafePointer(padded), offsets: tapOffsets, weights: weights + channel * taps,
                            into: wide, count: wideCount)
                    let imageOffset = image * layout.outputChannels * outputCount
                    let target = output + imageOffset + channel * outputCount
                    for oh in 0..<height.output {
                        (target + oh * width.output).update(from: wide + oh * phaseWidth, count: width.output)
                    }
                    // The plane is in L1 still.
                    epilogue.apply(output, offset: imageOffset, ld: outputCount, rows: channel..<(channel + 1),
                                   columns: 0..<outputCount)
                }
            }
        }
    }

    // Shapes: padded[count + max(offsets)]; weights[offsets.count]; wide[count], count a multiple of 8.
    /// `wide[q] = Σ_t weights[t] · padded[q + offsets[t]]`, 32 outputs at a time in four vector sums,
    /// then the rest one vector at a time.
    @inline(__always)
    private static func tapSums(_ padded: UnsafePointer<Float>, offsets: [Int], weights: UnsafePointer<Float>,
                                into wide: UnsafeMutablePointer<Float>, count: Int) {
        offsets.withUnsafeBufferPointer { offsets in
            let source = UnsafeRawPointer(padded), target = UnsafeMutableRawPointer(wide)
            var q = 0
            while q + 32 <= count {
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
            while q < count {
                var sum = SIMD8<Float>()
                for t in 0..<offsets.count {
                    sum += SIMD8<Float>(repeating: weights[t])
                        * source.loadUnaligned(fromByteOffset: (q + offsets[t]) * MemoryLayout<Float>.stride, as: SIMD8<Float>.self)
                }
                target.storeBytes(of: sum, toByteOffset: q * MemoryLayout<Float>.stride, as: SIMD8<Float>.self)
                q += 8
            }
        }
    }

    /// Copies one input plane into the padded, phase-split buffer: padded cell (r, c) (input row
    /// r − pad, column c − pad) goes to row `r / stride`, column `c / stride` of the sub-plane
    /// `(r % stride, c % stride)`, which starts at `((r % stride) · widthStride + c % stride) ·
    /// phaseHeight · phaseWidth`. Only the cells that hold input are written: the padding cells
    /// are the same for every plane, so they stay zero from the buffer's initialisation.
    @inline(__always)
    private static func pad(_ source: UnsafePointer<Float>, into padded: UnsafeMutablePointer<Float>, rows: Int,
                            phaseWidth: Int, phaseHeight: Int, height: WindowAxis, width: WindowAxis) {
        let stride = width.stride, phasePlane = phaseHeight * phaseWidth
        // Phase slot j holds padded column j·stride + phase, i.e. input column j·stride + phase − pad;
        // these are the slots that fall inside the input.
        func slots(_ phase: Int) -> Range<Int> {
            let offset = phase - width.pad
            let lo = Swift.min(phaseWidth, offset >= 0 ? 0 : (-offset + stride - 1) / stride)
            return lo..<Swift.max(lo, Swift.min(phaseWidth, width.input - offset <= 0 ? 0 : (width.input - offset + stride - 1) / stride))
        }
        // The padded rows that hold input rows, and where the first of them goes.
        let first = Swift.min(rows, Swift.max(0, height.pad)), last = Swift.max(first, Swift.min(rows, height.pad + height.input))
        var rowPhase = first % height.stride, phaseRow = first / height.stride
        // Both phases of stride 2 at once: eight input columns split into four even and four odd ones.
        let even = slots(0), odd = stride == 2 ? slots(1) : 0..<0
        let pairs = Swift.max(even.lowerBound, odd.lowerBound)..<Swift.max(even.lowerBound, odd.lowerBound,
                                                                            Swift.min(even.upperBound, odd.upperBound))
        let shared = pairs.lowerBound..<(pairs.lowerBound + pairs.count / 4 * 4)
        for r in first..<last {
            // Phase p of this row starts at target + p · phasePlane.
            let target = padded + (rowPhase * stride * phaseHeight + phaseRow) * phaseWidth
            let line = source + (r - height.pad) * width.input
            rowPhase += 1
            if rowPhase == height.stride { rowPhase = 0; phaseRow += 1 }
            if stride == 1 {
                (target + even.lowerBound).update(from: line + even.lowerBound - width.pad, count: even.count)
                continue
            }
            if stride == 2 {
                var j = shared.lowerBound
                while j < shared.upperBound {
                    let pair = UnsafeRawPointer(line + 2 * j - width.pad).loadUnaligned(as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(target + j).storeBytes(of: pair.evenHalf, as: SIMD4<Float>.self)
                    UnsafeMutableRawPointer(target + phasePlane + j).storeBytes(of: pair.oddHalf, as: SIMD4<Float>.self)
                    j += 4
                }
            }
            for phase in 0..<stride {
                let out = target + phase * phasePlane, from = line + phase - width.pad
                let valid = phase == 0 ? even : (stride == 2 ? odd : slots(phase))
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
