import Foundation
package import Serving
package import Tensors

/// Conversion of JSON values into tensors of a model input's element type, with TF Serving's
/// rules: any number for floats; integer literals only for integer types; true/false for bool;
/// strings or `{"b64": ...}` for string tensors.
///
/// The number of values always equals the element count of the tensor's shape, exactly, before
/// any memory is allocated: a tensor is never filled from fewer values than it has elements.
package enum JSONTensor {
    /// Where a tensor's shape comes from.
    package enum Layout: Sendable {
        /// From the nesting, which must be rectangular (TF Serving's `instances` and `inputs`).
        case nested
        /// Declared (Open Inference's `shape`); the values come in row-major order, flat or in
        /// rectangular nested lists, and their count must equal the shape's element count.
        case declared(Shape)
    }

    /// Makes the (uninitialised) tensor the values are written into.
    package typealias Allocator = (DataType, Shape) -> Tensor

    /// The tensor `value` denotes, for input `name` of element type `dataType`.
    package static func tensor(_ value: JSONValue, dataType: DataType, name: String, layout: Layout,
                               allocate: Allocator) throws(ServingError) -> Tensor {
        var dims: [Int] = []
        try checkRectangular(value, name: name, dims: &dims)
        var shape = Shape(dims)
        if case .declared(let declared) = layout {
            guard let expected = declared.checkedElementCount else {
                throw .invalidArgument("input '\(name)' has shape \(declared), whose element count overflows")
            }
            // Rectangular, so the nesting's element count is the number of values.
            let count = shape.elementCount
            guard count == expected else {
                throw .invalidArgument("input '\(name)' has \(count) values in 'data' but shape \(declared) needs \(expected)")
            }
            shape = declared
        }
        return try fill(value, shape: shape, dataType: dataType, name: name, allocate: allocate)
    }

    // MARK: Shape and count

    /// Records the shape the first element at each depth implies, then checks every list against
    /// it: same length at each depth, lists only above the leaves and none at them.
    private static func checkRectangular(_ value: JSONValue, name: String, dims: inout [Int]) throws(ServingError) {
        var probe = value
        descent: while true {
            switch probe {
            case .numbers(let array):
                dims.append(contentsOf: array.shape)
                break descent
            case .array(let list):
                dims.append(list.count)
                guard let first = list.first else { break descent }
                probe = first
            default:
                break descent
            }
        }
        var path: [Int] = []
        try check(value, dims[...], path: &path, name: name)
    }

    private static func check(_ value: JSONValue, _ dims: ArraySlice<Int>, path: inout [Int], name: String) throws(ServingError) {
        guard let size = dims.first else {
            if value.isList { throw ragged(name, path, "is a list where the first element at this depth is a single value") }
            return
        }
        switch value {
        case .numbers(let array):
            guard array.shape[...] == dims else {
                throw ragged(name, path, "has shape \(array.shape) where the first element at this depth has \(Array(dims))")
            }
        case .array(let list):
            guard list.count == size else {
                throw ragged(name, path, "has \(list.count) elements where the first list at this depth has \(size)")
            }
            for (index, element) in list.enumerated() {
                path.append(index)
                try check(element, dims.dropFirst(), path: &path, name: name)
                path.removeLast()
            }
        default:
            throw ragged(name, path, "is \(value.kind) where the first element at this depth is a list of \(size)")
        }
    }

    private static func ragged(_ name: String, _ path: [Int], _ problem: String) -> ServingError {
        let location = path.isEmpty ? "the value" : "element " + path.map { "[\($0)]" }.joined()
        return .invalidArgument("input '\(name)' is a ragged nested list: \(location) \(problem)")
    }

    // MARK: Filling

    /// Writes the leaves of `value`, in document order, into a new tensor of `shape`, whose
    /// element count the caller has checked equals the number of leaves.
    private static func fill(_ value: JSONValue, shape: Shape, dataType: DataType, name: String,
                             allocate: Allocator) throws(ServingError) -> Tensor {
        switch dataType {
        case .float: return try fillNumbers(value, shape, Float.self, name, allocate)
        case .double: return try fillNumbers(value, shape, Double.self, name, allocate)
        case .float16: return try fillNumbers(value, shape, Float16.self, name, allocate)
        case .int8: return try fillNumbers(value, shape, Int8.self, name, allocate)
        case .int16: return try fillNumbers(value, shape, Int16.self, name, allocate)
        case .int32: return try fillNumbers(value, shape, Int32.self, name, allocate)
        case .int64: return try fillNumbers(value, shape, Int64.self, name, allocate)
        case .uint8: return try fillNumbers(value, shape, UInt8.self, name, allocate)
        case .uint16: return try fillNumbers(value, shape, UInt16.self, name, allocate)
        case .uint32: return try fillNumbers(value, shape, UInt32.self, name, allocate)
        case .uint64: return try fillNumbers(value, shape, UInt64.self, name, allocate)
        case .bfloat16, .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1:
            // Read as float, then rounded to the type (saturating at its largest value).
            let wide = try fillNumbers(value, shape, Float.self, name) { Tensor(uninitialized: $0, shape: $1) }
            let tensor = allocate(dataType, shape)
            LowPrecision.narrow(wide, into: tensor, saturate: true)
            return tensor
        case .int4, .uint4, .int2, .uint2:
            throw .invalidArgument("input '\(name)' has element type \(dataType), which requests cannot carry")
        case .bool:
            let tensor = allocate(.bool, shape)
            let target = tensor.mutablePointer(as: Bool.self)
            var index = 0
            try forEachLeaf(value) { leaf throws(ServingError) in
                guard case .bool(let flag) = leaf else { throw mismatch(leaf, .bool, name) }
                target[index] = flag
                index += 1
            } block: { array throws(ServingError) in
                throw mismatch(.numbers(array), .bool, name)
            }
            return tensor
        case .string:
            var strings: [String] = []
            strings.reserveCapacity(shape.elementCount)
            try forEachLeaf(value) { leaf throws(ServingError) in
                strings.append(try string(leaf, name: name))
            } block: { array throws(ServingError) in
                throw mismatch(.numbers(array), .string, name)
            }
            return Tensor(strings: strings, shape: shape)
        }
    }

    private static func fillNumbers<T: JSONNumericElement>(_ value: JSONValue, _ shape: Shape, _ type: T.Type, _ name: String,
                                                           _ allocate: Allocator) throws(ServingError) -> Tensor {
        let tensor = allocate(T.dataType, shape)
        let target = tensor.mutablePointer(as: T.self)
        var index = 0
        try forEachLeaf(value) { leaf throws(ServingError) in
            guard case .number(let number) = leaf else { throw mismatch(leaf, T.dataType, name) }
            guard let element = T(json: number.double, integer: number.integer) else { throw outOfRange(number, T.dataType, name) }
            target[index] = element
            index += 1
        } block: { array throws(ServingError) in
            try T.convert(array, into: target + index, name: name)
            index += array.count
        }
        return tensor
    }

    /// Calls `leaf` for each single value and `block` for each numeric array, in document order.
    private static func forEachLeaf(_ value: JSONValue, leaf: (JSONValue) throws(ServingError) -> Void,
                                    block: (NumericArray) throws(ServingError) -> Void) throws(ServingError) {
        switch value {
        case .numbers(let array): try block(array)
        case .array(let list):
            for element in list { try forEachLeaf(element, leaf: leaf, block: block) }
        default: try leaf(value)
        }
    }

    private static func string(_ leaf: JSONValue, name: String) throws(ServingError) -> String {
        switch leaf {
        case .string(let text): return text
        case .object(let object):
            guard object.members.count == 1, case .string(let encoded)? = object["b64"] else { break }
            guard let data = Data(base64Encoded: encoded) else {
                throw .invalidArgument("input '\(name)': invalid base64 in {\"b64\": ...}")
            }
            return String(decoding: data, as: UTF8.self)
        default: break
        }
        throw mismatch(leaf, .string, name)
    }

    static func mismatch(_ leaf: JSONValue, _ dataType: DataType, _ name: String) -> ServingError {
        let shown: String
        switch leaf {
        case .number(let number): shown = "JSON Value: \(format(number)) Type: Number"
        case .numbers(let array) where array.count > 0: shown = "JSON Value: \(format(array.number(at: 0))) Type: Number"
        default: shown = "JSON Value: \(leaf.kind)"
        }
        return .invalidArgument("\(shown) is not of expected type: \(dataType) (input '\(name)')")
    }

    static func outOfRange(_ number: JSONNumber, _ dataType: DataType, _ name: String) -> ServingError {
        if number.integer == nil {
            return .invalidArgument("JSON Value: \(format(number)) Type: Number is not of expected type: \(dataType) (input '\(name)')")
        }
        return .invalidArgument("JSON Value: \(format(number)) is out of range for \(dataType) (input '\(name)')")
    }

    private static func format(_ number: JSONNumber) -> String {
        number.integer.map { String($0) } ?? "\(number.double)"
    }
}

