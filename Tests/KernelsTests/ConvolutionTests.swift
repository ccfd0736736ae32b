import Kernels
import Testing
import TestSupport

/// One convolution test case: shapes plus which epilogue parts to use.
struct ConvolutionCase: CustomTestStringConvertible, Sendable {
    var batch = 1
    var inputChannels: Int
    var outputChannels: Int
    var groups = 1
    var input: [Int]
    var kernel: [Int]
    var strides: [Int]? = nil
    var dilations: [Int]? = nil
    var padsBegin: [Int]? = nil
    var padsEnd: [Int]? = nil
    var bias = true
    var residual = false
    var activation: Activation? = nil
    var algorithm: Convolution.Algorithm

    var layout: ConvolutionLayout {
        ConvolutionLayout(batch: batch, inputChannels: inputChannels, outputChannels: outputChannels, groups: groups,
                          window: makeWindow(input: input, kernel: kernel, strides: strides, dilations: dilations,
                                             padsBegin: padsBegin, padsEnd: padsEnd).0)
    }

    /// Random operands for the case (seeded by its size) and `Convolution.reference`'s output for them.
    func randomProblem() -> (input: [Float], weights: [Float], bias: [Float]?, residual: [Float]?, expected: [Float]) {
        let layout = layout
        var random = SeededGenerator(seed: UInt64(layout.multiplyAdds % 100_003))
        let input = random.floats(layout.batch * layout.inputChannels * layout.window.inputCount)
        let weights = random.floats(layout.outputChannels * layout.depth)
        let bias = self.bias ? random.floats(layout.outputChannels) : nil
        let outputCount = layout.batch * layout.outputChannels * layout.window.outputCount
        let residual = self.residual ? random.floats(outputCount) : nil
        var expected = [Float](repeating: .nan, count: outputCount)
        expected.withUnsafeMutableBufferPointer { out in
            Convolution.reference(input: input, weights: weights, bias: bias, residual: residual,
                                  activation: activation, output: out.baseAddress!, layout: layout)
        }
        return (input, weights, bias, residual, expected)
    }

    var testDescription: String {
        "N\(batch) C\(inputChannels) M\(outputChannels) g\(groups) in\(input) k\(kernel) s\(strides ?? []) d\(dilations ?? []) "
            + "p\(padsBegin ?? [])\(padsEnd ?? []) \(algorithm)"
    }
}

