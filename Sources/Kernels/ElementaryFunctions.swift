#if canImport(Glibc)
import Glibc
#endif
public import Tensors

/// A floating-point element type with the C library's elementary functions, so kernels written
/// once generically serve float, double and float16 (float16 computes in float).
public protocol RealElement: FloatingElement, ArithmeticElement {
    static func exp(_ x: Self) -> Self
    static func log(_ x: Self) -> Self
    /// `log(1 + x)`, accurate near 0.
    static func log1p(_ x: Self) -> Self
    static func pow(_ x: Self, _ y: Self) -> Self
    static func erf(_ x: Self) -> Self
    static func sin(_ x: Self) -> Self
    static func cos(_ x: Self) -> Self
    static func tan(_ x: Self) -> Self
    static func asin(_ x: Self) -> Self
    static func acos(_ x: Self) -> Self
    static func atan(_ x: Self) -> Self
    static func sinh(_ x: Self) -> Self
    static func cosh(_ x: Self) -> Self
    static func tanh(_ x: Self) -> Self
    static func asinh(_ x: Self) -> Self
    static func acosh(_ x: Self) -> Self
    static func atanh(_ x: Self) -> Self
    /// `exp(x)` for the logistic function `1 / (1 + e⁻ˣ)` and SiLU: as `exp` where |x| ≤ 80 and
    /// x clamped to ±80 beyond, where 1 + eˣ is 1 within rounding or the logistic function is
    /// below 2e-35 (a difference no tolerance sees, for a simpler and faster loop).
    static func logisticExp(_ x: Self) -> Self
    /// SiLU, `x · sigmoid(x)`.
    static func sigmoidLinear(_ x: Self) -> Self
}

extension RealElement {
    /// `exp` itself: only Float has a faster form.
    @inlinable
    public static func logisticExp(_ x: Self) -> Self { exp(x) }

    /// `x / (1 + e⁻ˣ)` with `logisticExp`: only Float has a faster form.
    @inlinable
    public static func sigmoidLinear(_ x: Self) -> Self { x / (1 + logisticExp(-x)) }
}

/// Float's `exp`, `tanh` and `erf` are polynomial approximations written in plain arithmetic
/// (within a few ulp; `erf` within 2e-7), so loops over them inline and vectorise the way
/// ONNX Runtime's MLAS kernels do; every other function is the C library's.
extension Float: RealElement {
    @inlinable
    public static func exp(_ x: Float) -> Float {
        // exp(x) = 2^n · exp(r) with n = round(x / ln 2) and |r| ≤ ln 2 / 2 (Cephes expf). Above
        // the clamp the result overflows to ∞ anyway; below it, where the true value is a denormal,
        // it is 0: denormal arithmetic costs a microcode assist per vector, and the compiler feeds
        // the clamp bound to lanes whose result a caller's select discards. NaN stays NaN.
        let clamped = Swift.min(Swift.max(x, -87.3365), 88.8)
        // Adding 1.5 · 2^23 rounds to an integer held in the low mantissa bits.
        let shifted = clamped * 1.44269504088896341 + 12582912
        let n = shifted - 12582912
        let r = clamped - n * 0.693359375 + n * 2.12194440e-4
        var p: Float = 1.9875691500e-4
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let value = p * r * r + r + 1
        // 2^n in two factors: n reaches 128, one past the largest exponent a float holds.
        let power = Int32(bitPattern: shifted.bitPattern &- 0x4B40_0000)
        let half = power >> 1
        let first = Float(bitPattern: UInt32(bitPattern: (half &+ 127) &<< 23))
        let second = Float(bitPattern: UInt32(bitPattern: (power &- half &+ 127) &<< 23))
        return x < -87.3365 ? 0 : value * first * second
    }

    /// `exp` of x clamped to ±80: 2ⁿ is then one normal factor, no result underflows, and the
    /// polynomial is fused multiply-adds (1.7× the speed of `exp` in a vectorised loop, within 2 ulp).
    @inlinable @inline(__always)
    public static func logisticExp(_ x: Float) -> Float {
        let clamped = Swift.min(Swift.max(x, -80), 80)
        let shifted = clamped * 1.44269504088896341 + 12582912
        let n = shifted - 12582912
        let r = clamped.addingProduct(n, -0.693359375).addingProduct(n, 2.12194440e-4)
        var p: Float = 1.9875691500e-4
        p = (1.3981999507e-3 as Float).addingProduct(p, r)
        p = (8.3334519073e-3 as Float).addingProduct(p, r)
        p = (4.1665795894e-2 as Float).addingProduct(p, r)
        p = (1.6666665459e-1 as Float).addingProduct(p, r)
        p = (5.0000001201e-1 as Float).addingProduct(p, r)
        let power = Int32(bitPattern: shifted.bitPattern &- 0x4B40_0000)
        return (r + 1).addingProduct(p, r * r) * Float(bitPattern: UInt32(bitPattern: (power &+ 127) &<< 23))
    }

