public import Tensors

/// Arithmetic on tensor elements with the semantics ONNX Runtime gives each type, so one generic
/// kernel serves every numeric type without trapping on user data.
///
/// Integers wrap on overflow and divide truncating toward zero, like C; a division by zero (or
/// `min / -1`) yields the dividend instead of trapping. Floating-point types follow IEEE 754.
public protocol ArithmeticElement: NumericElement {
    /// The value of a cast from another element type (C `static_cast` semantics: integers wrap,
    /// reals truncate toward zero and saturate, NaN becomes 0).
    init(casting value: CastValue)
    /// This value for a cast to another element type.
    var castValue: CastValue { get }
    /// `a + b`, wrapping for integers.
    static func add(_ a: Self, _ b: Self) -> Self
    /// `a - b`, wrapping for integers.
    static func subtract(_ a: Self, _ b: Self) -> Self
    /// `a * b`, wrapping for integers.
    static func multiply(_ a: Self, _ b: Self) -> Self
    /// `a / b`, truncating toward zero for integers.
    static func divide(_ a: Self, _ b: Self) -> Self
    /// The remainder with the sign of the divisor (Python's `%`, ONNX Mod with `fmod = 0`).
    static func modulo(_ a: Self, _ b: Self) -> Self
    /// The remainder with the sign of the dividend (C's `fmod`, ONNX Mod with `fmod = 1`).
    static func remainder(_ a: Self, _ b: Self) -> Self
    /// The larger value; NaN if either is NaN.
    static func maximum(_ a: Self, _ b: Self) -> Self
    /// The smaller value; NaN if either is NaN.
    static func minimum(_ a: Self, _ b: Self) -> Self
    /// `-a`, wrapping for integers (unsigned integers wrap modulo 2ⁿ).
    static func negate(_ a: Self) -> Self
    /// `|a|`, wrapping for the most negative integer.
    static func absolute(_ a: Self) -> Self
    /// -1, 0 or 1 (NaN stays NaN).
    static func sign(_ a: Self) -> Self
    /// The identity of `maximum`: the lowest value (-∞ for floating point).
    static var lowest: Self { get }
    /// The identity of `minimum`: the highest value (+∞ for floating point).
    static var highest: Self { get }
}

/// An element value on its way from one element type to another.
public enum CastValue: Sendable {
    case signed(Int64)
    case unsigned(UInt64)
    case real(Double)
}

extension ArithmeticElement where Self: BinaryFloatingPoint {
    @inlinable public init(casting value: CastValue) {
        switch value {
        case .signed(let value): self.init(value)
        case .unsigned(let value): self.init(value)
        case .real(let value): self.init(value)
        }
    }
    @inlinable public var castValue: CastValue { .real(Double(self)) }
    @inlinable public static func add(_ a: Self, _ b: Self) -> Self { a + b }
    @inlinable public static func subtract(_ a: Self, _ b: Self) -> Self { a - b }
    @inlinable public static func multiply(_ a: Self, _ b: Self) -> Self { a * b }
    @inlinable public static func divide(_ a: Self, _ b: Self) -> Self { a / b }
    @inlinable public static func modulo(_ a: Self, _ b: Self) -> Self {
        let r = a.truncatingRemainder(dividingBy: b)
        return r != 0 && (r < 0) != (b < 0) ? r + b : r
    }
    @inlinable public static func remainder(_ a: Self, _ b: Self) -> Self { a.truncatingRemainder(dividingBy: b) }
    @inlinable public static func maximum(_ a: Self, _ b: Self) -> Self { a.isNaN || b.isNaN ? .nan : Swift.max(a, b) }
    @inlinable public static func minimum(_ a: Self, _ b: Self) -> Self { a.isNaN || b.isNaN ? .nan : Swift.min(a, b) }
    @inlinable public static func negate(_ a: Self) -> Self { -a }
    @inlinable public static func absolute(_ a: Self) -> Self { Swift.abs(a) }
    @inlinable public static func sign(_ a: Self) -> Self { a > 0 ? 1 : a < 0 ? -1 : a }
    @inlinable public static var lowest: Self { -.infinity }
    @inlinable public static var highest: Self { .infinity }
}

