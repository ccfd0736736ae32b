import Kernels
import Testing
import TestSupport

@Suite struct DeformableConvolutionTests {
    /// A deformable convolution to check, with whether it has a mask and a bias.
    struct Case: Sendable, CustomStringConvertible {
        var layout: DeformableConvolutionLayout
        var mask: Bool, bias: Bool
        var description: String {
            "N\(layout.batch) C\(layout.inputChannels) M\(layout.outputChannels) g\(layout.groups) og\(layout.offsetGroups)"
                + " \(layout.inputHeight)x\(layout.inputWidth) k\(layout.kernelHeight)x\(layout.kernelWidth)"
                + " s\(layout.strideHeight),\(layout.strideWidth) d\(layout.dilationHeight),\(layout.dilationWidth)"
                + " mask \(mask) bias \(bias)"
        }

        init(batch: Int = 1, channels: Int, outputs: Int, groups: Int = 1, offsetGroups: Int = 1, input: (Int, Int),
             kernel: (Int, Int), strides: (Int, Int) = (1, 1), dilations: (Int, Int) = (1, 1), pads: [Int] = [0, 0, 0, 0],
             mask: Bool, bias: Bool) {
            func size(_ axis: Int, _ input: Int, _ kernel: Int, _ stride: Int, _ dilation: Int) -> Int {
                (input + pads[axis] + pads[axis + 2] - (kernel - 1) * dilation - 1) / stride + 1
            }
            layout = DeformableConvolutionLayout(
                batch: batch, inputChannels: channels, outputChannels: outputs, groups: groups, offsetGroups: offsetGroups,
                input: input, output: (size(0, input.0, kernel.0, strides.0, dilations.0), size(1, input.1, kernel.1, strides.1, dilations.1)),
                kernel: kernel, strides: strides, dilations: dilations, padsBegin: (pads[0], pads[1]))
            self.mask = mask
            self.bias = bias
        }

        var offsetCount: Int { layout.batch * layout.offsetGroups * layout.taps * 2 * layout.pixels }
        var maskCount: Int { layout.batch * layout.offsetGroups * layout.taps * layout.pixels }
        var outputCount: Int { layout.batch * layout.outputChannels * layout.pixels }
    }

    static let cases: [Case] = [
        Case(channels: 3, outputs: 5, input: (7, 9), kernel: (3, 3), mask: false, bias: true),
        Case(batch: 2, channels: 6, outputs: 4, groups: 2, offsetGroups: 3, input: (8, 7), kernel: (3, 2), strides: (2, 2),
             pads: [1, 0, 2, 1], mask: true, bias: true),
        Case(channels: 4, outputs: 6, groups: 2, offsetGroups: 4, input: (9, 10), kernel: (2, 3), dilations: (2, 3),
             pads: [1, 2, 1, 2], mask: true, bias: false),
        // Offset groups that straddle convolution groups (3 channels per offset group, 2 per group).
        Case(batch: 3, channels: 6, outputs: 3, groups: 3, offsetGroups: 2, input: (5, 6), kernel: (3, 3), strides: (2, 1),
             pads: [1, 1, 1, 1], mask: false, bias: false),
        Case(channels: 1, outputs: 1, input: (1, 5), kernel: (1, 2), mask: true, bias: true),
        // Enough columns for two panels (depth 288, 1600 pixels).
        Case(channels: 32, outputs: 7, offsetGroups: 2, input: (40, 40), kernel: (3, 3), pads: [1, 1, 1, 1], mask: true, bias: true),
    ]

    @Test(arguments: cases)
    func forwardMatchesReference(_ test: Case) {
        let layout = test.layout
        var random = SeededGenerator(seed: UInt64(test.outputCount % 99_991))
        let input = random.floats(layout.batch * layout.inputChannels * layout.inputHeight * layout.inputWidth)
        let weights = random.floats(layout.outputChannels * layout.depth)
        // Whole and fractional shifts of up to 2.5 pixels: samples inside, across and past the edges.
        let offsets = random.floats(test.offsetCount, in: -2.5...2.5).enumerated().map { $0.offset % 7 == 0 ? $0.element.rounded() : $0.element }
        let mask = test.mask ? random.floats(test.maskCount, in: 0...1) : nil
        let bias = test.bias ? random.floats(layout.outputChannels) : nil
        #expect(DeformableConvolution.panelWidth(layout) < layout.pixels || layout.depth < 100, "the large case spans panels")
        expectForwardMatchesReference(layout, input: input, weights: weights, offsets: offsets, mask: mask, bias: bias)
    }

    @Test func samplesFarOutsideOrNotANumberReadZero() {
        let test = Case(channels: 2, outputs: 3, input: (4, 5), kernel: (2, 2), mask: false, bias: true)
        let layout = test.layout
        var random = SeededGenerator(seed: 7)
        let input = random.floats(layout.batch * layout.inputChannels * 20)
        let weights = random.floats(layout.outputChannels * layout.depth)
        let bias: [Float] = [0.5, -1, 2]
        let hostile: [Float] = [.nan, .infinity, -.infinity, 1e30, -1e30, 5, -5, 6.5, -5.5]
        let offsets = (0..<test.offsetCount).map { hostile[$0 % hostile.count] }
        let output = expectForwardMatchesReference(layout, input: input, weights: weights, offsets: offsets, mask: nil, bias: bias)
        // Every shift puts its sample a pixel or more outside the image (or is not a number), so only the bias is left.
        let expected = (0..<test.outputCount).map { bias[($0 / layout.pixels) % layout.outputChannels] }
        #expect(output == expected)
    }

    /// Runs `forward` at 1, 2 and 3 threads against `reference`, and returns the reference's output.
    @discardableResult
    func expectForwardMatchesReference(_ layout: DeformableConvolutionLayout, input: [Float], weights: [Float], offsets: [Float],
                                       mask: [Float]?, bias: [Float]?) -> [Float] {
        let outputCount = layout.batch * layout.outputChannels * layout.pixels
        var expected = [Float](repeating: .nan, count: outputCount)
        mask.withOptionalPointer { mask in
            bias.withOptionalPointer { bias in
                expected.withUnsafeMutableBufferPointer { out in
                    DeformableConvolution.reference(input: input, weights: weights, offsets: offsets, mask: mask, bias: bias,
                                                    output: out.baseAddress!, layout: layout)
                }
            }
        }
        for threads in [1, 2, 3] {
            let parallelism = Parallelism(threads: threads)
            var actual = [Float](repeating: .nan, count: outputCount)
            let scratchCount = DeformableConvolution.scratchCount(layout, parallelism: parallelism)
            #expect(scratchCount != nil)
            var scratch = [Float](repeating: .nan, count: Swift.max(1, scratchCount ?? 0))
            mask.withOptionalPointer { mask in
                bias.withOptionalPointer { bias in
                    actual.withUnsafeMutableBufferPointer { out in
                        scratch.withUnsafeMutableBufferPointer { scratch in
                            DeformableConvolution.forward(input: input, weights: weights, offsets: offsets, mask: mask, bias: bias,
                                                          output: out.baseAddress!, layout: layout,
                                                          scratch: scratch.baseAddress!, parallelism: parallelism)
                        }
                    }
                }
            }
            let worst = worstError(actual, expected, atol: 1e-5 * Float(layout.depth))
            #expect(worst.excess <= 0, "threads \(threads): at \(worst.index)")
        }
        return expected
    }
}
