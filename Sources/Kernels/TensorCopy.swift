#if canImport(Glibc)
import Glibc
#endif

/// Byte-moving kernels shared by every layout operator (Transpose, Slice, Concat, Split, Expand,
/// Tile, Pad, Gather and friends, nearest Resize). They know element sizes, never element types,
/// so one kernel serves every data type.
public enum TensorCopy {
    /// Bytes one parallel task should move at least, so scheduling costs stay small.
    static let bytesPerTask = 64 * 1024

    // MARK: Strided views

    /// Copies an N-d view: for every index `i` of `shape`, the element at `source + Σ i[a]·sourceStrides[a]`
    /// goes to `target + Σ i[a]·targetStrides[a]` (strides in elements; a source stride may be 0 to
    /// repeat an element, or negative). Transpose, Slice, Expand, Tile, Concat and Split are all this.
    ///
    /// Contiguous inner axes become one block copied with `memcpy`; a 2-D transpose inside the view
    /// is copied in cache-sized tiles; the outer axes are spread over `parallelism`.
    // Shapes: shape[rank], sourceStrides[rank], targetStrides[rank]; elements of `elementSize` bytes.
    public static func strided(
        shape: [Int], elementSize: Int,
        source: UnsafeRawPointer, sourceStrides: [Int],
        target: UnsafeMutableRawPointer, targetStrides: [Int],
        parallelism: Parallelism = .serial
    ) {
        guard let view = StridedView(shape: shape, elementSize: elementSize,
                                     sourceStrides: sourceStrides, targetStrides: targetStrides) else { return }
        if view.sizes.isEmpty {
            copyBytes(view.blockBytes, from: source, to: target, parallelism: parallelism)
            return
        }
        let rank = view.sizes.count
        if let tile = view.transposeTile {
            // The two inner axes form a 2-D transpose; tasks take blocks of rows.
            let rowBytes = view.sizes[rank - 1] * view.blockBytes
            let blockRows = min(max(transposeBlockBytes / rowBytes, 64), 512)
            let rows = view.sizes[rank - 2], blocks = (rows + blockRows - 1) / blockRows
            let outerCount = view.sizes[..<(rank - 2)].reduce(1, *)
            let bytesPerBlock = blockRows * rowBytes
            parallelism.forEachChunk(outerCount * blocks, minimumChunk: max(1, bytesPerTask / bytesPerBlock)) { units in
                var odometer = Odometer(view, outerRank: rank - 2, start: units.lowerBound / blocks)
                var block = units.lowerBound % blocks
                for _ in units {
                    let first = block * blockRows
                    transposeRows(view, rows: first..<min(first + blockRows, rows), tile: tile,
                                  source: source + odometer.sourceOffset, target: target + odometer.targetOffset)
                    block += 1
                    if block == blocks {
                        block = 0
                        odometer.advance()
                    }
                }
            }
            return
        }
        let count = view.sizes[rank - 1]
        let sourceStep = view.sourceStrides[rank - 1], targetStep = view.targetStrides[rank - 1]
        let outerCount = view.sizes[..<(rank - 1)].reduce(1, *)
        parallelism.forEachChunk(outerCount, minimumChunk: max(1, bytesPerTask / (count * view.blockBytes))) { lines in
            var odometer = Odometer(view, outerRank: rank - 1, start: lines.lowerBound)
            for _ in lines {
                copyLine(count: count, blockBytes: view.blockBytes,
                         source: source + odometer.sourceOffset, sourceStep: sourceStep,
                         target: target + odometer.targetOffset, targetStep: targetStep)
                odometer.advance()
            }
        }
    }

    /// Naive twin of `strided`: one element at a time, indices recomputed for each.
    public static func stridedReference(
        shape: [Int], elementSize: Int,
        source: UnsafeRawPointer, sourceStrides: [Int],
        target: UnsafeMutableRawPointer, targetStrides: [Int]
    ) {
        let count = shape.reduce(1, *)
        for flat in 0..<count {
            var rest = flat, sourceOffset = 0, targetOffset = 0
            for axis in shape.indices.reversed() {
                let index = rest % shape[axis]
                rest /= shape[axis]
                sourceOffset += index * sourceStrides[axis]
                targetOffset += index * targetStrides[axis]
            }
            memcpy(target + targetOffset * elementSize, source + sourceOffset * elementSize, elementSize)
        }
    }

