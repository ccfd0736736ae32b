import Engine
import Kernels
import Tensors
import Testing

private typealias Ops = TensorOpsHarness

@Suite struct SignalOperatorTests {
    /// A real signal of `count` samples as [1, count, 1].
    private func real(_ values: [Float]) -> Tensor { Tensor(values, shape: [1, values.count, 1]) }

    @Test func dftOfOddLengthsMatchesTheDefinition() throws {
        for n in [5, 6, 9] {
            let values = (0..<n).map { Float(($0 * 37) % 11) - 5 }
            let y = try Ops.one("DFT", opset: 20, [real(values)])
            let expected = FourierTransform.naiveDFT(real: values.map(Double.init), imaginary: Array(repeating: 0, count: n), inverse: false)
            let interleaved = (0..<n).flatMap { [Float(expected.real[$0]), Float(expected.imaginary[$0])] }
            #expect(y.shape == [1, n, 2] && Ops.close(y.scalars(as: Float.self), interleaved))
            // The inverse of the full spectrum gives the signal back; onesided inverse (irfft) of
            // the onesided spectrum too.
            let back = try Ops.one("DFT", opset: 20, [y], ["inverse": .int(1)])
            #expect(Ops.close(back.scalars(as: Float.self), values.flatMap { [$0, 0] }))
            let half = try Ops.one("DFT", opset: 20, [real(values)], ["onesided": .int(1)])
            #expect(half.shape == [1, n / 2 + 1, 2])
            let irfft = try Ops.one("DFT", opset: 20, [half, Ops.int64s([n])], ["inverse": .int(1), "onesided": .int(1)])
            #expect(irfft.shape == [1, n, 1] && Ops.close(irfft.scalars(as: Float.self), values))
        }
    }

    @Test func dftChecksLengthAndAxis() {
        let x = real([1, 2, 3])
        #expect(Ops.error { try Ops.one("DFT", opset: 20, [x, Ops.int64s([0])]) }?.isInvalidArgument("dft_length 0") == true)
        #expect(Ops.error { try Ops.one("DFT", opset: 20, [x, Ops.int64s([-4])]) }?.isInvalidArgument("dft_length -4") == true)
        #expect(Ops.error { try Ops.one("DFT", opset: 20, [x, nil, Ops.int64s([2])]) }?.isInvalidArgument("real/imaginary axis") == true)
        #expect(Ops.error { try Ops.one("DFT", opset: 20, [x, Ops.int64s([1 << 40])]) }?.isInvalidArgument("out of range") == true)
        #expect(Ops.error { try Ops.one("DFT", opset: 20, [Tensor([1, 2, 3] as [Float], shape: [1, 1, 3])]) }?
            .isInvalidArgument("1 or 2") == true)
    }

    @Test func stftFramesAndChecks() throws {
        let values = (0..<10).map { Float($0 % 4) }
        let window = Tensor([0.5, 1, 0.5] as [Float], shape: [3])
        let y = try Ops.one("STFT", opset: 17, [real(values), Ops.int64s([3]), window])
        #expect(y.shape == [1, 3, 2, 2])
        // Frame 1 starts at sample 3: 3, 0, 1 weighted 1.5 + 0 + 0.5 at frequency 0.
        #expect(Ops.close([y.scalars(as: Float.self)[4]], [2]))
        #expect(Ops.error { try Ops.one("STFT", opset: 17, [real(values), Ops.int64s([0]), window]) }?.isInvalidArgument("frame_step") == true)
        #expect(Ops.error { try Ops.one("STFT", opset: 17, [real(values), Ops.int64s([1]), nil, Ops.int64s([11])]) }?
            .isInvalidArgument("frame_length 11") == true)
    }

    @Test func melWeightMatrixChecksItsEdges() throws {
        let inputs = { (bins: Int, upper: Float) -> [Tensor?] in
            [Ops.int64s([bins]), Ops.int64s([16]), Ops.int64s([8000]), Tensor([0] as [Float], shape: [1]), Tensor([upper] as [Float], shape: [1])]
        }
        let y = try Ops.one("MelWeightMatrix", opset: 17, inputs(4, 4000))
        #expect(y.shape == [9, 4] && y.dataType == .float)
        #expect(Ops.error { try Ops.one("MelWeightMatrix", opset: 17, inputs(4, 9000)) }?.isInvalidArgument("outside") == true)
        #expect(Ops.error { try Ops.one("MelWeightMatrix", opset: 17, inputs(0, 4000)) }?.isInvalidArgument("must be positive") == true)
    }
}
