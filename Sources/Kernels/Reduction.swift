/// Reductions along one axis of a tensor viewed as `[outer, length, inner]`.
///
/// Any set of axes reduces as a sequence of such steps (consecutive axes merge into one), and
/// the inner > 1 case walks whole rows so it vectorises over `inner` instead of striding.
public enum Reduction {
    /// How the values along the axis combine.
    public enum Kind: Sendable, Hashable {
        case sum
        /// Sum of squares.
        case sumOfSquares
        /// Sum of absolute values.
        case sumOfAbsolutes
        case product
        /// Largest value (NaN if any is NaN); the type's lowest value for an empty axis.
        case maximum
        /// Smallest value (NaN if any is NaN); the type's highest value for an empty axis.
        case minimum

        /// The value each element contributes.
        @inlinable
        func map<T: ArithmeticElement>(_ x: T) -> T {
            switch self {
            case .sumOfSquares: T.multiply(x, x)
            case .sumOfAbsolutes: T.absolute(x)
            case .sum, .product, .maximum, .minimum: x
            }
        }

        /// How two partial results combine.
        @inlinable
        func combine<T: ArithmeticElement>(_ a: T, _ b: T) -> T {
            switch self {
            case .sum, .sumOfSquares, .sumOfAbsolutes: T.add(a, b)
            case .product: T.multiply(a, b)
            case .maximum: T.maximum(a, b)
            case .minimum: T.minimum(a, b)
            }
        }

        /// The result for an empty axis.
        @inlinable
        func identity<T: ArithmeticElement>(_: T.Type) -> T {
            switch self {
            case .sum, .sumOfSquares, .sumOfAbsolutes: 0
            case .product: 1
            case .maximum: T.lowest
            case .minimum: T.highest
            }
        }
    }

    /// Input elements per parallel task: enough work to outweigh the dispatch.
    @usableFromInline static let grain = 1 << 15

    /// Reduces the middle axis: `output[o, i] = combine over j of map(input[o, j, i])`.
    // Shapes: input[outer, length, inner], output[outer, inner].
    @inlinable
    public static func reduce<T: ArithmeticElement>(
        _ kind: Kind, _ input: UnsafePointer<T>, into output: UnsafeMutablePointer<T>,
        outer: Int, length: Int, inner: Int, parallelism: Parallelism
    ) {
        // A constant kind per call so map and combine inline into the loops.
        @inline(__always) func run(_ kind: Kind) {
            reduce(input, into: output, outer: outer, length: length, inner: inner, parallelism: parallelism,
                   identity: kind.identity(T.self), map: kind.map, combine: kind.combine)
        }
        switch kind {
        case .sum: run(.sum)
        case .sumOfSquares: run(.sumOfSquares)
        case .sumOfAbsolutes: run(.sumOfAbsolutes)
        case .product: run(.product)
        case .maximum: run(.maximum)
        case .minimum: run(.minimum)
        }
    }

    @inlinable
    static func reduce<T>(
        _ input: UnsafePointer<T>, into output: UnsafeMutablePointer<T>, outer: Int, length: Int, inner: Int,
        parallelism: Parallelism, identity: T, map: (T) -> T, combine: (T, T) -> T
    ) {
        parallelism.forEachRun(rows: outer, columns: inner, grain: grain / max(length, 1)) { o, columns in
            let source = input + o * length * inner, target = output + o * inner
            if inner == 1 {
                target[0] = combineRun(source, count: length, identity: identity, map: map, combine: combine)
            } else {
                for i in columns { target[i] = identity }
                for j in 0..<length {
                    let row = source + j * inner
                    for i in columns { target[i] = combine(target[i], map(row[i])) }
                }
            }
        }
    }

    /// `combine` over `map` of `count` contiguous values.
    @inlinable @inline(__always)
    static func combineRun<T>(_ source: UnsafePointer<T>, count: Int, identity: T, map: (T) -> T, combine: (T, T) -> T) -> T {
        // Four independent accumulators: the operations overlap instead of waiting on each other.
        var a0 = identity, a1 = identity, a2 = identity, a3 = identity
        var j = 0
        while j + 4 <= count {
            a0 = combine(a0, map(source[j]))
            a1 = combine(a1, map(source[j + 1]))
            a2 = combine(a2, map(source[j + 2]))
            a3 = combine(a3, map(source[j + 3]))
            j += 4
        }
        while j < count {
            a0 = combine(a0, map(source[j]))
            j += 1
        }
        return combine(combine(a0, a1), combine(a2, a3))
    }