    // MARK: Indexed views

    /// Gathers an N-d view through per-axis offset tables into a contiguous target: the element at
    /// index `i` of `shape` is the `elementSize`-byte element at `source + Σ byteOffsets[a][i[a]]`.
    /// Gather, GatherND, GatherElements, Compress, ReverseSequence, Pad's edge/reflect/wrap modes and
    /// nearest Resize are all this (an element may be a whole row).
    ///
    /// A target row whose source row equals the previous one (upsampling) is copied from the row
    /// just written instead of gathered again.
    // Shapes: shape[rank]; byteOffsets[a] has shape[a] entries; target[shape] contiguous.
    public static func indexed(
        shape: [Int], elementSize: Int, source: UnsafeRawPointer, byteOffsets: [[Int]],
        target: UnsafeMutableRawPointer, parallelism: Parallelism = .serial
    ) {
        precondition(byteOffsets.count == shape.count && zip(shape, byteOffsets).allSatisfy { $0 == $1.count },
                     "one offset per index of each axis")
        if shape.contains(0) { return }
        guard let width = shape.last else {
            memcpy(target, source, elementSize)
            return
        }
        let inner = byteOffsets[shape.count - 1]
        let rowBytes = width * elementSize
        if shape.count == 1 {
            parallelism.forEachChunk(width, minimumChunk: max(1, bytesPerTask / elementSize)) { range in
                inner.withUnsafeBufferPointer { offsets in
                    gatherLine(offsets: UnsafeBufferPointer(rebasing: offsets[range]), elementSize: elementSize,
                               source: source, target: target + range.lowerBound * elementSize)
                }
            }
            return
        }
        let outerShape = Array(shape.dropLast()), outerOffsets = Array(byteOffsets.dropLast())
        let rows = outerShape.reduce(1, *)
        // An inner table that walks the source contiguously makes every row one memcpy.
        let contiguous = zip(inner, inner.dropFirst()).allSatisfy { $1 - $0 == elementSize }
        parallelism.forEachChunk(rows, minimumChunk: max(1, bytesPerTask / rowBytes)) { range in
            var index = unflatten(range.lowerBound, outerShape)
            var base = zip(index, outerOffsets).reduce(0) { $0 + $1.1[$1.0] }
            var previousBase: Int? = nil
            inner.withUnsafeBufferPointer { offsets in
                for row in range {
                    let rowTarget = target + row * rowBytes
                    if base == previousBase {
                        memcpy(rowTarget, rowTarget - rowBytes, rowBytes)
                    } else if contiguous {
                        memcpy(rowTarget, source + base + offsets[0], rowBytes)
                    } else {
                        gatherLine(offsets: offsets, elementSize: elementSize, source: source + base, target: rowTarget)
                    }
                    previousBase = base
                    // Advance the outer index and keep `base` in step.
                    var axis = outerShape.count - 1
                    while axis >= 0 {
                        base -= outerOffsets[axis][index[axis]]
                        index[axis] += 1
                        if index[axis] < outerShape[axis] {
                            base += outerOffsets[axis][index[axis]]
                            break
                        }
                        index[axis] = 0
                        base += outerOffsets[axis][0]
                        axis -= 1
                    }
                }
            }
        }
    }

    /// Naive twin of `indexed`.
    public static func indexedReference(
        shape: [Int], elementSize: Int, source: UnsafeRawPointer, byteOffsets: [[Int]], target: UnsafeMutableRawPointer
    ) {
        let count = shape.reduce(1, *)
        for flat in 0..<count {
            let index = unflatten(flat, shape)
            let offset = zip(index, byteOffsets).reduce(0) { $0 + $1.1[$1.0] }
            memcpy(target + flat * elementSize, source + offset, elementSize)
        }
    }

    // MARK: Fill

