#if canImport(Glibc)
import Glibc
#endif
internal import Synchronization

/// Scaled dot-product attention, `softmax(scale · Q·Kᵀ + bias) · V` per batch item and head, as
/// one fused kernel: each task takes a block of query rows of one head and walks the keys in
/// blocks, keeping a running maximum and sum per row (online softmax). Only one tile of the score
/// matrix (query block × key block) exists at a time; Q·Kᵀ and P·V of a tile are `cblas_sgemm`
/// calls that read the heads in place through row strides, so no head is ever copied.
public enum Attention {
    /// Where the rows of one operand live: element `d` of row `s` of head `h` of batch item `b`
    /// is at `base + b·batchStride + h·headStride + s·rowStride + d`.
    /// [B, H, S, D] has strides (H·S·D, S·D, D); [B, S, H·D] has (S·H·D, D, H·D).
    public struct Operand: @unchecked Sendable {
        public var base: UnsafeMutablePointer<Float>
        public var batchStride: Int, headStride: Int, rowStride: Int

        public init(base: UnsafeMutablePointer<Float>, batchStride: Int, headStride: Int, rowStride: Int) {
            self.base = base
            self.batchStride = batchStride
            self.headStride = headStride
            self.rowStride = rowStride
        }

        /// Row `s` of head `h` of item `b`.
        @inlinable public func row(_ b: Int, _ h: Int, _ s: Int) -> UnsafeMutablePointer<Float> {
            base + b * batchStride + h * headStride + s * rowStride
        }
    }

    /// Which keys each query may see, and the additive bias on the scores of those it sees.
    /// Query `i` of batch item `b` sits at position `p = i + queryOffsets[b]`; key `j` is masked
    /// (bias −∞) when `j ≥ keyLimits[b]`, when `causal` and `j > p`, when `leftWindow ≥ 0` and
    /// `p − j > leftWindow`, when `rightWindow ≥ 0` and `j − p > rightWindow`, or when
    /// `j ≥ maskColumns` while a mask is given; otherwise its bias is the mask's value (0 without
    /// a mask).
    public struct Masking: @unchecked Sendable {
        /// Additive mask values: `mask[b·strides.batch + h·strides.head + i·strides.row + j]`
        /// (a stride of 0 broadcasts), for `j < maskColumns`.
        public var mask: UnsafePointer<Float>?
        public var maskStrides: (batch: Int, head: Int, row: Int)
        public var maskColumns: Int
        public var causal: Bool
        public var leftWindow: Int, rightWindow: Int
        /// Per batch item (empty: all 0).
        public var queryOffsets: [Int]
        /// Per batch item (empty: every key is valid).
        public var keyLimits: [Int]

        public init(mask: UnsafePointer<Float>? = nil, maskStrides: (batch: Int, head: Int, row: Int) = (0, 0, 0),
                    maskColumns: Int = 0, causal: Bool = false, leftWindow: Int = -1, rightWindow: Int = -1,
                    queryOffsets: [Int] = [], keyLimits: [Int] = []) {
            self.mask = mask
            self.maskStrides = maskStrides
            self.maskColumns = maskColumns
            self.causal = causal
            self.leftWindow = leftWindow
            self.rightWindow = rightWindow
            self.queryOffsets = queryOffsets
            self.keyLimits = keyLimits
        }

        /// The keys `lo..<hi` that query `i` of item `b` may see among `keys` (before the mask's values).
        @inlinable func visible(_ b: Int, _ i: Int, keys: Int) -> Range<Int> {
            let p = i + (queryOffsets.isEmpty ? 0 : queryOffsets[b])
            var hi = keyLimits.isEmpty ? keys : Swift.min(keys, Swift.max(0, keyLimits[b]))
            var lo = 0
            if mask != nil { hi = Swift.min(hi, maskColumns) }
            if causal { hi = Swift.min(hi, Swift.max(0, p + 1)) }
            if rightWindow >= 0 { hi = Swift.min(hi, Swift.max(0, p + rightWindow + 1)) }
            if leftWindow >= 0 { lo = Swift.max(0, p - leftWindow) }
            return lo < hi ? lo..<hi : 0..<0
        }

        /// Bias of key `j` for query `i` of item `b`, head `h`.
        @inlinable func bias(_ b: Int, _ h: Int, _ i: Int, _ j: Int, keys: Int) -> Float {
            guard visible(b, i, keys: keys).contains(j) else { return -.infinity }
            guard let mask else { return 0 }
            return mask[b * maskStrides.batch + h * maskStrides.head + i * maskStrides.row + j]
        }
    }

    /// What the optional score output (ONNX Attention's `qk_matmul_output`) holds.
    public enum ScoreStage: Sendable {
        /// `scale · Q·Kᵀ`, after the soft cap when there is one.
        case product
        /// The same plus the bias (−∞ where masked).
        case biased
        /// The softmax (a row with no visible key is zero).
        case softmax
    }

