/// Image-to-column expansion: lays out the receptive field of each output pixel as one column, so
/// that a convolution becomes a matrix product `weights [M × C·taps] · columns [C·taps × pixels]`.
///
/// Both directions work on a range of output pixels at a time, so a caller can expand one panel of
/// pixels per thread and keep the column buffer small (it never needs all pixels at once).
public enum Im2Col {
    // Shapes: input [channels, *window.inputSize];
    //         columns [channels · window.kernelCount, pixels.count], row stride pixels.count.
    /// Writes the columns of output pixels `pixels` (flattened over the output) into `columns`.
    /// Row `c · taps + t` holds what tap `t` of channel `c` reads; padding reads as 0.
    public static func expand(_ input: UnsafePointer<Float>, channels: Int, window: SpatialWindow,
                              pixels: Range<Int>, into columns: UnsafeMutablePointer<Float>) {
        if window.rank == 2 {
            expandPlanar(input, channels: channels, window: window, pixels: pixels, into: columns)
            return
        }
        let volume = window.volume, taps = window.kernelCount, inputCount = window.inputCount
        let width = pixels.count
        for row in 0..<(channels * taps) {
            let source = input + (row / taps) * inputCount
            let target = columns + row * width
            volume.forEachRun(tap: row % taps, pixels: pixels) { column, count, start, stride in
                let out = target + column
                guard let start else {
                    out.update(repeating: 0, count: count)
                    return
                }
                let from = source + start
                if stride == 1 {
                    out.update(from: from, count: count)
                    return
                }
                if stride == 2 {
                    copyEvens(from, to: out, count: count)
                    return
                }
                for i in 0..<count { out[i] = from[i * stride] }
            }
        }
    }

    /// `expand` for 2-D windows, in plain loops: per column row (channel, kernel row, kernel
    /// column) and output row, zeros left of the columns the kernel column reaches inside the
    /// input, a (strided) copy, zeros right of them. On the small images of deep layers (7×7,
    /// 14×14) the runs are a few floats long, so the per-run cost of the general walk dominated.
    static func expandPlanar(_ input: UnsafePointer<Float>, channels: Int, window: SpatialWindow,
                             pixels: Range<Int>, into columns: UnsafeMutablePointer<Float>) {
        let inputHeight = window.inputSize[0], inputWidth = window.inputSize[1]
        let outputWidth = window.outputSize[1]
        if outputWidth <= narrowWidth {
            expandNarrow(input, channels: channels, window: window, pixels: pixels, into: columns)
            return
        }
        let kernelHeight = window.kernel[0], kernelWidth = window.kernel[1]
        let strideH = window.strides[0], strideW = window.strides[1]
        let dilationH = window.dilations[0], dilationW = window.dilations[1]
        let padTop = window.padsBegin[0], padLeft = window.padsBegin[1]
        let width = pixels.count, inputCount = window.inputCount
        // Output columns kernel column kw reads inside the input: ow·s − pad + kw·d in 0..<inputWidth.
        var reach: [Range<Int>] = []
        for kw in 0..<kernelWidth {
            let offset = kw * dilationW - padLeft
            let low = offset >= 0 ? 0 : (-offset + strideW - 1) / strideW
            let high = inputWidth - 1 - offset < 0 ? 0 : (inputWidth - 1 - offset) / strideW + 1
            reach.append(Swift.min(low, outputWidth)..<Swift.max(Swift.min(low, outputWidth), Swift.min(high, outputWidth)))
        }
        var row = 0
        for channel in 0..<channels {
            let plane = input + channel * inputCount
            for kh in 0..<kernelHeight {
                for kw in 0..<kernelWidth {
                    let target = columns + row * width - pixels.lowerBound
                    let valid = reach[kw], offset = kw * dilationW - padLeft
                    var pixel = pixels.lowerBound
                    while pixel < pixels.upperBound {
                        let oh = pixel / outputWidth, first = pixel - oh * outputWidth
                        let last = Swift.min(outputWidth, first + pixels.upperBound - pixel)
                        let out = target + oh * outputWidth
                        let ih = oh * strideH - padTop + kh * dilationH
                        if ih < 0 || ih >= inputHeight {
                            for ow in first..<last { out[ow] = 0 }
                        } else {
                            let low = Swift.min(Swift.max(first, valid.lowerBound), last)
                            let high = Swift.max(low, Swift.min(last, valid.upperBound))
                            for ow in first..<low { out[ow] = 0 }
                            let from = plane + ih * inputWidth + offset
                            if strideW == 1 {
                                for ow in low..<high { out[ow] = from[ow] }
                            } else if strideW == 2 {
                                copyEvens(from + 2 * low, to: out + low, count: high - low)
                            } else {
                                for ow in low..<high { out[ow] = from[ow * strideW] }
                            }
                            for ow in high..<last { out[ow] = 0 }
                        }
                        pixel += last - first
                    }
                    row += 1
                }
            }
        }
    }