    /// Writes the `elementSize`-byte value at `value` into `count` consecutive elements of `target`.
    // Shapes: target[count], value[1]; elements of `elementSize` bytes.
    public static func fill(_ target: UnsafeMutableRawPointer, count: Int, elementSize: Int, value: UnsafeRawPointer) {
        guard count > 0 else { return }
        switch elementSize {
        case 1: memset(target, Int32(value.load(as: UInt8.self)), count)
        case 2: fillTyped(target, count: count, value: value.loadUnaligned(as: UInt16.self))
        case 4: fillTyped(target, count: count, value: value.loadUnaligned(as: UInt32.self))
        case 8: fillTyped(target, count: count, value: value.loadUnaligned(as: UInt64.self))
        default:
            // Doubling copies: log2(count) memcpy calls.
            memcpy(target, value, elementSize)
            var filled = 1
            while filled < count {
                let chunk = min(filled, count - filled)
                memcpy(target + filled * elementSize, target, chunk * elementSize)
                filled += chunk
            }
        }
    }

    // MARK: Pieces

    /// The multi-index of a flat row-major position.
    static func unflatten(_ flat: Int, _ shape: [Int]) -> [Int] {
        var index = [Int](repeating: 0, count: shape.count), rest = flat
        for axis in shape.indices.reversed() where shape[axis] > 0 {
            index[axis] = rest % shape[axis]
            rest /= shape[axis]
        }
        return index
    }

    private static func fillTyped<T: FixedWidthInteger>(_ target: UnsafeMutableRawPointer, count: Int, value: T) {
        for index in 0..<count { target.storeBytes(of: value, toByteOffset: index * MemoryLayout<T>.stride, as: T.self) }
    }

    /// One big contiguous copy, split over threads when it is large.
    private static func copyBytes(_ byteCount: Int, from source: UnsafeRawPointer, to target: UnsafeMutableRawPointer,
                                  parallelism: Parallelism) {
        parallelism.forEachChunk(byteCount, minimumChunk: 4 * bytesPerTask) { range in
            memcpy(target + range.lowerBound, source + range.lowerBound, range.count)
        }
    }

    /// `count` blocks of `blockBytes` bytes, each stepping by its own byte stride.
    private static func copyLine(count: Int, blockBytes: Int, source: UnsafeRawPointer, sourceStep: Int,
                                 target: UnsafeMutableRawPointer, targetStep: Int) {
        switch blockBytes {
        case 1: copyLine(UInt8.self, count, source, sourceStep, target, targetStep)
        case 2: copyLine(UInt16.self, count, source, sourceStep, target, targetStep)
        case 4: copyLine(UInt32.self, count, source, sourceStep, target, targetStep)
        case 8: copyLine(UInt64.self, count, source, sourceStep, target, targetStep)
        default:
            for index in 0..<count {
                memcpy(target + index * targetStep, source + index * sourceStep, blockBytes)
            }
        }
    }

    private static func copyLine<T: FixedWidthInteger>(_: T.Type, _ count: Int, _ source: UnsafeRawPointer, _ sourceStep: Int,
                                                        _ target: UnsafeMutableRawPointer, _ targetStep: Int) {
        for index in 0..<count {
            target.storeBytes(of: source.loadUnaligned(fromByteOffset: index * sourceStep, as: T.self),
                              toByteOffset: index * targetStep, as: T.self)
        }
    }

    /// Target bytes one block of a 2-D transpose writes: its rows are revisited once per column
    /// tile, so they should stay in L2, while each tile should read long runs per source stream
    /// (the hardware prefetcher follows a handful of streams, not 64).
    static let transposeBlockBytes = 256 * 1024

    /// Copies the rows `rows` of a 2-D transpose (the view's two inner axes) one column tile at a
    /// time, so the `tile` strided source streams and the written rows stay in cache.
    private static func transposeRows(_ view: StridedView, rows: Range<Int>, tile: Int,
                                      source: UnsafeRawPointer, target: UnsafeMutableRawPointer) {
        switch view.blockBytes {
        case 1: transposeRows(UInt8.self, view, rows, tile, source, target)
        case 2: transposeRows(UInt16.self, view, rows, tile, source, target)
        case 4: transposeRows(UInt32.self, view, rows, tile, source, target)
        default: transposeRows(UInt64.self, view, rows, tile, source, target)
        }
    }

