import Kernels
import Testing

@Suite struct FourierTransformTests {
    /// Deterministic values in [-1, 1).
    private func signal(_ count: Int, seed: Int) -> [Double] {
        (0..<count).map { Double(($0 * 7919 + seed * 104_729) % 2001) / 1000 - 1 }
    }

    /// The planned transform (radix-2 for powers of two, Bluestein otherwise) against the O(n²)
    /// definition, forward and inverse, over odd, prime and power-of-two lengths.
    @Test(arguments: [1, 2, 3, 4, 5, 7, 8, 12, 13, 16, 31, 64, 97, 100])
    func transformMatchesNaiveDFT(length: Int) {
        let real = signal(length, seed: 1), imaginary = signal(length, seed: 2)
        var workspace = [Double](repeating: .nan, count: FourierTransform.workspaceCount(length: length))
        for inverse in [false, true] {
            let expected = FourierTransform.naiveDFT(real: real, imaginary: imaginary, inverse: inverse)
            var re = real, im = imaginary
            workspace.withUnsafeMutableBufferPointer { space in
                let plan = FourierTransform(length: length, workspace: space.baseAddress!)
                re.withUnsafeMutableBufferPointer { r in
                    im.withUnsafeMutableBufferPointer { i in plan.transform(real: r.baseAddress!, imaginary: i.baseAddress!, inverse: inverse) }
                }
            }
            #expect(re.count == length && im.count == length)
            let worst = zip(re + im, expected.real + expected.imaginary).map { abs($0 - $1) }.max() ?? 0
            #expect(worst < 1e-9 * Double(length), "length \(length), inverse \(inverse): off by \(worst)")
        }
    }

    @Test func workspaceStaysLinearInTheLength() {
        for length in [1, 2, 3, 1000, 1025, 65_537] {
            #expect(FourierTransform.workspaceCount(length: length) <= 24 * length)
        }
    }
}
