public import Tensors

/// The sizes of one convolution: batch, channels, groups and the spatial window (1 to 3 axes).
public struct ConvolutionLayout: Sendable, Hashable {
    /// Batch size (N).
    public let batch: Int
    /// Input channels (C).
    public let inputChannels: Int
    /// Output channels (M).
    public let outputChannels: Int
    /// Groups; both channel counts are multiples of it.
    public let groups: Int
    /// Spatial sizes, kernel, strides, dilations and pads.
    public let window: SpatialWindow

    /// A layout; channel counts must be positive multiples of `groups`.
    public init(batch: Int, inputChannels: Int, outputChannels: Int, groups: Int, window: SpatialWindow) {
        precondition(groups > 0 && inputChannels % groups == 0 && outputChannels % groups == 0,
                     "channel counts must be multiples of the group count")
        self.batch = batch
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.groups = groups
        self.window = window
    }

    /// Input channels each group reads.
    public var inputChannelsPerGroup: Int { inputChannels / groups }
    /// Output channels each group writes.
    public var outputChannelsPerGroup: Int { outputChannels / groups }
    /// Weights per output channel (input channels per group × kernel taps): the product's depth K.
    public var depth: Int { inputChannelsPerGroup * window.kernelCount }

    /// Multiply-adds the convolution performs (padding taps included).
    public var multiplyAdds: Int { batch * outputChannels * window.outputCount * depth }

    /// How `Convolution.forward` computes this convolution.
    public var algorithm: Convolution.Algorithm {
        if groups > 1 && groups == inputChannels && window.rank <= 2 { return .depthwise }
        if window.isIdentity { return .pointwise }
        if Winograd.applies(to: self) { return .winograd }
        return .expanded
    }
}

/// Float convolution (cross-correlation, as in ONNX Conv) with a fused epilogue.
public enum Convolution {
    /// The ways `forward` computes a convolution.
    public enum Algorithm: Sendable {
        /// 1×1, stride 1, no padding: the input already is the column matrix, one sgemm per group.
        case pointwise
        /// One input channel per group: a direct kernel per channel plane (never many tiny gemms).
        case depthwise
        /// 3×3 stride 1 with enough channels and pixels: Winograd F(4×4 or 2×2, 3×3); takes
        /// weights transformed by `Winograd.transformWeights`.
        case winograd
        /// Everything else: im2col one panel of output pixels at a time, then sgemm.
        case expanded
    }

    /// Floats of scratch memory `forward` needs for `layout` with `parallelism` (with weights per
    /// image, at most this). `productApart`: `forward` is to accumulate with an epilogue that has
    /// a `beforeResidual` step, and needs room for the products too. `blockWork` as `forward`'s.
    public static func scratchCount(_ layout: ConvolutionLayout, parallelism: Parallelism, productApart: Bool = false,
                                    blockWork: Int = BLAS.smallKernelWork) -> Int {
        if mergesImages(layout, blockWork: blockWork) { return (layout.inputChannels + layout.outputChannels) * layout.batch * layout.window.outputCount }
        let columns = columnScratchCount(layout, parallelism, blockWork)
        guard productApart && accumulates(layout) else { return columns }
        return columns + productScratchCount(panels(layout, parallelism, blockWork), parallelism)
    }

    /// Floats of the column matrices `product` expands (none for a pointwise layout).
    private static func columnScratchCount(_ layout: ConvolutionLayout, _ parallelism: Parallelism, _ blockWork: Int) -> Int {
        switch layout.algorithm {
        case .pointwise, .depthwise:
            return 0
        case .winograd:
            return Winograd.scratchCount(layout)
        case .expanded:
            let panels = panels(layout, parallelism, blockWork)
            if sharesColumns(panels, depth: layout.depth, parallelism) { return panels.items * layout.depth * layout.window.outputCount }
            return panels.workers(parallelism) * layout.depth * panels.columnPanel
        }
    }

    /// Floats of the product blocks `product` makes apart from the output: one task's block per
    /// worker. (Cutting a wide task's block to L2's size, a few columns per sgemm, made ResNet-50's
    /// 64→256 1×1 at 56×56 slower: 1.23 → 1.36 ms at batch 1, 10.4 → 12.7 ms at batch 8, one thread.)
    private static func productScratchCount(_ panels: GemmPanels, _ parallelism: Parallelism) -> Int {
        panels.workers(parallelism) * panels.rowPanel * panels.columnPanel
    }

