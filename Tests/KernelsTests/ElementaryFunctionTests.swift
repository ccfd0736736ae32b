import Foundation
import Kernels
import Testing

/// Float's vectorisable exp, tanh, erf and SiLU against the C library in double precision.
@Suite struct ElementaryFunctionTests {
    /// Values across the whole useful range, plus the edges.
    private static let samples: [Float] = stride(from: -110, through: 110, by: 0.0137).map { Float($0) }
        + [0, -0, 1e-8, -1e-8, 1e-4, -3e-4, 0.4999, 0.5, 0.6249, 0.625, 88.7, 88.72, 88.73, -87.3, -103, -104.5]

    @Test func expIsWithinTwoUlps() {
        for x in Self.samples {
            let expected = Float(Foundation.exp(Double(x))), value = Float.exp(x)
            if expected.isInfinite || expected < Float.leastNormalMagnitude {
                #expect(value == expected || abs(value - expected) <= Float.leastNormalMagnitude, "exp(\(x))")
            } else {
                #expect(abs(value - expected) <= 2 * expected.ulp, "exp(\(x)) = \(value), expected \(expected)")
            }
        }
        #expect(Float.exp(.infinity) == .infinity && Float.exp(-.infinity) == 0 && Float.exp(.nan).isNaN)
    }

    /// The logistic function's exp: as exp within 2 ulp for |x| ≤ 80, of x clamped to ±80 beyond.
    @Test func logisticExpIsExpOfClampedArgument() {
        for x in Self.samples + [80, -80, 79.99, -79.99, 80.01, -80.01] {
            let expected = Float(Foundation.exp(Double(min(max(x, -80), 80)))), value = Float.logisticExp(x)
            #expect(abs(value - expected) <= 2 * expected.ulp, "logisticExp(\(x)) = \(value), expected \(expected)")
        }
        #expect(Float.logisticExp(.infinity) == Float.logisticExp(80) && Float.logisticExp(-.infinity) == Float.logisticExp(-80))
        #expect(Float.logisticExp(.nan).isNaN && Double.logisticExp(-100) == Foundation.exp(-100))
    }

    /// tanh within 4 ulp: MLAS's rational function, which ONNX Runtime's Tanh computes, is that
    /// close (4 ulp near ±3.7, at most 2 elsewhere but for a few points).
    @Test func tanhAndErfAreWithinTolerance() {
        for x in Self.samples {
            let tanhExpected = Float(Foundation.tanh(Double(x))), erfExpected = Float(Foundation.erf(Double(x)))
            #expect(abs(Float.tanh(x) - tanhExpected) <= 4 * max(tanhExpected.magnitude.ulp, Float.leastNormalMagnitude), "tanh(\(x))")
            #expect(abs(Float.erf(x) - erfExpected) <= 2e-7 + 1e-6 * abs(erfExpected), "erf(\(x))")
        }
        #expect(Float.tanh(.infinity) == 1 && Float.tanh(-.infinity) == -1 && Float.tanh(.nan).isNaN)
        #expect(Float.erf(.infinity) == 1 && Float.erf(-.infinity) == -1 && Float.erf(.nan).isNaN)
        #expect(Float.tanh(-0.0).sign == .minus && Float.erf(-0.0).sign == .minus && Float.erf(-1e-30) < 0)
    }

    /// SiLU within 2e-7 · max(1, |x|) of x · sigmoid(x) in double precision (MLAS's logistic
    /// function), and a zero (not a value of the wrong sign) below −18; Double keeps the formula
    /// with `exp`.
    @Test func sigmoidLinearIsWithinTolerance() {
        for x in Self.samples + [-18, -18.001, 18, 18.001, -17.99, -1e6, 1e6] {
            let expected = Double(x) / (1 + Foundation.exp(-Double(x))), value = Float.sigmoidLinear(x)
            #expect(abs(Double(value) - expected) <= 2e-7 * max(1, abs(Double(x))), "sigmoidLinear(\(x)) = \(value), expected \(expected)")
            if x <= -18 { #expect(value == 0, "sigmoidLinear(\(x))") }
        }
        #expect(Float.sigmoidLinear(.infinity) == .infinity && Float.sigmoidLinear(.nan).isNaN && Float.sigmoidLinear(-.infinity).isNaN)
        #expect(Float.sigmoidLinear(0) == 0 && Float.sigmoidLinear(1e-30) == 5e-31)
        for x in [-100.0, -3, 0.5, 40] { #expect(Double.sigmoidLinear(x) == x / (1 + Foundation.exp(-x))) }
    }
}
