import Kernels
import Testing
import TestSupport

@Suite struct NormalizationTests {
    /// Layer (one segment per element), instance (one per row) and group (one per channel) layouts.
    @Test(arguments: [(rows: 6, length: 35, segments: 35, rowPeriod: 1), (rows: 6, length: 35, segments: 1, rowPeriod: 3),
                      (rows: 4, length: 36, segments: 3, rowPeriod: 2), (rows: 1, length: 1, segments: 1, rowPeriod: 1)])
    func normalizeRowsMatchesNaive(rows: Int, length: Int, segments: Int, rowPeriod: Int) {
        var generator = SeededGenerator(seed: 8)
        let x = generator.floats(rows * length, in: -3...3)
        let scale = generator.floats(rowPeriod * segments), bias = generator.floats(rowPeriod * segments)
        for withBias in [false, true] { for centered in [true, false] {
            var y = [Float](repeating: .nan, count: x.count)
            var mean = [Float](repeating: .nan, count: rows), inverse = mean
            y.withUnsafeMutableBufferPointer { y in
                mean.withUnsafeMutableBufferPointer { mean in
                    inverse.withUnsafeMutableBufferPointer { inverse in
                        bias.withUnsafeBufferPointer { bias in
                            Normalization.normalizeRows(x, into: y.baseAddress!, rows: rows, length: length, epsilon: 1e-5,
                                                        scale: scale, bias: withBias ? bias.baseAddress : nil,
                                                        segments: segments, rowPeriod: rowPeriod, mean: mean.baseAddress,
                                                        inverseDeviation: inverse.baseAddress, centered: centered,
                                                        parallelism: Parallelism(threads: 2))
                        }
                    }
                }
            }
            let expected = Normalization.naiveNormalizeRows(x, rows: rows, length: length, epsilon: 1e-5, scale: scale,
                                                            bias: withBias ? bias : nil, segments: segments, rowPeriod: rowPeriod,
                                                            centered: centered)
            #expect(isClose(y, expected, relative: 1e-3, absolute: 1e-4))
            #expect(isClose(mean, (0..<rows).map { r in
                centered ? x[(r * length)..<((r + 1) * length)].reduce(0, +) / Float(length) : 0
            }))
        } }
    }

    @Test func channelAffineAndLocalResponse() {
        var generator = SeededGenerator(seed: 9)
        let x = generator.floats(2 * 5 * 7)
        var y = [Float](repeating: .nan, count: x.count)
        let scale: [Float] = [1, 2, 3, 4, 5], shift: [Float] = [0, 1, 0, 1, 0]
        y.withUnsafeMutableBufferPointer { y in
            Normalization.channelAffine(x, into: y.baseAddress!, outer: 2, channels: 5, inner: 7, scale: scale, shift: shift,
                                        parallelism: Parallelism(threads: 2))
        }
        #expect(y == x.indices.map { x[$0] * scale[$0 / 7 % 5] + shift[$0 / 7 % 5] })
        // With the activation after it in the same pass (ReLU in the loop, others per run), over
        // runs that split rows between two threads (inner 7 × 10 rows, grain permitting).
        for activation in [Activation.relu, .leakyRelu(alpha: 0.1), .clip(min: -0.5, max: 0.5), .sigmoid] {
            var z = [Float](repeating: .nan, count: x.count)
            var input = x
            input[3] = .nan
            z.withUnsafeMutableBufferPointer { z in
                Normalization.channelAffine(input, into: z.baseAddress!, outer: 2, channels: 5, inner: 7, scale: scale,
                                            shift: shift, activation: activation, parallelism: Parallelism(threads: 2))
            }
            let expected = input.indices.map { activation(input[$0] * scale[$0 / 7 % 5] + shift[$0 / 7 % 5]) }
            #expect(z[3].isNaN && z.indices.allSatisfy { $0 == 3 || z[$0] == expected[$0] }, "\(activation)")
        }
        for size in [1, 2, 3, 4, 5, 8] {
            y.withUnsafeMutableBufferPointer { y in
                Normalization.localResponse(x, into: y.baseAddress!, batches: 2, channels: 5, inner: 7, size: size,
                                            alpha: 1e-2, beta: 0.75, bias: 1, parallelism: Parallelism(threads: 2))
            }
            let expected = Normalization.naiveLocalResponse(x, batches: 2, channels: 5, inner: 7, size: size,
                                                            alpha: 1e-2, beta: 0.75, bias: 1)
            #expect(isClose(y, expected), "size \(size)")
        }
    }
}