@Suite struct ConvolutionTests {
    static let cases: [ConvolutionCase] = [
        // Pointwise: direct sgemm on the input.
        ConvolutionCase(inputChannels: 13, outputChannels: 7, input: [5, 9], kernel: [1, 1], algorithm: .pointwise),
        ConvolutionCase(batch: 2, inputChannels: 6, outputChannels: 9, groups: 3, input: [7, 7], kernel: [1, 1],
                        residual: true, activation: .relu, algorithm: .pointwise),
        ConvolutionCase(inputChannels: 64, outputChannels: 256, input: [14, 14], kernel: [1, 1], residual: true,
                        activation: .relu, algorithm: .pointwise),
        ConvolutionCase(inputChannels: 3, outputChannels: 5, input: [17], kernel: [1], bias: false, algorithm: .pointwise),
        // Several images as one product (gathered, multiplied once, scattered back): odd sizes, a
        // tall product cut in row panels, a wide one whose column panels cross images, 1-D.
        ConvolutionCase(batch: 3, inputChannels: 13, outputChannels: 7, input: [5, 9], kernel: [1, 1], residual: true,
                        activation: .hardSwish, algorithm: .pointwise),
        ConvolutionCase(batch: 5, inputChannels: 40, outputChannels: 150, input: [7, 7], kernel: [1, 1], residual: true,
                        activation: .relu, algorithm: .pointwise),
        ConvolutionCase(batch: 8, inputChannels: 23, outputChannels: 37, input: [7, 9], kernel: [1, 1], residual: true,
                        activation: .hardSwish, algorithm: .pointwise),
        ConvolutionCase(batch: 4, inputChannels: 8, outputChannels: 16, input: [30, 31], kernel: [1, 1], residual: true,
                        algorithm: .pointwise),
        ConvolutionCase(batch: 2, inputChannels: 3, outputChannels: 5, input: [17], kernel: [1], bias: false,
                        algorithm: .pointwise),
        // Depthwise: direct kernel, multiplier 1 and 2, 3×3 stride 1/2, other kernels, dilation, 1-D.
        ConvolutionCase(inputChannels: 7, outputChannels: 7, groups: 7, input: [9, 11], kernel: [3, 3], padsBegin: [1, 1],
                        activation: .clip(min: 0, max: 6), algorithm: .depthwise),
        ConvolutionCase(batch: 2, inputChannels: 13, outputChannels: 13, groups: 13, input: [10, 7], kernel: [3, 3],
                        strides: [2, 2], padsBegin: [1, 1], residual: true, algorithm: .depthwise),
        ConvolutionCase(inputChannels: 3, outputChannels: 6, groups: 3, input: [8, 8], kernel: [5, 5], padsBegin: [2, 2],
                        algorithm: .depthwise),
        ConvolutionCase(inputChannels: 4, outputChannels: 4, groups: 4, input: [9, 9], kernel: [3, 3], dilations: [2, 2],
                        padsBegin: [2, 2], bias: false, algorithm: .depthwise),
        ConvolutionCase(inputChannels: 3, outputChannels: 3, groups: 3, input: [2, 3], kernel: [3, 3], strides: [1, 2],
                        padsBegin: [1, 1], padsEnd: [2, 0], algorithm: .depthwise),
        ConvolutionCase(inputChannels: 5, outputChannels: 5, groups: 5, input: [20], kernel: [3], padsBegin: [1],
                        activation: .hardSwish, algorithm: .depthwise),
        ConvolutionCase(inputChannels: 32, outputChannels: 32, groups: 32, input: [28, 28], kernel: [3, 3], padsBegin: [1, 1],
                        algorithm: .depthwise),
        ConvolutionCase(inputChannels: 6, outputChannels: 6, groups: 6, input: [33, 30], kernel: [3, 3], strides: [2, 2],
                        padsBegin: [1, 1], residual: true, activation: .relu, algorithm: .depthwise),
        ConvolutionCase(inputChannels: 4, outputChannels: 8, groups: 4, input: [21, 40], kernel: [5, 5], strides: [2, 2],
                        padsBegin: [0, 2], padsEnd: [3, 1], algorithm: .depthwise),
        ConvolutionCase(inputChannels: 3, outputChannels: 3, groups: 3, input: [17, 29], kernel: [3, 3], strides: [3, 3],
                        dilations: [1, 2], padsBegin: [1, 2], algorithm: .depthwise),
        // The flat tap loop: 5×5 and 7×7 on small planes (EfficientNet's 7×7 and 14×14), stride 2
        // with dilation on one axis only, several images, a plane wider than one vector block.
        ConvolutionCase(batch: 3, inputChannels: 9, outputChannels: 9, groups: 9, input: [7, 7], kernel: [5, 5],
                        padsBegin: [2, 2], padsEnd: [2, 2], activation: .sigmoid, algorithm: .depthwise),
        ConvolutionCase(inputChannels: 5, outputChannels: 5, groups: 5, input: [15, 13], kernel: [7, 7], strides: [2, 2],
                        padsBegin: [3, 3], padsEnd: [3, 2], residual: true, algorithm: .depthwise),
        ConvolutionCase(batch: 2, inputChannels: 3, outputChannels: 3, groups: 3, input: [19, 11], kernel: [3, 5],
                        strides: [2, 1], dilations: [3, 1], padsBegin: [3, 2], padsEnd: [1, 2], algorithm: .depthwise),
        ConvolutionCase(inputChannels: 2, outputChannels: 6, groups: 2, input: [45, 37], kernel: [7, 7], strides: [1, 2],
                        dilations: [2, 1], padsBegin: [6, 3], padsEnd: [6, 3], activation: .relu, algorithm: .depthwise),
        ConvolutionCase(batch: 2, inputChannels: 3, outputChannels: 3, groups: 3, input: [1, 1], kernel: [3, 3],
                        padsBegin: [1, 1], padsEnd: [1, 1], algorithm: .depthwise),
        // Phase sub-planes: pads wider than the input (whole rows and columns of padding), strides 2
        // and 3 on different axes with a multiplier, a tail shorter than one vector block.
        ConvolutionCase(batch: 3, inputChannels: 2, outputChannels: 4, groups: 2, input: [3, 5], kernel: [5, 5],
                        strides: [2, 2], padsBegin: [4, 3], padsEnd: [4, 5], activation: .hardSwish, algorithm: .depthwise),
        ConvolutionCase(batch: 2, inputChannels: 3, outputChannels: 6, groups: 3, input: [11, 23], kernel: [3, 5],
                        strides: [3, 2], padsBegin: [1, 2], padsEnd: [0, 1], residual: true, algorithm: .depthwise),
        // im2col + sgemm: odd channels, non-square, stride, dilation, groups, 1-D, 3-D, asymmetric pads.
        ConvolutionCase(inputChannels: 3, outputChannels: 7, input: [13, 9], kernel: [3, 3], padsBegin: [1, 1],
                        activation: .sigmoid, algorithm: .expanded),
        ConvolutionCase(batch: 3, inputChannels: 1, outputChannels: 13, input: [11, 11], kernel: [5, 5], strides: [2, 2],
                        padsBegin: [2, 2], residual: true, activation: .relu, algorithm: .expanded),
        ConvolutionCase(inputChannels: 6, outputChannels: 4, groups: 2, input: [10, 12], kernel: [3, 3], dilations: [2, 2],
                        padsBegin: [2, 2], algorithm: .expanded),
        ConvolutionCase(inputChannels: 3, outputChannels: 8, input: [23, 20], kernel: [7, 7], strides: [2, 2],
                        padsBegin: [3, 3], algorithm: .expanded),
        ConvolutionCase(inputChannels: 8, outputChannels: 12, groups: 4, input: [7, 5], kernel: [3, 2], strides: [1, 2],
                        padsBegin: [0, 1], padsEnd: [2, 0], bias: false, algorithm: .expanded),
        ConvolutionCase(inputChannels: 5, outputChannels: 3, input: [30], kernel: [4], strides: [2], dilations: [3],
                        padsBegin: [1], padsEnd: [2], activation: .tanh, algorithm: .expanded),
        ConvolutionCase(batch: 2, inputChannels: 3, outputChannels: 4, input: [4, 6, 5], kernel: [3, 3, 3],
                        padsBegin: [1, 1, 1], algorithm: .expanded),
        ConvolutionCase(inputChannels: 2, outputChannels: 2, groups: 2, input: [3, 4, 5], kernel: [2, 2, 2],
                        strides: [2, 1, 2], algorithm: .expanded),
        ConvolutionCase(inputChannels: 16, outputChannels: 8, input: [13, 13], kernel: [1, 1], strides: [2, 2],
                        algorithm: .expanded),
        ConvolutionCase(inputChannels: 64, outputChannels: 96, input: [7, 7], kernel: [3, 3], padsBegin: [1, 1],
                        residual: true, activation: .relu, algorithm: .expanded),
        // Row panels sharing one column matrix that all threads expand: a tall product (several
        // images, so several items), and a wide one cut along rows.
        ConvolutionCase(batch: 2, inputChannels: 64, outputChannels: 256, input: [14, 14], kernel: [3, 3], strides: [2, 2],
                        padsBegin: [1, 1], residual: true, activation: .relu, algorithm: .expanded),
        ConvolutionCase(inputChannels: 8, outputChannels: 256, input: [16, 16], kernel: [3, 3], padsBegin: [1, 1],
                        algorithm: .expanded),
        // One image, odd sizes, for the blocks of `blockWorks`: a tall pointwise product (cut
        // along rows), a wide one and an im2col stem (cut along columns), and a single pixel.
        ConvolutionCase(inputChannels: 11, outputChannels: 37, input: [5, 7], kernel: [1, 1], residual: true,
                        activation: .relu, algorithm: .pointwise),
        ConvolutionCase(inputChannels: 9, outputChannels: 13, input: [23, 19], kernel: [1, 1], activation: .sigmoid,
                        algorithm: .pointwise),
        ConvolutionCase(inputChannels: 3, outputChannels: 10, input: [25, 27], kernel: [3, 3], strides: [2, 2],
                        padsBegin: [1, 1], residual: true, activation: .clip(min: 0, max: 6), algorithm: .expanded),
        ConvolutionCase(inputChannels: 17, outputChannels: 19, input: [1, 1], kernel: [1, 1], residual: true,
                        algorithm: .pointwise),
        // Winograd: F(4, 3) up to 128 channels, F(2, 3) above; odd sizes, asymmetric pads, several passes.
        ConvolutionCase(inputChannels: 136, outputChannels: 144, input: [7, 7], kernel: [3, 3], padsBegin: [1, 1],
                        residual: true, activation: .relu, algorithm: .winograd),
        ConvolutionCase(inputChannels: 16, outputChannels: 24, input: [40, 40], kernel: [3, 3], padsBegin: [1, 1],
                        activation: .leakyRelu(alpha: 0.2), algorithm: .winograd),
        ConvolutionCase(batch: 2, inputChannels: 17, outputChannels: 19, input: [29, 31], kernel: [3, 3], padsBegin: [0, 1],
                        padsEnd: [2, 1], residual: true, activation: .relu, algorithm: .winograd),
        ConvolutionCase(inputChannels: 130, outputChannels: 20, input: [16, 15], kernel: [3, 3], padsBegin: [1, 1],
                        algorithm: .winograd),
        ConvolutionCase(inputChannels: 32, outputChannels: 32, input: [28, 28], kernel: [3, 3], padsBegin: [1, 1],
                        bias: false, algorithm: .winograd),
    ]