    /// Rows of queries and columns of keys in one tile of the score matrix.
    public static let queryBlock = 64
    public static let keyBlock = 128

    // Shapes: q [batch, qHeads, queries, headSize], k [batch, kvHeads, keys, headSize],
    //   v [batch, kvHeads, keys, valueSize], y [batch, qHeads, queries, valueSize] (each through its
    //   Operand's strides); scores [batch, qHeads, queries, keys] contiguous.
    /// `y = softmax(softcap(scale · q·kᵀ) + bias) · v` where query head `h` reads key/value head
    /// `h / (qHeads / kvHeads)` (grouped-query attention) and `softcap(x) = c · tanh(x / c)` when
    /// `softcap > 0`. A query row that sees no key gets zeros. `scores`, when given, receives the
    /// whole score matrix at `stage` (then nothing is skipped).
    public static func attention(
        q: Operand, k: Operand, v: Operand, y: Operand, batch: Int, qHeads: Int, kvHeads: Int,
        queries: Int, keys: Int, headSize: Int, valueSize: Int, scale: Float, softcap: Float = 0,
        masking: Masking = Masking(), scores: (pointer: UnsafeMutablePointer<Float>, stage: ScoreStage)? = nil,
        parallelism: Parallelism
    ) {
        if batch == 0 || qHeads == 0 || queries == 0 || valueSize == 0 && scores == nil { return }
        let groups = Swift.max(1, qHeads / Swift.max(kvHeads, 1))
        let queryBlocks = (queries + queryBlock - 1) / queryBlock
        let tasks = batch * qHeads * queryBlocks
        let work = tasks * queryBlock * Swift.max(keys, 1) * Swift.max(headSize + valueSize, 1)
        let workers = Swift.min(parallelism.threads, tasks, Swift.max(1, work / GemmPanels.minimumParallelWork))
        let next = Atomic<Int>(0)
        parallelism.forEach(workers) { _ in
            let tile = UnsafeMutablePointer<Float>.allocate(capacity: queryBlock * keyBlock + 2 * queryBlock)
            defer { tile.deallocate() }
            let peaks = tile + queryBlock * keyBlock, sums = peaks + queryBlock
            while true {
                let index = next.add(1, ordering: .relaxed).oldValue
                if index >= tasks { return }
                let block = index % queryBlocks, h = (index / queryBlocks) % qHeads, b = index / (queryBlocks * qHeads)
                let rows = (block * queryBlock)..<Swift.min(queries, (block + 1) * queryBlock)
                let blockScores = scores.map { ($0.pointer + ((b * qHeads + h) * queries + rows.lowerBound) * keys, $0.stage) }
                attendBlock(q: q, k: k, v: v, y: y, b: b, h: h, kvHead: h / groups, rows: rows, keys: keys,
                            headSize: headSize, valueSize: valueSize, scale: scale, softcap: softcap, masking: masking,
                            scores: blockScores, tile: tile, peaks: peaks, sums: sums)
            }
        }
    }