    /// Output widths up to which `expandPlanar` first pads each channel (`expandNarrow`).
    static let narrowWidth = 32

    /// `expandPlanar` for narrow images (a small CNN's 28×28 and 14×14, a deep layer's 7×7), where
    /// a kernel row's run within one output row is a few floats: each channel's rows that the
    /// pixels read are first copied into a zero-padded plane, so that every run is a plain copy of
    /// `outputWidth` or fewer floats, with no edge cases.
    static func expandNarrow(_ input: UnsafePointer<Float>, channels: Int, window: SpatialWindow,
                             pixels: Range<Int>, into columns: UnsafeMutablePointer<Float>) {
        let inputHeight = window.inputSize[0], inputWidth = window.inputSize[1], outputWidth = window.outputSize[1]
        let kernelHeight = window.kernel[0], kernelWidth = window.kernel[1]
        let strideH = window.strides[0], strideW = window.strides[1]
        let dilationH = window.dilations[0], dilationW = window.dilations[1]
        let padTop = window.padsBegin[0], padLeft = window.padsBegin[1]
        let width = pixels.count, inputCount = window.inputCount
        // Input rows top..<bottom and columns −padLeft..<right cover every tap of these pixels.
        let firstRow = pixels.lowerBound / outputWidth, lastRow = (pixels.upperBound - 1) / outputWidth
        let firstColumn = pixels.lowerBound - firstRow * outputWidth
        let top = firstRow * strideH - padTop, bottom = lastRow * strideH - padTop + (kernelHeight - 1) * dilationH + 1
        let paddedWidth = (outputWidth - 1) * strideW + (kernelWidth - 1) * dilationW + 1
        let paddedHeight = bottom - top
        withUnsafeTemporaryAllocation(of: Float.self, capacity: paddedHeight * paddedWidth) { buffer in
            let padded = buffer.baseAddress!
            let copied = Swift.max(0, padLeft)..<Swift.max(Swift.max(0, padLeft), Swift.min(paddedWidth, padLeft + inputWidth))
            var row = 0
            for channel in 0..<channels {
                let plane = input + channel * inputCount
                for r in 0..<paddedHeight {
                    let line = padded + r * paddedWidth, ih = top + r
                    guard ih >= 0 && ih < inputHeight, !copied.isEmpty else {
                        line.update(repeating: 0, count: paddedWidth)
                        continue
                    }
                    line.update(repeating: 0, count: copied.lowerBound)
                    (line + copied.lowerBound).update(from: plane + ih * inputWidth + copied.lowerBound - padLeft, count: copied.count)
                    (line + copied.upperBound).update(repeating: 0, count: paddedWidth - copied.upperBound)
                }
                for kh in 0..<kernelHeight {
                    for kw in 0..<kernelWidth {
                        let target = columns + row * width - pixels.lowerBound
                        let tap = (kh * dilationH - firstRow * strideH) * paddedWidth + kw * dilationW
                        // Output rows in order, the first from `firstColumn` (no division per run).
                        var pixel = pixels.lowerBound, oh = firstRow, first = firstColumn
                        while pixel < pixels.upperBound {
                            let last = Swift.min(outputWidth, first + pixels.upperBound - pixel)
                            let from = UnsafePointer(padded + tap + oh * strideH * paddedWidth), out = target + oh * outputWidth
                            if strideW == 1 {
                                copyRun(from + first, to: out + first, count: last - first)
                            } else if strideW == 2 {
                                copyEvens(from + 2 * first, to: out + first, count: last - first)
                            } else {
                                for ow in first..<last { out[ow] = from[ow * strideW] }
                            }
                            pixel += last - first
                            oh += 1
                            first = 0
                        }
                        row += 1
                    }
                }
            }
        }
    }