    /// Block work limits for `forward`'s tests: none, OpenBLAS's small kernel's, one that cuts a
    /// product of all rows into blocks of 32 columns, and one that cuts it into blocks of 16 rows
    /// of all columns (when blocks of columns would be narrower than 32).
    static func blockWorks(_ layout: ConvolutionLayout) -> [Int] {
        let rows = layout.outputChannelsPerGroup, depth = layout.depth, pixels = layout.window.outputCount
        return [0, 1_000_000, rows * depth * 37, pixels * depth * 16]
    }

    /// The one-image cases above do reach the cuts of `blockWorks`: along columns and along rows.
    @Test func blockWorksCutColumnsAndRows() {
        var cuts = (columns: 0, rows: 0)
        for test in Self.cases where test.layout.batch == 1 && test.layout.groups == 1 && test.algorithm != .winograd {
            let layout = test.layout
            for (threads, work) in [1, 2].flatMap({ t in Self.blockWorks(layout).map { (t, $0) } }) {
                func panels(_ work: Int) -> GemmPanels {
                    GemmPanels(items: 1, rows: layout.outputChannels, columns: layout.window.outputCount, depth: layout.depth,
                               threads: threads, expanded: test.algorithm == .expanded, blockWork: work)
                }
                let cut = panels(work), plain = panels(0)
                if cut.columnPanelCount > plain.columnPanelCount { cuts.columns += 1 }
                if cut.rowPanelCount > plain.rowPanelCount { cuts.rows += 1 }
            }
        }
        #expect(cuts.columns >= 4 && cuts.rows >= 4, "\(cuts)")
    }

