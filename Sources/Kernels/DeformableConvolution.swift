public import Tensors

/// The sizes of a 2-D deformable convolution (ONNX DeformConv), checked by the caller: every count
/// positive or zero, channels divisible by `groups` and `offsetGroups`, output channels by `groups`,
/// and every tensor's element count within `Int`.
public struct DeformableConvolutionLayout: Sendable, Hashable {
    public let batch: Int, inputChannels: Int, outputChannels: Int, groups: Int, offsetGroups: Int
    public let inputHeight: Int, inputWidth: Int, outputHeight: Int, outputWidth: Int
    public let kernelHeight: Int, kernelWidth: Int
    public let strideHeight: Int, strideWidth: Int, dilationHeight: Int, dilationWidth: Int
    public let padTop: Int, padLeft: Int

    public init(batch: Int, inputChannels: Int, outputChannels: Int, groups: Int, offsetGroups: Int,
                input: (height: Int, width: Int), output: (height: Int, width: Int), kernel: (height: Int, width: Int),
                strides: (height: Int, width: Int) = (1, 1), dilations: (height: Int, width: Int) = (1, 1),
                padsBegin: (top: Int, left: Int) = (0, 0)) {
        self.batch = batch
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.groups = groups
        self.offsetGroups = offsetGroups
        inputHeight = input.height
        inputWidth = input.width
        outputHeight = output.height
        outputWidth = output.width
        kernelHeight = kernel.height
        kernelWidth = kernel.width
        strideHeight = strides.height
        strideWidth = strides.width
        dilationHeight = dilations.height
        dilationWidth = dilations.width
        padTop = padsBegin.top
        padLeft = padsBegin.left
    }

    /// Kernel taps per channel (kH × kW).
    public var taps: Int { kernelHeight * kernelWidth }
    /// Output pixels per image and channel.
    public var pixels: Int { outputHeight * outputWidth }
    public var inputChannelsPerGroup: Int { inputChannels / groups }
    public var outputChannelsPerGroup: Int { outputChannels / groups }
    public var channelsPerOffsetGroup: Int { inputChannels / offsetGroups }
    /// Rows of one group's column matrix, and the weights' row length: C/group × kH × kW.
    public var depth: Int { inputChannelsPerGroup * taps }
}

/// Deformable convolution: a convolution whose every kernel tap reads the input at its regular
/// position moved by a learned (fractional) offset, bilinearly interpolated (zero outside the
/// image), and optionally scaled by a mask. Computed as a deformable im2col (the sampled values
/// of a panel of output pixels laid out as columns) times the weights, through `BLAS.sgemm`.
public enum DeformableConvolution {
    /// Most floats in one worker's column panel (1 MiB); a single column is allowed past it.
    static let panelFloats = 1 << 18

    /// Output pixels per column panel: as many as fit in `panelFloats`, at least one.
    public static func panelWidth(_ layout: DeformableConvolutionLayout) -> Int {
        Swift.max(1, Swift.min(layout.pixels, panelFloats / Swift.max(1, layout.depth)))
    }

    /// Tasks (image, group, panel of pixels) and the threads that take them.
    static func work(_ layout: DeformableConvolutionLayout, _ parallelism: Parallelism) -> (tasks: Int, panels: Int, workers: Int) {
        let width = panelWidth(layout)
        let panels = (layout.pixels + width - 1) / width
        let tasks = layout.batch * layout.groups * panels
        return (tasks, panels, Swift.max(1, Swift.min(parallelism.threads, tasks)))
    }

    /// Floats of scratch `forward` needs: one column panel per worker. Nil when it overflows.
    public static func scratchCount(_ layout: DeformableConvolutionLayout, parallelism: Parallelism) -> Int? {
        let (perWorker, overflow) = layout.depth.multipliedReportingOverflow(by: panelWidth(layout))
        let (total, overflow2) = perWorker.multipliedReportingOverflow(by: work(layout, parallelism).workers)
        return overflow || overflow2 ? nil : total
    }

