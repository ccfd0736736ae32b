import Kernels
import Testing
import TestSupport

@Suite struct ResampleTests {
    @Test(arguments: [1, 2])
    func axisMatchesTheReference(threads: Int) {
        var random = SeededGenerator(seed: 5)
        for _ in 0..<100 {
            let outer = Int.random(in: 1...4, using: &random), inner = [1, 2, 7, 33].randomElement(using: &random)!
            let inputWidth = Int.random(in: 1...9, using: &random), outputWidth = Int.random(in: 0...19, using: &random)
            let taps = Int.random(in: 1...6, using: &random)
            let source = random.floats(outer * inputWidth * inner)
            let indices = (0..<(outputWidth * taps)).map { _ in Int.random(in: 0..<inputWidth, using: &random) }
            let weights = random.floats(outputWidth * taps)
            var fast = [Float](repeating: .nan, count: outer * outputWidth * inner), reference = fast
            Resample.axis(source: source, target: &fast, outer: outer, inputWidth: inputWidth, outputWidth: outputWidth,
                          inner: inner, taps: taps, indices: indices, weights: weights, parallelism: Parallelism(threads: threads))
            Resample.axisReference(source: source, target: &reference, outer: outer, inputWidth: inputWidth,
                                   outputWidth: outputWidth, inner: inner, taps: taps, indices: indices, weights: weights)
            #expect(zip(fast, reference).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) })
        }
    }
}
