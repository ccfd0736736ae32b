import Synchronization

/// A parsed JSON document. Arrays of numbers, and arrays of such arrays that all have one shape
/// (the bulk of tensor requests), are kept as a view into one flat number store instead of as a
/// tree of values, so a tensor costs 8 bytes and a bit per element however deeply it nests.
///
/// The enum is not `indirect`: its payloads are small values or references already, so a list of
/// values is one array allocation, not one box per element.
package enum JSONValue: Sendable {
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

    /// True for lists, numeric or not.
    package var isList: Bool {
        switch self {
        case .array, .numbers: true
        default: false
        }
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

/// A rectangular nested array of numbers: `count` numbers of `store`, from `start`, in row-major
/// order, with the shape the parser recorded. Its shape's element count equals `count` by
/// construction (a level is merged only from children of one shape).
package struct NumericArray: Sendable {
    package let store: NumberStore
    /// Index of the first number in `store`.
    package let start: Int
    /// The interned shape (see `NumberStore`).
    let shapeID: Int32

    /// Number of leaves.
    package var count: Int { store.shapes[Int(shapeID)].elements }

    /// Sizes of the nesting levels, outermost first.
    package var shape: [Int] { store.shape(shapeID) }

    /// Every leaf as a double (exact for integers up to 2^53).
    package var doubles: ArraySlice<Double> { store.doubles[start..<(start + count)] }

    /// Leaf `index` (0-based within this array) as an exact integer; nil when its literal was
    /// not an integer that fits in Int64.
    package func integer(at index: Int) -> Int64? { store.integer(at: start + index) }

    /// Leaf `index` (0-based within this array) as the number it was.
    package func number(at index: Int) -> JSONNumber {
        JSONNumber(double: store.doubles[start + index], integer: store.integer(at: start + index))
    }
}

/// Numbers as the parser reads them: each as a double, and which were integer literals. A value
/// the parser owns while it reads (so appending checks no exclusivity at run time), handed to its
/// `NumberStore` when the document is complete.
struct NumberColumn {
    /// Each number as a double.
    var doubles: [Double] = []
    /// Bit i set: number i was an integer literal that fits in Int64.
    var integral: [UInt64] = []
    /// Exact values of integral numbers a double cannot hold exactly (beyond ±2^53).
    var largeIntegers: [Int: Int64] = [:]

    var count: Int { doubles.count }

    /// A column with room for `capacity` numbers, in storage a parse before used if one is
    /// kept: a tensor body's numbers take megabytes, and fresh pages cost a fault each (3 MB:
    /// 1.7 ms here, against 0.05 ms to refill warm ones).
    init(capacity: Int) {
        if var kept = Self.kept.withLock({ $0.popLast() }) {
            kept.removeAll(keepingCapacity: true)
            doubles = kept
        }
        doubles.reserveCapacity(capacity)
    }

    init() {}

    /// Keeps the storage of a column no longer used for the next parse: at most `keptColumns`
    /// of at most `keptBytes` each (idle memory stays below 8 MiB; larger ones are freed).
    static func recycle(_ doubles: [Double]) {
        guard doubles.capacity > 0, doubles.capacity * MemoryLayout<Double>.stride <= keptBytes else { return }
        kept.withLock { kept in
            if kept.count < keptColumns { kept.append(doubles) }
        }
    }

    static let keptColumns = 2
    static let keptBytes = 4 << 20
    private static let kept = Mutex<[[Double]]>([])

    @inline(__always)
    mutating func append(_ number: JSONNumber) {
        let index = doubles.count
        doubles.append(number.double)
        if index % 64 == 0 { integral.append(0) }
        if let integer = number.integer {
            integral[index / 64] |= 1 << UInt64(index % 64)
            if integer.magnitude > 1 << 53 { largeIntegers[index] = integer }
        }
    }

    func integer(at index: Int) -> Int64? {
        guard integral[index / 64] & (1 << UInt64(index % 64)) != 0 else { return nil }
        let double = doubles[index]
        // Below 2^53 the double is the integer exactly; larger ones were kept aside.
        return double.magnitude < 0x1p53 ? Int64(double) : largeIntegers[index] ?? Int64(exactly: double)
    }
}

/// Every number of a document's numeric arrays, in document order, and the shapes of those
/// arrays. Written only by the parser that creates it (its numbers at the end of the parse);
/// read-only once parsing returns.
package final class NumberStore: @unchecked Sendable {
    private var numbers = NumberColumn()

    /// Each number as a double.
    package var doubles: [Double] { numbers.doubles }

    /// Interned shapes: a level of `count` children of shape `inner`; shape 0 is a single number.
    /// Equal shapes have equal ids, so comparing siblings costs one integer compare.
    struct InternedShape {
        var count: Int
        var inner: Int32
        /// Numbers under one list of this shape.
        var elements: Int
    }

    private(set) var shapes: [InternedShape] = [InternedShape(count: 1, inner: -1, elements: 1)]
    private var shapeIDs: [Int: Int32] = [:]

    /// The id of a single number's (rank-0) shape.
    static let scalarShape: Int32 = 0

    init() {}

    deinit { NumberColumn.recycle(numbers.doubles) }

    /// Takes the parser's numbers, once it has read them all.
    func adopt(_ column: NumberColumn) { numbers = column }

    func integer(at index: Int) -> Int64? { numbers.integer(at: index) }

    /// The id of a list of `count` children of shape `inner`; nil when the element count would
    /// overflow (it cannot for parsed data, whose numbers all exist, but this is the check).
    func intern(count: Int, inner: Int32) -> Int32? {
        guard count >= 0, count <= Int(UInt32.max) else { return nil }
        let key = count << 32 | Int(inner)
        if let id = shapeIDs[key] { return id }
        let (elements, overflow) = count.multipliedReportingOverflow(by: shapes[Int(inner)].elements)
        guard !overflow, shapes.count < Int32.max else { return nil }
        let id = Int32(shapes.count)
        shapes.append(InternedShape(count: count, inner: inner, elements: elements))
        shapeIDs[key] = id
        return id
    }

    /// The sizes of shape `id`, outermost first.
    func shape(_ id: Int32) -> [Int] {
        var dims: [Int] = []
        var current = id
        while current != Self.scalarShape {
            let level = shapes[Int(current)]
            dims.append(level.count)
            current = level.inner
        }
        return dims
    }
}
