import Kernels
import Testing
import TestSupport

@Suite struct SoftmaxTests {
    @Test(arguments: [false, true])
    func matchesNaiveOverRandomShapes(logarithm: Bool) {
        var generator = SeededGenerator(seed: 7)
        for trial in 0..<50 {
            let outer = Int.random(in: 1...5, using: &generator), length = Int.random(in: 1...70, using: &generator)
            let inner = trial % 2 == 0 ? 1 : Int.random(in: 2...7, using: &generator)
            let input = generator.floats(outer * length * inner, in: -20...20)
            var output = [Float](repeating: .nan, count: input.count)
            output.withUnsafeMutableBufferPointer { output in
                Softmax.softmax(input, into: output.baseAddress!, outer: outer, length: length, inner: inner,
                                logarithm: logarithm, parallelism: Parallelism(threads: 2))
            }
            let expected = Softmax.naive(input, outer: outer, length: length, inner: inner, logarithm: logarithm)
            #expect(isClose(output, expected), "[\(outer), \(length), \(inner)]")
        }
    }

    /// Float rows along the last axis run the vectorised `floatRow`; these rows reach its edges:
    /// differences past ln(FLT_MIN) and -∞ entries give exact zeros (no denormals), and rows whose
    /// maximum is NaN or infinite keep the generic rule (every output NaN). Lengths 1-40 put the
    /// special values in vectors and in the tail alike.
    @Test(arguments: [false, true])
    func floatRowsAtTheEdges(logarithm: Bool) {
        var generator = SeededGenerator(seed: 11)
        let specials: [Float] = [-.infinity, -1e30, -87.4, -87.3, -88, -200, 0.5]
        for length in 1...40 {
            var input = generator.floats(length, in: -10...10)
            for k in 0..<min(3, length) { input[(k * 7 + length) % length] = specials[(length + k) % specials.count] }
            if input.allSatisfy({ !$0.isFinite }) { input[0] = 1 }
            let output = run(input, logarithm: logarithm)
            let expected = Softmax.naive(input.map(Double.init), outer: 1, length: length, inner: 1, logarithm: logarithm)
            for j in 0..<length {
                let want = expected[j]
                if logarithm {
                    if want == -.infinity { #expect(output[j] == -.infinity, "length \(length) at \(j)") } else {
                        #expect(abs(Double(output[j]) - want) <= 1e-5 + 1e-5 * abs(want), "length \(length) at \(j)")
                    }
                } else if want < Double(Float.leastNormalMagnitude) {
                    #expect(output[j] == 0 || abs(Double(output[j]) - want) <= 1e-38, "length \(length) at \(j): \(output[j])")
                    #expect(output[j] == 0 || output[j].isNormal, "no denormal results: length \(length) at \(j)")
                } else {
                    #expect(abs(Double(output[j]) - want) <= 1e-6 + 1e-5 * want, "length \(length) at \(j)")
                }
            }
            // In place (not for the logarithm), as the kernel benchmark runs it.
            if !logarithm {
                var inPlace = input
                inPlace.withUnsafeMutableBufferPointer { buffer in
                    Softmax.softmax(UnsafePointer(buffer.baseAddress!), into: buffer.baseAddress!, outer: 1, length: length,
                                    inner: 1, logarithm: false, parallelism: .serial)
                }
                #expect(inPlace == output, "in place, length \(length)")
            }
            // A NaN or +∞ anywhere makes every output NaN, as the generic rows do.
            for poison in [Float.nan, .infinity] {
                var bad = input
                bad[(length * 5) % length] = poison
                #expect(run(bad, logarithm: logarithm).allSatisfy { $0.isNaN }, "\(poison) in a row of \(length)")
            }
        }
        // A row of -∞ alone has no finite maximum either: NaN, as before.
        #expect(run([Float](repeating: -.infinity, count: 9), logarithm: logarithm).allSatisfy { $0.isNaN })
    }

    private func run(_ input: [Float], logarithm: Bool) -> [Float] {
        var output = [Float](repeating: 7, count: input.count)
        output.withUnsafeMutableBufferPointer { output in
            Softmax.softmax(input, into: output.baseAddress!, outer: 1, length: input.count, inner: 1,
                            logarithm: logarithm, parallelism: .serial)
        }
        return output
    }

    @Test func doublesAndLargeValues() {
        let input: [Double] = [1000, 1001, 1002]
        var output = [Double](repeating: 0, count: 3)
        output.withUnsafeMutableBufferPointer { output in
            Softmax.softmax(input, into: output.baseAddress!, outer: 1, length: 3, inner: 1, logarithm: false, parallelism: .serial)
        }
        #expect(isClose(output, [0.09003057, 0.24472847, 0.66524096]))
    }
}
