/// A parsed JSON document. Rectangular arrays of numbers (the bulk of tensor requests) are kept
/// flat, with their shape, instead of as a tree of values.
package indirect enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
    /// A (possibly nested) rectangular array whose leaves are all numbers.
    case numbers(NumericArray)

    /// A short name of the kind of value, for error messages.
    package var kind: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array, .numbers: "a list"
        case .object: "an object"
        }
    }

    /// The value as an object, if it is one.
    package var object: JSONObject? {
        if case .object(let object) = self { return object }
        return nil
    }

    /// The string, if this is one.
    package var string: String? {
        if case .string(let string) = self { return string }
        return nil
    }
}

/// A JSON number: its double value and, when the literal was an integer that fits, the exact
/// integer (int64 inputs must not go through a double).
package struct JSONNumber: Sendable, Equatable {
    package var double: Double
    package var integer: Int64?

    package init(double: Double, integer: Int64?) {
        self.double = double
        self.integer = integer
    }
}

/// A JSON object; keys keep their order, and lookups are linear (objects here are small).
package struct JSONObject: Sendable {
    package var members: [(key: String, value: JSONValue)]

    package init(_ members: [(key: String, value: JSONValue)]) { self.members = members }

    package subscript(key: String) -> JSONValue? {
        members.first { $0.key == key }?.value
    }

    package var keys: [String] { members.map(\.key) }
}

/// A rectangular nested array of numbers, flattened in row-major order.
package struct NumericArray: Sendable {
    /// Sizes of the nesting levels, outermost first.
    package var shape: [Int]
    /// Every leaf as a double.
    package var values: [Double]
    /// Every leaf as an exact integer, when all leaves were integer literals that fit in Int64.
    package var integers: [Int64]?

    package init(shape: [Int], values: [Double], integers: [Int64]?) {
        self.shape = shape
        self.values = values
        self.integers = integers
    }
}