    // Shapes: input [N, C, H, W]; weights [M, C/group, kH, kW]; offsets [N, offsetGroups, kH, kW, 2, oH, oW]
    //         (for each tap, the row offsets then the column offsets); mask [N, offsetGroups, kH, kW, oH, oW]
    //         or nil (all ones); bias [M] or nil; output [N, M, oH, oW]; scratch [scratchCount(layout, parallelism)].
    /// `output = deformconv(input, weights, offsets, mask) + bias`, spread over `parallelism`'s threads.
    /// Its naive twin is `reference`.
    public static func forward(input: UnsafePointer<Float>, weights: UnsafePointer<Float>, offsets: UnsafePointer<Float>,
                               mask: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
                               layout: DeformableConvolutionLayout, scratch: UnsafeMutablePointer<Float>,
                               parallelism: Parallelism) {
        let pixels = layout.pixels, groupOutputs = layout.outputChannelsPerGroup, depth = layout.depth
        if pixels == 0 || layout.outputChannels == 0 { return }
        let width = panelWidth(layout), (tasks, panels, workers) = work(layout, parallelism)
        parallelism.forEach(workers) { worker in
            let columns = scratch + worker * depth * width
            for task in Parallelism.chunk(worker, of: workers, total: tasks) {
                let image = task / (layout.groups * panels), group = (task / panels) % layout.groups
                let start = (task % panels) * width, range = start..<Swift.min(pixels, start + width)
                let target = output + (image * layout.outputChannels + group * groupOutputs) * pixels + start
                guard depth > 0 else {
                    for row in 0..<groupOutputs { (target + row * pixels).update(repeating: 0, count: range.count) }
                    addBias(bias, group: group, layout: layout, to: target, columns: range.count)
                    continue
                }
                expand(input: input, offsets: offsets, mask: mask, layout: layout, image: image, group: group,
                       pixels: range, into: columns)
                BLAS.sgemm(transposeA: false, transposeB: false, m: groupOutputs, n: range.count, k: depth,
                           alpha: 1, a: weights + group * groupOutputs * depth, lda: depth,
                           b: columns, ldb: range.count, beta: 0, c: target, ldc: pixels)
                addBias(bias, group: group, layout: layout, to: target, columns: range.count)
            }
        }
    }

    /// Adds each output channel's bias to `columns` values of its row (rows `pixels` apart).
    private static func addBias(_ bias: UnsafePointer<Float>?, group: Int, layout: DeformableConvolutionLayout,
                                to target: UnsafeMutablePointer<Float>, columns: Int) {
        guard let bias else { return }
        let groupOutputs = layout.outputChannelsPerGroup
        for row in 0..<groupOutputs {
            let value = bias[group * groupOutputs + row], out = target + row * layout.pixels
            for i in 0..<columns { out[i] += value }
        }
    }

    /// One bilinear sample: up to four input indices (−1 where the corner lies outside the image)
    /// and their weights (the mask folded in).
    struct Sample {
        var indices: (Int, Int, Int, Int) = (-1, -1, -1, -1)
        var weights: (Float, Float, Float, Float) = (0, 0, 0, 0)

        /// The sample at (y, x) of a height × width plane: nothing when the point lies a pixel or
        /// more outside it (or is not a number).
        init(y: Float, x: Float, height: Int, width: Int, scale: Float) {
            guard y > -1, y < Float(height), x > -1, x < Float(width) else { return }
            let top = y.rounded(.down), left = x.rounded(.down)
            let row = Int(top), column = Int(left)
            let dy = y - top, dx = x - left
            let rowsInside = (row >= 0, row + 1 < height), columnsInside = (column >= 0, column + 1 < width)
            let base = row * width + column
            if rowsInside.0 && columnsInside.0 { indices.0 = base; weights.0 = (1 - dy) * (1 - dx) * scale }
            if rowsInside.0 && columnsInside.1 { indices.1 = base + 1; weights.1 = (1 - dy) * dx * scale }
            if rowsInside.1 && columnsInside.0 { indices.2 = base + width; weights.2 = dy * (1 - dx) * scale }
            if rowsInside.1 && columnsInside.1 { indices.3 = base + width + 1; weights.3 = dy * dx * scale }
        }

        func value(_ plane: UnsafePointer<Float>) -> Float {
            var sum: Float = 0
            if indices.0 >= 0 { sum += weights.0 * plane[indices.0] }
            if indices.1 >= 0 { sum += weights.1 * plane[indices.1] }
            if indices.2 >= 0 { sum += weights.2 * plane[indices.2] }
            if indices.3 >= 0 { sum += weights.3 * plane[indices.3] }
            return sum
        }
    }

