/// The dimensions of a tensor, outermost first. A rank-0 shape (`[]`) is a scalar.
public struct Shape: Hashable, Sendable, RandomAccessCollection, MutableCollection,
    ExpressibleByArrayLiteral, CustomStringConvertible
{
    /// The dimension sizes, each zero or more.
    public var dims: [Int]

    /// A shape with these dimension sizes.
    public init(_ dims: [Int]) { self.dims = dims }

    public init(arrayLiteral elements: Int...) { dims = elements }

    public var startIndex: Int { 0 }
    public var endIndex: Int { dims.count }
    public subscript(position: Int) -> Int {
        get { dims[position] }
        set { dims[position] = newValue }
    }

    /// Number of dimensions.
    public var rank: Int { dims.count }

    /// Number of elements (1 for a scalar, 0 if any dimension is 0). Traps on overflow: use
    /// `checkedElementCount` for shapes read from a request or a model file.
    public var elementCount: Int { dims.reduce(1, *) }

    /// Number of elements, or nil when a dimension is negative or the product overflows `Int`.
    /// A zero dimension makes the count 0 whatever the others are.
    public var checkedElementCount: Int? {
        guard dims.allSatisfy({ $0 >= 0 }) else { return nil }
        if dims.contains(0) { return 0 }
        var count = 1
        for size in dims {
            let (product, overflow) = count.multipliedReportingOverflow(by: size)
            if overflow { return nil }
            count = product
        }
        return count
    }

    /// Number of elements, or nil when a dimension is negative or the product of the sizes, with
    /// zero sizes read as one, is above `limit`. Unlike `checkedElementCount`, a zero size does not
    /// excuse the others: a shape that passes has no product of some of its sizes (an outer count,
    /// a row length) that overflows, whatever its zeros.
    public func boundedElementCount(limit: Int) -> Int? {
        var count = 1, empty = false
        for size in dims {
            guard size >= 0 else { return nil }
            if size == 0 {
                empty = true
                continue
            }
            let (product, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow, product <= limit else { return nil }
            count = product
        }
        return empty ? 0 : count
    }

    /// Row-major strides in elements.
    public var strides: [Int] {
        var strides = [Int](repeating: 1, count: dims.count)
        var running = 1
        for axis in stride(from: dims.count - 1, through: 0, by: -1) {
            strides[axis] = running
            running *= dims[axis]
        }
        return strides
    }

    public var description: String { "[" + dims.map(String.init).joined(separator: ", ") + "]" }

    /// Normalises a possibly negative axis into `0..<rank` (`rank` is the count of valid positions,
    /// e.g. `rank + 1` for Unsqueeze). Returns nil when out of range.
    public static func normalize(axis: Int, rank: Int) -> Int? {
        let axis = axis < 0 ? axis + rank : axis
        return (0..<rank).contains(axis) ? axis : nil
    }

    /// Numpy-style broadcast of two shapes, or nil when they are incompatible.
    public static func broadcast(_ a: Shape, _ b: Shape) -> Shape? {
        let rank = Swift.max(a.rank, b.rank)
        var dims = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let x = i < rank - a.rank ? 1 : a[i - (rank - a.rank)]
            let y = i < rank - b.rank ? 1 : b[i - (rank - b.rank)]
            if x == y || y == 1 {
                dims[i] = x
            } else if x == 1 {
                dims[i] = y
            } else {
                return nil
            }
        }
        return Shape(dims)
    }
}
