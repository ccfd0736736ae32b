public import Tensors
#if canImport(Glibc)
import Glibc
#endif

/// Max, average and Lp pooling over 1 to 3 spatial axes, for every numeric element type
/// (Float runs a specialised copy).
public enum Pooling {
    /// What a window reduces its values to.
    public enum Kind: Sendable, Hashable {
        /// The largest value.
        case max
        /// The mean; with `countIncludePad` padding positions count as zeros, otherwise they are skipped.
        case average(countIncludePad: Bool)
        /// `(Σ |x|^p)^(1/p)`; padding adds nothing.
        case lp(p: Int)
    }

    // Shapes: input [planes, *window.inputSize]; output and indices [planes, *window.outputSize];
    //         padsEnd [window.rank].
    /// Pools every plane. `padsEnd` (padding after the input) bounds the window for
    /// `average(countIncludePad: true)`. For `.max`, `indices` (if given) receives the flattened
    /// input index of each maximum, planes before it included: row-major within the plane, or
    /// column-major (first spatial axis fastest) when `columnMajorIndices`.
    public static func forward<T: NumericElement>(_ kind: Kind, input: UnsafePointer<T>, output: UnsafeMutablePointer<T>,
                                                  indices: UnsafeMutablePointer<Int64>? = nil, columnMajorIndices: Bool = false,
                                                  planes: Int, window: SpatialWindow, padsEnd: [Int], parallelism: Parallelism) {
        let isMaxOrAverage = kind == .max || kind == .average(countIncludePad: false) || kind == .average(countIncludePad: true)
        if T.self == Float.self, indices == nil, isMaxOrAverage, window.outputCount == 1, window.kernel == window.inputSize,
           window.padsBegin.allSatisfy({ $0 == 0 }), padsEnd.allSatisfy({ $0 == 0 }) {
            poolPlanes(kind == .max, input: UnsafeRawPointer(input).assumingMemoryBound(to: Float.self),
                       output: UnsafeMutableRawPointer(output).assumingMemoryBound(to: Float.self),
                       planes: planes, count: window.inputCount, parallelism: parallelism)
        } else if T.self == Float.self, indices == nil, kind == .max, isHalving(window, padsEnd: padsEnd) {
            maxPoolHalving(input: UnsafeRawPointer(input).assumingMemoryBound(to: Float.self),
                           output: UnsafeMutableRawPointer(output).assumingMemoryBound(to: Float.self),
                           planes: planes, window: window, parallelism: parallelism)
        } else if T.self == Float.self, indices == nil, isMaxOrAverage, isSameSize(window, padsEnd: padsEnd) {
            poolSameSize(kind, input: UnsafeRawPointer(input).assumingMemoryBound(to: Float.self),
                         output: UnsafeMutableRawPointer(output).assumingMemoryBound(to: Float.self),
                         planes: planes, window: window, padsEnd: padsEnd, parallelism: parallelism)
        } else if T.self == Float.self, indices == nil, isMaxOrAverage, isSeparable(window) {
            poolSeparable(kind, input: UnsafeRawPointer(input).assumingMemoryBound(to: Float.self),
                          output: UnsafeMutableRawPointer(output).assumingMemoryBound(to: Float.self),
                          planes: planes, window: window, padsEnd: padsEnd, parallelism: parallelism)
        } else if T.self == Float.self, indices == nil, window.rank <= 2, isMaxOrAverage {
            poolRows(kind, input: UnsafeRawPointer(input).assumingMemoryBound(to: Float.self),
                     output: UnsafeMutableRawPointer(output).assumingMemoryBound(to: Float.self),
                     planes: planes, window: window, padsEnd: padsEnd, parallelism: parallelism)
        } else if T.self == Float.self {
            pool(kind, input: UnsafeRawPointer(input).assumingMemoryBound(to: Float.self),
                 output: UnsafeMutableRawPointer(output).assumingMemoryBound(to: Float.self), indices: indices,
                 columnMajorIndices: columnMajorIndices, planes: planes, window: window, padsEnd: padsEnd, parallelism: parallelism)
        } else {
            pool(kind, input: input, output: output, indices: indices, columnMajorIndices: columnMajorIndices,
                 planes: planes, window: window, padsEnd: padsEnd, parallelism: parallelism)
        }
    }

