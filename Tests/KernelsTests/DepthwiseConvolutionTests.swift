import Kernels
import Testing
import TestSupport

/// Both depthwise kernels, whichever `forward` would choose, against `Convolution.reference`.
@Suite struct DepthwiseConvolutionTests {
    /// Odd channel counts (a last block of fewer than eight), planes from 1×1 to 33×31, kernels 3,
    /// 5 and 7, strides 1 to 3, dilation 2, asymmetric pads, multipliers 2 and 3, 1-D, and every
    /// activation the epilogue fuses (and two it applies after the additions).
    static let cases: [ConvolutionCase] = [
        ConvolutionCase(inputChannels: 13, outputChannels: 13, groups: 13, input: [1, 1], kernel: [3, 3],
                        padsBegin: [1, 1], padsEnd: [1, 1], algorithm: .depthwise),
        ConvolutionCase(batch: 2, inputChannels: 21, outputChannels: 21, groups: 21, input: [2, 3], kernel: [3, 3],
                        padsBegin: [1, 1], padsEnd: [1, 1], activation: .relu, algorithm: .depthwise),
        ConvolutionCase(inputChannels: 9, outputChannels: 9, groups: 9, input: [3, 3], kernel: [3, 3], strides: [2, 2],
                        padsBegin: [1, 1], padsEnd: [1, 1], activation: .clip(min: 0, max: 6), algorithm: .depthwise),
        ConvolutionCase(inputChannels: 17, outputChannels: 17, groups: 17, input: [4, 5], kernel: [5, 5],
                        padsBegin: [2, 1], padsEnd: [1, 2], activation: .silu, algorithm: .depthwise),
        ConvolutionCase(inputChannels: 8, outputChannels: 8, groups: 8, input: [5, 5], kernel: [5, 5], strides: [2, 2],
                        padsBegin: [2, 2], padsEnd: [2, 2], residual: true, activation: .hardSwish, algorithm: .depthwise),
        ConvolutionCase(inputChannels: 11, outputChannels: 11, groups: 11, input: [6, 6], kernel: [7, 7],
                        padsBegin: [3, 3], padsEnd: [3, 3], activation: .sigmoid, algorithm: .depthwise),
        ConvolutionCase(batch: 3, inputChannels: 16, outputChannels: 16, groups: 16, input: [7, 7], kernel: [5, 5],
                        padsBegin: [2, 2], padsEnd: [2, 2], residual: true, activation: .silu, algorithm: .depthwise),
        ConvolutionCase(inputChannels: 20, outputChannels: 20, groups: 20, input: [7, 7], kernel: [3, 3],
                        dilations: [2, 2], padsBegin: [2, 2], padsEnd: [2, 2],
                        activation: .hardSigmoid(alpha: 0.2, beta: 0.5), algorithm: .depthwise),
        ConvolutionCase(inputChannels: 5, outputChannels: 10, groups: 5, input: [7, 6], kernel: [3, 3], strides: [2, 2],
                        padsBegin: [1, 0], padsEnd: [0, 1], activation: .gelu, algorithm: .depthwise),
        ConvolutionCase(batch: 2, inputChannels: 7, outputChannels: 14, groups: 7, input: [14, 14], kernel: [5, 5],
                        padsBegin: [2, 2], padsEnd: [2, 2], activation: .geluTanh, algorithm: .depthwise),
        ConvolutionCase(inputChannels: 12, outputChannels: 12, groups: 12, input: [14, 14], kernel: [5, 5], strides: [2, 2],
                        padsBegin: [2, 2], padsEnd: [2, 2], activation: .silu, algorithm: .depthwise),
        ConvolutionCase(inputChannels: 24, outputChannels: 24, groups: 24, input: [15, 13], kernel: [7, 7], strides: [2, 2],
                        dilations: [2, 2], padsBegin: [6, 5], padsEnd: [5, 6], activation: .leakyRelu(alpha: 0.1),
                        algorithm: .depthwise),
        ConvolutionCase(inputChannels: 10, outputChannels: 10, groups: 10, input: [28, 28], kernel: [3, 3],
                        padsBegin: [1, 1], padsEnd: [1, 1], bias: false, activation: .tanh, algorithm: .depthwise),
        ConvolutionCase(inputChannels: 3, outputChannels: 9, groups: 3, input: [33, 31], kernel: [3, 3], strides: [2, 2],
                        padsBegin: [1, 1], residual: true, activation: .relu, algorithm: .depthwise),
        ConvolutionCase(inputChannels: 11, outputChannels: 11, groups: 11, input: [20], kernel: [5], padsBegin: [2],
                        padsEnd: [2], activation: .hardSwish, algorithm: .depthwise),
        ConvolutionCase(inputChannels: 9, outputChannels: 9, groups: 9, input: [9, 9], kernel: [3, 3], strides: [1, 2],
                        dilations: [2, 1], padsBegin: [0, 2], padsEnd: [3, 1], activation: .mish, algorithm: .depthwise),
        ConvolutionCase(inputChannels: 6, outputChannels: 6, groups: 6, input: [2, 2], kernel: [5, 5],
                        padsBegin: [2, 2], padsEnd: [2, 2], residual: true, algorithm: .depthwise),
    ]