    // Shapes: as `forward`; columns [C/group × kH × kW, pixels.count], row stride pixels.count.
    /// The deformable im2col of one image and group over output pixels `pixels`: row `c · taps + t`
    /// holds, for each pixel, channel c (of the group) sampled where tap t reads, times the mask.
    /// Each sample's position and weights are computed once per offset group and used for all of
    /// the group's channels that share it.
    static func expand(input: UnsafePointer<Float>, offsets: UnsafePointer<Float>, mask: UnsafePointer<Float>?,
                       layout: DeformableConvolutionLayout, image: Int, group: Int, pixels: Range<Int>,
                       into columns: UnsafeMutablePointer<Float>) {
        let taps = layout.taps, count = layout.pixels, width = pixels.count
        let plane = layout.inputHeight * layout.inputWidth
        let groupChannels = layout.inputChannelsPerGroup, first = group * groupChannels
        let perOffsetGroup = layout.channelsPerOffsetGroup
        for tap in 0..<taps {
            let kh = tap / layout.kernelWidth, kw = tap % layout.kernelWidth
            var channel = first
            while channel < first + groupChannels {
                let offsetGroup = channel / perOffsetGroup
                let end = Swift.min(first + groupChannels, (offsetGroup + 1) * perOffsetGroup)
                let field = (image * layout.offsetGroups + offsetGroup) * taps + tap
                let shifts = offsets + field * 2 * count, scales = mask.map { $0 + field * count }
                for pixel in pixels {
                    let oh = pixel / layout.outputWidth, ow = pixel % layout.outputWidth
                    let y = Float(oh * layout.strideHeight - layout.padTop + kh * layout.dilationHeight) + shifts[pixel]
                    let x = Float(ow * layout.strideWidth - layout.padLeft + kw * layout.dilationWidth) + shifts[count + pixel]
                    let sample = Sample(y: y, x: x, height: layout.inputHeight, width: layout.inputWidth,
                                        scale: scales?[pixel] ?? 1)
                    let column = pixel - pixels.lowerBound
                    for c in channel..<end {
                        let source = input + (image * layout.inputChannels + c) * plane
                        columns[((c - first) * taps + tap) * width + column] = sample.value(source)
                    }
                }
                channel = end
            }
        }
    }

    /// The deformable convolution straight from its definition, in double: for each output
    /// element, the sum over the group's channels and the kernel taps of weight × mask × the input
    /// bilinearly interpolated at the tap's position plus its offset (corners outside count 0).
    public static func reference<T: FloatingElement>(input: UnsafePointer<T>, weights: UnsafePointer<T>,
                                                     offsets: UnsafePointer<T>, mask: UnsafePointer<T>?,
                                                     bias: UnsafePointer<T>?, output: UnsafeMutablePointer<T>,
                                                     layout: DeformableConvolutionLayout) {
        let height = layout.inputHeight, width = layout.inputWidth
        let kernelHeight = layout.kernelHeight, kernelWidth = layout.kernelWidth
        let groupInputs = layout.inputChannelsPerGroup, groupOutputs = layout.outputChannelsPerGroup
        func at(_ plane: Int, _ row: Int, _ column: Int) -> Double {
            row < 0 || row >= height || column < 0 || column >= width ? 0 : Double(input[(plane * height + row) * width + column])
        }
        for n in 0..<layout.batch {
            for m in 0..<layout.outputChannels {
                let group = m / groupOutputs
                for oh in 0..<layout.outputHeight {
                    for ow in 0..<layout.outputWidth {
                        var sum = bias.map { Double($0[m]) } ?? 0
                        for ci in 0..<groupInputs {
                            let c = group * groupInputs + ci, offsetGroup = c / layout.channelsPerOffsetGroup
                            for kh in 0..<kernelHeight {
                                for kw in 0..<kernelWidth {
                                    let field = ((n * layout.offsetGroups + offsetGroup) * kernelHeight + kh) * kernelWidth + kw
                                    let pixel = oh * layout.outputWidth + ow
                                    let dy = Double(offsets[(field * 2) * layout.pixels + pixel])
                                    let dx = Double(offsets[(field * 2 + 1) * layout.pixels + pixel])
                                    let y = Double(oh * layout.strideHeight - layout.padTop + kh * layout.dilationHeight) + dy
                                    let x = Double(ow * layout.strideWidth - layout.padLeft + kw * layout.dilationWidth) + dx
                                    var value = 0.0
                                    if y > -1, y < Double(height), x > -1, x < Double(width) {
                                        let y0 = Int(y.rounded(.down)), x0 = Int(x.rounded(.down))
                                        let fy = y - Double(y0), fx = x - Double(x0), plane = n * layout.inputChannels + c
                                        value = (1 - fy) * (1 - fx) * at(plane, y0, x0) + (1 - fy) * fx * at(plane, y0, x0 + 1)
                                            + fy * (1 - fx) * at(plane, y0 + 1, x0) + fy * fx * at(plane, y0 + 1, x0 + 1)
                                    }
                                    let scale = mask.map { Double($0[field * layout.pixels + pixel]) } ?? 1
                                    let weight = Double(weights[((m * groupInputs + ci) * kernelHeight + kh) * kernelWidth + kw])
                                    sum += weight * scale * value
                                }
                            }
                        }
                        output[((n * layout.outputChannels + m) * layout.outputHeight + oh) * layout.outputWidth + ow] = T(sum)
                    }
                }
            }
        }
    }
}