    /// True when `forward` can add the convolution to values already in the output (`accumulate`):
    /// the pointwise and im2col layouts, whose sgemm does it for free (beta 1).
    public static func accumulates(_ layout: ConvolutionLayout) -> Bool {
        layout.algorithm == .pointwise || layout.algorithm == .expanded
    }

    // Shapes: input [N, C, *in]; weights [M, C/group, *kernel] (ONNX layout), or for `.winograd`
    //         layouts U [α², M, C] from `Winograd.transformWeights`;
    //         output [N, M, *out]; epilogue bias [M] per row (channel), residual [N, M, *out];
    //         scratch [scratchCount(layout, parallelism)].
    /// `output = epilogue(conv(input, weights))`, spread over `parallelism`'s threads. With
    /// `accumulate` (only where `accumulates(layout)`), the output already holds the residual,
    /// which the epilogue's own `residual` then must not repeat: `output = epilogue(output +
    /// conv(...))`, the product added by sgemm (beta 1) without a separate pass; or, when the
    /// epilogue has a `beforeResidual` step (a QDQ model's rounding, which must come between the
    /// product and the residual), each task's product is made in scratch (`scratchCount(…,
    /// productApart: true)`) and `Epilogue.apply(product:…)` adds it to the output. The residual
    /// block then runs in the residual's buffer as the float one does, instead of writing a third
    /// buffer the size of the output.
    ///
    /// `blockWork`: the pointwise and im2col products of one image are cut into tasks of at most
    /// this many multiply-adds, each with its epilogue (see `GemmPanels.init`); by default those
    /// OpenBLAS runs in its small-matrix kernel, 0 for none. (Tests run both ways on any core.)
    /// `scratchCount` must be given the same.
    public static func forward(input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                               output: UnsafeMutablePointer<Float>, layout: ConvolutionLayout,
                               epilogue: Epilogue, accumulate: Bool = false, scratch: UnsafeMutablePointer<Float>?,
                               parallelism: Parallelism, weightsPerImage: Int = 0, blockWork: Int = BLAS.smallKernelWork) {
        precondition(!accumulate || accumulates(layout), "only pointwise and im2col convolutions add to their output")
        precondition(weightsPerImage == 0 || (accumulates(layout) && layout.groups == 1),
                     "only pointwise and im2col convolutions of one group take weights per image")
        if layout.batch == 0 || layout.outputChannels == 0 || layout.window.outputCount == 0 { return }
        if weightsPerImage != 0 {
            product(input: input, weights: weights, output: output, layout: layout, epilogue: epilogue,
                    accumulate: accumulate, scratch: scratch, parallelism: parallelism, weightsPerImage: weightsPerImage,
                    blockWork: blockWork)
            return
        }
        switch layout.algorithm {
        case .depthwise:
            depthwise(input: input, weights: weights, output: output, layout: layout, epilogue: epilogue, parallelism: parallelism)
        case .winograd:
            Winograd.forward(input: input, weights: weights, output: output, layout: layout, epilogue: epilogue,
                             scratch: scratch!, parallelism: parallelism)
        case .pointwise where mergesImages(layout, blockWork: blockWork):
            mergedPointwise(input: input, weights: weights, output: output, layout: layout, epilogue: epilogue,
                            accumulate: accumulate, scratch: scratch!, parallelism: parallelism)
        case .pointwise, .expanded:
            product(input: input, weights: weights, output: output, layout: layout, epilogue: epilogue,
                    accumulate: accumulate, scratch: scratch, parallelism: parallelism, blockWork: blockWork)
        }
    }

    /// Output pixels per image below which a pointwise convolution of several images is one
    /// product over all of them (`mergedPointwise`).
    static let mergedPixelLimit = 1024

    /// True when `forward` computes this pointwise convolution as one product over all images: one
    /// group, several images of few pixels each (a product per image would be too narrow for
    /// OpenBLAS to pay for packing the weights), gathered input and product buffers that together
    /// stay within `sharedColumnsFloats`, and products per image that do not run well in OpenBLAS's
    /// small-matrix kernel (`runsSmallPerImage`; `blockWork` as `forward`'s).
    public static func mergesImages(_ layout: ConvolutionLayout, blockWork: Int = BLAS.smallKernelWork) -> Bool {
        guard layout.algorithm == .pointwise, layout.groups == 1, layout.batch > 1,
              layout.window.outputCount < mergedPixelLimit, !runsSmallPerImage(layout, blockWork: blockWork) else { return false }
        let (channels, overflow) = layout.inputChannels.addingReportingOverflow(layout.outputChannels)
        let (perImage, overflow2) = channels.multipliedReportingOverflow(by: layout.window.outputCount)
        let (floats, overflow3) = perImage.multipliedReportingOverflow(by: layout.batch)
        return !overflow && !overflow2 && !overflow3 && floats <= sharedColumnsFloats
    }