    /// One task: query rows `rows` of head `h` of item `b`, over every key block.
    @inline(__always)
    static func attendBlock(
        q: Operand, k: Operand, v: Operand, y: Operand, b: Int, h: Int, kvHead: Int, rows: Range<Int>, keys: Int,
        headSize: Int, valueSize: Int, scale: Float, softcap: Float, masking: Masking,
        scores: (pointer: UnsafeMutablePointer<Float>, stage: ScoreStage)?,
        tile: UnsafeMutablePointer<Float>, peaks: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Float>
    ) {
        let count = rows.count
        let visible = rows.map { masking.visible(b, $0, keys: keys) }
        let first = visible.map(\.lowerBound).min() ?? 0, last = visible.map(\.upperBound).max() ?? 0
        for r in 0..<count {
            peaks[r] = -.infinity
            sums[r] = 0
            y.row(b, h, rows.lowerBound + r).initialize(repeating: 0, count: valueSize)
        }
        let qRows = q.row(b, h, rows.lowerBound), yRows = y.row(b, h, rows.lowerBound)
        var start = scores == nil ? first / keyBlock * keyBlock : 0
        let end = scores == nil ? last : keys
        while start < end {
            let width = Swift.min(keyBlock, end - start)
            defer { start += width }
            if headSize == 0 {
                tile.initialize(repeating: 0, count: count * keyBlock)
            } else {
                BLAS.sgemm(transposeA: false, transposeB: true, m: count, n: width, k: headSize, alpha: scale,
                           a: qRows, lda: q.rowStride, b: k.row(b, kvHead, start), ldb: k.rowStride,
                           beta: 0, c: tile, ldc: keyBlock)
            }
            for r in 0..<count {
                let s = tile + r * keyBlock, i = rows.lowerBound + r
                if softcap > 0 {
                    let inverse = 1 / softcap
                    for j in 0..<width { s[j] = softcap * Float.tanh(s[j] * inverse) }
                }
                if let scores, scores.stage == .product { (scores.pointer + r * keys + start).update(from: s, count: width) }
                // The bias: −∞ outside the visible keys (selected, so that an infinite product
                // cannot turn a masked score into NaN), the mask's values inside.
                let seen = visible[r].clamped(to: start..<(start + width))
                let before = seen.isEmpty ? width : seen.lowerBound - start, after = seen.isEmpty ? width : seen.upperBound - start
                for j in 0..<before { s[j] = -.infinity }
                for j in after..<width { s[j] = -.infinity }
                if let mask = masking.mask, !seen.isEmpty {
                    let row = mask + b * masking.maskStrides.batch + h * masking.maskStrides.head + i * masking.maskStrides.row
                    for j in seen { s[j - start] += row[j] }
                }
                if let scores, scores.stage != .product { (scores.pointer + r * keys + start).update(from: s, count: width) }
                let peak = Reduction.combineRun(UnsafePointer(s), count: width, Reduction.Maximum<Float>())
                let newPeak = Swift.max(peaks[r], peak)
                if newPeak == -.infinity {
                    // Nothing visible yet in this row: its probabilities are zero.
                    s.initialize(repeating: 0, count: width)
                    continue
                }
                // The exponentials in a loop of their own (it vectorises), then their sum.
                for j in 0..<width { s[j] = Float.exp(s[j] - newPeak) }
                let sum = Reduction.combineRun(UnsafePointer(s), count: width, Reduction.Sum<Float>())
                let correction = Float.exp(peaks[r] - newPeak)
                if correction != 1 {
                    let out = yRows + r * y.rowStride
                    for d in 0..<valueSize { out[d] *= correction }
                }
                sums[r] = sums[r] * correction + sum
                peaks[r] = newPeak
            }
            if valueSize > 0 {
                BLAS.sgemm(transposeA: false, transposeB: false, m: count, n: valueSize, k: width, alpha: 1,
                           a: tile, lda: keyBlock, b: v.row(b, kvHead, start), ldb: v.rowStride,
                           beta: 1, c: yRows, ldc: y.rowStride)
            }
        }
        for r in 0..<count {
            let inverse = sums[r] > 0 ? 1 / sums[r] : 0
            let out = yRows + r * y.rowStride
            for d in 0..<valueSize { out[d] *= inverse }
            if let scores, scores.stage == .softmax {
                let row = scores.pointer + r * keys
                for j in 0..<keys { row[j] = inverse == 0 ? 0 : Float.exp(row[j] - peaks[r]) * inverse }
            }
        }
    }

    // MARK: Reference

    // Shapes: as `attention`.
    /// Naive twin of `attention`: the whole score matrix per head in Double, a textbook softmax.
    public static func reference(
        q: Operand, k: Operand, v: Operand, y: Operand, batch: Int, qHeads: Int, kvHeads: Int,
        queries: Int, keys: Int, headSize: Int, valueSize: Int, scale: Float, softcap: Float = 0,
        masking: Masking = Masking(), scores: (pointer: UnsafeMutablePointer<Float>, stage: ScoreStage)? = nil
    ) {
        let groups = Swift.max(1, qHeads / Swift.max(kvHeads, 1))
        for b in 0..<batch {
            for h in 0..<qHeads {
                for i in 0..<queries {
                    var product = [Double](repeating: 0, count: keys), biased = product
                    for j in 0..<keys {
                        var dot = 0.0
                        for d in 0..<headSize {
                            dot += Double(q.row(b, h, i)[d]) * Double(k.row(b, h / groups, j)[d])
                        }
                        var x = Double(scale) * dot
                        if softcap > 0 { x = Double(softcap) * tanh(x / Double(softcap)) }
                        product[j] = x
                        let bias = Double(masking.bias(b, h, i, j, keys: keys))
                        biased[j] = bias == -.infinity ? -.infinity : x + bias
                    }
                    let peak = biased.max() ?? -.infinity
                    var probabilities = [Double](repeating: 0, count: keys)
                    if peak > -.infinity {
                        let exps = biased.map { exp($0 - peak) }
                        let total = exps.reduce(0, +)
                        probabilities = exps.map { $0 / total }
                    }
                    let out = y.row(b, h, i)
                    for d in 0..<valueSize {
                        var sum = 0.0
                        for j in 0..<keys { sum += probabilities[j] * Double(v.row(b, h / groups, j)[d]) }
                        out[d] = Float(sum)
                    }
                    if let scores {
                        let row = scores.pointer + ((b * qHeads + h) * queries + i) * keys
                        let values = switch scores.stage { case .product: product; case .biased: biased; case .softmax: probabilities }
                        for j in 0..<keys { row[j] = Float(values[j]) }
                    }
                }
            }
        }
    }
}
