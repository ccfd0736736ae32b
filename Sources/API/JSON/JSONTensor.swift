import Foundation
package import Serving
package import Tensors

/// Conversion of JSON values into tensors of a model input's element type, with TF Serving's
/// rules: any number for floats; integer literals only for integer types; true/false for bool;
/// strings or `{"b64": ...}` for string tensors. The shape comes from the nesting, which must be
/// rectangular.
package enum JSONTensor {
    /// The tensor a JSON value denotes, for input `name` of element type `dataType`.
    package static func tensor(_ value: JSONValue, dataType: DataType, name: String) throws(ServingError) -> Tensor {
        if case .numbers(let array) = value {
            return try tensor(array, dataType: dataType, name: name)
        }
        var shape: [Int] = []
        var leaves: [JSONValue] = []
        try flatten(value, depth: 0, shape: &shape, leaves: &leaves, name: name)
        return try tensor(leaves: leaves, shape: Shape(shape), dataType: dataType, name: name)
    }

    /// Stacks per-row values (one per instance) into one tensor with a leading row dimension.
    package static func stack(_ rows: [JSONValue], dataType: DataType, name: String) throws(ServingError) -> Tensor {
        var shape: [Int] = [rows.count]
        var leaves: [JSONValue] = []
        var rowShape: [Int]?
        for (index, row) in rows.enumerated() {
            var inner: [Int] = []
            var rowLeaves: [JSONValue] = []
            if case .numbers(let array) = row {
                inner = array.shape
                rowLeaves = numberLeaves(array)
            } else {
                try flatten(row, depth: 0, shape: &inner, leaves: &rowLeaves, name: name)
            }
            if let rowShape, rowShape != inner {
                throw .invalidArgument("input '\(name)': instance \(index) has shape \(inner), instance 0 has \(rowShape); all instances must have the same shape")
            }
            rowShape = inner
            leaves.append(contentsOf: rowLeaves)
        }
        shape.append(contentsOf: rowShape ?? [])
        return try tensor(leaves: leaves, shape: Shape(shape), dataType: dataType, name: name)
    }

    private static func numberLeaves(_ array: NumericArray) -> [JSONValue] {
        array.values.indices.map { index in
            .number(JSONNumber(double: array.values[index], integer: array.integers?[index]))
        }
    }

    /// Walks nested lists, recording the shape from the first element at each depth and checking
    /// every list at that depth has the same length.
    private static func flatten(_ value: JSONValue, depth: Int, shape: inout [Int], leaves: inout [JSONValue],
                                name: String) throws(ServingError) {
        let elements: [JSONValue]
        switch value {
        case .array(let list): elements = list
        case .numbers(let array):
            try merge(array.shape, at: depth, into: &shape, name: name)
            leaves.append(contentsOf: numberLeaves(array))
            return
        default:
            if depth < shape.count {
                throw .invalidArgument("input '\(name)' is a ragged nested list: found \(value.kind) where a list of \(shape[depth]) was expected")
            }
            leaves.append(value)
            return
        }
        if depth == shape.count {
            shape.append(elements.count)
        } else if depth > shape.count || shape[depth] != elements.count {
            throw .invalidArgument("input '\(name)' is a ragged nested list: a list at depth \(depth) has \(elements.count) elements, expected \(depth < shape.count ? shape[depth] : 0)")
        }
        for element in elements {
            try flatten(element, depth: depth + 1, shape: &shape, leaves: &leaves, name: name)
        }
    }

    private static func merge(_ inner: [Int], at depth: Int, into shape: inout [Int], name: String) throws(ServingError) {
        if depth == shape.count {
            shape.append(contentsOf: inner)
        } else if Array(shape.dropFirst(depth)) != inner {
            throw .invalidArgument("input '\(name)' is a ragged nested list: a sub-list has shape \(inner), expected \(Array(shape.dropFirst(depth)))")
        }
    }

    // MARK: Element conversion

    private static func tensor(_ array: NumericArray, dataType: DataType, name: String) throws(ServingError) -> Tensor {
        let shape = Shape(array.shape)
        switch dataType {
        case .float:
            let result = Tensor(uninitialized: .float, shape: shape)
            let target = result.mutablePointer(as: Float.self)
            array.values.withUnsafeBufferPointer { source in
                for index in source.indices { target[index] = Float(source[index]) }
            }
            return result
        case .double: return Tensor(array.values, shape: shape)
        case .float16: return Tensor(array.values.map { Float16($0) }, shape: shape)
        case .bool:
            throw .invalidArgument("JSON Value: \(format(array.values.first ?? 0)) Type: Number is not of expected type: bool (input '\(name)')")
        case .string:
            throw .invalidArgument("JSON Value: \(format(array.values.first ?? 0)) Type: Number is not of expected type: string (input '\(name)')")
        default:
            guard let integers = array.integers else {
                let bad = array.values.first { $0 != $0.rounded() || !$0.isFinite } ?? array.values.first { abs($0) >= 9.2e18 } ?? 0
                throw .invalidArgument("JSON Value: \(format(bad)) Type: Number is not of expected type: \(dataType) (input '\(name)')")
            }
            return try integerTensor(integers, shape: shape, dataType: dataType, name: name)
        }
    }

    private static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : "\(value)"
    }

    private static func integerTensor(_ values: [Int64], shape: Shape, dataType: DataType, name: String) throws(ServingError) -> Tensor {
        func convert<T: FixedWidthInteger & TensorElement>(_ type: T.Type) throws(ServingError) -> Tensor {
            var converted: [T] = []
            converted.reserveCapacity(values.count)
            for value in values {
                guard let exact = T(exactly: value) else {
                    throw .invalidArgument("JSON Value: \(value) is out of range for \(dataType) (input '\(name)')")
                }
                converted.append(exact)
            }
            return Tensor(converted, shape: shape)
        }
        switch dataType {
        case .int8: return try convert(Int8.self)
        case .int16: return try convert(Int16.self)
        case .int32: return try convert(Int32.self)
        case .int64: return Tensor(values, shape: shape)
        case .uint8: return try convert(UInt8.self)
        case .uint16: return try convert(UInt16.self)
        case .uint32: return try convert(UInt32.self)
        case .uint64: return try convert(UInt64.self)
        default: throw .invalidArgument("input '\(name)' has element type \(dataType), which JSON numbers cannot fill")
        }
    }

    private static func tensor(leaves: [JSONValue], shape: Shape, dataType: DataType, name: String) throws(ServingError) -> Tensor {
        switch dataType {
        case .string:
            var strings: [String] = []
            strings.reserveCapacity(leaves.count)
            for leaf in leaves { strings.append(try string(leaf, name: name)) }
            return Tensor(strings: strings, shape: shape)
        case .bool:
            var bools: [Bool] = []
            for leaf in leaves {
                guard case .bool(let value) = leaf else { throw mismatch(leaf, dataType, name) }
                bools.append(value)
            }
            return Tensor(bools, shape: shape)
        default:
            var doubles: [Double] = []
            var integers: [Int64]? = []
            doubles.reserveCapacity(leaves.count)
            for leaf in leaves {
                guard case .number(let number) = leaf else { throw mismatch(leaf, dataType, name) }
                doubles.append(number.double)
                if let integer = number.integer { integers?.append(integer) } else { integers = nil }
            }
            return try tensor(NumericArray(shape: shape.dims, values: doubles, integers: integers), dataType: dataType, name: name)
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

    private static func mismatch(_ leaf: JSONValue, _ dataType: DataType, _ name: String) -> ServingError {
        .invalidArgument("JSON Value: \(leaf.kind) is not of expected type: \(dataType) (input '\(name)')")
    }
}