    /// SiLU, `x · sigmoid(x)`, with the sigmoid as ONNX Runtime's MLAS computes its logistic
    /// function (which ONNX Runtime's SiLU, QuickGelu with alpha 1, multiplies by x):
    /// `logisticOfClamped` of x clamped to ±18, at least 0 (at −18 it gives −6e-8, which times a
    /// large negative x would be a positive value, not ≈ 0). Within 2e-7 · max(1, |x|) of
    /// x · sigmoid(x); −0 or 0 for x ≤ −18 (where |x · sigmoid(x)| is below 3e-7), NaN for NaN and
    /// for −∞ (−∞ · 0, as in ONNX Runtime), ∞ for ∞. Clamps, two polynomials, one division and no
    /// exponent arithmetic: a vectorised loop of it runs in 0.77× the time of
    /// `x / (1 + logisticExp(-x))` (62,000 values in L2, one thread).
    @inlinable @inline(__always)
    public static func sigmoidLinear(_ x: Float) -> Float {
        // Ternaries rather than Swift.min/max: one vmaxps/vminps each, no blend (0.353 against
        // 0.387 ns a value); NaN becomes −18 here and comes back through the factor x.
        let low: Float = x > -18 ? x : -18
        let sigmoid = logisticOfClamped(low < 18 ? low : 18)
        return x * (sigmoid > 0 ? sigmoid : 0)
    }

    /// The logistic function 1 / (1 + e⁻ᵛ) for v within ±18 (callers clamp, each as its NaNs
    /// need) as Eigen, and so ONNX Runtime's MLAS, computes it: an odd rational function of v
    /// plus one half, within about 1e-7 of the true value; one division and no exponential, so a
    /// loop of them vectorises well.
    @inlinable @inline(__always)
    public static func logisticOfClamped(_ v: Float) -> Float {
        let z = v * v
        var p = Float(1.15627324459942e-07).addingProduct(z, 4.37031012579801e-11)
        p = Float(6.08574864600143e-05).addingProduct(p, z)
        p = Float(8.51377133304701e-03).addingProduct(p, z)
        p = Float(2.48287947061529e-01).addingProduct(p, z)
        var q = Float(5.76102136993427e-09).addingProduct(z, 6.10247389755681e-13)
        q = Float(6.29106785017040e-06).addingProduct(q, z)
        q = Float(1.70198817374094e-03).addingProduct(q, z)
        q = Float(1.16817656904453e-01).addingProduct(q, z)
        q = Float(9.93151921023180e-01).addingProduct(q, z)
        return p * v / q + 0.5
    }

    /// tanh as ONNX Runtime's MLAS (and Eigen) computes it: an odd rational function of x clamped
    /// to ±9, where it rounds to ±1 (within 4 ulp). Clamps, two polynomials and one division, with
    /// no select: a loop of them vectorises without mask shuffles, as `Recurrence`'s gates do.
    @inlinable @inline(__always)
    public static func tanh(_ x: Float) -> Float {
        let v = Swift.min(Swift.max(x, -9), 9), z = v * v
        var p = Float(2.00018790482477e-13).addingProduct(z, -2.76076847742355e-16)
        p = Float(-8.60467152213735e-11).addingProduct(p, z)
        p = Float(5.12229709037114e-08).addingProduct(p, z)
        p = Float(1.48572235717979e-05).addingProduct(p, z)
        p = Float(6.37261928875436e-04).addingProduct(p, z)
        p = Float(4.89352455891786e-03).addingProduct(p, z)
        var q = Float(1.18534705686654e-04).addingProduct(z, 1.19825839466702e-06)
        q = Float(2.26843463243900e-03).addingProduct(q, z)
        q = Float(4.89352518554385e-03).addingProduct(q, z)
        return p * v / q
    }

    /// erf: a Taylor series for |x| < 0.5, Abramowitz and Stegun 7.1.26 elsewhere (within 2e-7),
    /// computed on |x| clamped to 4 (beyond which erf rounds to 1) with `logisticExp`, which needs no
    /// underflow select there, and the sign put back by its bit: one select in all, so a loop of
    /// them vectorises without mask shuffles. Always inlined: the epilogue's loop called it otherwise.
    @inlinable @inline(__always)
    public static func erf(_ x: Float) -> Float {
        let a = Swift.min(Swift.abs(x), 4), z = a * a
        var series: Float = 1.0 / 9360
        series = series * -z + 1.0 / 1320
        series = series * -z + 1.0 / 216
        series = series * -z + 1.0 / 42
        series = series * -z + 1.0 / 10
        series = series * -z + 1.0 / 3
        let small = (a - a * z * series) * 1.1283791670955126
        let t = 1 / (1 + 0.3275911 * a)
        var p: Float = 1.061405429
        p = p * t - 1.453152027
        p = p * t + 1.421413741
        p = p * t - 0.284496736
        p = p * t + 0.254829592
        let large = 1 - p * t * logisticExp(-z)
        let magnitude = a < 0.5 ? small : large
        return Float(bitPattern: magnitude.bitPattern | (x.bitPattern & 0x8000_0000))
    }


