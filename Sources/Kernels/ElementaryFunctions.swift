#if canImport(Glibc)
import Glibc
#endif
public import Tensors

/// A floating-point element type with the C library's elementary functions, so kernels written
/// once generically serve float, double and float16 (float16 computes in float).
public protocol RealElement: FloatingElement, ArithmeticElement {
    static func exp(_ x: Self) -> Self
    /// `exp(x) - 1`, accurate near 0.
    static func expm1(_ x: Self) -> Self
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
}

extension Float: RealElement {
    public static func exp(_ x: Float) -> Float { expf(x) }
    public static func expm1(_ x: Float) -> Float { expm1f(x) }
    public static func log(_ x: Float) -> Float { logf(x) }
    public static func log1p(_ x: Float) -> Float { log1pf(x) }
    public static func pow(_ x: Float, _ y: Float) -> Float { powf(x, y) }
    public static func erf(_ x: Float) -> Float { erff(x) }
    public static func sin(_ x: Float) -> Float { sinf(x) }
    public static func cos(_ x: Float) -> Float { cosf(x) }
    public static func tan(_ x: Float) -> Float { tanf(x) }
    public static func asin(_ x: Float) -> Float { asinf(x) }
    public static func acos(_ x: Float) -> Float { acosf(x) }
    public static func atan(_ x: Float) -> Float { atanf(x) }
    public static func sinh(_ x: Float) -> Float { sinhf(x) }
    public static func cosh(_ x: Float) -> Float { coshf(x) }
    public static func tanh(_ x: Float) -> Float { tanhf(x) }
    public static func asinh(_ x: Float) -> Float { asinhf(x) }
    public static func acosh(_ x: Float) -> Float { acoshf(x) }
    public static func atanh(_ x: Float) -> Float { atanhf(x) }
}

extension Double: RealElement {
    public static func exp(_ x: Double) -> Double { Glibc.exp(x) }
    public static func expm1(_ x: Double) -> Double { Glibc.expm1(x) }
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
    public static func expm1(_ x: Float16) -> Float16 { Float16(expm1f(Float(x))) }
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
