import Kernels
import Testing
import TestSupport

@Suite struct TransposedConvolutionTests {
    /// Layouts of the convolutions being transposed (their input is the transposed output).
    static let cases: [ConvolutionCase] = [
        ConvolutionCase(inputChannels: 3, outputChannels: 5, input: [7, 9], kernel: [3, 3], algorithm: .expanded),
        ConvolutionCase(batch: 2, inputChannels: 4, outputChannels: 6, groups: 2, input: [10, 8], kernel: [3, 3],
                        strides: [2, 2], padsBegin: [1, 1], algorithm: .expanded),
        ConvolutionCase(inputChannels: 7, outputChannels: 13, input: [12, 11], kernel: [4, 3], strides: [2, 3],
                        dilations: [2, 1], padsBegin: [1, 0], padsEnd: [2, 1], algorithm: .expanded),
        ConvolutionCase(inputChannels: 1, outputChannels: 1, input: [5], kernel: [3], strides: [2], bias: false,
                        algorithm: .expanded),
        ConvolutionCase(inputChannels: 2, outputChannels: 3, input: [4, 5, 6], kernel: [2, 2, 2], strides: [2, 2, 2],
                        algorithm: .expanded),
        ConvolutionCase(inputChannels: 32, outputChannels: 64, input: [30, 30], kernel: [2, 2], strides: [2, 2],
                        algorithm: .expanded),
    ]

    @Test(arguments: cases)
    func forwardMatchesReference(_ test: ConvolutionCase) {
        let layout = test.layout
        var random = SeededGenerator(seed: UInt64(layout.multiplyAdds % 99_991))
        let input = random.floats(layout.batch * layout.outputChannels * layout.window.outputCount)
        let weights = random.floats(layout.outputChannels * layout.depth)
        let bias = test.bias ? random.floats(layout.inputChannels) : nil
        let outputCount = layout.batch * layout.inputChannels * layout.window.inputCount
        var expected = [Float](repeating: .nan, count: outputCount)
        expected.withUnsafeMutableBufferPointer { out in
            TransposedConvolution.reference(input: input, weights: weights, bias: bias, output: out.baseAddress!, layout: layout)
        }
        for threads in [1, 2, 3] {
            let parallelism = Parallelism(threads: threads)
            var actual = [Float](repeating: .nan, count: outputCount)
            var scratch = [Float](repeating: .nan, count: TransposedConvolution.scratchCount(layout, parallelism: parallelism))
            bias.withOptionalPointer { bias in
                actual.withUnsafeMutableBufferPointer { out in
                    scratch.withUnsafeMutableBufferPointer { scratch in
                        TransposedConvolution.forward(input: input, weights: weights, bias: bias, output: out.baseAddress!,
                                                      layout: layout, scratch: scratch.baseAddress!, parallelism: parallelism)
                    }
                }
            }
            let worst = worstError(actual, expected, atol: 1e-6 * Float(layout.outputChannels))
            #expect(worst.excess <= 0, "threads \(threads): at \(worst.index)")
        }
    }
}