    private static func transposeRows<T: FixedWidthInteger & SIMDScalar>(
        _: T.Type, _ view: StridedView, _ rows: Range<Int>, _ tile: Int,
        _ source: UnsafeRawPointer, _ target: UnsafeMutableRawPointer
    ) {
        let rank = view.sizes.count, columns = view.sizes[rank - 1]
        // Along rows the source is contiguous; along columns the target is (see `transposeTile`).
        let sourceColumnStep = view.sourceStrides[rank - 1], targetRowStep = view.targetStrides[rank - 2]
        let size = MemoryLayout<T>.stride
        var column = 0
        while column < columns {
            let columnEnd = min(column + tile, columns)
            var row = rows.lowerBound
            // 4×4 blocks: four contiguous source runs in, four contiguous target runs out.
            while row + 4 <= rows.upperBound {
                var blockColumn = column
                while blockColumn + 4 <= columnEnd {
                    let input = source + blockColumn * sourceColumnStep + row * size
                    let a = input.loadUnaligned(as: SIMD4<T>.self)
                    let b = input.loadUnaligned(fromByteOffset: sourceColumnStep, as: SIMD4<T>.self)
                    let c = input.loadUnaligned(fromByteOffset: 2 * sourceColumnStep, as: SIMD4<T>.self)
                    let d = input.loadUnaligned(fromByteOffset: 3 * sourceColumnStep, as: SIMD4<T>.self)
                    let output = target + row * targetRowStep + blockColumn * size
                    output.storeBytes(of: SIMD4(a[0], b[0], c[0], d[0]), as: SIMD4<T>.self)
                    output.storeBytes(of: SIMD4(a[1], b[1], c[1], d[1]), toByteOffset: targetRowStep, as: SIMD4<T>.self)
                    output.storeBytes(of: SIMD4(a[2], b[2], c[2], d[2]), toByteOffset: 2 * targetRowStep, as: SIMD4<T>.self)
                    output.storeBytes(of: SIMD4(a[3], b[3], c[3], d[3]), toByteOffset: 3 * targetRowStep, as: SIMD4<T>.self)
                    blockColumn += 4
                }
                transposeEdge(T.self, rows: row..<(row + 4), columns: blockColumn..<columnEnd,
                              sourceColumnStep: sourceColumnStep, targetRowStep: targetRowStep, source, target)
                row += 4
            }
            transposeEdge(T.self, rows: row..<rows.upperBound, columns: column..<columnEnd,
                          sourceColumnStep: sourceColumnStep, targetRowStep: targetRowStep, source, target)
            column = columnEnd
        }
    }

    /// The elements of a transpose left over by the 4×4 blocks, one at a time.
    private static func transposeEdge<T: FixedWidthInteger>(
        _: T.Type, rows: Range<Int>, columns: Range<Int>, sourceColumnStep: Int, targetRowStep: Int,
        _ source: UnsafeRawPointer, _ target: UnsafeMutableRawPointer
    ) {
        let size = MemoryLayout<T>.stride
        for row in rows {
            for column in columns {
                target.storeBytes(of: source.loadUnaligned(fromByteOffset: column * sourceColumnStep + row * size, as: T.self),
                                  toByteOffset: row * targetRowStep + column * size, as: T.self)
            }
        }
    }

    /// `target[j] = source[offsets[j]]` (byte offsets) for elements of `elementSize` bytes.
    private static func gatherLine(offsets: UnsafeBufferPointer<Int>, elementSize: Int,
                                   source: UnsafeRawPointer, target: UnsafeMutableRawPointer) {
        switch elementSize {
        case 1: gatherLine(UInt8.self, offsets, source, target)
        case 2: gatherLine(UInt16.self, offsets, source, target)
        case 4: gatherLine(UInt32.self, offsets, source, target)
        case 8: gatherLine(UInt64.self, offsets, source, target)
        default:
            for (index, offset) in offsets.enumerated() {
                memcpy(target + index * elementSize, source + offset, elementSize)
            }
        }
    }

