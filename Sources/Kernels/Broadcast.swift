public import Tensors

/// Numpy-style broadcasting of elementwise operands onto one output, walked segment by segment.
///
/// Output dimensions of size 1 are dropped and neighbouring dimensions that every operand walks
/// contiguously (or broadcasts along together) are merged, so a same-shape, scalar or
/// per-channel operation becomes one or two plain loops instead of an index computation per
/// element. Every elementwise kernel (unary, binary, ternary, any element types) runs on it.
public struct BroadcastLayout: Sendable, Equatable {
    /// The output shape.
    public let shape: Shape
    /// Merged output dimensions, outermost first; empty for a single element.
    @usableFromInline let dims: [Int]
    /// For each operand, its element stride along each merged dimension (0 where broadcast).
    @usableFromInline let strides: [[Int]]

    /// A single operand with the output's own shape: a plain elementwise map over one run.
    public init(elementwise shape: Shape) {
        self.shape = shape
        dims = shape.elementCount == 1 ? [] : [shape.elementCount]
        strides = [shape.elementCount == 1 ? [] : [1]]
    }

    /// Operands broadcast against each other; nil when their shapes are incompatible.
    public init?(_ operands: [Shape]) {
        // Operands of one shape (most elementwise steps): one run, what the merging below gives.
        if let first = operands.first, operands.allSatisfy({ $0 == first }) {
            let single = first.elementCount == 1
            self.init(shape: first, dims: single ? [] : [first.elementCount], strides: Array(repeating: single ? [] : [1], count: operands.count))
            return
        }
        var output = Shape([])
        for operand in operands {
            guard let joined = Shape.broadcast(output, operand) else { return nil }
            output = joined
        }
        self.init(output: output, operands: operands)
    }

    private init(shape: Shape, dims: [Int], strides: [[Int]]) {
        self.shape = shape
        self.dims = dims
        self.strides = strides
    }

    /// Operands broadcast onto a given output shape; nil when one of them does not fit it.
    public init?(output: Shape, operands: [Shape]) {
        let rank = output.rank
        var merged: [Int] = []
        var mergedStrides = [[Int]](repeating: [], count: operands.count)
        var operandStrides: [[Int]] = []
        for operand in operands {
            guard operand.rank <= rank else { return nil }
            let padded = [Int](repeating: 1, count: rank - operand.rank) + operand.dims
            var strides = Shape(padded).strides
            for axis in 0..<rank {
                if padded[axis] == output[axis] { continue }
                guard padded[axis] == 1 else { return nil }
                strides[axis] = 0
            }
            operandStrides.append(strides)
        }
        for axis in 0..<rank where output[axis] != 1 {
            let size = output[axis]
            // Merge into the previous dimension when every operand continues its walk there.
            if let last = merged.last, operandStrides.indices.allSatisfy({ k in
                mergedStrides[k].last! == operandStrides[k][axis] * size
            }) {
                merged[merged.count - 1] = last * size
                for k in operandStrides.indices { mergedStrides[k][mergedStrides[k].count - 1] = operandStrides[k][axis] }
            } else {
                merged.append(size)
                for k in operandStrides.indices { mergedStrides[k].append(operandStrides[k][axis]) }
            }
        }
        shape = output
        dims = merged
        strides = mergedStrides
    }

    /// Number of output elements.
    public var count: Int { shape.elementCount }

    /// Length of the innermost merged dimension: the longest run one loop covers.
    @inlinable var rowLength: Int { dims.last ?? 1 }

    /// Stride of `operand` along the innermost merged dimension (0 or 1).
    @inlinable func innerStride(_ operand: Int) -> Int { strides[operand].last ?? 0 }

    /// Calls `body(outputOffset, operandOffsets, count)` for each run of output elements
    /// `elements` covers within one innermost row; operand `k` advances `innerStride(k)` per element.
    @inlinable
    func forEachSegment(_ elements: Range<Int>, _ body: (Int, UnsafeMutableBufferPointer<Int>, Int) -> Void) {
        if elements.isEmpty { return }
        let operandCount = strides.count, outer = dims.count - 1, length = rowLength
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * operandCount + max(outer, 0)) { scratch in
            // Offsets of the current row's first element, the current segment's, and the odometer.
            let rowStart = UnsafeMutableBufferPointer(rebasing: scratch[0..<operandCount])
            let segment = UnsafeMutableBufferPointer(rebasing: scratch[operandCount..<(2 * operandCount)])
            let index = UnsafeMutableBufferPointer(rebasing: scratch[(2 * operandCount)...])
            var row = elements.lowerBound / length
            var column = elements.lowerBound % length
            for k in 0..<operandCount { rowStart[k] = 0 }
            for axis in stride(from: outer - 1, through: 0, by: -1) {
                index[axis] = row % dims[axis]
                row /= dims[axis]
                for k in 0..<operandCount { rowStart[k] += index[axis] * strides[k][axis] }
            }
            var position = elements.lowerBound
            while true {
                let run = min(length - column, elements.upperBound - position)
                for k in 0..<operandCount { segment[k] = rowStart[k] + column * innerStride(k) }
                body(position, segment, run)
                position += run
                if position >= elements.upperBound { return }
                column = 0
                var axis = outer - 1
                while axis >= 0 {
                    index[axis] += 1
                    for k in 0..<operandCount { rowStart[k] += strides[k][axis] }
                    if index[axis] < dims[axis] { break }
                    for k in 0..<operandCount { rowStart[k] -= dims[axis] * strides[k][axis] }
                    index[axis] = 0
                    axis -= 1
                }
            }
        }
    }

    /// Runs `forEachSegment` over all output elements, split over `parallelism` in chunks of at
    /// least `grain` elements.
    @inlinable
    func forEachSegment(parallelism: Parallelism, grain: Int, _ body: (Int, UnsafeMutableBufferPointer<Int>, Int) -> Void) {
        parallelism.forEachChunk(count, minimumChunk: grain) { chunk in forEachSegment(chunk, body) }
    }

    /// Elements per parallel task for a cheap operation: big enough to outweigh the dispatch.
    public static let defaultGrain = 1 << 15
}

