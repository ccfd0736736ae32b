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

    @Test func doublesAndLargeValues() {
        let input: [Double] = [1000, 1001, 1002]
        var output = [Double](repeating: 0, count: 3)
        output.withUnsafeMutableBufferPointer { output in
            Softmax.softmax(input, into: output.baseAddress!, outer: 1, length: 3, inner: 1, logarithm: false, parallelism: .serial)
        }
        #expect(isClose(output, [0.09003057, 0.24472847, 0.66524096]))
    }
}