    /// The two "shared column matrix" cases above do reach that path with two threads: one
    /// column panel per item, several row panels.
    @Test func sharedColumnCasesCutRows() {
        for test in Self.cases where test.outputChannels == 256 {
            let layout = test.layout
            let panels = GemmPanels(items: layout.batch * layout.groups, rows: layout.outputChannelsPerGroup,
                                    columns: layout.window.outputCount, depth: layout.depth, threads: 2, expanded: true)
            #expect(panels.columnPanelCount == 1 && panels.rowPanelCount > 1, "\(test)")
        }
    }

    /// The pointwise cases of several images and one group do take the merged product without
    /// OpenBLAS's small-matrix kernel (block work 0) and products per image with it (their
    /// products are small); with the cuts of `blockWorks`, the tall one's products per image in
    /// blocks of 32 columns, but merged where they would be ten blocks of 16 rows. The wide one
    /// has column panels that cross from one image into the next.
    @Test func pointwiseCasesOfSeveralImagesMerge() throws {
        let merged = Self.cases.filter { $0.algorithm == .pointwise && $0.batch > 1 && $0.groups == 1 }
        #expect(merged.count == 5)
        for test in merged {
            #expect(Convolution.mergesImages(test.layout, blockWork: 0), "\(test)")
            #expect(!Convolution.mergesImages(test.layout, blockWork: 1_000_000), "\(test)")
        }
        let tall = try #require(merged.first { $0.outputChannels == 150 }).layout
        #expect(!Convolution.mergesImages(tall, blockWork: Self.blockWorks(tall)[2]))
        #expect(Convolution.mergesImages(tall, blockWork: Self.blockWorks(tall)[3]))
        for test in Self.cases where test.algorithm != .pointwise || test.batch == 1 || test.groups > 1 {
            #expect(!Convolution.mergesImages(test.layout, blockWork: 0), "\(test)")
        }
        let panels = GemmPanels(items: 1, rows: 16, columns: 4 * 30 * 31, depth: 8, threads: 2)
        #expect(panels.columnPanelCount > 1 && (30 * 31) % panels.columnPanel != 0)
    }