    private static func pool<T: NumericElement>(_ kind: Kind, input: UnsafePointer<T>, output: UnsafeMutablePointer<T>,
                                                indices: UnsafeMutablePointer<Int64>?, columnMajorIndices: Bool,
                                                planes: Int, window: SpatialWindow, padsEnd: [Int], parallelism: Parallelism) {
        let volume = window.volume
        let depth = volume.depth, height = volume.height, width = volume.width
        let ends = [Int](repeating: 0, count: 3 - window.rank) + padsEnd
        let inputCount = window.inputCount, outputCount = window.outputCount
        let work = Swift.max(1, outputCount * window.kernelCount)
        parallelism.forEachChunk(planes, minimumChunk: Swift.max(1, (1 << 15) / work)) { chunk in
            for plane in chunk {
                let source = input + plane * inputCount
                var at = plane * outputCount
                for od in 0..<depth.output {
                    let dTaps = depth.validTaps(od), dStart = od * depth.stride - depth.pad
                    for oh in 0..<height.output {
                        let hTaps = height.validTaps(oh), hStart = oh * height.stride - height.pad
                        for ow in 0..<width.output {
                            let wTaps = width.validTaps(ow), wStart = ow * width.stride - width.pad
                            switch kind {
                            case .max:
                                var best = T(converting: -Double.greatestFiniteMagnitude)
                                var bestAt = (-1, 0, 0)
                                for kd in dTaps {
                                    let id = dStart + kd * depth.dilation
                                    for kh in hTaps {
                                        let ih = hStart + kh * height.dilation
                                        let row = source + (id * height.input + ih) * width.input + wStart
                                        for kw in wTaps {
                                            let value = row[kw * width.dilation]
                                            if bestAt.0 < 0 || value > best {
                                                best = value
                                                bestAt = (id, ih, wStart + kw * width.dilation)
                                            }
                                        }
                                    }
                                }
                                output[at] = best
                                if let indices {
                                    let (id, ih, iw) = bestAt.0 < 0 ? (0, 0, 0) : bestAt
                                    let index = columnMajorIndices
                                        ? id + (ih + iw * height.input) * depth.input
                                        : (id * height.input + ih) * width.input + iw
                                    indices[at] = Int64(plane * inputCount + index)
                                }
                            case .average(let countIncludePad):
                                var sum = 0.0
                                for kd in dTaps {
                                    let id = dStart + kd * depth.dilation
                                    for kh in hTaps {
                                        let ih = hStart + kh * height.dilation
                                        let row = source + (id * height.input + ih) * width.input + wStart
                                        for kw in wTaps { sum += row[kw * width.dilation].doubleValue }
                                    }
                                }
                                let count = countIncludePad
                                    ? depth.paddedTaps(od, padEnd: ends[0]) * height.paddedTaps(oh, padEnd: ends[1])
                                        * width.paddedTaps(ow, padEnd: ends[2])
                                    : dTaps.count * hTaps.count * wTaps.count
                                output[at] = T(converting: sum / Double(count))
                            case .lp(let p):
                                var sum = 0.0
                                for kd in dTaps {
                                    let id = dStart + kd * depth.dilation
                                    for kh in hTaps {
                                        let ih = hStart + kh * height.dilation
                                        let row = source + (id * height.input + ih) * width.input + wStart
                                        for kw in wTaps { sum += power(Swift.abs(row[kw * width.dilation].doubleValue), p) }
                                    }
                                }
                                output[at] = T(converting: power(sum, p, inverse: true))
                            }
                            at += 1
                        }
                    }
                }
            }
        }
    }

