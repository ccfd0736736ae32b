extension Convolution {
    /// The two depthwise kernels.
    public enum DepthwiseRoute: Sendable {
        /// One channel plane at a time, the plane's pixels in the vector lanes (`planarDepthwise`).
        case planar
        /// Eight channels at a time, one in each vector lane (`interleavedDepthwise`).
        case interleaved
    }

    /// Most 8-channel vectors the interleaved kernel's buffers (padded input block, output block
    /// and weights) may hold: 256 KB, within L2; this is where the kernels cross over. Planar →
    /// interleaved, one thread, best CPU time of `kernel-bench dw` (2026-12-05, AMD EPYC shared by
    /// four sessions, load 4-6; four runs, spread about ±10%), batch 8: 5×5 on 7×7 (1152
    /// channels) 1.25 → 0.55 ms; 5×5 on 14×14 (672) 1.66-1.76 → 1.13-1.69 ms; 3×3 on 14×14
    /// (480) 0.62-0.65 → 0.50-0.58 ms; 5×5 on 28×28 (240) 1.84-1.93 → 1.74-2.16 ms; 3×3 on 56×56
    /// (144) 3.50-3.74 → 2.91-3.24 ms (6509 vectors); at batch 1, 3×3 on 112×112 (96, 13 221
    /// vectors, not taken) 0.72-0.88 → 0.80-0.92 ms. With a stride the planar kernel also splits
    /// each plane by phase: 5×5 s2 on 14×14 (672) 1.17 → 0.53 ms, on 56×56 (144) 2.51-2.80 →
    /// 1.83-1.93 ms; 3×3 s2 on 56×56 (72) 0.71-0.76 → 0.54-0.57 ms.
    static let interleavedVectorLimit = 8192

    /// Output pixels per plane above which a stride-1 depthwise convolution with a channel
    /// multiplier above 1 stays planar: the planar kernel pads each input plane once for its
    /// `multiplier` output channels, the interleaved one transposes it once per lane. Batch 8,
    /// multiplier 2, as above: 5×5 on 14×14 (144 → 288) 0.64 → 0.60 ms; 3×3 on 28×28 (72 → 144)
    /// 0.50 → 0.59-0.71 ms.
    static let interleavedMultiplierPixels = 256

    /// The kernel `forward` runs for a depthwise `layout`: the interleaved one when its buffers
    /// for one block of eight channels stay within `interleavedVectorLimit`, except for a
    /// stride-1 plane of more than `interleavedMultiplierPixels` outputs with a multiplier.
    public static func depthwiseRoute(_ layout: ConvolutionLayout) -> DepthwiseRoute {
        guard let vectors = InterleavedPlane(layout)?.vectors, vectors <= interleavedVectorLimit else { return .planar }
        let strided = layout.window.strides.contains { $0 > 1 }
        if layout.outputChannels > layout.inputChannels && !strided && layout.window.outputCount > interleavedMultiplierPixels {
            return .planar
        }
        return .interleaved
    }

    // Shapes: input [N, C, *in] (1 or 2 spatial axes); weights [C·multiplier, 1, *kernel];
    //         output [N, C·multiplier, *out]; output channel o reads input channel o / multiplier.
    /// Depthwise convolution (groups == input channels) by `route`, `depthwiseRoute(layout)` by
    /// default. Its naive twin is `Convolution.reference`.
    public static func depthwise(input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                                 output: UnsafeMutablePointer<Float>, layout: ConvolutionLayout,
                                 epilogue: Epilogue, route: DepthwiseRoute? = nil, parallelism: Parallelism) {
        if let plane = InterleavedPlane(layout), (route ?? depthwiseRoute(layout)) == .interleaved {
            interleavedDepthwise(input: input, weights: weights, output: output, layout: layout, plane: plane,
                                 epilogue: epilogue, parallelism: parallelism)
        } else {
            planarDepthwise(input: input, weights: weights, output: output, layout: layout, epilogue: epilogue,
                            parallelism: parallelism)
        }
    }

    /// The zero-padded input block of the interleaved kernel: `rows × columns` pixels of eight
    /// channels, input pixel (r, c) at `(r + top) · columns + c + left`, covering the input and
    /// every padding cell an output reads.
    struct InterleavedPlane {
        let rows: Int, columns: Int
        /// 8-channel vectors of the buffers: padded input, output block, packed weights.
        let vectors: Int

        /// Nil when a size overflows.
        init?(_ layout: ConvolutionLayout) {
            let volume = layout.window.volume
            func extent(_ axis: WindowAxis) -> Int? {
                // The last output's last tap, and the last input pixel, after the leading pad.
                let (span, o1) = (axis.output - 1).multipliedReportingOverflow(by: axis.stride)
                let (reach, o2) = (axis.kernel - 1).multipliedReportingOverflow(by: axis.dilation)
                let (read, o3) = span.addingReportingOverflow(reach)
                let (input, o4) = axis.pad.addingReportingOverflow(axis.input)
                return o1 || o2 || o3 || o4 || read == .max ? nil : Swift.max(read + 1, input)
            }
            guard let rows = extent(volume.height), let columns = extent(volume.width) else { return nil }
            let (padded, o1) = rows.multipliedReportingOverflow(by: columns)
            let (both, o2) = padded.addingReportingOverflow(layout.window.outputCount)
            let (vectors, o3) = both.addingReportingOverflow(layout.window.kernelCount)
            if o1 || o2 || o3 { return nil }
            self.rows = rows
            self.columns = columns
            self.vectors = vectors
        }
    }

    /// Eight vectors.
    private typealias Octet = (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>,
                               SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)

    /// The 8 × 8 matrix whose rows are `v` transposed: three rounds of splitting the 64 values,
    /// read row after row, into their even and odd ones (each round rotates the six bits of a
    /// value's index right by one; three swap its row and column).
    @inline(__always)
    private static func transposed(_ v: Octet) -> Octet {
        @inline(__always) func even(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
            SIMD8(lowHalf: a.evenHalf, highHalf: b.evenHalf)
        }
        @inline(__always) func odd(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
            SIMD8(lowHalf: a.oddHalf, highHalf: b.oddHalf)
        }
        @inline(__always) func split(_ v: Octet) -> Octet {
            (even(v.0, v.1), even(v.2, v.3), even(v.4, v.5), even(v.6, v.7),
             odd(v.0, v.1), odd(v.2, v.3), odd(v.4, v.5), odd(v.6, v.7))
        }
        return split(split(split(v)))
    }

    /// `sum + w · x`, in one fused multiply-add where the build has them (not in the portable
    /// build, where it would be a library call per lane): the tap loops were a multiply and an add
    /// per tap and vector (perf), their main cost.
    @inline(__always)
    private static func multiplyAdd(_ sum: SIMD8<Float>, _ w: SIMD8<Float>, _ x: SIMD8<Float>) -> SIMD8<Float> {
        #if ROUND_INSTRUCTION
        return sum.addingProduct(w, x)
        #else
        return sum + w * x
        #endif
    }

    // Shapes: as `depthwise`.
    /// Depthwise convolution with eight output channels in the vector lanes (ORT's NCHWc idea,
    /// inside one operator): per (image, block of eight channels), the block's input planes are
    /// transposed into a zero-padded buffer of 8-channel pixels (`InterleavedPlane`), then
    /// `out[oh][ow] = Σ_t w[t] · padded[oh·sh + kh·dh][ow·sw + kw·dw]` in whole vectors whatever the
    /// width, stride and dilation (no columns computed and dropped, no edge cases), eight outputs
    /// a step, then the block is transposed back into its output planes and finished by the
    /// epilogue while in L1. A last block of fewer channels repeats its last channel in the
    /// spare lanes and writes only its own. Parallel over (channel block, image).
    /// Its naive twin is `Convolution.reference`.
    private static func interleavedDepthwise(input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                                             output: UnsafeMutablePointer<Float>, layout: ConvolutionLayout,
                                             plane: InterleavedPlane, epilogue: Epilogue, parallelism: Parallelism) {
        let volume = layout.window.volume
        let height = volume.height, width = volume.width
        let taps = layout.window.kernelCount, inputCount = layout.window.inputCount, outputCount = layout.window.outputCount
        let multiplier = layout.outputChannels / layout.inputChannels
        let blocks = (layout.outputChannels + 7) / 8
        let columns = plane.columns, paddedCount = plane.rows * columns
        let tapOffsets = (0..<taps).map { tap in
            tap / width.kernel * height.dilation * columns + tap % width.kernel * width.dilation
        }
        let blockWork = outputCount * taps
        parallelism.forEachChunk(layout.batch * blocks, minimumChunk: Swift.max(1, (1 << 12) / Swift.max(blockWork, 1))) { chunk in
            withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: plane.vectors) { buffer in
                let padded = buffer.baseAddress!, sums = padded + paddedCount, packed = sums + outputCount
                // Cells no input lands in stay zero.
                padded.initialize(repeating: .zero, count: paddedCount)
                var packedBlock = -1
                for job in chunk {
                    // Block after block, image after image in each: a block's weights are packed once.
                    let block = job / layout.batch, image = job % layout.batch, first = block * 8
                    let valid = Swift.min(8, layout.outputChannels - first)
                    // Lane j's channel (the last valid one for spare lanes).
                    @inline(__always) func channel(_ lane: Int) -> Int { first + Swift.min(lane, valid - 1) }
                    if block != packedBlock {
                        for t in 0..<taps {
                            for lane in 0..<8 { packed[t][lane] = weights[channel(lane) * taps + t] }
                        }
                        packedBlock = block
                    }
                    let source = input + image * layout.inputChannels * inputCount
                    @inline(__always) func planeOf(_ lane: Int) -> UnsafePointer<Float> {
                        source + channel(lane) / multiplier * inputCount
                    }
                    interleave((planeOf(0), planeOf(1), planeOf(2), planeOf(3), planeOf(4), planeOf(5), planeOf(6), planeOf(7)),
                               count: inputCount, width: width.input,
                               into: padded + height.pad * columns + width.pad, columns: columns)
                    interleavedTapSums(UnsafePointer(padded), offsets: tapOffsets, weights: UnsafePointer(packed),
                                       into: sums, count: outputCount, width: width.output, step: width.stride,
                                       rowStep: height.stride * columns)
                    let imageOffset = image * layout.outputChannels * outputCount
                    deinterleave(UnsafePointer(sums), count: outputCount, into: output + imageOffset + first * outputCount,
                                 channels: valid)
                    epilogue.apply(output, offset: imageOffset, ld: outputCount, rows: first..<(first + valid),
                                   columns: 0..<outputCount)
                }
            }
        }
    }

    // Shapes: planes: eight [count] planes of `width`-pixel rows (the same one more than once is fine);
    //         target: rows of `columns` 8-channel pixels.
    /// Input pixel p of plane j goes to lane j of `target[p / width · columns + p % width]`: eight
    /// pixels at a time through a transpose, the last `count % 8` one lane at a time.
    @inline(__always)
    private static func interleave(_ planes: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                                              UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>),
                                   count: Int, width: Int, into target: UnsafeMutablePointer<SIMD8<Float>>, columns: Int) {
        var at = 0, column = 0
        @inline(__always) func store(_ pixel: SIMD8<Float>) {
            target[at] = pixel
            at += 1
            column += 1
            if column == width { column = 0; at += columns - width }
        }
        @inline(__always) func load(_ plane: UnsafePointer<Float>, _ p: Int) -> SIMD8<Float> {
            UnsafeRawPointer(plane + p).loadUnaligned(as: SIMD8<Float>.self)
        }
        var p = 0
        while p + 8 <= count {
            let v = transposed((load(planes.0, p), load(planes.1, p), load(planes.2, p), load(planes.3, p),
                                load(planes.4, p), load(planes.5, p), load(planes.6, p), load(planes.7, p)))
            store(v.0); store(v.1); store(v.2); store(v.3); store(v.4); store(v.5); store(v.6); store(v.7)
            p += 8
        }
        while p < count {
            store(SIMD8(planes.0[p], planes.1[p], planes.2[p], planes.3[p], planes.4[p], planes.5[p], planes.6[p], planes.7[p]))
            p += 1
        }
    }

    // Shapes: block [count] 8-channel pixels; target: `channels` planes of [count], one after another.
    /// Lane j of `block[p]` goes to `target[j · count + p]` for j < `channels`: eight pixels at a
    /// time through a transpose, the last `count % 8` one by one.
    @inline(__always)
    private static func deinterleave(_ block: UnsafePointer<SIMD8<Float>>, count: Int,
                                     into target: UnsafeMutablePointer<Float>, channels: Int) {
        @inline(__always) func store(_ values: SIMD8<Float>, _ at: Int) {
            UnsafeMutableRawPointer(target + at).storeBytes(of: values, as: SIMD8<Float>.self)
        }
        var p = 0
        while p + 8 <= count {
            let v = transposed((block[p], block[p + 1], block[p + 2], block[p + 3],
                                block[p + 4], block[p + 5], block[p + 6], block[p + 7]))
            if channels == 8 {
                store(v.0, p); store(v.1, p + count); store(v.2, p + 2 * count); store(v.3, p + 3 * count)
                store(v.4, p + 4 * count); store(v.5, p + 5 * count); store(v.6, p + 6 * count); store(v.7, p + 7 * count)
            } else {
                withUnsafeBytes(of: v) { lanes in
                    for lane in 0..<channels {
                        store(lanes.loadUnaligned(fromByteOffset: lane * MemoryLayout<SIMD8<Float>>.stride, as: SIMD8<Float>.self),
                              p + lane * count)
                    }
                }
            }
            p += 8
        }
        while p < count {
            let pixel = block[p]
            for lane in 0..<channels { target[lane * count + p] = pixel[lane] }
            p += 1
        }
    }

    // Shapes: padded: rows of 8-channel pixels, output (oh, ow)'s first tap at oh · rowStep + ow · step;
    //         weights [offsets.count] (8 channels each); block [count] = [count / width][width].
    /// `block[q] = Σ_t weights[t] · padded[first(q) + offsets[t]]`, eight outputs a step (each its
    /// own base, so a step may cross rows), the last step on the last eight outputs (fewer than
    /// eight outputs: one at a time). Eight sums in flight, not four: a sum's multiply-adds form a
    /// chain, and four chains kept the loop at one multiply-add per cycle, the latency bound,
    /// where two fit.
    @inline(__always)
    private static func interleavedTapSums(_ padded: UnsafePointer<SIMD8<Float>>, offsets: [Int], weights: UnsafePointer<SIMD8<Float>>,
                                into block: UnsafeMutablePointer<SIMD8<Float>>, count: Int, width: Int, step: Int,
                                rowStep: Int) {
        offsets.withUnsafeBufferPointer { offsets in
            var position = 0, column = 0
            @inline(__always) func next() -> UnsafePointer<SIMD8<Float>> {
                let base = padded + position
                position += step
                column += 1
                if column == width { column = 0; position += rowStep - width * step }
                return base
            }
            var q = 0
            while q < count && count >= 8 {
                if q + 8 > count {
                    // The last eight outputs, some again: their sums are the same.
                    q = count - 8
                    column = q % width
                    position = q / width * rowStep + column * step
                }
                let b0 = next(), b1 = next(), b2 = next(), b3 = next(), b4 = next(), b5 = next(), b6 = next(), b7 = next()
                var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
                var s4 = SIMD8<Float>(), s5 = SIMD8<Float>(), s6 = SIMD8<Float>(), s7 = SIMD8<Float>()
                for t in 0..<offsets.count {
                    let w = weights[t], offset = offsets[t]
                    s0 = multiplyAdd(s0, w, b0[offset])
                    s1 = multiplyAdd(s1, w, b1[offset])
                    s2 = multiplyAdd(s2, w, b2[offset])
                    s3 = multiplyAdd(s3, w, b3[offset])
                    s4 = multiplyAdd(s4, w, b4[offset])
                    s5 = multiplyAdd(s5, w, b5[offset])
                    s6 = multiplyAdd(s6, w, b6[offset])
                    s7 = multiplyAdd(s7, w, b7[offset])
                }
                block[q] = s0
                block[q + 1] = s1
                block[q + 2] = s2
                block[q + 3] = s3
                block[q + 4] = s4
                block[q + 5] = s5
                block[q + 6] = s6
                block[q + 7] = s7
                q += 8
            }
            while q < count {
                let b = next()
                var sum = SIMD8<Float>()
                for t in 0..<offsets.count { sum = multiplyAdd(sum, weights[t], b[offsets[t]]) }
                block[q] = sum
                q += 1
            }
        }
    }

    // Shapes: as `depthwise`.
    /// Depthwise convolution one channel plane at a time, the plane's pixels in the vector lanes.
    ///
    /// Each input plane is first copied into a zero-padded buffer split by phase of the stride into
    /// sub-planes of `phaseHeight × phaseWidth` (for stride 2: even rows and even columns, even rows
    /// and odd columns, odd rows and even columns, odd and odd). In that buffer, the input that tap t
    /// of output (oh, ow) reads sits at `oh · phaseWidth + ow + tapOffsets[t]` for every output: the
    /// whole plane is one flat loop of 8-wide vectors, `wide[q] = Σ_t w[t] · padded[q + tapOffsets[t]]`,
    /// with no edge cases. `wide` has `phaseWidth` columns per output row (the output width plus
    /// `(kernel − 1) · dilation / stride`: at stride 2 only a few past the output width are computed
    /// and dropped, not half the row). Rows of at least eight outputs are computed straight into
    /// the output in the same way (`tapSums`: the vectors of a row start at `oh · phaseWidth`,
    /// the last one flush with the row's end); narrower ones go through `wide` and are copied out.
    /// The plane is then finished by the epilogue while in L1.
    /// Parallel over planes (channels of all images). Its naive twin is `Convolution.reference`.
    private static func planarDepthwise(input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
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
        // Rows of at least eight outputs are computed straight into the output, eight outputs a
        // vector: (first wide position, first output) of each vector, the last of a row flush with
        // its end (overlapping the one before it, with the same sums). Narrower rows go through
        // `wide`, whose vectors follow each other.
        let direct = width.output >= 8
        let vectors: [(wide: Int, output: Int)] = !direct ? (0..<(wideCount / 8)).map { (8 * $0, 8 * $0) }
            : (0..<height.output).flatMap { oh in
                stride(from: 0, to: width.output, by: 8).map { ow in
                    let column = Swift.min(ow, width.output - 8)
                    return (oh * phaseWidth + column, oh * width.output + column)
                }
            }
        parallelism.forEachChunk(planes, minimumChunk: Swift.max(1, (1 << 15) / Swift.max(planeWork, 1))) { chunk in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: paddedCount + (direct ? 0 : wideCount)) { buffer in
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
                    let imageOffset = image * layout.outputChannels * outputCount
                    let target = output + imageOffset + channel * outputCount
                    tapSums(UnsafePointer(padded), offsets: tapOffsets, weights: weights + channel * taps,
                            vectors: vectors, into: direct ? target : wide)
                    if !direct {
                        for oh in 0..<height.output {
                            (target + oh * width.output).update(from: wide + oh * phaseWidth, count: width.output)
                        }
                    }
                    // The plane is in L1 still.
                    epilogue.apply(output, offset: imageOffset, ld: outputCount, rows: channel..<(channel + 1),
                                   columns: 0..<outputCount)
                }
            }
        }
    }

    // Shapes: padded[max wide position + 8 + max(offsets)]; weights[offsets.count];
    //         vectors: (wide position, output position) pairs; target[max output position + 8].
    /// `target[o + i] = Σ_t weights[t] · padded[q + i + offsets[t]]` for each vector `(q, o)` and
    /// i < 8: eight vectors a step (eight multiply-add chains in flight, as in
    /// `interleavedTapSums`), the last step on the last eight vectors (fewer than eight: one at a
    /// time). The target is the output plane itself (rows of at least eight outputs: copying them
    /// out of `wide` row by row took about 30% of a 112×112 plane's time, perf) or `wide`.
    @inline(__always)
    private static func tapSums(_ padded: UnsafePointer<Float>, offsets: [Int], weights: UnsafePointer<Float>,
                                vectors: [(wide: Int, output: Int)], into target: UnsafeMutablePointer<Float>) {
        offsets.withUnsafeBufferPointer { offsets in
            vectors.withUnsafeBufferPointer { vectors in
                let count = vectors.count
                @inline(__always) func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
                    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
                }
                @inline(__always) func store(_ sum: SIMD8<Float>, _ v: Int) {
                    UnsafeMutableRawPointer(target + vectors[v].output).storeBytes(of: sum, as: SIMD8<Float>.self)
                }
                var v = 0
                while v < count && count >= 8 {
                    // The last eight vectors, some again: their sums are the same.
                    v = Swift.min(v, count - 8)
                    let b0 = padded + vectors[v].wide, b1 = padded + vectors[v + 1].wide
                    let b2 = padded + vectors[v + 2].wide, b3 = padded + vectors[v + 3].wide
                    let b4 = padded + vectors[v + 4].wide, b5 = padded + vectors[v + 5].wide
                    let b6 = padded + vectors[v + 6].wide, b7 = padded + vectors[v + 7].wide
                    var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
                    var s4 = SIMD8<Float>(), s5 = SIMD8<Float>(), s6 = SIMD8<Float>(), s7 = SIMD8<Float>()
                    for t in 0..<offsets.count {
                        let w = SIMD8<Float>(repeating: weights[t]), offset = offsets[t]
                        s0 = multiplyAdd(s0, w, load(b0 + offset))
                        s1 = multiplyAdd(s1, w, load(b1 + offset))
                        s2 = multiplyAdd(s2, w, load(b2 + offset))
                        s3 = multiplyAdd(s3, w, load(b3 + offset))
                        s4 = multiplyAdd(s4, w, load(b4 + offset))
                        s5 = multiplyAdd(s5, w, load(b5 + offset))
                        s6 = multiplyAdd(s6, w, load(b6 + offset))
                        s7 = multiplyAdd(s7, w, load(b7 + offset))
                    }
                    store(s0, v); store(s1, v + 1); store(s2, v + 2); store(s3, v + 3)
                    store(s4, v + 4); store(s5, v + 5); store(s6, v + 6); store(s7, v + 7)
                    v += 8
                }
                while v < count {
                    let b = padded + vectors[v].wide
                    var sum = SIMD8<Float>()
                    for t in 0..<offsets.count { sum = multiplyAdd(sum, SIMD8<Float>(repeating: weights[t]), load(b + offsets[t])) }
                    store(sum, v)
                    v += 1
                }
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
