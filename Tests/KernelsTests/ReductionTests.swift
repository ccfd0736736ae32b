import Kernels
import Tensors
import Testing
import TestSupport

/// True when every pair is within rtol 1e-4 / atol 1e-5 (or both are the same non-finite value).
func isClose<T: BinaryFloatingPoint>(_ a: [T], _ b: [T], relative: T = 1e-4, absolute: T = 1e-5) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { x, y in
        x == y || (x.isNaN && y.isNaN) || abs(x - y) <= absolute + relative * abs(y)
    }
}

@Suite struct ReductionTests {
    private static let kinds: [Reduction.Kind] = [.sum, .sumOfSquares, .sumOfAbsolutes, .product, .maximum, .minimum]

    @Test(arguments: kinds)
    func floatReductionsMatchNaive(kind: Reduction.Kind) {
        var generator = SeededGenerator(seed: 3)
        for trial in 0..<60 {
            let outer = Int.random(in: 1...4, using: &generator), length = Int.random(in: 0...37, using: &generator)
            let inner = trial % 3 == 0 ? 1 : Int.random(in: 1...9, using: &generator)
            let input = generator.floats(outer * length * inner, in: 0.5...1.5)
            var output = [Float](repeating: .nan, count: outer * inner)
            output.withUnsafeMutableBufferPointer { output in
                Reduction.reduce(kind, input, into: output.baseAddress!, outer: outer, length: length, inner: inner,
                                 parallelism: Parallelism(threads: 2))
            }
            let expected = Reduction.naiveReduce(kind, input, outer: outer, length: length, inner: inner)
            #expect(isClose(output, expected), "\(kind) [\(outer), \(length), \(inner)]")
        }
    }

    @Test func integerReductionsWrapAndMatchNaive() {
        var generator = SeededGenerator(seed: 4)
        let input = (0..<(3 * 11 * 5)).map { _ in Int32.random(in: -1000...1000, using: &generator) }
        for kind in Self.kinds {
            var output = [Int32](repeating: 0, count: 15)
            output.withUnsafeMutableBufferPointer { output in
                Reduction.reduce(kind, input, into: output.baseAddress!, outer: 3, length: 11, inner: 5, parallelism: .serial)
            }
            #expect(output == Reduction.naiveReduce(kind, input, outer: 3, length: 11, inner: 5), "\(kind)")
        }
    }

    @Test func emptyAxisGivesIdentity() {
        var output = [Float](repeating: 0, count: 2)
        output.withUnsafeMutableBufferPointer { output in
            Reduction.reduce(.maximum, [Float](), into: output.baseAddress!, outer: 2, length: 0, inner: 1, parallelism: .serial)
        }
        #expect(output == [-.infinity, -.infinity])
        output.withUnsafeMutableBufferPointer { output in
            Reduction.logSumExp([Float](), into: output.baseAddress!, outer: 1, length: 0, inner: 2, parallelism: .serial)
        }
        #expect(output == [-.infinity, -.infinity])
    }

    @Test func logSumExpIsStableAndMatchesNaive() {
        var generator = SeededGenerator(seed: 5)
        for inner in [1, 3] {
            let input = generator.floats(2 * 17 * inner, in: -5...5)
            var output = [Float](repeating: .nan, count: 2 * inner)
            output.withUnsafeMutableBufferPointer { output in
                Reduction.logSumExp(input, into: output.baseAddress!, outer: 2, length: 17, inner: inner,
                                    parallelism: Parallelism(threads: 2))
            }
            #expect(isClose(output, Reduction.naiveLogSumExp(input, outer: 2, length: 17, inner: inner)))
        }
        var large = [Float](repeating: 0, count: 1)
        large.withUnsafeMutableBufferPointer { output in
            Reduction.logSumExp([1000, 1000] as [Float], into: output.baseAddress!, outer: 1, length: 2, inner: 1, parallelism: .serial)
        }
        #expect(abs(large[0] - (1000 + Float.log(2))) < 1e-3)
    }

    @Test func argExtremumMatchesNaiveWithTies() {
        var generator = SeededGenerator(seed: 6)
        for trial in 0..<40 {
            let outer = Int.random(in: 1...3, using: &generator), length = Int.random(in: 1...9, using: &generator)
            let inner = Int.random(in: 1...4, using: &generator)
            // Few distinct values so ties are common.
            let input = (0..<(outer * length * inner)).map { _ in Int64.random(in: 0...3, using: &generator) }
            let largest = trial % 2 == 0, selectLast = trial % 4 < 2
            var output = [Int64](repeating: -1, count: outer * inner)
            output.withUnsafeMutableBufferPointer { output in
                Reduction.argExtremum(input, into: output.baseAddress!, outer: outer, length: length, inner: inner,
                                      largest: largest, selectLast: selectLast, parallelism: Parallelism(threads: 2))
            }
            #expect(output == Reduction.naiveArgExtremum(input, outer: outer, length: length, inner: inner,
                                                         largest: largest, selectLast: selectLast))
        }
    }
}
