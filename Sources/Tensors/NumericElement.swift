/// A tensor element with arithmetic and ordering: every numeric type but strings and bool.
public protocol NumericElement: TensorElement, Numeric, Comparable {
    /// The value nearest to `value` (integers truncate toward zero and saturate).
    init(converting value: Double)
    /// The value as a Double.
    var doubleValue: Double { get }
}

/// Float, Double and Float16.
public protocol FloatingElement: NumericElement, BinaryFloatingPoint {}

/// Signed and unsigned fixed-width integers.
public protocol IntegerElement: NumericElement, FixedWidthInteger {}

// Inlinable: the kernels convert element by element; a call into the unspecialised generic
// (FixedWidthInteger from BinaryFloatingPoint) cost about a microsecond per element.
extension FloatingElement {
    @inlinable public init(converting value: Double) { self.init(value) }
    @inlinable public var doubleValue: Double { Double(self) }
}

extension IntegerElement {
    @inlinable public init(converting value: Double) {
        if value.isNaN { self = 0 }
        else if value >= Double(Self.max) { self = .max }
        else if value <= Double(Self.min) { self = .min }
        // Through Int64 or UInt64 from Double (one conversion instruction, truncating toward
        // zero): the generic init from BinaryFloatingPoint stays a slow generic algorithm even
        // when specialised.
        else if value < 0x1p63 { self.init(truncatingIfNeeded: Int64(value)) }
        else { self.init(truncatingIfNeeded: UInt64(value)) }
    }
    @inlinable public var doubleValue: Double { Double(self) }
}

extension Float: FloatingElement {}
extension Double: FloatingElement {}
extension Float16: FloatingElement {}
extension Int8: IntegerElement {}
extension Int16: IntegerElement {}
extension Int32: IntegerElement {}
extension Int64: IntegerElement {}
extension UInt8: IntegerElement {}
extension UInt16: IntegerElement {}
extension UInt32: IntegerElement {}
extension UInt64: IntegerElement {}

/// Code that is generic over a numeric element type, chosen at run time from a `DataType`.
///
/// Write the body once as `visit<T>`; `DataType.visit` calls it with the Swift type behind the
/// tensor's element type. (Swift has no generic closures, hence the protocol.)
public protocol NumericVisitor {
    associatedtype Output
    func visit<T: NumericElement>(_ type: T.Type) throws -> Output
}

/// Like `NumericVisitor`, restricted to floating-point element types.
public protocol FloatingVisitor {
    associatedtype Output
    func visit<T: FloatingElement>(_ type: T.Type) throws -> Output
}

extension DataType {
    /// Calls `visitor` with the Swift type of this element type; nil for bool and string.
    public func visit<V: NumericVisitor>(_ visitor: V) throws -> V.Output? {
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

    /// Calls `visitor` with the Swift type of this floating-point element type; nil otherwise.
    public func visit<V: FloatingVisitor>(_ visitor: V) throws -> V.Output? {
        switch self {
        case .float: try visitor.visit(Float.self)
        case .double: try visitor.visit(Double.self)
        case .float16: try visitor.visit(Float16.self)
        default: nil
        }
    }
}