/// An element type JSON numbers convert to, with the rules of `JSONTensor`.
protocol JSONNumericElement: TensorElement {
    /// The element for a number, or nil when the type cannot hold it (a fraction for an
    /// integer type, an integer out of range).
    init?(json double: Double, integer: Int64?)

    /// Converts every number of `array` into `target` (a requirement, so `Float`'s fast loop is
    /// the one generic code calls).
    static func convert(_ array: NumericArray, into target: UnsafeMutablePointer<Self>, name: String) throws(ServingError)
}

extension JSONNumericElement {
    /// Converts every number of `array` into `target`.
    static func convert(_ array: NumericArray, into target: UnsafeMutablePointer<Self>, name: String) throws(ServingError) {
        for index in 0..<array.count {
            let number = array.number(at: index)
            guard let element = Self(json: number.double, integer: number.integer) else {
                throw JSONTensor.outOfRange(number, dataType, name)
            }
            target[index] = element
        }
    }
}

extension Float: JSONNumericElement {
    init?(json double: Double, integer: Int64?) { self = Float(double) }

    /// The hot path of image requests: a plain conversion loop over the store's doubles.
    static func convert(_ array: NumericArray, into target: UnsafeMutablePointer<Float>, name: String) throws(ServingError) {
        array.doubles.withUnsafeBufferPointer { source in
            for index in source.indices { target[index] = Float(source[index]) }
        }
    }
}

extension Double: JSONNumericElement {
    init?(json double: Double, integer: Int64?) { self = double }
}

extension Float16: JSONNumericElement {
    init?(json double: Double, integer: Int64?) { self = Float16(double) }
}

/// Integer elements take integer literals only, and only in range.
protocol JSONIntegerElement: JSONNumericElement, FixedWidthInteger {}

extension JSONIntegerElement {
    init?(json double: Double, integer: Int64?) {
        guard let integer, let value = Self(exactly: integer) else { return nil }
        self = value
    }
}

extension Int8: JSONIntegerElement {}
extension Int16: JSONIntegerElement {}
extension Int32: JSONIntegerElement {}
extension Int64: JSONIntegerElement {}
extension UInt8: JSONIntegerElement {}
extension UInt16: JSONIntegerElement {}
extension UInt32: JSONIntegerElement {}
extension UInt64: JSONIntegerElement {}