    /// Most small-matrix blocks (of `blockWork`) one image's pointwise product may take for
    /// `runsSmallPerImage`.
    static let smallBlocksPerImage = 8

    /// True when one image's pointwise product runs in OpenBLAS's small-matrix kernel (`blockWork`
    /// above 0) whole, or in at most `smallBlocksPerImage` blocks of at least 32 columns or rows
    /// (`GemmPanels.smallBlock`): that kernel packs neither the weights nor the input, so a product
    /// per image costs nothing that a merged product saves, and the merged one's gathering and
    /// scattering is pure loss. kernel-bench `b8pointwise`, batch 8, one thread, medians, merged →
    /// per image: MobileNetV3-Small 24->88 @28 0.39 → 0.27 ms, 240->40 @14 0.35 → 0.28, 576->96 @7
    /// 0.47 → 0.42; SqueezeNet 256->32 @27 1.47 → 0.93, 384->48 @13 0.58 → 0.46; MobileNetV2
    /// 192->32 @28 1.09 → 0.69, 160->960 @7 1.27 → 1.14. Blocks of 16 rows or more blocks stay
    /// merged, which is faster there: 960->160 @7 1.25 against 1.35, 1152->192 @7 1.76 against
    /// 1.96, 512->2048 @7 8.7 against 9.7, 512->1000 @13 15.1 against 16.3.
    static func runsSmallPerImage(_ layout: ConvolutionLayout, blockWork: Int) -> Bool {
        guard blockWork > 0 else { return false }
        let rows = layout.outputChannels, columns = layout.window.outputCount, depth = layout.inputChannels
        let (perColumn, overflow) = rows.multipliedReportingOverflow(by: depth)
        let (whole, overflow2) = perColumn.multipliedReportingOverflow(by: columns)
        let (most, overflow3) = blockWork.multipliedReportingOverflow(by: smallBlocksPerImage)
        if overflow || overflow2 || overflow3 || whole > most { return false }
        if whole <= blockWork { return true }
        let block = GemmPanels.smallBlock(rows: rows, columns: columns, depth: depth, work: blockWork)
        let least = 2 * GemmPanels.alignment
        return block.columns != Int.max || (block.rows != Int.max && block.rows >= least)
    }

    // Shapes: input [N, C, pixels]; weights [M, C]; output [N, M, pixels];
    //         scratch [C × N·pixels] (gathered input), then [M × N·pixels] (product).
    /// Pointwise convolution of all images as one product: the input is gathered into one
    /// [C × N·pixels] matrix (image after image along the columns), multiplied by the weights once
    /// (OpenBLAS packs them once, not once per image), and each finished block is scattered back to
    /// [N, M, pixels] (added to the output with `accumulate`) and finished by the epilogue.
    /// Its naive twin is `Convolution.reference`.
    private static func mergedPointwise(input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                                        output: UnsafeMutablePointer<Float>, layout: ConvolutionLayout,
                                        epilogue: Epilogue, accumulate: Bool, scratch: UnsafeMutablePointer<Float>,
                                        parallelism: Parallelism) {
        let images = layout.batch, channels = layout.inputChannels, outputs = layout.outputChannels
        let pixels = layout.window.outputCount, width = images * pixels
        let gathered = scratch, product = scratch + channels * width
        parallelism.forEachChunk(channels * images, minimumChunk: Swift.max(1, 4096 / pixels)) { chunk in
            for job in chunk {
                let channel = job / images, image = job % images
                (gathered + channel * width + image * pixels).update(from: input + (image * channels + channel) * pixels,
                                                                     count: pixels)
            }
        }
        let panels = GemmPanels(items: 1, rows: outputs, columns: width, depth: channels, threads: parallelism.threads)
        panels.run(parallelism) { _, task in
            let rows = task.rows
            BLAS.sgemm(transposeA: false, transposeB: false, m: rows.count, n: task.columns.count, k: channels,
                       alpha: 1, a: weights + rows.lowerBound * channels, lda: channels,
                       b: gathered + task.columns.lowerBound, ldb: width,
                       beta: 0, c: product + rows.lowerBound * width + task.columns.lowerBound, ldc: width)
            // The block's columns, image by image.
            var column = task.columns.lowerBound
            while column < task.columns.upperBound {
                let image = column / pixels, start = column % pixels
                let end = Swift.min(pixels, start + task.columns.upperBound - column)
                let offset = image * outputs * pixels
                if accumulate && epilogue.beforeResidual != nil {
                    epilogue.apply(product: product + rows.lowerBound * width + column, productLD: width, into: output,
                                   offset: offset, ld: pixels, rows: rows, columns: start..<end)
                    column += end - start
                    continue
                }
                for r in rows {
                    let source = product + r * width + column, target = output + offset + r * pixels + start
                    if accumulate {
                        for i in 0..<(end - start) { target[i] += source[i] }
                    } else {
                        target.update(from: source, count: end - start)
                    }
                }
                epilogue.apply(output, offset: offset, ld: pixels, rows: rows, columns: start..<end)
                column += end - start
            }
        }
    }

