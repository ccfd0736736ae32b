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
                var i = 0
                if stride == 2 {
                    // Four at a time: the even half of eight neighbours (reads stay inside the run).
                    while i + 5 <= count {
                        let pairs = UnsafeRawPointer(from + 2 * i).loadUnaligned(as: SIMD8<Float>.self)
                        UnsafeMutableRawPointer(out + i).storeBytes(of: pairs.evenHalf, as: SIMD4<Float>.self)
                        i += 4
                    }
                }
                while i < count {
                    out[i] = from[i * stride]
                    i += 1
                }
            }
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