extension ArithmeticElement where Self: FixedWidthInteger {
    @inlinable public init(casting value: CastValue) {
        switch value {
        case .signed(let value): self.init(truncatingIfNeeded: value)
        case .unsigned(let value): self.init(truncatingIfNeeded: value)
        case .real(let value):
            // Through Int64 like a C cast on x86; out-of-range values saturate instead of being undefined.
            self.init(truncatingIfNeeded: Int64(converting: value))
        }
    }
    @inlinable public var castValue: CastValue {
        Self.isSigned ? .signed(Int64(truncatingIfNeeded: self)) : .unsigned(UInt64(truncatingIfNeeded: self))
    }
    @inlinable public static func add(_ a: Self, _ b: Self) -> Self { a &+ b }
    @inlinable public static func subtract(_ a: Self, _ b: Self) -> Self { a &- b }
    @inlinable public static func multiply(_ a: Self, _ b: Self) -> Self { a &* b }
    @inlinable public static func divide(_ a: Self, _ b: Self) -> Self {
        let (quotient, overflow) = a.dividedReportingOverflow(by: b)
        return overflow ? a : quotient
    }
    @inlinable public static func modulo(_ a: Self, _ b: Self) -> Self {
        let r = remainder(a, b)
        return r != 0 && (r < 0) != (b < 0) ? r &+ b : r
    }
    @inlinable public static func remainder(_ a: Self, _ b: Self) -> Self {
        let (remainder, overflow) = a.remainderReportingOverflow(dividingBy: b)
        return overflow ? 0 : remainder
    }
    @inlinable public static func maximum(_ a: Self, _ b: Self) -> Self { Swift.max(a, b) }
    @inlinable public static func minimum(_ a: Self, _ b: Self) -> Self { Swift.min(a, b) }
    @inlinable public static func negate(_ a: Self) -> Self { 0 &- a }
    @inlinable public static func absolute(_ a: Self) -> Self { a < 0 ? 0 &- a : a }
    @inlinable public static func sign(_ a: Self) -> Self { a > 0 ? 1 : a < 0 ? 0 &- 1 : 0 }
    @inlinable public static var lowest: Self { .min }
    @inlinable public static var highest: Self { .max }
}

extension Float: ArithmeticElement {}
extension Double: ArithmeticElement {}
extension Float16: ArithmeticElement {}
extension Int8: ArithmeticElement {}
extension Int16: ArithmeticElement {}
extension Int32: ArithmeticElement {}
extension Int64: ArithmeticElement {}
extension UInt8: ArithmeticElement {}
extension UInt16: ArithmeticElement {}
extension UInt32: ArithmeticElement {}
extension UInt64: ArithmeticElement {}

/// Code generic over an arithmetic element type, chosen at run time from a `DataType`
/// (like `NumericVisitor`, with `ArithmeticElement`'s operations available).
public protocol ArithmeticVisitor {
    associatedtype Output
    func visit<T: ArithmeticElement>(_ type: T.Type) throws -> Output
}

extension DataType {
    /// Calls `visitor` with the Swift type of this element type; nil for bool and string.
    @inlinable
    public func visit<V: ArithmeticVisitor>(_ visitor: V) throws -> V.Output? {
        switch self {
        case .float: try visitor.visit(Float.self)
        case .double: try visitor.visit(Double.self)
        case .float16: try visitor.visit(Float16.self)
        case .int8: try visitor.visit(Int8.self)
        case .int16: try visitor.visit(Int16.self)
        case .int32: try visitor.visit(Int32.self)
        case .int64: try visitor.visit(Int64.self)
        case .uint8: try visitor.visit(UInt8.self)
        case .uint16: try visitor.visit(UInt16.self)
        case .uint32: try visitor.visit(UInt32.self)
        case .uint64: try visitor.visit(UInt64.self)
        default: nil
        }
    }
}

/// Code generic over an integer element type (bitwise operators).
public protocol IntegerVisitor {
    associatedtype Output
    func visit<T: ArithmeticElement & FixedWidthInteger>(_ type: T.Type) throws -> Output
}

extension DataType {
    /// Calls `visitor` with the Swift type of this integer element type; nil otherwise.
    @inlinable
    public func visit<V: IntegerVisitor>(_ visitor: V) throws -> V.Output? {
        switch self {
        case .int8: try visitor.visit(Int8.self)
        case .int16: try visitor.visit(Int16.self)
        case .int32: try visitor.visit(Int32.self)
        case .int64: try visitor.visit(Int64.self)
        case .uint8: try visitor.visit(UInt8.self)
        case .uint16: try visitor.visit(UInt16.self)
        case .uint32: try visitor.visit(UInt32.self)
        case .uint64: try visitor.visit(UInt64.self)
        default: nil
        }
    }
}