    /// Float max and average pooling over 1 or 2 axes, an output row at a time: one pass over the
    /// row per kernel tap, each a plain loop over the output width (as the depthwise kernel).
    private static func poolRows(_ kind: Kind, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                                 planes: Int, window: SpatialWindow, padsEnd: [Int], parallelism: Parallelism) {
        let volume = window.volume
        let height = volume.height, width = volume.width
        let ends = [Int](repeating: 0, count: 2 - window.rank) + padsEnd
        let isMax = kind == .max, includePad = kind == .average(countIncludePad: true)
        // Taps each output column counts, for averages.
        let columnTaps = (0..<width.output).map { ow in
            Float(includePad ? width.paddedTaps(ow, padEnd: ends[1]) : width.validTaps(ow).count)
        }
        // Output columns each kernel column reaches inside the input: the same for every row.
        let reach = (0..<width.kernel).map { width.validOutputs(offset: $0 * width.dilation - width.pad) }
        let work = Swift.max(1, window.outputCount * window.kernelCount)
        parallelism.forEachChunk(planes, minimumChunk: Swift.max(1, (1 << 15) / work)) { chunk in
            for plane in chunk {
                let source = input + plane * window.inputCount
                for oh in 0..<height.output {
                    let row = output + plane * window.outputCount + oh * width.output
                    row.update(repeating: isMax ? -.infinity : 0, count: width.output)
                    let rowTaps = height.validTaps(oh)
                    for kh in rowTaps {
                        let line = source + (oh * height.stride - height.pad + kh * height.dilation) * width.input
                        for kw in 0..<width.kernel {
                            let offset = kw * width.dilation - width.pad
                            let from = line + offset, stride = width.stride
                            let valid = reach[kw]
                            var o = valid.lowerBound
                            if stride == 2 {
                                // Eight, then four outputs at a time from the even half of sixteen or eight
                                // inputs (reads stay in the run).
                                while o + 9 <= valid.upperBound {
                                    let values = UnsafeRawPointer(from + 2 * o).loadUnaligned(as: SIMD16<Float>.self).evenHalf
                                    let target = UnsafeMutableRawPointer(row + o)
                                    let current = target.loadUnaligned(as: SIMD8<Float>.self)
                                    target.storeBytes(of: isMax ? current.replacing(with: values, where: values .> current)
                                                                : current + values, as: SIMD8<Float>.self)
                                    o += 8
                                }
                                while o + 5 <= valid.upperBound {
                                    let values = UnsafeRawPointer(from + 2 * o).loadUnaligned(as: SIMD8<Float>.self).evenHalf
                                    let target = UnsafeMutableRawPointer(row + o)
                                    let current = target.loadUnaligned(as: SIMD4<Float>.self)
                                    target.storeBytes(of: isMax ? current.replacing(with: values, where: values .> current)
                                                                : current + values, as: SIMD4<Float>.self)
                                    o += 4
                                }
                            }
                            // `>` rather than Swift.max: one compare and blend, and NaN inputs are skipped as ONNX Runtime does.
                            switch (isMax, stride) {
                            case (true, 1): for o in o..<valid.upperBound { row[o] = from[o] > row[o] ? from[o] : row[o] }
                            case (true, _): for o in o..<valid.upperBound { row[o] = from[o * stride] > row[o] ? from[o * stride] : row[o] }
                            case (false, 1): for o in o..<valid.upperBound { row[o] += from[o] }
                            case (false, _): for o in o..<valid.upperBound { row[o] += from[o * stride] }
                            }
                        }
                    }
                    if !isMax {
                        let rowCount = Float(includePad ? height.paddedTaps(oh, padEnd: ends[0]) : rowTaps.count)
                        for o in 0..<width.output { row[o] /= rowCount * columnTaps[o] }
                    }
                }
            }
        }
    }

    /// True for a 2-D window without dilation over rows of at most 2^16 values and at most 2^16
    /// output rows (`poolSeparable`'s tables stay small): the 3×3 pooling of inception blocks and
    /// of ResNet's stem, and small CNNs' 3×3 stride 3.
    static func isSeparable(_ window: SpatialWindow) -> Bool {
        window.rank == 2 && window.dilations == [1, 1] && (1...(1 << 10)).contains(window.strides[1])
            && (1...(1 << 16)).contains(window.inputSize[1]) && (1...(1 << 16)).contains(window.outputSize[1])
            && window.outputSize[0] <= (1 << 16)
            && window.kernel[1] <= (1 << 10) && window.padsBegin[1] <= (1 << 10)
    }

    // Shapes: input [planes, H, W]; output [planes, H', W'].
    /// Float max or average pooling (`isSeparable`) as two one-axis passes, since both reductions
    /// are separable: for each output row, its kernel rows of input are reduced into one row that
    /// has the left and right padding around it (−∞ or 0 there), then each output value reduces its
    /// kernel columns of that row, eight outputs at a time with no edge cases (one at a time for a
    /// horizontal stride above 2). W·kh + W'·kw taps per output row instead of W'·kh·kw, in SIMD
    /// steps (the last one overlapping the one before, which is harmless because every step stores
    /// a value computed afresh). NaN inputs are skipped for max, as in `poolRows`; an average
    /// divides by the same counts.
    private static func poolSeparable(_ kind: Kind, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                                      planes: Int, window: SpatialWindow, padsEnd: [Int], parallelism: Parallelism) {
        if kind == .max {
            poolSeparable(SeparableMax.self, input: input, output: output, planes: planes, window: window, padsEnd: padsEnd,
                          parallelism: parallelism)
        } else {
            poolSeparable(SeparableSum.self, input: input, output: output, planes: planes, window: window, padsEnd: padsEnd,
                          parallelism: parallelism, includePad: kind == .average(countIncludePad: true))
        }
    }