    /// `output[o, i] = log(sum over j of exp(input[o, j, i]))`, computed around the maximum so
    /// large values do not overflow; -∞ for an empty axis.
    // Shapes: input[outer, length, inner], output[outer, inner].
    @inlinable
    public static func logSumExp<T: RealElement>(
        _ input: UnsafePointer<T>, into output: UnsafeMutablePointer<T>,
        outer: Int, length: Int, inner: Int, parallelism: Parallelism
    ) {
        reduce(.maximum, input, into: output, outer: outer, length: length, inner: inner, parallelism: parallelism)
        parallelism.forEachRun(rows: outer, columns: inner, grain: grain / max(length, 1)) { o, columns in
            let source = input + o * length * inner, target = output + o * inner
            for i in columns {
                let peak = target[i]
                // Infinite or NaN maxima are already the answer (and would give NaN below).
                guard peak.isFinite else { continue }
                var sum: T = 0
                for j in 0..<length { sum += T.exp(source[j * inner + i] - peak) }
                target[i] = peak + T.log(sum)
            }
        }
    }

    /// Index along the axis of the largest (or smallest) value: the first one, or the last one
    /// when `selectLast`.
    // Shapes: input[outer, length, inner], output[outer, inner].
    @inlinable
    public static func argExtremum<T: ArithmeticElement>(
        _ input: UnsafePointer<T>, into output: UnsafeMutablePointer<Int64>,
        outer: Int, length: Int, inner: Int, largest: Bool, selectLast: Bool, parallelism: Parallelism
    ) {
        parallelism.forEachRun(rows: outer, columns: inner, grain: grain / max(length, 1)) { o, columns in
            let source = input + o * length * inner
            for i in columns {
                var best = source[i], index = 0
                for j in 1..<max(length, 1) {
                    let x = source[j * inner + i]
                    let better = largest ? (selectLast ? x >= best : x > best) : (selectLast ? x <= best : x < best)
                    if better { best = x; index = j }
                }
                output[o * inner + i] = Int64(index)
            }
        }
    }

    // MARK: Reference

    /// Reference twin of `reduce`: one output at a time, in index order.
    public static func naiveReduce<T: ArithmeticElement>(_ kind: Kind, _ input: [T], outer: Int, length: Int, inner: Int) -> [T] {
        var output: [T] = []
        for o in 0..<outer {
            for i in 0..<inner {
                var accumulator = kind.identity(T.self)
                for j in 0..<length { accumulator = kind.combine(accumulator, kind.map(input[(o * length + j) * inner + i])) }
                output.append(accumulator)
            }
        }
        return output
    }

    /// Reference twin of `logSumExp`: the textbook formula in Double.
    public static func naiveLogSumExp<T: RealElement>(_ input: [T], outer: Int, length: Int, inner: Int) -> [T] {
        var output: [T] = []
        for o in 0..<outer {
            for i in 0..<inner {
                let sum = (0..<length).reduce(0.0) { $0 + Double.exp(Double(input[(o * length + $1) * inner + i])) }
                output.append(T(Double.log(sum)))
            }
        }
        return output
    }

    /// Reference twin of `argExtremum`.
    public static func naiveArgExtremum<T: ArithmeticElement>(_ input: [T], outer: Int, length: Int, inner: Int,
                                                              largest: Bool, selectLast: Bool) -> [Int64] {
        var output: [Int64] = []
        for o in 0..<outer {
            for i in 0..<inner {
                let values = (0..<length).map { input[(o * length + $0) * inner + i] }
                let target = largest ? values.max()! : values.min()!
                let index = selectLast ? values.lastIndex(of: target)! : values.firstIndex(of: target)!
                output.append(Int64(index))
            }
        }
        return output
    }
}
