package import Serving
package import Tensors

/// A JSON object as a map input, `{"a": 1.0, "b": 2.0}` (a DictVectorizer pipeline's input).
/// JSON keys are strings: for a map with int64 keys each must spell an int64 ("7", "-3"). Values
/// are numbers (integer literals for int64 values) or, for string values, strings. A key given
/// twice (literally, or the same integer spelled twice) is refused, as is any other value.
package enum JSONMap {
    /// The map `value` denotes for input `name`, whose keys are of `key` and values of `valueType`.
    package static func map(_ value: JSONValue, key: DataType, valueType: DataType, name: String) throws(ServingError) -> TensorMap {
        guard let object = value.object else {
            throw .invalidArgument("input '\(name)' is a map: send a JSON object of keys to values, not \(value.kind)")
        }
        let members = object.members
        let keys: Tensor
        if key == .string {
            keys = Tensor(strings: members.map(\.key), shape: [members.count])
        } else {
            var integers: [Int64] = []
            integers.reserveCapacity(members.count)
            for member in members {
                guard let integer = Int64(member.key) else {
                    throw .invalidArgument("input '\(name)': key '\(member.key)' is not an integer; the model's map has \(key) keys")
                }
                integers.append(integer)
            }
            keys = Tensor(integers, shape: [members.count])
        }
        func wrong(_ member: (key: String, value: JSONValue), _ expected: String) -> ServingError {
            .invalidArgument("input '\(name)': the value under key '\(member.key)' is \(member.value.kind); the model's map has \(expected) values")
        }
        let values: Tensor
        switch valueType {
        case .string:
            var strings: [String] = []
            strings.reserveCapacity(members.count)
            for member in members {
                guard let text = member.value.string else { throw wrong(member, "string") }
                strings.append(text)
            }
            values = Tensor(strings: strings, shape: [members.count])
        case .int64:
            var integers: [Int64] = []
            integers.reserveCapacity(members.count)
            for member in members {
                guard case .number(let number) = member.value, let integer = number.integer else { throw wrong(member, "int64 (integer)") }
                integers.append(integer)
            }
            values = Tensor(integers, shape: [members.count])
        case .float, .double:
            var doubles: [Double] = []
            doubles.reserveCapacity(members.count)
            for member in members {
                guard case .number(let number) = member.value else { throw wrong(member, "\(valueType) (number)") }
                doubles.append(number.double)
            }
            values = valueType == .float ? Tensor(doubles.map(Float.init), shape: [members.count]) : Tensor(doubles, shape: [members.count])
        default:
            throw .invalidArgument("input '\(name)' is a map of \(valueType) values, which JSON requests do not carry")
        }
        switch TensorMap.checked(keys: keys, values: values) {
        case .success(let map): return map
        case .failure(let error): throw .invalidArgument("input '\(name)': \(error)")
        }
    }
}