    public static func log(_ x: Float) -> Float { logf(x) }
    public static func log1p(_ x: Float) -> Float { log1pf(x) }
    public static func pow(_ x: Float, _ y: Float) -> Float { powf(x, y) }
    public static func sin(_ x: Float) -> Float { sinf(x) }
    public static func cos(_ x: Float) -> Float { cosf(x) }
    public static func tan(_ x: Float) -> Float { tanf(x) }
    public static func asin(_ x: Float) -> Float { asinf(x) }
    public static func acos(_ x: Float) -> Float { acosf(x) }
    public static func atan(_ x: Float) -> Float { atanf(x) }
    public static func sinh(_ x: Float) -> Float { sinhf(x) }
    public static func cosh(_ x: Float) -> Float { coshf(x) }
    public static func asinh(_ x: Float) -> Float { asinhf(x) }
    public static func acosh(_ x: Float) -> Float { acoshf(x) }
    public static func atanh(_ x: Float) -> Float { atanhf(x) }
}

extension Double: RealElement {
    public static func exp(_ x: Double) -> Double { Glibc.exp(x) }
    public static func log(_ x: Double) -> Double { Glibc.log(x) }
    public static func log1p(_ x: Double) -> Double { Glibc.log1p(x) }
    public static func pow(_ x: Double, _ y: Double) -> Double { Glibc.pow(x, y) }
    public static func erf(_ x: Double) -> Double { Glibc.erf(x) }
    public static func sin(_ x: Double) -> Double { Glibc.sin(x) }
    public static func cos(_ x: Double) -> Double { Glibc.cos(x) }
    public static func tan(_ x: Double) -> Double { Glibc.tan(x) }
    public static func asin(_ x: Double) -> Double { Glibc.asin(x) }
    public static func acos(_ x: Double) -> Double { Glibc.acos(x) }
    public static func atan(_ x: Double) -> Double { Glibc.atan(x) }
    public static func sinh(_ x: Double) -> Double { Glibc.sinh(x) }
    public static func cosh(_ x: Double) -> Double { Glibc.cosh(x) }
    public static func tanh(_ x: Double) -> Double { Glibc.tanh(x) }
    public static func asinh(_ x: Double) -> Double { Glibc.asinh(x) }
    public static func acosh(_ x: Double) -> Double { Glibc.acosh(x) }
    public static func atanh(_ x: Double) -> Double { Glibc.atanh(x) }
}

extension Float16: RealElement {
    public static func exp(_ x: Float16) -> Float16 { Float16(expf(Float(x))) }
    public static func log(_ x: Float16) -> Float16 { Float16(logf(Float(x))) }
    public static func log1p(_ x: Float16) -> Float16 { Float16(log1pf(Float(x))) }
    public static func pow(_ x: Float16, _ y: Float16) -> Float16 { Float16(powf(Float(x), Float(y))) }
    public static func erf(_ x: Float16) -> Float16 { Float16(erff(Float(x))) }
    public static func sin(_ x: Float16) -> Float16 { Float16(sinf(Float(x))) }
    public static func cos(_ x: Float16) -> Float16 { Float16(cosf(Float(x))) }
    public static func tan(_ x: Float16) -> Float16 { Float16(tanf(Float(x))) }
    public static func asin(_ x: Float16) -> Float16 { Float16(asinf(Float(x))) }
    public static func acos(_ x: Float16) -> Float16 { Float16(acosf(Float(x))) }
    public static func atan(_ x: Float16) -> Float16 { Float16(atanf(Float(x))) }
    public static func sinh(_ x: Float16) -> Float16 { Float16(sinhf(Float(x))) }
    public static func cosh(_ x: Float16) -> Float16 { Float16(coshf(Float(x))) }
    public static func tanh(_ x: Float16) -> Float16 { Float16(tanhf(Float(x))) }
    public static func asinh(_ x: Float16) -> Float16 { Float16(asinhf(Float(x))) }
    public static func acosh(_ x: Float16) -> Float16 { Float16(acoshf(Float(x))) }
    public static func atanh(_ x: Float16) -> Float16 { Float16(atanhf(Float(x))) }
}

/// Code generic over a floating-point element type with elementary functions.
public protocol RealVisitor {
    associatedtype Output
    func visit<T: RealElement>(_ type: T.Type) throws -> Output
}

extension DataType {
    /// Calls `visitor` with the Swift type of this floating-point element type; nil otherwise.
    @inlinable
    public func visit<V: RealVisitor>(_ visitor: V) throws -> V.Output? {
        switch self {
        case .float: try visitor.visit(Float.self)
        case .double: try visitor.visit(Double.self)
        case .float16: try visitor.visit(Float16.self)
        default: nil
        }
    }
}
