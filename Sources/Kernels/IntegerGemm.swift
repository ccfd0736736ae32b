import Tensors

/// Exact integer matrix products through sgemm. The operands are integers held in float (8-bit
/// values minus their zero points, so at most 255 in magnitude). Float holds every integer up to
/// 2^24 exactly, so a product whose partial sums all stay below 2^24 in magnitude is exact in
/// whatever order sgemm adds: each output's sum of |a|·|b| bounds every partial sum. The depth
/// (K) is cut into chunks that keep that bound, each chunk runs through sgemm into float, and the
/// chunk results add up in int32, wrapping as ONNX Runtime's int32 accumulator does.
public enum IntegerGemm {
    /// 2^24: float holds every integer of smaller magnitude exactly.
    public static let exactLimit: Double = 16_777_216

    /// The largest magnitude of an 8-bit value minus an 8-bit zero point of the same type (255).
    public static let largestCenteredMagnitude: Float = 255

    // Shapes: B [k × n], row stride ldb.
    /// Consecutive ranges covering `0..<k` (none when k is 0) such that, for every range and every
    /// column j of B, `leftMagnitude × Σ |B[p, j]|` over the range stays below 2^24: a product
    /// with a left operand of magnitude at most `leftMagnitude` is exact in float over each range.
    /// A range holds at least one row, so each entry's product must itself be below 2^24 (8-bit
    /// operands: at most 255 × 255).
    public static func depthChunks(b: UnsafePointer<Float>, k: Int, n: Int, ldb: Int, leftMagnitude: Float) -> [Range<Int>] {
        depthChunks(k: k, sums: n, otherMagnitude: leftMagnitude) { p, j in b[p * ldb + j] }
    }

    // Shapes: A [m × k], row stride lda.
    /// The same cut with the bounded operand on the left (a convolution's weights): for every
    /// range and every row i of A, `rightMagnitude × Σ |A[i, p]|` over the range stays below 2^24.
    public static func depthChunks(a: UnsafePointer<Float>, m: Int, k: Int, lda: Int, rightMagnitude: Float) -> [Range<Int>] {
        depthChunks(k: k, sums: m, otherMagnitude: rightMagnitude) { p, i in a[i * lda + p] }
    }

    /// The greedy cut of both: `value(p, s)` is the entry at depth p of sum s; a range closes
    /// before the depth that would take some sum to `exactLimit / otherMagnitude`.
    @inline(__always)
    private static func depthChunks(k: Int, sums count: Int, otherMagnitude: Float,
                                    _ value: (Int, Int) -> Float) -> [Range<Int>] {
        if k == 0 { return [] }
        let other = Double(Swift.max(otherMagnitude, 0))
        if other == 0 || count == 0 { return [0..<k] }
        // A sum may reach `budget` and still be exact.
        let budget = exactLimit / other
        var chunks: [Range<Int>] = []
        var sums = [Double](repeating: 0, count: count)
        var start = 0
        sums.withUnsafeMutableBufferPointer { sums in
            for p in 0..<k {
                var largest: Double = 0
                for s in 0..<count { largest = Swift.max(largest, sums[s] + Double(Swift.abs(value(p, s)))) }
                if largest >= budget && p > start {
                    chunks.append(start..<p)
                    start = p
                    for s in 0..<count { sums[s] = 0 }
                }
                for s in 0..<count { sums[s] += Double(Swift.abs(value(p, s))) }
            }
        }
        chunks.append(start..<k)
        return chunks
    }

    // Shapes (per batch item i, at the offsets `batchOffsets(i)`): A [m × k] row stride lda,
    // B [k × n] row stride ldb, C (int32) and scratch (float) [m × n] row stride ldc.
    /// `C = A · B` exactly, for A and B holding integers and `chunks(i)` cutting item i's depth as
    /// `depthChunks` does for A's largest magnitude. Each output block runs one sgemm per chunk
    /// into the same block of `scratch` and adds the result into C in int32 (wrapping).
    public static func multiply(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        c: UnsafeMutablePointer<Int32>, ldc: Int, scratch: UnsafeMutablePointer<Float>, chunks: (Int) -> [Range<Int>],
        batch: Int = 1, batchOffsets: (Int) -> (a: Int, b: Int, c: Int) = { _ in (0, 0, 0) }, parallelism: Parallelism
    ) {
        if batch == 0 || m == 0 || n == 0 { return }
        let panels = GemmPanels(items: batch, rows: m, columns: n, depth: k, threads: parallelism.threads)
        panels.run(parallelism) { _, task in
            let offsets = batchOffsets(task.item)
            let rows = task.rows, columns = task.columns
            let aPanel = a + offsets.a + rows.lowerBound * lda
            let bPanel = b + offsets.b + columns.lowerBound
            let cPanel = c + offsets.c + rows.lowerBound * ldc + columns.lowerBound
            let sPanel = scratch + offsets.c + rows.lowerBound * ldc + columns.lowerBound
            let depth = chunks(task.item)
            if depth.isEmpty {
                for r in 0..<rows.count { (cPanel + r * ldc).update(repeating: 0, count: columns.count) }
            }
            for (index, chunk) in depth.enumerated() {
                BLAS.sgemm(transposeA: false, transposeB: false, m: rows.count, n: columns.count, k: chunk.count,
                           alpha: 1, a: aPanel + chunk.lowerBound, lda: lda, b: bPanel + chunk.lowerBound * ldb, ldb: ldb,
                           beta: 0, c: sPanel, ldc: ldc)
                // Every value is an integer below 2^24 in magnitude (the chunks' bound): Int32 holds it.
                for r in 0..<rows.count {
                    let source = sPanel + r * ldc, target = cPanel + r * ldc
                    if index == 0 {
                        for j in 0..<columns.count { target[j] = Int32(source[j]) }
                    } else {
                        for j in 0..<columns.count { target[j] &+= Int32(source[j]) }
                    }
                }
            }
        }
    }
}
