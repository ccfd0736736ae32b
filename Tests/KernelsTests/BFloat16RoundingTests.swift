import Kernels
import Testing
import TestSupport

@Suite struct BFloat16RoundingTests {
    @Test func softmaxRoundsAsTheReference() {
        // onnx.reference's Softmax over this bfloat16 row (numpy with ml_dtypes); one float rounding
        // gives 0.05859375, 0.040283203125 and 0.12451171875 at positions 0, 1 and 6.
        let input: [Float] = [-1, -1.375, 0.75, 0.875, -1.875, -1.625, -0.25]
        let expected: [Float] = [0.058837890625, 0.04052734375, 0.337890625, 0.3828125, 0.0245361328125, 0.031494140625, 0.1240234375]
        #expect(softmax(input, outer: 1, length: 7, inner: 1) == expected)
        // The same row along a middle axis ([1, 7, 2], both columns equal).
        let strided = softmax(input.flatMap { [$0, $0] }, outer: 1, length: 7, inner: 2)
        #expect(strided == expected.flatMap { [$0, $0] })
    }

    @Test func longRowsSumInFloat() {
        // 300 equal scores: a running bfloat16 sum of 300 ones stops at 256 (256 + 1 rounds to 256);
        // past `runningSumLimit` the sum is float, so each probability is 1/300 rounded.
        let output = softmax([Float](repeating: 0.5, count: 300), outer: 1, length: 300, inner: 1)
        #expect(BFloat16Rounding.runningSumLimit < 256)
        #expect(output == [Float](repeating: BFloat16Rounding.round(1 / 300), count: 300))
        #expect(BFloat16Rounding.round(1 / 300) != BFloat16Rounding.round(1 / 256))
    }

    @Test func roundingIsToNearestEven() {
        // bfloat16 steps by 1/128 above 1.
        #expect(BFloat16Rounding.round(1.00390625) == 1)  // 1 + 1/256, a tie: to the even mantissa
        #expect(BFloat16Rounding.round(1.01171875) == 1.015625)  // 1 + 3/256, a tie: to the even mantissa, upward
        #expect(BFloat16Rounding.round(1.005) == 1.0078125)
        #expect(BFloat16Rounding.round(-.infinity) == -.infinity)
    }

    private func softmax(_ input: [Float], outer: Int, length: Int, inner: Int) -> [Float] {
        var output = [Float](repeating: .nan, count: input.count)
        output.withUnsafeMutableBufferPointer { output in
            BFloat16Rounding.softmax(input, into: output.baseAddress!, outer: outer, length: length, inner: inner,
                                     parallelism: Parallelism(threads: 2))
        }
        return output
    }
}