    /// Weights of their own per image (a squeeze-and-excitation scale taken into each image's
    /// copy): the same as each image convolved alone, pointwise and im2col, with a residual added
    /// by the epilogue or already in the output, over one to three threads.
    @Test func weightsPerImageMatchEachImageAlone() {
        let tests = [
            ConvolutionCase(batch: 3, inputChannels: 5, outputChannels: 7, input: [9, 11], kernel: [1, 1], residual: true,
                            activation: .relu, algorithm: .pointwise),
            ConvolutionCase(batch: 4, inputChannels: 40, outputChannels: 24, input: [14, 14], kernel: [1, 1], residual: true,
                            algorithm: .pointwise),
            ConvolutionCase(batch: 2, inputChannels: 3, outputChannels: 4, input: [8, 7], kernel: [3, 3], padsBegin: [1, 1],
                            padsEnd: [0, 1], activation: .sigmoid, algorithm: .expanded),
        ]
        for test in tests {
            let layout = test.layout, window = layout.window
            let single = ConvolutionLayout(batch: 1, inputChannels: layout.inputChannels, outputChannels: layout.outputChannels,
                                           groups: 1, window: window)
            var random = SeededGenerator(seed: UInt64(layout.multiplyAdds % 10_007))
            let perImage = layout.outputChannels * layout.depth
            let inputCount = layout.inputChannels * window.inputCount, outputCount = layout.outputChannels * window.outputCount
            let input = random.floats(layout.batch * inputCount), weights = random.floats(layout.batch * perImage)
            let bias = random.floats(layout.outputChannels), residual = random.floats(layout.batch * outputCount)
            var expected = [Float](repeating: .nan, count: layout.batch * outputCount)
            for image in 0..<layout.batch {
                expected.withUnsafeMutableBufferPointer { out in
                    Convolution.reference(input: Array(input[(image * inputCount)..<((image + 1) * inputCount)]),
                                          weights: Array(weights[(image * perImage)..<((image + 1) * perImage)]), bias: bias,
                                          residual: Array(residual[(image * outputCount)..<((image + 1) * outputCount)]),
                                          activation: test.activation, output: out.baseAddress! + image * outputCount, layout: single)
                }
            }
            for threads in [1, 2, 3] {
                let parallelism = Parallelism(threads: threads)
                var scratch = [Float](repeating: .nan, count: Convolution.scratchCount(layout, parallelism: parallelism))
                for accumulate in [false, true] {
                    var actual = accumulate ? residual : [Float](repeating: .nan, count: expected.count)
                    bias.withUnsafeBufferPointer { bias in
                        residual.withUnsafeBufferPointer { residual in
                            actual.withUnsafeMutableBufferPointer { out in
                                scratch.withUnsafeMutableBufferPointer { scratch in
                                    Convolution.forward(input: input, weights: weights, output: out.baseAddress!, layout: layout,
                                                        epilogue: Epilogue(bias: .perRow(bias.baseAddress!),
                                                                           residual: accumulate ? nil : residual.baseAddress,
                                                                           activation: test.activation),
                                                        accumulate: accumulate, scratch: scratch.baseAddress, parallelism: parallelism,
                                                        weightsPerImage: perImage)
                                }
                            }
                        }
                    }
                    let worst = worstError(actual, expected, atol: 1e-6 * Float(layout.depth))
                    #expect(worst.excess <= 0, "\(test) threads \(threads) accumulate \(accumulate): at \(worst.index)")
                }
            }
        }
    }