// MARK: Kernels

/// A function of one element. Kernels take it as a type, not a closure, so every use compiles
/// into its own loop with the function inlined (and vectorised where it can be); a closure
/// handed across modules ends up as an indirect call per element.
public protocol UnaryElementFunction {
    associatedtype Input
    associatedtype Output
    func callAsFunction(_ x: Input) -> Output
}

/// A function of two elements (see `UnaryElementFunction`).
public protocol BinaryElementFunction {
    associatedtype Left
    associatedtype Right
    associatedtype Output
    func callAsFunction(_ a: Left, _ b: Right) -> Output
}

/// A function of three elements (see `UnaryElementFunction`).
public protocol TernaryElementFunction {
    associatedtype First
    associatedtype Second
    associatedtype Third
    associatedtype Output
    func callAsFunction(_ a: First, _ b: Second, _ c: Third) -> Output
}

extension BroadcastLayout {
    /// `c[i] = op(a[i'])` where `a` broadcasts onto the output (a single operand; `Expand`).
    // Shapes: a is the layout's operand 0, c is `shape`.
    @inlinable
    public func map<F: UnaryElementFunction>(_ a: UnsafePointer<F.Input>, into c: UnsafeMutablePointer<F.Output>,
                                             parallelism: Parallelism, grain: Int = defaultGrain, _ op: F) {
        let sa = innerStride(0)
        forEachSegment(parallelism: parallelism, grain: grain) { out, offsets, n in
            let a = a + offsets[0], c = c + out
            if sa == 1 {
                for i in 0..<n { c[i] = op(a[i]) }
            } else {
                let x = op(a[0])
                for i in 0..<n { c[i] = x }
            }
        }
    }

    /// `c[i] = op(a[i'], b[i''])` with both operands broadcast onto the output.
    // Shapes: a and b are the layout's operands 0 and 1, c is `shape`.
    @inlinable
    public func binary<F: BinaryElementFunction>(_ a: UnsafePointer<F.Left>, _ b: UnsafePointer<F.Right>,
                                                 into c: UnsafeMutablePointer<F.Output>, parallelism: Parallelism,
                                                 grain: Int = defaultGrain, _ op: F) {
        let sa = innerStride(0), sb = innerStride(1)
        forEachSegment(parallelism: parallelism, grain: grain) { out, offsets, n in
            let a = a + offsets[0], b = b + offsets[1], c = c + out
            // One loop per stride pattern so each is a tight, vectorisable loop.
            switch (sa, sb) {
            case (1, 1): for i in 0..<n { c[i] = op(a[i], b[i]) }
            case (0, 1): let x = a[0]; for i in 0..<n { c[i] = op(x, b[i]) }
            case (1, 0): let y = b[0]; for i in 0..<n { c[i] = op(a[i], y) }
            default: let z = op(a[0], b[0]); for i in 0..<n { c[i] = z }
            }
        }
    }

    /// `d[i] = op(a[i'], b[i''], c[i'''])` with all three operands broadcast onto the output.
    // Shapes: a, b and c are the layout's operands 0, 1 and 2, d is `shape`.
    @inlinable
    public func ternary<F: TernaryElementFunction>(_ a: UnsafePointer<F.First>, _ b: UnsafePointer<F.Second>,
                                                   _ c: UnsafePointer<F.Third>, into d: UnsafeMutablePointer<F.Output>,
                                                   parallelism: Parallelism, grain: Int = defaultGrain, _ op: F) {
        let sa = innerStride(0), sb = innerStride(1), sc = innerStride(2)
        forEachSegment(parallelism: parallelism, grain: grain) { out, offsets, n in
            let a = a + offsets[0], b = b + offsets[1], c = c + offsets[2], d = d + out
            if sa == 1 && sb == 1 && sc == 1 {
                for i in 0..<n { d[i] = op(a[i], b[i], c[i]) }
            } else {
                for i in 0..<n { d[i] = op(a[i * sa], b[i * sb], c[i * sc]) }
            }
        }
    }
}

// MARK: Reference

extension BroadcastLayout {
    /// Reference twin of the kernels: `result[i] = op(operand values at i)`, one index
    /// computation per element, straight from the broadcasting rule.
    public static func naive<T, R>(_ operands: [[T]], shapes: [Shape], output: Shape, _ op: ([T]) -> R) -> [R] {
        let outputStrides = output.strides
        return (0..<output.elementCount).map { flat in
            let values = operands.indices.map { k in
                let shape = shapes[k], offset = output.rank - shape.rank
                var index = 0, step = 1
                for axis in stride(from: shape.rank - 1, through: 0, by: -1) {
                    let coordinate = flat / outputStrides[axis + offset] % output[axis + offset]
                    index += (shape[axis] == 1 ? 0 : coordinate) * step
                    step *= shape[axis]
                }
                return operands[k][index]
            }
            return op(values)
        }
    }
}
