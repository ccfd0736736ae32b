/// Element type of a tensor. Raw values are ONNX's `TensorProto.DataType` codes.
public enum DataType: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case float = 1
    case uint8 = 2
    case int8 = 3
    case uint16 = 4
    case int16 = 5
    case int32 = 6
    case int64 = 7
    case string = 8
    case bool = 9
    case float16 = 10
    case double = 11
    case uint32 = 12
    case uint64 = 13

    /// Bytes per element; strings are stored as Swift values, not bytes, and report 0.
    public var byteSize: Int {
        switch self {
        case .bool, .int8, .uint8: 1
        case .int16, .uint16, .float16: 2
        case .int32, .uint32, .float: 4
        case .int64, .uint64, .double: 8
        case .string: 0
        }
    }

    /// Bytes that `count` elements take, or nil when `count` is negative or the product overflows
    /// (0 for strings).
    public func checkedByteCount(elements count: Int) -> Int? {
        let (bytes, overflow) = count.multipliedReportingOverflow(by: byteSize)
        return overflow || count < 0 ? nil : bytes
    }

    /// ONNX's lower-case spelling (`tensor(float)` → `float`).
    public var name: String {
        switch self {
        case .float: "float"
        case .uint8: "uint8"
        case .int8: "int8"
        case .uint16: "uint16"
        case .int16: "int16"
        case .int32: "int32"
        case .int64: "int64"
        case .string: "string"
        case .bool: "bool"
        case .float16: "float16"
        case .double: "double"
        case .uint32: "uint32"
        case .uint64: "uint64"
        }
    }

    public var description: String { name }

    /// Floating-point element types.
    public var isFloatingPoint: Bool { self == .float || self == .double || self == .float16 }

    /// Signed or unsigned integer element types (not bool).
    public var isInteger: Bool {
        switch self {
        case .int8, .int16, .int32, .int64, .uint8, .uint16, .uint32, .uint64: true
        default: false
        }
    }

    /// Types with arithmetic (everything but bool and string).
    public var isNumeric: Bool { isFloatingPoint || isInteger }
}

/// A Swift type that can be the element of a tensor.
public protocol TensorElement: Sendable {
    /// The tensor element type this Swift type stores.
    static var dataType: DataType { get }
}

extension Float: TensorElement { public static var dataType: DataType { .float } }
extension Double: TensorElement { public static var dataType: DataType { .double } }
extension Float16: TensorElement { public static var dataType: DataType { .float16 } }
extension Int8: TensorElement { public static var dataType: DataType { .int8 } }
extension Int16: TensorElement { public static var dataType: DataType { .int16 } }
extension Int32: TensorElement { public static var dataType: DataType { .int32 } }
extension Int64: TensorElement { public static var dataType: DataType { .int64 } }
extension UInt8: TensorElement { public static var dataType: DataType { .uint8 } }
extension UInt16: TensorElement { public static var dataType: DataType { .uint16 } }
extension UInt32: TensorElement { public static var dataType: DataType { .uint32 } }
extension UInt64: TensorElement { public static var dataType: DataType { .uint64 } }
extension Bool: TensorElement { public static var dataType: DataType { .bool } }