    @Test(arguments: cases)
    func forwardMatchesReference(_ test: ConvolutionCase) {
        let layout = test.layout
        #expect(layout.algorithm == test.algorithm)
        let (input, weights, bias, residual, expected) = test.randomProblem()
        let outputCount = expected.count
        let prepared = layout.algorithm == .winograd
            ? Winograd.transformWeights(weights, outputChannels: layout.outputChannels, inputChannels: layout.inputChannels)
            : weights
        // Products whole, in blocks for OpenBLAS's small-matrix kernel, and cut along columns or
        // rows (`blockWorks`), on any core.
        for (threads, blockWork) in [1, 2, 3].flatMap({ t in Self.blockWorks(layout).map { (t, $0) } }) {
            let parallelism = Parallelism(threads: threads)
            var actual = [Float](repeating: .nan, count: outputCount)
            var scratch = [Float](repeating: .nan, count: Convolution.scratchCount(layout, parallelism: parallelism,
                                                                                  blockWork: blockWork))
            bias.withOptionalPointer { bias in
                residual.withOptionalPointer { residual in
                    actual.withUnsafeMutableBufferPointer { out in
                        scratch.withUnsafeMutableBufferPointer { scratch in
                            Convolution.forward(input: input, weights: prepared, output: out.baseAddress!, layout: layout,
                                                epilogue: Epilogue(bias: bias.map { .perRow($0) }, residual: residual,
                                                                   activation: test.activation),
                                                scratch: scratch.baseAddress, parallelism: parallelism, blockWork: blockWork)
                        }
                    }
                }
            }
            let worst = worstError(actual, expected, atol: 1e-6 * Float(layout.depth))
            #expect(worst.excess <= 0, "threads \(threads), block work \(blockWork): at \(worst.index)")
            // The residual already in the output (made in place by the engine), added by the product.
            if let residual, Convolution.accumulates(layout) {
                var accumulated = residual
                bias.withOptionalPointer { bias in
                    accumulated.withUnsafeMutableBufferPointer { out in
                        scratch.withUnsafeMutableBufferPointer { scratch in
                            Convolution.forward(input: input, weights: prepared, output: out.baseAddress!, layout: layout,
                                                epilogue: Epilogue(bias: bias.map { .perRow($0) }, activation: test.activation),
                                                accumulate: true, scratch: scratch.baseAddress, parallelism: parallelism,
                                                blockWork: blockWork)
                        }
                    }
                }
                let worst = worstError(accumulated, expected, atol: 1e-6 * Float(layout.depth))
                #expect(worst.excess <= 0, "accumulating, threads \(threads), block work \(blockWork): at \(worst.index)")
            }
        }
        #expect(Convolution.accumulates(layout) == (layout.algorithm == .pointwise || layout.algorithm == .expanded))
    }