    private static func poolSeparable<R: SeparableReduction>(_: R.Type, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                                                              planes: Int, window: SpatialWindow, padsEnd: [Int],
                                                              parallelism: Parallelism, includePad: Bool = false) {
        let volume = window.volume
        let height = volume.height, width = volume.width
        let inputWidth = width.input, outputWidth = width.output, stride = width.stride, kernelWidth = width.kernel
        // The padded row: every column a window reads, and 16 more for the last step's overread.
        let rowFloats = Swift.max(width.pad + inputWidth, (outputWidth - 1) * stride + kernelWidth) + 16
        // Each output row's kernel rows inside the input, and for averages the taps each output
        // row and column counts (a value divides by their product, as in `poolRows`).
        let rowTaps = (0..<height.output).map { height.validTaps($0) }
        let rowCounts: [Float] = R.isMax ? [] : (0..<height.output).map { oh in
            Float(includePad ? height.paddedTaps(oh, padEnd: padsEnd[0]) : rowTaps[oh].count)
        }
        let columnCounts: [Float] = R.isMax ? [] : (0..<outputWidth).map { ow in
            Float(includePad ? width.paddedTaps(ow, padEnd: padsEnd[1]) : width.validTaps(ow).count)
        }
        let work = Swift.max(1, window.outputCount * (height.kernel + kernelWidth))
        rowTaps.withUnsafeBufferPointer { rowTaps in
            columnCounts.withUnsafeBufferPointer { columnCounts in
                parallelism.forEachChunk(planes, minimumChunk: Swift.max(1, (1 << 15) / work)) { chunk in
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: rowFloats) { buffer in
                        guard let padded = buffer.baseAddress else { return }
                        // The padding columns keep this value; pass 1 writes only the input's columns.
                        padded.update(repeating: R.empty, count: rowFloats)
                        let line = padded + width.pad
                        for plane in chunk {
                            let source = input + plane * window.inputCount
                            for oh in 0..<height.output {
                                // Pass 1: the window's rows of input, reduced column by column.
                                let taps = rowTaps[oh]
                                let top = source + (oh * height.stride - height.pad + taps.lowerBound) * inputWidth
                                if inputWidth >= 8 {
                                    var c = 0
                                    while true {
                                        let start = Swift.min(c, inputWidth - 8)
                                        var value = SIMD8<Float>(repeating: R.empty)
                                        var from = top + start
                                        for _ in taps {
                                            value = R.combine(value, UnsafeRawPointer(from).loadUnaligned(as: SIMD8<Float>.self))
                                            from += inputWidth
                                        }
                                        UnsafeMutableRawPointer(line + start).storeBytes(of: value, as: SIMD8<Float>.self)
                                        if start == inputWidth - 8 { break }
                                        c += 8
                                    }
                                } else {
                                    for c in 0..<inputWidth {
                                        var value = R.empty
                                        for k in 0..<taps.count { value = R.combine(value, top[k * inputWidth + c]) }
                                        line[c] = value
                                    }
                                }
                                // Pass 2: each output value, its window's columns of that row.
                                let row = output + plane * window.outputCount + oh * outputWidth
                                if outputWidth >= 8 && stride <= 2 {
                                    var o = 0
                                    while true {
                                        let start = Swift.min(o, outputWidth - 8)
                                        var value = SIMD8<Float>(repeating: R.empty)
                                        let from = UnsafeRawPointer(padded + start * stride)
                                        if stride == 1 {
                                            for kw in 0..<kernelWidth {
                                                value = R.combine(value, (from + 4 * kw).loadUnaligned(as: SIMD8<Float>.self))
                                            }
                                        } else {
                                            for kw in 0..<kernelWidth {
                                                value = R.combine(value, (from + 4 * kw).loadUnaligned(as: SIMD16<Float>.self).evenHalf)
                                            }
                                        }
                                        UnsafeMutableRawPointer(row + start).storeBytes(of: value, as: SIMD8<Float>.self)
                                        if start == outputWidth - 8 { break }
                                        o += 8
                                    }
                                } else {
                                    for ow in 0..<outputWidth {
                                        var value = R.empty
                                        for kw in 0..<kernelWidth { value = R.combine(value, padded[ow * stride + kw]) }
                                        row[ow] = value
                                    }
                                }
                                if !R.isMax {
                                    let rowCount = rowCounts[oh]
                                    for ow in 0..<outputWidth { row[ow] /= rowCount * columnCounts[ow] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// True for a 2-D window with stride 1 and no dilation whose output has the input's size
    /// (padding k − 1 on each axis in all, less than k before), over planes of at most 2^16
    /// values: the 3×3 pooling of inception blocks' fourth branch, the 5×5 of SPP blocks.
    package static func isSameSize(_ window: SpatialWindow, padsEnd: [Int]) -> Bool {
        window.rank == 2 && window.strides == [1, 1] && window.dilations == [1, 1]
            && window.outputSize == window.inputSize && window.inputCount <= (1 << 16)
            && padsEnd.allSatisfy { $0 >= 0 } && window.padsBegin.allSatisfy { $0 >= 0 }
            && zip(window.padsBegin, window.kernel).allSatisfy { $0 < $1 }
    }

    // Shapes: input and output [planes, H, W].
    /// Float max or average pooling (`isSameSize`) as two one-axis passes over whole planes. With
    /// output and input the same size, an output value sits where its window's centre tap does:
    /// the vertical pass reduces each run of rows whose taps all lie inside the input as one flat
    /// loop over the run (edge rows one at a time, with their taps), and the horizontal pass one
    /// flat loop over the plane, whose values in the first and last columns, which took taps from
    /// the rows beside, are then redone with their own taps. No per-row work in the loops, which
    /// matters for the small planes of late inception blocks (7×7 and 14×14), where `poolSeparable`
    /// spends its time in row bookkeeping. Taps combine in the order `poolSeparable` uses; NaN
    /// inputs are skipped for max, and an average divides by the same counts.
    private static func poolSameSize(_ kind: Kind, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                                     planes: Int, window: SpatialWindow, padsEnd: [Int], parallelism: Parallelism) {
        if kind == .max {
            poolSameSize(SeparableMax.self, input: input, output: output, planes: planes, window: window, padsEnd: padsEnd,
                         parallelism: parallelism)
        } else {
            poolSameSize(SeparableSum.self, input: input, output: output, planes: planes, window: window, padsEnd: padsEnd,
                         parallelism: parallelism, includePad: kind == .average(countIncludePad: true))
        }
    }

    private static func poolSameSize<R: SeparableReduction>(_: R.Type, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                                                             planes: Int, window: SpatialWindow, padsEnd: [Int],
                                                             parallelism: Parallelism, includePad: Bool = false) {
        let volume = window.volume
        let height = volume.height, width = volume.width
        let rows = height.input, columns = width.input, count = window.inputCount
        let left = width.pad, kernelWidth = width.kernel
        // Taps each row and column reaches inside the input.
        let rowTaps = (0..<rows).map { height.validTaps($0) }
        let columnTaps = (0..<columns).map { width.validTaps($0) }
        // Columns whose horizontal taps do not all lie inside the input, redone after the flat
        // pass: the column, its first tap's offset in the row, and its taps.
        let edges = (0..<columns).filter { columnTaps[$0].count < kernelWidth }.map { c in
            (column: c, first: c - left + columnTaps[c].lowerBound, taps: columnTaps[c].count)
        }
        let rowCounts: [Float] = R.isMax ? [] : (0..<rows).map { r in
            Float(includePad ? height.paddedTaps(r, padEnd: padsEnd[0]) : rowTaps[r].count)
        }
        let columnCounts: [Float] = R.isMax ? [] : (0..<columns).map { c in
            Float(includePad ? width.paddedTaps(c, padEnd: padsEnd[1]) : columnTaps[c].count)
        }
        // The vertical pass's plane, with room for the horizontal taps before and after it.
        let before = left, after = kernelWidth - 1 - left
        let work = Swift.max(1, count * (height.kernel + kernelWidth))
        parallelism.forEachChunk(planes, minimumChunk: Swift.max(1, (1 << 15) / work)) { chunk in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: before + count + after) { buffer in
                guard let base = buffer.baseAddress else { return }
                base.update(repeating: R.empty, count: before + count + after)
                let reduced = base + before
                for plane in chunk {
                    let source = input + plane * count, target = output + plane * count
                    // Vertical: runs of rows with every tap inside, or one edge row.
                    var r = 0
                    while r < rows {
                        let taps = rowTaps[r]
                        var end = r + 1
                        if taps.count == height.kernel {
                            while end < rows && rowTaps[end].count == height.kernel { end += 1 }
                        }
                        reduceFlat(R.self, into: reduced + r * columns, from: source + (r - height.pad + taps.lowerBound) * columns,
                                   taps: taps.count, step: columns, count: (end - r) * columns)
                        r = end
                    }
                    // Horizontal, then the edge columns with their own taps.
                    reduceFlat(R.self, into: target, from: reduced - left, taps: kernelWidth, step: 1, count: count)
                    for r in 0..<rows {
                        let line = reduced + r * columns, row = target + r * columns
                        for edge in edges {
                            var value = R.empty
                            for t in 0..<edge.taps { value = R.combine(value, line[edge.first + t]) }
                            row[edge.column] = value
                        }
                    }
                    if !R.isMax {
                        for r in 0..<rows {
                            let row = target + r * columns, rowCount = rowCounts[r]
                            for c in 0..<columns { row[c] /= rowCount * columnCounts[c] }
                        }
                    }
                }
            }
        }
    }

    /// `into[i]` = the reduction of `from[i + t·step]` over `t` in `0..<taps`, for `i` in
    /// `0..<count` (`into` and `from` do not overlap): 32 at a time in four independent chains
    /// (one chain waits on each combine's latency), then 8 (the last 8 overlapping the values
    /// before), and one at a time when fewer than 8 in all.
    @inline(__always)
    private static func reduceFlat<R: SeparableReduction>(_: R.Type, into target: UnsafeMutablePointer<Float>, from first: UnsafePointer<Float>,
                                                          taps: Int, step: Int, count: Int) {
        var i = 0
        while i + 32 <= count {
            var a = SIMD8<Float>(repeating: R.empty), b = a, c = a, d = a
            var from = UnsafeRawPointer(first + i)
            for _ in 0..<taps {
                a = R.combine(a, from.loadUnaligned(as: SIMD8<Float>.self))
                b = R.combine(b, (from + 32).loadUnaligned(as: SIMD8<Float>.self))
                c = R.combine(c, (from + 64).loadUnaligned(as: SIMD8<Float>.self))
                d = R.combine(d, (from + 96).loadUnaligned(as: SIMD8<Float>.self))
                from += 4 * step
            }
            let to = UnsafeMutableRawPointer(target + i)
            to.storeBytes(of: a, as: SIMD8<Float>.self)
            (to + 32).storeBytes(of: b, as: SIMD8<Float>.self)
            (to + 64).storeBytes(of: c, as: SIMD8<Float>.self)
            (to + 96).storeBytes(of: d, as: SIMD8<Float>.self)
            i += 32
        }
        while i < count && count >= 8 {
            // The last step overlaps the one before: it stores values computed afresh from
            // `first`, which `target` never overlaps.
            let start = Swift.min(i, count - 8)
            var value = SIMD8<Float>(repeating: R.empty)
            var from = UnsafeRawPointer(first + start)
            for _ in 0..<taps {
                value = R.combine(value, from.loadUnaligned(as: SIMD8<Float>.self))
                from += 4 * step
            }
            UnsafeMutableRawPointer(target + start).storeBytes(of: value, as: SIMD8<Float>.self)
            i = start + 8
        }
        while i < count {
            var value = R.empty
            for t in 0..<taps { value = R.combine(value, first[i + t * step]) }
            target[i] = value
            i += 1
        }
    }

    /// True for a 2×2 window with stride 2, no dilation and no padding whose windows all lie inside
    /// the input (the max pooling of small CNNs).
    static func isHalving(_ window: SpatialWindow, padsEnd: [Int]) -> Bool {
        window.rank == 2 && window.kernel == [2, 2] && window.strides == [2, 2] && window.dilations == [1, 1]
            && window.padsBegin == [0, 0] && padsEnd.allSatisfy { $0 == 0 }
            && 2 * window.outputSize[0] <= window.inputSize[0] && 2 * window.outputSize[1] <= window.inputSize[1]
    }

    // Shapes: input [planes, H, W]; output [planes, H', W'] with 2H' ≤ H and 2W' ≤ W.
    /// Max pooling over 2×2 windows with stride 2 (`isHalving`): each output row in one pass over
    /// its two input rows, eight outputs per step from sixteen columns of each (the last step
    /// overlapping the one before). NaN inputs are skipped, as in `poolRows`.
    private static func maxPoolHalving(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, planes: Int,
                                       window: SpatialWindow, parallelism: Parallelism) {
        let inputHeight = window.inputSize[0], inputWidth = window.inputSize[1]
        let outputHeight = window.outputSize[0], outputWidth = window.outputSize[1]
        let rows = planes * outputHeight
        parallelism.forEachChunk(rows, minimumChunk: Swift.max(1, (1 << 14) / Swift.max(4 * outputWidth, 1))) { chunk in
            for job in chunk {
                let plane = job / outputHeight, oh = job - plane * outputHeight
                let top = input + (plane * inputHeight + 2 * oh) * inputWidth, bottom = top + inputWidth
                let row = output + job * outputWidth
                if outputWidth >= 8 {
                    var o = 0
                    while true {
                        let start = Swift.min(o, outputWidth - 8)
                        let upper = UnsafeRawPointer(top + 2 * start).loadUnaligned(as: SIMD16<Float>.self)
                        let lower = UnsafeRawPointer(bottom + 2 * start).loadUnaligned(as: SIMD16<Float>.self)
                        var best = SIMD8<Float>(repeating: -.infinity)
                        best = best.replacing(with: upper.evenHalf, where: upper.evenHalf .> best)
                        best = best.replacing(with: upper.oddHalf, where: upper.oddHalf .> best)
                        best = best.replacing(with: lower.evenHalf, where: lower.evenHalf .> best)
                        best = best.replacing(with: lower.oddHalf, where: lower.oddHalf .> best)
                        UnsafeMutableRawPointer(row + start).storeBytes(of: best, as: SIMD8<Float>.self)
                        if start == outputWidth - 8 { break }
                        o += 8
                    }
                } else {
                    for ow in 0..<outputWidth {
                        var best = -Float.infinity
                        best = top[2 * ow] > best ? top[2 * ow] : best
                        best = top[2 * ow + 1] > best ? top[2 * ow + 1] : best
                        best = bottom[2 * ow] > best ? bottom[2 * ow] : best
                        best = bottom[2 * ow + 1] > best ? bottom[2 * ow + 1] : best
                        row[ow] = best
                    }
                }
            }
        }
    }

    /// Float global max or average pooling: each plane reduced to one value, eight lanes at a time
    /// in four independent sums (or maxima) while 32 values remain, so that the loop is not one
    /// chain of dependent additions (EfficientNet-B0's 17 squeeze-excite poolings, bench --profile
    /// one thread: 0.27 ms with one chain against ONNX Runtime's 0.19).
    private static func poolPlanes(_ isMax: Bool, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                                   planes: Int, count: Int, parallelism: Parallelism) {
        @inline(__always) func combine(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
            isMax ? a.replacing(with: b, where: b .> a) : a + b
        }
        parallelism.forEachChunk(planes, minimumChunk: Swift.max(1, (1 << 15) / Swift.max(count, 1))) { chunk in
            for plane in chunk {
                let source = input + plane * count
                let start = SIMD8<Float>(repeating: isMax ? -.infinity : 0)
                var lanes = (start, start, start, start)
                var i = 0
                while i + 32 <= count {
                    let values = UnsafeRawPointer(source + i)
                    lanes.0 = combine(lanes.0, values.loadUnaligned(as: SIMD8<Float>.self))
                    lanes.1 = combine(lanes.1, values.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self))
                    lanes.2 = combine(lanes.2, values.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self))
                    lanes.3 = combine(lanes.3, values.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self))
                    i += 32
                }
                lanes.0 = combine(combine(lanes.0, lanes.1), combine(lanes.2, lanes.3))
                while i + 8 <= count {
                    lanes.0 = combine(lanes.0, UnsafeRawPointer(source + i).loadUnaligned(as: SIMD8<Float>.self))
                    i += 8
                }
                var result = isMax ? lanes.0.max() : lanes.0.sum()
                for i in i..<count { result = isMax ? (source[i] > result ? source[i] : result) : result + source[i] }
                output[plane] = isMax ? result : result / Float(count)
            }
        }
    }

    /// `x^p`, or `x^(1/p)` when `inverse`, with the usual small p done by multiplication.
    static func power(_ x: Double, _ p: Int, inverse: Bool = false) -> Double {
        switch (p, inverse) {
        case (1, _): x
        case (2, false): x * x
        case (2, true): x.squareRoot()
        default: pow(x, inverse ? 1 / Double(p) : Double(p))
        }
    }

    // Shapes: as `forward`.
    /// Naive twin of `forward`: every window from the definition, tap by tap.
    public static func reference<T: NumericElement>(_ kind: Kind, input: UnsafePointer<T>, output: UnsafeMutablePointer<T>,
                                                    indices: UnsafeMutablePointer<Int64>? = nil, columnMajorIndices: Bool = false,
                                                    planes: Int, window: SpatialWindow, padsEnd: [Int]) {
        let rank = window.rank
        for plane in 0..<planes {
            for pixel in 0..<window.outputCount {
                let at = plane * window.outputCount + pixel
                var values: [(value: T, index: Int)] = []
                var padded = 0
                for tap in 0..<window.kernelCount {
                    // Position of this tap along each axis, and whether it is in the input or its padding.
                    var pixelRest = pixel, tapRest = tap, inside = true, inPadded = true
                    var position = [Int](repeating: 0, count: rank)
                    for axis in stride(from: rank - 1, through: 0, by: -1) {
                        let o = pixelRest % window.outputSize[axis], k = tapRest % window.kernel[axis]
                        pixelRest /= window.outputSize[axis]
                        tapRest /= window.kernel[axis]
                        position[axis] = o * window.strides[axis] - window.padsBegin[axis] + k * window.dilations[axis]
                        if position[axis] < 0 || position[axis] >= window.inputSize[axis] { inside = false }
                        if position[axis] >= window.inputSize[axis] + padsEnd[axis] { inPadded = false }
                    }
                    if inPadded { padded += 1 }
                    guard inside else { continue }
                    var rowMajor = 0, columnMajor = 0, scale = 1
                    for axis in 0..<rank { rowMajor = rowMajor * window.inputSize[axis] + position[axis] }
                    for axis in 0..<rank {
                        columnMajor += position[axis] * scale
                        scale *= window.inputSize[axis]
                    }
                    values.append((input[plane * window.inputCount + rowMajor], columnMajorIndices ? columnMajor : rowMajor))
                }
                switch kind {
                case .max:
                    var best = values.first
                    for candidate in values.dropFirst() where candidate.value > best!.value { best = candidate }
                    output[at] = best?.value ?? T(converting: -Double.greatestFiniteMagnitude)
                    indices?[at] = Int64(plane * window.inputCount + (best?.index ?? 0))
                case .average(let countIncludePad):
                    let sum = values.reduce(0.0) { $0 + $1.value.doubleValue }
                    output[at] = T(converting: sum / Double(countIncludePad ? padded : values.count))
                case .lp(let p):
                    let sum = values.reduce(0.0) { $0 + pow(Swift.abs($1.value.doubleValue), Double(p)) }
                    output[at] = T(converting: pow(sum, 1 / Double(p)))
                }
            }
        }
    }
}

/// What `Pooling.poolSeparable` reduces with, fixed at compile time so its loops hold no branch.
protocol SeparableReduction {
    static var isMax: Bool { get }
    /// The value of an empty window, and of the padding.
    static var empty: Float { get }
    static func combine(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float>
    static func combine(_ a: Float, _ b: Float) -> Float
}

/// Max pooling: `>` rather than Swift.max, one compare and blend, and NaN inputs are skipped as ONNX Runtime does.
enum SeparableMax: SeparableReduction {
    static let isMax = true
    static let empty = -Float.infinity
    @inline(__always) static func combine(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> { a.replacing(with: b, where: b .> a) }
    @inline(__always) static func combine(_ a: Float, _ b: Float) -> Float { b > a ? b : a }
}

/// Average pooling's sums.
enum SeparableSum: SeparableReduction {
    static let isMax = false
    static let empty: Float = 0
    @inline(__always) static func combine(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> { a + b }
    @inline(__always) static func combine(_ a: Float, _ b: Float) -> Float { a + b }
}