    // Shapes: source[count], target[count].
    /// `target[i] = source[i]`: eight at a time, the last eight overlapping the ones before;
    /// fewer than eight one by one.
    @inline(__always)
    static func copyRun(_ source: UnsafePointer<Float>, to target: UnsafeMutablePointer<Float>, count: Int) {
        if count < 8 {
            for i in 0..<count { target[i] = source[i] }
            return
        }
        var i = 0
        while i + 8 < count {
            UnsafeMutableRawPointer(target + i).storeBytes(of: UnsafeRawPointer(source + i).loadUnaligned(as: SIMD8<Float>.self),
                                                           as: SIMD8<Float>.self)
            i += 8
        }
        let end = count - 8
        UnsafeMutableRawPointer(target + end).storeBytes(of: UnsafeRawPointer(source + end).loadUnaligned(as: SIMD8<Float>.self),
                                                         as: SIMD8<Float>.self)
    }

    // Shapes: source[2 · (count − 1) + 1], target[count].
    /// `target[i] = source[2i]`: eight, then four at a time from the even half of sixteen or eight
    /// neighbours (reads never go past the last element copied).
    @inline(__always)
    static func copyEvens(_ source: UnsafePointer<Float>, to target: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 9 <= count {
            let pairs = UnsafeRawPointer(source + 2 * i).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(target + i).storeBytes(of: pairs.evenHalf, as: SIMD8<Float>.self)
            i += 8
        }
        while i + 5 <= count {
            let pairs = UnsafeRawPointer(source + 2 * i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(target + i).storeBytes(of: pairs.evenHalf, as: SIMD4<Float>.self)
            i += 4
        }
        while i < count {
            target[i] = source[2 * i]
            i += 1
        }
    }

    // Shapes: columns [channels · window.kernelCount, pixels.count], row stride pixels.count;
    //         image [channels, *window.inputSize].
    /// The adjoint of `expand` (col2im): adds every column entry into the input pixel it would
    /// have been read from; entries that fall in the padding are dropped.
    public static func accumulate(_ columns: UnsafePointer<Float>, channels: Int, window: SpatialWindow,
                                  pixels: Range<Int>, into image: UnsafeMutablePointer<Float>) {
        let volume = window.volume, taps = window.kernelCount, inputCount = window.inputCount
        let width = pixels.count
        for row in 0..<(channels * taps) {
            let target = image + (row / taps) * inputCount
            let source = columns + row * width
            volume.forEachRun(tap: row % taps, pixels: pixels) { column, count, start, stride in
                guard let start else { return }
                let from = source + column, to = target + start
                if stride == 1 {
                    for i in 0..<count { to[i] += from[i] }
                } else {
                    for i in 0..<count { to[i * stride] += from[i] }
                }
            }
        }
    }

    /// Naive twin of `expand`: every entry computed from its coordinates.
    public static func referenceExpand(_ input: UnsafePointer<Float>, channels: Int, window: SpatialWindow,
                                       pixels: Range<Int>, into columns: UnsafeMutablePointer<Float>) {
        let taps = window.kernelCount
        for row in 0..<(channels * taps) {
            for pixel in pixels {
                let index = window.referenceInputIndex(pixel: pixel, tap: row % taps)
                columns[row * pixels.count + pixel - pixels.lowerBound] =
                    index.map { input[(row / taps) * window.inputCount + $0] } ?? 0
            }
        }
    }

    /// Naive twin of `accumulate`.
    public static func referenceAccumulate(_ columns: UnsafePointer<Float>, channels: Int, window: SpatialWindow,
                                           pixels: Range<Int>, into image: UnsafeMutablePointer<Float>) {
        let taps = window.kernelCount
        for row in 0..<(channels * taps) {
            for pixel in pixels {
                if let index = window.referenceInputIndex(pixel: pixel, tap: row % taps) {
                    image[(row / taps) * window.inputCount + index] += columns[row * pixels.count + pixel - pixels.lowerBound]
                }
            }
        }
    }
}

extension SpatialWindow {
    /// The flattened input index that output pixel `pixel` reads at kernel tap `tap`, or nil in
    /// the padding. Straight from the definition; reference kernels use it.
    public func referenceInputIndex(pixel: Int, tap: Int) -> Int? {
        var pixelRest = pixel, tapRest = tap, index = 0, scale = 1
        for axis in stride(from: rank - 1, through: 0, by: -1) {
            let o = pixelRest % outputSize[axis], k = tapRest % kernel[axis]
            pixelRest /= outputSize[axis]
            tapRest /= kernel[axis]
            let position = o * strides[axis] - padsBegin[axis] + k * dilations[axis]
            if position < 0 || position >= inputSize[axis] { return nil }
            index += position * scale
            scale *= inputSize[axis]
        }
        return index
    }
}