    private static func gatherLine<T: FixedWidthInteger>(_: T.Type, _ offsets: UnsafeBufferPointer<Int>,
                                                          _ source: UnsafeRawPointer, _ target: UnsafeMutableRawPointer) {
        for (index, offset) in offsets.enumerated() {
            target.storeBytes(of: source.loadUnaligned(fromByteOffset: offset, as: T.self),
                              toByteOffset: index * MemoryLayout<T>.stride, as: T.self)
        }
    }
}

/// A strided copy in canonical form: no size-1 axes, adjacent axes merged where both sides allow,
/// contiguous inner axes folded into one block, strides in bytes.
struct StridedView {
    var sizes: [Int] = []
    var sourceStrides: [Int] = []
    var targetStrides: [Int] = []
    /// Bytes copied as one unit (an element, or several contiguous ones).
    var blockBytes: Int

    /// Nil when there is nothing to copy.
    init?(shape: [Int], elementSize: Int, sourceStrides: [Int], targetStrides: [Int]) {
        precondition(sourceStrides.count == shape.count && targetStrides.count == shape.count, "one stride per axis")
        if shape.contains(0) || elementSize == 0 { return nil }
        blockBytes = elementSize
        for axis in shape.indices where shape[axis] != 1 {
            let sourceStride = sourceStrides[axis] * elementSize, targetStride = targetStrides[axis] * elementSize
            if let last = sizes.indices.last,
               self.sourceStrides[last] == sourceStride * shape[axis], self.targetStrides[last] == targetStride * shape[axis] {
                // The previous (outer) axis steps over exactly this one: merge them.
                sizes[last] *= shape[axis]
                self.sourceStrides[last] = sourceStride
                self.targetStrides[last] = targetStride
            } else {
                sizes.append(shape[axis])
                self.sourceStrides.append(sourceStride)
                self.targetStrides.append(targetStride)
            }
        }
        if let last = sizes.indices.last, self.sourceStrides[last] == blockBytes, self.targetStrides[last] == blockBytes {
            blockBytes *= sizes.removeLast()
            self.sourceStrides.removeLast()
            self.targetStrides.removeLast()
        }
    }

    /// Tile edge when the two inner axes are a 2-D transpose of small elements (target contiguous
    /// along the last axis, source contiguous along the one before), nil otherwise.
    var transposeTile: Int? {
        let rank = sizes.count
        guard rank >= 2, [1, 2, 4, 8].contains(blockBytes),
              targetStrides[rank - 1] == blockBytes, sourceStrides[rank - 2] == blockBytes,
              sizes[rank - 1] >= 4, sizes[rank - 2] >= 4 else { return nil }
        return blockBytes == 8 ? 8 : 16
    }
}

/// Walks the outer axes of a `StridedView` in row-major order, tracking both byte offsets.
struct Odometer {
    private let sizes: [Int], sourceStrides: [Int], targetStrides: [Int]
    private var index: [Int]
    private(set) var sourceOffset = 0
    private(set) var targetOffset = 0

    /// Positioned at flat outer index `start` over the first `outerRank` axes of `view`.
    init(_ view: StridedView, outerRank: Int, start: Int) {
        sizes = Array(view.sizes[..<outerRank])
        sourceStrides = Array(view.sourceStrides[..<outerRank])
        targetStrides = Array(view.targetStrides[..<outerRank])
        index = TensorCopy.unflatten(start, sizes)
        for axis in index.indices {
            sourceOffset += index[axis] * sourceStrides[axis]
            targetOffset += index[axis] * targetStrides[axis]
        }
    }

    mutating func advance() {
        var axis = sizes.count - 1
        while axis >= 0 {
            index[axis] += 1
            sourceOffset += sourceStrides[axis]
            targetOffset += targetStrides[axis]
            if index[axis] < sizes[axis] { return }
            sourceOffset -= sourceStrides[axis] * sizes[axis]
            targetOffset -= targetStrides[axis] * sizes[axis]
            index[axis] = 0
            axis -= 1
        }
    }
}
