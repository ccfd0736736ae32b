package import Tensors

/// Appends JSON text to a byte buffer. Tensors are written straight from their elements;
/// floats as the shortest text that reads back to the same value (`NaN`, `Infinity` and
/// `-Infinity` for non-finite values, as TF Serving writes them).
package struct JSONWriter {
    package private(set) var bytes: [UInt8] = []

    package init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    package mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    package mutating func raw(_ text: String) { bytes.append(contentsOf: text.utf8) }

    /// A quoted, escaped string.
    package mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x0A: raw("\\n")
            case 0x0D: raw("\\r")
            case 0x09: raw("\\t")
            case 0..<0x20:
                raw("\\u00")
                bytes.append(Self.hex[Int(byte >> 4)])
                bytes.append(Self.hex[Int(byte & 15)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private static let hex = Array("0123456789abcdef".utf8)

    /// `"key":`
    package mutating func key(_ name: String) {
        string(name)
        bytes.append(UInt8(ascii: ":"))
    }

    package mutating func comma() { bytes.append(UInt8(ascii: ",")) }

    package mutating func number<T: BinaryInteger>(_ value: T) { raw(String(value)) }

    /// Shortest round-trip text of a float (Swift's `description` is exactly that).
    package mutating func number(_ value: Float) {
        if value.isFinite { raw(value.description) } else { nonFinite(value.isNaN, value < 0) }
    }

    package mutating func number(_ value: Double) {
        if value.isFinite { raw(value.description) } else { nonFinite(value.isNaN, value < 0) }
    }

    private mutating func nonFinite(_ isNaN: Bool, _ negative: Bool) {
        if isNaN { raw("NaN") } else if negative { raw("-Infinity") } else { raw("Infinity") }
    }

    package mutating func bool(_ value: Bool) { value ? raw("true") : raw("false") }

    /// Elements `range` of `tensor` (row-major) as nested lists following `dims`; with empty
    /// `dims`, the single element at `range.lowerBound`. `stringElement` writes one string
    /// element (plain or base64 object) for string tensors.
    package mutating func tensor(_ tensor: Tensor, dims: ArraySlice<Int>, offset: Int,
                                 stringElement: (inout JSONWriter, String) -> Void = { $0.string($1) }) {
        switch tensor.dataType {
        case .float: nested(tensor.pointer(as: Float.self), dims, offset) { $0.number($1) }
        case .double: nested(tensor.pointer(as: Double.self), dims, offset) { $0.number($1) }
        case .float16: nested(tensor.pointer(as: Float16.self), dims, offset) { $0.number(Float($1)) }
        case .int8: nested(tensor.pointer(as: Int8.self), dims, offset) { $0.number($1) }
        case .int16: nested(tensor.pointer(as: Int16.self), dims, offset) { $0.number($1) }
        case .int32: nested(tensor.pointer(as: Int32.self), dims, offset) { $0.number($1) }
        case .int64: nested(tensor.pointer(as: Int64.self), dims, offset) { $0.number($1) }
        case .uint8: nested(tensor.pointer(as: UInt8.self), dims, offset) { $0.number($1) }
        case .uint16: nested(tensor.pointer(as: UInt16.self), dims, offset) { $0.number($1) }
        case .uint32: nested(tensor.pointer(as: UInt32.self), dims, offset) { $0.number($1) }
        case .uint64: nested(tensor.pointer(as: UInt64.self), dims, offset) { $0.number($1) }
        case .bool: nested(tensor.pointer(as: Bool.self), dims, offset) { $0.bool($1) }
        case .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1, .int4, .uint4, .int2, .uint2:
            // Widened to their compute type (exact) for printing.
            let values = tensor.doubles()
            values.withUnsafeBufferPointer { buffer in
                guard let base = buffer.baseAddress else { return }
                if tensor.dataType.computeType == .float {
                    nested(base, dims, offset) { $0.number(Float($1)) }
                } else {
                    nested(base, dims, offset) { $0.number(Int($1)) }
                }
            }
        case .string:
            // An empty tensor is never indexed, but needs a base address to start from.
            let strings = tensor.strings.isEmpty ? [""] : tensor.strings
            strings.withUnsafeBufferPointer { buffer in
                nested(buffer.baseAddress!, dims, offset, stringElement)
            }
        }
        withExtendedLifetime(tensor) {}
    }

    private mutating func nested<T>(_ base: UnsafePointer<T>, _ dims: ArraySlice<Int>, _ offset: Int,
                                    _ element: (inout JSONWriter, T) -> Void) {
        guard let first = dims.first else {
            element(&self, base[offset])
            return
        }
        bytes.append(UInt8(ascii: "["))
        let inner = dims.dropFirst()
        let stride = inner.reduce(1, *)
        for index in 0..<first {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            if inner.isEmpty {
                element(&self, base[offset + index])
            } else {
                nested(base, inner, offset + index * stride, element)
            }
        }
        bytes.append(UInt8(ascii: "]"))
    }
}