    /// A residual block with a step before the residual (a QDQ model's rounding of the product),
    /// computed in the residual's buffer (`accumulate`: each task's product made in scratch, then
    /// added by `Epilogue.apply(product:…)`), against the same epilogue with the residual apart:
    /// equal bit for bit for the roundings of a QDQ model followed by a rounding, a Relu or
    /// nothing, on every case that accumulates (pointwise, merged images, im2col, shared columns,
    /// groups; 1–3 threads). A pair of other activations goes element by element: checked against
    /// the reference.
    @Test(arguments: cases.filter { $0.algorithm == .pointwise || $0.algorithm == .expanded })
    func roundingBeforeResidualInPlaceMatchesResidualApart(_ test: ConvolutionCase) {
        let layout = test.layout
        var random = SeededGenerator(seed: UInt64(layout.multiplyAdds % 100_019))
        let input = random.floats(layout.batch * layout.inputChannels * layout.window.inputCount)
        let weights = random.floats(layout.outputChannels * layout.depth)
        let bias = test.bias ? random.floats(layout.outputChannels) : nil
        let outputCount = layout.batch * layout.outputChannels * layout.window.outputCount
        let residual = random.floats(outputCount)
        let rounding = Activation.quantizeDequantize(scale: 0.04, zeroPoint: 131, low: 0, high: 255)
        let signed = Activation.quantizeDequantize(scale: 0.03, zeroPoint: -7, low: -128, high: 127)
        let pairs: [(Activation, Activation?)] = [(rounding, signed), (signed, .relu), (rounding, nil), (.sigmoid, .relu)]
        for (first, last) in pairs {
            let works = Self.blockWorks(layout)
            for (threads, blockWork) in [(1, 0), (2, 0), (3, 0), (1, works[2]), (2, works[3]), (3, works[1])] {
                let parallelism = Parallelism(threads: threads)
                func run(accumulate: Bool) -> [Float] {
                    var output = accumulate ? residual : [Float](repeating: .nan, count: outputCount)
                    let count = Convolution.scratchCount(layout, parallelism: parallelism, productApart: accumulate,
                                                         blockWork: blockWork)
                    var scratch = [Float](repeating: .nan, count: count)
                    bias.withOptionalPointer { bias in
                        residual.withUnsafeBufferPointer { residual in
                            output.withUnsafeMutableBufferPointer { out in
                                scratch.withUnsafeMutableBufferPointer { scratch in
                                    Convolution.forward(input: input, weights: weights, output: out.baseAddress!, layout: layout,
                                                        epilogue: Epilogue(bias: bias.map { .perRow($0) },
                                                                           residual: accumulate ? nil : residual.baseAddress,
                                                                           activation: last, beforeResidual: first),
                                                        accumulate: accumulate, scratch: scratch.baseAddress,
                                                        parallelism: parallelism, blockWork: blockWork)
                                }
                            }
                        }
                    }
                    return output
                }
                let apart = run(accumulate: false), inPlace = run(accumulate: true)
                if case .quantizeDequantize = first {
                    let differing = zip(apart, inPlace).filter { $0.bitPattern != $1.bitPattern }.count
                    #expect(differing == 0, "\(first) then \(String(describing: last)), threads \(threads), block work \(blockWork)")
                } else {
                    var expected = [Float](repeating: .nan, count: outputCount)
                    expected.withUnsafeMutableBufferPointer { out in
                        Convolution.reference(input: input, weights: weights, bias: bias, residual: residual, activation: last,
                                              beforeResidual: first, output: out.baseAddress!, layout: layout)
                    }
                    let worst = worstError(inPlace, expected, atol: 1e-6 * Float(layout.depth))
                    #expect(worst.excess <= 0, "\(first) then \(String(describing: last)), threads \(threads), block work \(blockWork): at \(worst.index)")
                }
            }
        }
    }
}

extension Optional where Wrapped == [Float] {
    /// Runs `body` with a pointer to the array's elements, or nil.
    func withOptionalPointer<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let array = self else { return body(nil) }
        return array.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