    static func panels(_ layout: ConvolutionLayout, _ parallelism: Parallelism, _ blockWork: Int) -> GemmPanels {
        GemmPanels(items: layout.batch * layout.groups, rows: layout.outputChannelsPerGroup,
                   columns: layout.window.outputCount, depth: layout.depth, threads: parallelism.threads,
                   expanded: layout.algorithm == .expanded, blockWork: blockWork)
    }

    /// Most floats of shared column matrices (64 MB): they hold every item of the batch at once,
    /// so a large batch expands panel by panel instead.
    static let sharedColumnsFloats = 1 << 24

    /// True when every row panel of an item reads all of its columns and several threads run the
    /// panels: then the columns are expanded once, by all threads together, into one shared buffer
    /// (instead of each thread expanding the same ones for its rows), unless that buffer would pass
    /// `sharedColumnsFloats`.
    static func sharesColumns(_ panels: GemmPanels, depth: Int, _ parallelism: Parallelism) -> Bool {
        guard panels.columnPanelCount == 1 && panels.rowPanelCount > 1 && panels.workers(parallelism) > 1 else { return false }
        let (floats, overflow) = panels.items.multipliedReportingOverflow(by: depth * panels.columns)
        return !overflow && floats <= sharedColumnsFloats
    }

    /// Pointwise and im2col convolution: per (image, group), weights [M/g × K] · columns [K × pixels]
    /// (image n's weights `n · weightsPerImage` floats further on when that is not 0).
    private static func product(input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                                output: UnsafeMutablePointer<Float>, layout: ConvolutionLayout, epilogue: Epilogue,
                                accumulate: Bool, scratch: UnsafeMutablePointer<Float>?, parallelism: Parallelism,
                                weightsPerImage: Int = 0, blockWork: Int) {
        let panels = panels(layout, parallelism, blockWork)
        let pixels = layout.window.outputCount, inputCount = layout.window.inputCount
        let depth = layout.depth, groups = layout.groups
        let groupInputs = layout.inputChannelsPerGroup, groupOutputs = layout.outputChannelsPerGroup
        let pointwise = layout.algorithm == .pointwise
        let shared = !pointwise && sharesColumns(panels, depth: depth, parallelism)
        // Accumulating after a step before the residual: each worker's products go to its block
        // of scratch, after the column matrices.
        let products = accumulate && epilogue.beforeResidual != nil
            ? scratch! + columnScratchCount(layout, parallelism, blockWork) : nil
        if shared {
            // Whole column matrices, one per item, each thread expanding a share of the channels.
            parallelism.forEachChunk(panels.items * groupInputs, minimumChunk: 8) { chunk in
                var job = chunk.lowerBound
                while job < chunk.upperBound {
                    let item = job / groupInputs, channel = job % groupInputs
                    let count = Swift.min(chunk.upperBound - job, groupInputs - channel)
                    let image = item / groups, group = item % groups
                    let source = input + (image * layout.inputChannels + group * groupInputs + channel) * inputCount
                    Im2Col.expand(source, channels: count, window: layout.window, pixels: 0..<pixels,
                                  into: scratch! + (item * depth + channel * layout.window.kernelCount) * pixels)
                    job += count
                }
            }
        }
        // The column panel each worker expanded last: tasks that differ only in rows reuse it.
        let workers = panels.workers(parallelism)
        let expanded = UnsafeMutablePointer<Int>.allocate(capacity: workers)
        expanded.initialize(repeating: -1, count: workers)
        defer { expanded.deallocate() }
        panels.run(parallelism) { worker, task in
            let image = task.item / groups, group = task.item % groups
            let source = input + (image * layout.inputChannels + group * groupInputs) * inputCount
            let b: UnsafePointer<Float>, ldb: Int
            if pointwise {
                b = source + task.columns.lowerBound
                ldb = pixels
            } else if shared {
                b = UnsafePointer(scratch! + task.item * depth * pixels)
                ldb = pixels
            } else {
                let buffer = scratch! + worker * depth * panels.columnPanel
                let key = task.item * pixels + task.columns.lowerBound
                if expanded[worker] != key {
                    Im2Col.expand(source, channels: groupInputs, window: layout.window, pixels: task.columns, into: buffer)
                    expanded[worker] = key
                }
                b = UnsafePointer(buffer)
                ldb = task.columns.count
            }
            let firstRow = group * groupOutputs + task.rows.lowerBound
            let imageOffset = image * layout.outputChannels * pixels
            if let products {
                let block = products + worker * panels.rowPanel * panels.columnPanel
                BLAS.sgemm(transposeA: false, transposeB: false, m: task.rows.count, n: task.columns.count, k: depth,
                           alpha: 1, a: weights + image * weightsPerImage + firstRow * depth, lda: depth, b: b, ldb: ldb,
                           beta: 0, c: block, ldc: task.columns.count)
                epilogue.apply(product: block, productLD: task.columns.count, into: output, offset: imageOffset, ld: pixels,
                               rows: firstRow..<(firstRow + task.rows.count), columns: task.columns)
                return
            }
            BLAS.sgemm(transposeA: false, transposeB: false, m: task.rows.count, n: task.columns.count, k: depth,
                       alpha: 1, a: weights + image * weightsPerImage + firstRow * depth, lda: depth, b: b, ldb: ldb,
                       beta: accumulate ? 1 : 0, c: output + imageOffset + firstRow * pixels + task.columns.lowerBound, ldc: pixels)
            epilogue.apply(output, offset: imageOffset, ld: pixels,
                           rows: firstRow..<(firstRow + task.rows.count), columns: task.columns)
        }
    }

