import Foundation
import Kernels
import Testing
import TestSupport

@Suite struct ActivationTests {
    private static let activations: [Activation] = [
        .relu, .leakyRelu(alpha: 0.1), .clip(min: -0.5, max: 0.5), .sigmoid, .tanh, .hardSigmoid(alpha: 0.2, beta: 0.5),
        .hardSwish, .elu(alpha: 1.5), .selu(alpha: 1.67, gamma: 1.05), .celu(alpha: 2), .softplus, .softsign,
        .thresholdedRelu(alpha: 0.3), .gelu, .geluTanh, .mish, .silu,
        .quantizeDequantize(scale: 0.05, zeroPoint: 128, low: 0, high: 255), .quantizeDequantize(scale: 0.02, zeroPoint: -3, low: -128, high: 127),
    ]

    /// The vectorised loops agree with the scalar formula, for float and double.
    @Test(arguments: activations)
    func applyMatchesScalarFormula(activation: Activation) {
        var generator = SeededGenerator(seed: 10)
        let x = generator.floats(101, in: -6...6) + [0, -0, 100, -100]
        var y = [Float](repeating: .nan, count: x.count)
        y.withUnsafeMutableBufferPointer { activation.apply(x, into: $0.baseAddress!, count: x.count) }
        #expect(y == x.map { activation($0) })
        // In place (the epilogues' case) is its own loop.
        var inPlace = x
        inPlace.withUnsafeMutableBufferPointer { activation.apply($0.baseAddress!, count: x.count) }
        #expect(inPlace == y)
        let doubles = x.map(Double.init)
        var z = [Double](repeating: .nan, count: x.count)
        z.withUnsafeMutableBufferPointer { activation.apply(doubles, into: $0.baseAddress!, count: x.count) }
        #expect(isClose(z.map(Float.init), y, relative: 1e-5, absolute: 1e-6))
    }

    @Test func knownValues() {
        #expect(abs(Activation.gelu(1) - 0.8413447) < 1e-6)
        #expect(abs(Activation.geluTanh(1) - 0.8411920) < 1e-6)
        #expect(abs(Activation.mish(1) - 0.8650984) < 1e-6)
        // -100 · e⁻¹⁰⁰ is -3.7e-42; Float's SiLU makes it -0 (its sigmoid is 0 below -18), both zero to any tolerance.
        #expect(abs(Activation.silu(1) - 0.7310586) < 1e-6 && Activation.silu(-100) <= 0 && Activation.silu(-100) > -1e-32)
        #expect(Activation.sigmoid(-100) < 1e-34 && Activation.sigmoid(100) == 1 && Activation.sigmoid(.nan).isNaN)
        #expect(Activation.silu(.nan).isNaN && Activation.silu(.infinity) == .infinity)
        #expect(Activation.softplus(100) == 100 && Activation.softplus(-100) >= 0)
        #expect(abs(Activation.selu(alpha: 1.67326, gamma: 1.0507)(-1) - (-1.1113307)) < 1e-5)
    }
}
