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
        switch kind {
        case .sum: reduce(input, into: output, outer: outer, length: length, inner: inner, parallelism: parallelism, Sum())
        case .sumOfSquares: reduce(input, into: output, outer: outer, length: length, inner: inner, parallelism: parallelism, SumOfSquares())
        case .sumOfAbsolutes: reduce(input, into: output, outer: outer, length: length, inner: inner, parallelism: parallelism, SumOfAbsolutes())
        case .product: reduce(input, into: output, outer: outer, length: length, inner: inner, parallelism: parallelism, Product())
        case .maximum: reduce(input, into: output, outer: outer, length: length, inner: inner, parallelism: parallelism, Maximum())
        case .minimum: reduce(input, into: output, outer: outer, length: length, inner: inner, parallelism: parallelism, Minimum())
        }
    }

    @inlinable
    static func reduce<R: Reducer>(
        _ input: UnsafePointer<R.Element>, into output: UnsafeMutablePointer<R.Element>, outer: Int, length: Int, inner: Int,
        parallelism: Parallelism, _ reducer: R
    ) {
        parallelism.forEachRun(rows: outer, columns: inner, grain: grain / max(length, 1)) { o, columns in
            let source = input + o * length * inner, target = output + o * inner
            if inner == 1 {
                target[0] = combineRun(source, count: length, reducer)
            } else {
                for i in columns { target[i] = reducer.identity }
                for j in 0..<length {
                    let row = source + j * inner
                    for i in columns { target[i] = reducer.combine(target[i], reducer.map(row[i])) }
                }
            }
        }
    }

    /// The reduction of `count` contiguous values.
    @inlinable @inline(__always)
    static func combineRun<R: Reducer>(_ source: UnsafePointer<R.Element>, count: Int, _ reducer: R) -> R.Element {
        // Four independent accumulators: the operations overlap instead of waiting on each other.
        var a0 = reducer.identity, a1 = a0, a2 = a0, a3 = a0
        var j = 0
        while j + 4 <= count {
            a0 = reducer.combine(a0, reducer.map(source[j]))
            a1 = reducer.combine(a1, reducer.map(source[j + 1]))
            a2 = reducer.combine(a2, reducer.map(source[j + 2]))
            a3 = reducer.combine(a3, reducer.map(source[j + 3]))
            j += 4
        }
        while j < count {
            a0 = reducer.combine(a0, reducer.map(source[j]))
            j += 1
        }
        return reducer.combine(reducer.combine(a0, a1), reducer.combine(a2, a3))
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

    /// Reference twin of `reduce`: one output at a time, in index order, each kind spelled out.
    public static func naiveReduce<T: ArithmeticElement>(_ kind: Kind, _ input: [T], outer: Int, length: Int, inner: Int) -> [T] {
        var output: [T] = []
        for o in 0..<outer {
            for i in 0..<inner {
                let values = (0..<length).map { input[(o * length + $0) * inner + i] }
                switch kind {
                case .sum: output.append(values.reduce(0, T.add))
                case .sumOfSquares: output.append(values.reduce(0) { T.add($0, T.multiply($1, $1)) })
                case .sumOfAbsolutes: output.append(values.reduce(0) { T.add($0, T.absolute($1)) })
                case .product: output.append(values.reduce(1, T.multiply))
                case .maximum: output.append(values.reduce(T.lowest, T.maximum))
                case .minimum: output.append(values.reduce(T.highest, T.minimum))
                }
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

// MARK: Reducers

/// How values combine in a reduction, as a type so that each reduction gets its own loops.
public protocol Reducer {
    associatedtype Element
    /// The result for no values.
    var identity: Element { get }
    /// The value an element contributes.
    func map(_ x: Element) -> Element
    /// Two partial results combined.
    func combine(_ a: Element, _ b: Element) -> Element
}

extension Reduction {
    public struct Sum<T: ArithmeticElement>: Reducer {
        @inlinable public init() {}
        @inlinable public var identity: T { 0 }
        @inlinable public func map(_ x: T) -> T { x }
        @inlinable public func combine(_ a: T, _ b: T) -> T { T.add(a, b) }
    }

    public struct SumOfSquares<T: ArithmeticElement>: Reducer {
        @inlinable public init() {}
        @inlinable public var identity: T { 0 }
        @inlinable public func map(_ x: T) -> T { T.multiply(x, x) }
        @inlinable public func combine(_ a: T, _ b: T) -> T { T.add(a, b) }
    }

    public struct SumOfAbsolutes<T: ArithmeticElement>: Reducer {
        @inlinable public init() {}
        @inlinable public var identity: T { 0 }
        @inlinable public func map(_ x: T) -> T { T.absolute(x) }
        @inlinable public func combine(_ a: T, _ b: T) -> T { T.add(a, b) }
    }

    /// Sum of squared distances from `center` (variance times count).
    public struct SumOfSquaredDeviations<T: ArithmeticElement>: Reducer {
        public let center: T
        @inlinable public init(from center: T) { self.center = center }
        @inlinable public var identity: T { 0 }
        @inlinable public func map(_ x: T) -> T { let d = T.subtract(x, center); return T.multiply(d, d) }
        @inlinable public func combine(_ a: T, _ b: T) -> T { T.add(a, b) }
    }

    public struct Product<T: ArithmeticElement>: Reducer {
        @inlinable public init() {}
        @inlinable public var identity: T { 1 }
        @inlinable public func map(_ x: T) -> T { x }
        @inlinable public func combine(_ a: T, _ b: T) -> T { T.multiply(a, b) }
    }

    public struct Maximum<T: ArithmeticElement>: Reducer {
        @inlinable public init() {}
        @inlinable public var identity: T { T.lowest }
        @inlinable public func map(_ x: T) -> T { x }
        @inlinable public func combine(_ a: T, _ b: T) -> T { T.maximum(a, b) }
    }

    public struct Minimum<T: ArithmeticElement>: Reducer {
        @inlinable public init() {}
        @inlinable public var identity: T { T.highest }
        @inlinable public func map(_ x: T) -> T { x }
        @inlinable public func combine(_ a: T, _ b: T) -> T { T.minimum(a, b) }
    }
}