    /// The interleaved kernel takes every plane whose buffers fit, except larger stride-1 ones
    /// with a multiplier; the planar one takes the rest.
    @Test func routeFollowsPlaneSizeStrideAndMultiplier() {
        func route(_ size: Int, kernel: Int, stride: Int = 1, multiplier: Int = 1) -> Convolution.DepthwiseRoute {
            let test = ConvolutionCase(inputChannels: 96, outputChannels: 96 * multiplier, groups: 96,
                                       input: [size, size], kernel: [kernel, kernel], strides: [stride, stride],
                                       padsBegin: [kernel / 2, kernel / 2], padsEnd: [kernel / 2, kernel / 2],
                                       algorithm: .depthwise)
            return Convolution.depthwiseRoute(test.layout)
        }
        #expect(route(7, kernel: 5) == .interleaved)
        #expect(route(14, kernel: 3) == .interleaved)
        #expect(route(56, kernel: 3) == .interleaved)
        #expect(route(56, kernel: 3, stride: 2) == .interleaved)
        #expect(route(14, kernel: 5, multiplier: 2) == .interleaved)
        #expect(route(28, kernel: 3, stride: 2, multiplier: 2) == .interleaved)
        #expect(route(28, kernel: 3, multiplier: 2) == .planar)
        #expect(route(112, kernel: 3) == .planar)
        #expect(route(112, kernel: 3, stride: 2) == .planar)
    }

    @Test(arguments: cases + ConvolutionTests.cases.filter { $0.algorithm == .depthwise })
    func bothRoutesMatchReference(_ test: ConvolutionCase) {
        let layout = test.layout
        #expect(layout.algorithm == .depthwise)
        let (input, weights, bias, residual, expected) = test.randomProblem()
        let outputCount = expected.count
        for route in [Convolution.DepthwiseRoute.planar, .interleaved] {
            for threads in [1, 2, 3] {
                var actual = [Float](repeating: .nan, count: outputCount)
                bias.withOptionalPointer { bias in
                    residual.withOptionalPointer { residual in
                        actual.withUnsafeMutableBufferPointer { out in
                            Convolution.depthwise(input: input, weights: weights, output: out.baseAddress!, layout: layout,
                                                  epilogue: Epilogue(bias: bias.map { .perRow($0) }, residual: residual,
                                                                     activation: test.activation),
                                                  route: route, parallelism: Parallelism(threads: threads))
                        }
                    }
                }
                let worst = worstError(actual, expected, atol: 1e-6 * Float(layout.depth))
                #expect(worst.excess <= 0, "\(route), threads \(threads): at \(worst.index)")
            }
        }
    }
}
