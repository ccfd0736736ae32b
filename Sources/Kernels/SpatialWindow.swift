/// Where a sliding window (a convolution kernel or a pooling window) reads its input, along each
/// of 1 to 3 spatial axes (outermost first): sizes, strides, dilations and leading pads.
///
/// Output pixel `o` and kernel tap `k` read input position `o·stride − padBegin + k·dilation`;
/// positions outside `0..<inputSize` are padding. Trailing pads only decide the output size,
/// which the caller computes (auto_pad, ceil_mode) and passes in.
public struct SpatialWindow: Sendable, Hashable {
    /// Input size per spatial axis.
    public let inputSize: [Int]
    /// Output size per spatial axis.
    public let outputSize: [Int]
    /// Kernel (window) size per spatial axis.
    public let kernel: [Int]
    /// Step between neighbouring output pixels, in input pixels.
    public let strides: [Int]
    /// Step between neighbouring kernel taps, in input pixels.
    public let dilations: [Int]
    /// Padding before the first input pixel.
    public let padsBegin: [Int]

    /// A window over `inputSize`; every array has one entry per spatial axis (1 to 3 axes),
    /// sizes and pads are ≥ 0, kernels, strides and dilations ≥ 1.
    public init(inputSize: [Int], outputSize: [Int], kernel: [Int], strides: [Int], dilations: [Int], padsBegin: [Int]) {
        let rank = inputSize.count
        precondition((1...3).contains(rank) && [outputSize, kernel, strides, dilations, padsBegin].allSatisfy { $0.count == rank },
                     "a spatial window needs 1 to 3 axes, the same number in every array")
        self.inputSize = inputSize
        self.outputSize = outputSize
        self.kernel = kernel
        self.strides = strides
        self.dilations = dilations
        self.padsBegin = padsBegin
    }

    /// Number of spatial axes.
    public var rank: Int { inputSize.count }
    /// Input pixels per channel.
    public var inputCount: Int { inputSize.reduce(1, *) }
    /// Output pixels per channel.
    public var outputCount: Int { outputSize.reduce(1, *) }
    /// Taps per kernel.
    public var kernelCount: Int { kernel.reduce(1, *) }

    /// True for a 1×1 window, stride 1, no padding: output pixel i reads input pixel i.
    public var isIdentity: Bool {
        kernel.allSatisfy { $0 == 1 } && strides.allSatisfy { $0 == 1 } && padsBegin.allSatisfy { $0 == 0 }
            && inputSize == outputSize
    }

    /// The window padded to three axes with leading size-1 axes, so loops are written once for 1-D to 3-D.
    var volume: Volume { Volume(self) }
}

/// One spatial axis of a window.
struct WindowAxis {
    let input: Int, output: Int, kernel: Int, stride: Int, dilation: Int, pad: Int

    /// Output pixels `lo..<hi` whose tap at input offset `offset` (= tap·dilation − pad) lands inside the input.
    @inline(__always)
    func validOutputs(offset: Int) -> Range<Int> {
        // o·stride + offset ≥ 0  and  o·stride + offset < input.
        let lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride
        let hi = input - offset <= 0 ? 0 : (input - offset - 1) / stride + 1
        let clampedLo = Swift.min(lo, output)
        return clampedLo..<Swift.max(clampedLo, Swift.min(hi, output))
    }
}

extension WindowAxis {
    /// Kernel taps of output pixel `o` that land inside the input.
    @inline(__always)
    func validTaps(_ o: Int) -> Range<Int> {
        let start = o * stride - pad
        let lo = start >= 0 ? 0 : Swift.min(kernel, (-start + dilation - 1) / dilation)
        let hi = input - start <= 0 ? 0 : Swift.min(kernel, (input - start + dilation - 1) / dilation)
        return lo..<Swift.max(lo, hi)
    }

    /// Kernel taps of output pixel `o` that land inside the input or its padding (`padEnd` after it).
    @inline(__always)
    func paddedTaps(_ o: Int, padEnd: Int) -> Int {
        let start = o * stride - pad
        let end = input + padEnd - start
        return end <= 0 ? 0 : Swift.min(kernel, (end + dilation - 1) / dilation)
    }
}

/// A `SpatialWindow` as exactly three axes (depth, height, width).
struct Volume {
    let depth: WindowAxis, height: WindowAxis, width: WindowAxis

    init(_ window: SpatialWindow) {
        let missing = 3 - window.rank
        func axis(_ index: Int) -> WindowAxis {
            guard index >= missing else { return WindowAxis(input: 1, output: 1, kernel: 1, stride: 1, dilation: 1, pad: 0) }
            let i = index - missing
            return WindowAxis(input: window.inputSize[i], output: window.outputSize[i], kernel: window.kernel[i],
                              stride: window.strides[i], dilation: window.dilations[i], pad: window.padsBegin[i])
        }
        depth = axis(0)
        height = axis(1)
        width = axis(2)
    }

    /// Walks output pixels `pixels` (flattened) for kernel tap `tap` (flattened over the kernel), one
    /// run at a time along the width axis. `body(column, count, input, stride)` gets the run's first
    /// position relative to `pixels.lowerBound`, its length, and the flattened input index of its
    /// first pixel with the step between pixels; `input` is nil for a run that reads only padding.
    @inline(__always)
    func forEachRun(tap: Int, pixels: Range<Int>, _ body: (_ column: Int, _ count: Int, _ input: Int?, _ stride: Int) -> Void) {
        let kw = tap % width.kernel
        let kh = (tap / width.kernel) % height.kernel
        let kd = tap / (width.kernel * height.kernel)
        let widthOffset = kw * width.dilation - width.pad
        let valid = width.validOutputs(offset: widthOffset)
        let planeSize = height.output * width.output
        var pixel = pixels.lowerBound
        var od = pixel / planeSize
        var oh = (pixel % planeSize) / width.output
        var ow = pixel % width.output
        while pixel < pixels.upperBound {
            let count = Swift.min(width.output - ow, pixels.upperBound - pixel)
            let column = pixel - pixels.lowerBound
            let id = od * depth.stride - depth.pad + kd * depth.dilation
            let ih = oh * height.stride - height.pad + kh * height.dilation
            if id < 0 || id >= depth.input || ih < 0 || ih >= height.input {
                body(column, count, nil, 0)
            } else {
                let end = ow + count
                let lo = Swift.min(Swift.max(valid.lowerBound, ow), end)
                let hi = Swift.max(Swift.min(valid.upperBound, end), lo)
                if lo > ow { body(column, lo - ow, nil, 0) }
                if hi > lo {
                    let row = (id * height.input + ih) * width.input
                    body(column + lo - ow, hi - lo, row + lo * width.stride + widthOffset, width.stride)
                }
                if end > hi { body(column + hi - ow, end - hi, nil, 0) }
            }
            pixel += count
            ow = 0
            oh += 1
            if oh == height.output {
                oh = 0
                od += 1
            }
        }
    }
}
