import Kernels
import Testing
import TestSupport

@Suite struct IntegerConvolutionTests {
    struct Case: Sendable, CustomStringConvertible {
        var batch = 1, channels: Int, outputs: Int, groups = 1
        var input: [Int], kernel: [Int], strides: [Int]? = nil, dilations: [Int]? = nil, pads: [Int]? = nil
        var description: String { "N\(batch) C\(channels) M\(outputs) g\(groups) in \(input) k \(kernel) s \(strides ?? []) d \(dilations ?? []) p \(pads ?? [])" }
    }

    static let cases: [Case] = [
        Case(channels: 3, outputs: 5, input: [7, 9], kernel: [3, 3], pads: [1, 1]),
        Case(batch: 2, channels: 32, outputs: 17, input: [9, 8], kernel: [3, 3], pads: [1, 1]),   // a Winograd layout in float
        Case(channels: 40, outputs: 6, input: [6, 5], kernel: [3, 3], strides: [2, 2], pads: [1, 1]),  // depth 360
        Case(batch: 3, channels: 300, outputs: 7, input: [3, 4], kernel: [1, 1]),                   // pointwise, depth 300
        Case(channels: 12, outputs: 9, groups: 3, input: [5, 7], kernel: [2, 3], dilations: [2, 1], pads: [1, 0]),
        Case(channels: 70, outputs: 4, input: [11], kernel: [5], strides: [3], pads: [2]),           // 1-D, depth 350
        Case(channels: 2, outputs: 3, input: [2, 2], kernel: [3, 3]),                                // no output pixels
    ]

    /// The naive twin: every output as an Int64 sum over its taps (padding skipped), wrapped to int32.
    static func direct(_ c: Case, window: SpatialWindow, x: [Int32], w: [Int32]) -> [Int32] {
        let rank = c.input.count, pixels = window.outputCount, inputCount = window.inputCount, taps = window.kernelCount
        let groupInputs = c.channels / c.groups, groupOutputs = c.outputs / c.groups
        var y = [Int32](repeating: 0, count: c.batch * c.outputs * pixels)
        for n in 0..<c.batch {
            for m in 0..<c.outputs {
                let group = m / groupOutputs
                for pixel in 0..<pixels {
                    // Output coordinates (row-major over the output's axes).
                    var out = [Int](repeating: 0, count: rank), rest = pixel
                    for axis in (0..<rank).reversed() { out[axis] = rest % window.outputSize[axis]; rest /= window.outputSize[axis] }
                    var sum: Int64 = 0
                    for ci in 0..<groupInputs {
                        for tap in 0..<taps {
                            var k = [Int](repeating: 0, count: rank), r = tap
                            for axis in (0..<rank).reversed() { k[axis] = r % c.kernel[axis]; r /= c.kernel[axis] }
                            var offset = 0, inside = true
                            for axis in 0..<rank {
                                let position = out[axis] * window.strides[axis] + k[axis] * window.dilations[axis] - window.padsBegin[axis]
                                if position < 0 || position >= c.input[axis] { inside = false }
                                offset = offset * c.input[axis] + position
                            }
                            guard inside else { continue }
                            let xv = x[(n * c.channels + group * groupInputs + ci) * inputCount + offset]
                            let wv = w[(m * groupInputs + ci) * taps + tap]
                            sum += Int64(xv) * Int64(wv)
                        }
                    }
                    y[(n * c.outputs + m) * pixels + pixel] = Int32(truncatingIfNeeded: sum)
                }
            }
        }
        return y
    }

    @Test(arguments: cases, IntegerGemmTests.Values.allCases)
    func forwardMatchesTheDirectTwin(c: Case, values: IntegerGemmTests.Values) {
        let rank = c.input.count
        let (window, _) = makeWindow(input: c.input, kernel: c.kernel, strides: c.strides, dilations: c.dilations, padsBegin: c.pads)
        let layout = ConvolutionLayout(batch: c.batch, inputChannels: c.channels, outputChannels: c.outputs, groups: c.groups, window: window)
        var random = SeededGenerator(seed: UInt64(c.channels * 1000 + c.outputs * 10 + rank))
        let x = IntegerGemmTests.operands(values, c.batch * c.channels * window.inputCount, sign: 1, &random)
        let w = IntegerGemmTests.operands(values, c.outputs * layout.depth, sign: -1, &random)
        let xFloats = x.map(Float.init), wFloats = w.map(Float.init)
        let expected = Self.direct(c, window: window, x: x, w: w)
        let chunks = wFloats.withUnsafeBufferPointer {
            IntegerConvolution.depthChunks(weights: $0.baseAddress!, layout: layout, inputMagnitude: IntegerGemm.largestCenteredMagnitude)
        }
        if values == .extreme && layout.depth > 258 {
            // Every partial sum at its largest: the depth needs chunks of 258.
            #expect(chunks.allSatisfy { $0.count == (layout.depth + 257) / 258 }, "\(c)")
        }
        for threads in [1, 2, 3] {
            var actual = [Int32](repeating: 7, count: expected.count)
            var scratch = [Float](repeating: .nan, count: IntegerConvolution.scratchCount(layout))
            actual.withUnsafeMutableBufferPointer { out in
                scratch.withUnsafeMutableBufferPointer { scratch in
                    IntegerConvolution.forward(input: xFloats, weights: wFloats, output: out.baseAddress!, layout: layout, chunks: chunks,
                                               scratch: scratch.baseAddress!, parallelism: Parallelism(threads: threads))
                }
            }
            #expect(actual == expected, "\(c) threads \(threads)")
        }
    }

    /// Depth chunks over the weights' rows: each row's magnitude sum over a chunk, times the input's
    /// magnitude, stays below 2^24, and the chunks cover the depth in order.
    @Test func depthChunksKeepTheBound() {
        var random = SeededGenerator(seed: 5)
        let (m, k) = (6, 5000)
        let a = (0..<(m * k)).map { _ in Float(Int32.random(in: -128...127, using: &random)) }
        let chunks = a.withUnsafeBufferPointer { IntegerGemm.depthChunks(a: $0.baseAddress!, m: m, k: k, lda: k, rightMagnitude: 255) }
        #expect(chunks.first?.lowerBound == 0 && chunks.last?.upperBound == k)
        #expect(zip(chunks, chunks.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
        #expect(chunks.count > 1)
        for chunk in chunks {
            for i in 0..<m {
                let sum = chunk.reduce(0.0) { $0 + Double(abs(a[i * k + $1])) }
                #expect(sum * 255 < IntegerGemm.exactLimit)
            }
        }
    }
}
