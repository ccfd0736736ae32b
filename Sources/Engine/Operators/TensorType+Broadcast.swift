import Tensors

extension Dim {
    /// The numpy-broadcast of two dimensions; nil when both are known, differ, and neither is 1.
    /// A named or unknown size against 1 keeps its name; against a known size n > 1 it is n
    /// (the only size that broadcasts); two different unknowns stay unknown.
    static func broadcast(_ a: Dim, _ b: Dim) -> Dim? {
        switch (a, b) {
        case (.fixed(1), _): return b
        case (_, .fixed(1)): return a
        case (.fixed(let x), .fixed(let y)): return x == y ? a : nil
        case (.fixed, _): return a
        case (_, .fixed): return b
        case (.symbolic(let x), .symbolic(let y)) where x == y: return a
        default: return .unknown
        }
    }
}

extension TensorType {
    /// Dimensions of the numpy-broadcast of several inputs' dimensions (nil entries: rank unknown).
    /// Throws `OpError` when known sizes cannot broadcast.
    static func broadcast(_ shapes: [[Dim]?]) throws -> [Dim]? {
        var result: [Dim] = []
        for case let dims? in shapes {
            let rank = Swift.max(result.count, dims.count)
            let left = [Dim](repeating: .fixed(1), count: rank - result.count) + result
            let right = [Dim](repeating: .fixed(1), count: rank - dims.count) + dims
            result = try zip(left, right).map { a, b in
                guard let dim = Dim.broadcast(a, b) else {
                    throw OpError.invalidArgument("shapes \(Self.describe(shapes)) do not broadcast")
                }
                return dim
            }
        }
        return shapes.contains { $0 == nil } ? nil : result
    }

    private static func describe(_ shapes: [[Dim]?]) -> String {
        shapes.map { dims in dims.map { "[" + $0.map(\.description).joined(separator: ", ") + "]" } ?? "[?]" }
            .joined(separator: " and ")
    }
}

