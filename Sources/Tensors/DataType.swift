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
    case bfloat16 = 16
    case float8e4m3fn = 17
    case float8e4m3fnuz = 18
    case float8e5m2 = 19
    case float8e5m2fnuz = 20
    case uint4 = 21
    case int4 = 22
    case float4e2m1 = 23
    case float8e8m0 = 24
    case uint2 = 25
    case int2 = 26

    /// Bytes per element in memory; strings are stored as Swift values, not bytes, and report 0.
    /// The 4- and 2-bit types take one byte each in memory (see `bitWidth` for files and wires).
    public var byteSize: Int {
        switch self {
        case .bool, .int8, .uint8: 1
        case .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1, .int4, .uint4, .int2, .uint2: 1
        case .int16, .uint16, .float16, .bfloat16: 2
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
        case .bfloat16: "bfloat16"
        case .float8e4m3fn: "float8e4m3fn"
        case .float8e4m3fnuz: "float8e4m3fnuz"
        case .float8e5m2: "float8e5m2"
        case .float8e5m2fnuz: "float8e5m2fnuz"
        case .uint4: "uint4"
        case .int4: "int4"
        case .float4e2m1: "float4e2m1"
        case .float8e8m0: "float8e8m0"
        case .uint2: "uint2"
        case .int2: "int2"
        }
    }

    /// Bits per element in ONNX files and on the wire, where the 4- and 2-bit types are packed
    /// (first element in the low bits); `8 * byteSize` for the others.
    public var bitWidth: Int {
        switch self {
        case .int4, .uint4, .float4e2m1: 4
        case .int2, .uint2: 2
        default: 8 * byteSize
        }
    }

    /// Bytes that `count` elements take packed (`bitWidth` bits each, the last byte padded), or
    /// nil when `count` is negative.
    public func packedByteCount(elements count: Int) -> Int? {
        guard count >= 0, byteSize > 0 else { return count >= 0 ? 0 : nil }
        let perByte = 8 / bitWidth
        return perByte > 1 ? count / perByte + (count % perByte == 0 ? 0 : 1) : checkedByteCount(elements: count)
    }

    /// Where values widen: bfloat16, float8 and float4 tensors are storage only and every
    /// operator that computes with them (rather than converting or moving them) computes in
    /// float; the 4- and 2-bit integers compute in int8 or uint8. Nil for the types that have
    /// kernels of their own.
    public var computeType: DataType? {
        switch self {
        case .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1: .float
        case .int4, .int2: .int8
        case .uint4, .uint2: .uint8
        default: nil
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
extension BFloat16: TensorElement { public static var dataType: DataType { .bfloat16 } }
extension Float8E4M3FN: TensorElement { public static var dataType: DataType { .float8e4m3fn } }
extension Float8E4M3FNUZ: TensorElement { public static var dataType: DataType { .float8e4m3fnuz } }
extension Float8E5M2: TensorElement { public static var dataType: DataType { .float8e5m2 } }
extension Float8E5M2FNUZ: TensorElement { public static var dataType: DataType { .float8e5m2fnuz } }
extension Float4E2M1: TensorElement { public static var dataType: DataType { .float4e2m1 } }
extension Float8E8M0: TensorElement { public static var dataType: DataType { .float8e8m0 } }
extension Int4: TensorElement { public static var dataType: DataType { .int4 } }
extension UInt4: TensorElement { public static var dataType: DataType { .uint4 } }
extension Int2: TensorElement { public static var dataType: DataType { .int2 } }
extension UInt2: TensorElement { public static var dataType: DataType { .uint2 } }