    // Shapes: weights [rows × columns]; factors [columns]; scaled [rows × columns].
    /// `scaled[r, c] = weights[r, c] · factors[c]`: the weights of a pointwise convolution whose
    /// input channels are scaled (a squeeze-and-excitation scale taken into the next 1×1 layer).
    public static func scaleColumns(_ weights: UnsafePointer<Float>, by factors: UnsafePointer<Float>, rows: Int,
                                    columns: Int, into scaled: UnsafeMutablePointer<Float>) {
        for r in 0..<rows {
            let source = weights + r * columns, target = scaled + r * columns
            for c in 0..<columns { target[c] = source[c] * factors[c] }
        }
    }

    // Shapes: input [N, C, *in]; weights [M, C/group, *kernel] (ONNX layout); bias [M];
    //         residual and output [N, M, *out].
    /// Naive twin of `forward`, and the convolution for element types other than Float:
    /// every output from its definition, accumulated in Double.
    public static func reference<T: FloatingElement>(input: UnsafePointer<T>, weights: UnsafePointer<T>,
                                                     bias: UnsafePointer<T>?, residual: UnsafePointer<T>?,
                                                     activation: Activation?, beforeResidual: Activation? = nil,
                                                     output: UnsafeMutablePointer<T>, layout: ConvolutionLayout) {
        let window = layout.window, pixels = window.outputCount, taps = window.kernelCount
        let groupInputs = layout.inputChannelsPerGroup, groupOutputs = layout.outputChannelsPerGroup
        for image in 0..<layout.batch {
            for channel in 0..<layout.outputChannels {
                let group = channel / groupOutputs
                for pixel in 0..<pixels {
                    var sum = 0.0
                    for tap in 0..<taps {
                        guard let index = window.referenceInputIndex(pixel: pixel, tap: tap) else { continue }
                        for inputChannel in 0..<groupInputs {
                            let plane = (image * layout.inputChannels + group * groupInputs + inputChannel) * window.inputCount
                            sum += Double(input[plane + index]) * Double(weights[(channel * groupInputs + inputChannel) * taps + tap])
                        }
                    }
                    let at = (image * layout.outputChannels + channel) * pixels + pixel
                    if let bias { sum += Double(bias[channel]) }
                    if let beforeResidual { sum = Double(beforeResidual(Float(sum))) }
                    if let residual { sum += Double(residual[at]) }
                    if let activation { sum = Double(activation(Float(sum))) }
                    output[at] = T(sum)
                }
            }
        }
    }
}
