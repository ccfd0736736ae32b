import Kernels
import Testing
import TestSupport

/// `PanelProduct` (B packed once, C = A · Bᵀ) against its naive twin over odd sizes: partial
/// panels, every remainder of the six-row blocks (two left over: two rows against two panels), a single row against 1-4 panels, padded strides, threads,
/// and B's rows in groups (an LSTM's gates) whose panels interleave block by block.
@Suite struct PanelProductTests {
    @Test(arguments: [
        (1, 1, 1, 1), (1, 16, 5, 1), (1, 17, 3, 1), (1, 63, 9, 1), (1, 70, 33, 1), (2, 31, 7, 1), (3, 33, 11, 1), (4, 16, 1, 1),
        (5, 47, 13, 1), (6, 80, 2, 1), (7, 15, 19, 1), (9, 100, 40, 1), (16, 64, 17, 1), (3, 5, 0, 1),
        (11, 21, 9, 1), (12, 35, 6, 1), (17, 16, 3, 1), (1, 7, 5, 4), (1, 13, 9, 4), (10, 13, 8, 4), (1, 33, 70, 4), (2, 16, 3, 4), (3, 21, 11, 3), (5, 40, 13, 4), (9, 17, 64, 4), (1, 5, 3, 2),
        (8, 33, 11, 4), (14, 21, 9, 1), (20, 17, 5, 4),
    ])
    func multiplyMatchesReference(size: (m: Int, n: Int, k: Int, groups: Int)) {
        let (m, n, k, groups) = size
        var random = SeededGenerator(seed: UInt64(m * 10_000 + n * 100 + k + groups * 1_000_000))
        // n columns per group; C has all groups' columns.
        let columns = groups * n
        let lda = k + 3, ldb = k + 1, ldc = columns + 5
        let a = random.floats(m * lda), b = random.floats(columns * ldb)
        // One float at least, so that an empty packing still has an address.
        var packed = [Float](repeating: .nan, count: max(1, PanelProduct.packedCount(rows: n, depth: k, groups: groups)!))
        packed.withUnsafeMutableBufferPointer { PanelProduct.pack(b, ldb: ldb, rows: n, depth: k, groups: groups, into: $0.baseAddress!) }
        var expected = [Float](repeating: 9, count: m * ldc)
        expected.withUnsafeMutableBufferPointer {
            PanelProduct.reference(m: m, n: columns, k: k, a: a, lda: lda, b: b, ldb: ldb, c: $0.baseAddress!, ldc: ldc)
        }
        for threads in [1, 2, 3] {
            var actual = [Float](repeating: 9, count: m * ldc)
            actual.withUnsafeMutableBufferPointer {
                PanelProduct.multiply(m: m, n: n, k: k, groups: groups, a: a, lda: lda, packed: packed, c: $0.baseAddress!, ldc: ldc,
                                      parallelism: Parallelism(threads: threads))
            }
            let label = "m \(m) n \(n) k \(k) groups \(groups) threads \(threads)"
            let worst = worstError(actual, expected, atol: 1e-5 * Float(max(k, 1)))
            #expect(worst.excess <= 0, "\(label) at \(worst.index)")
            // The gap after each row of C keeps its 9s: a partial last panel stores only its columns.
            #expect(actual.enumerated().allSatisfy { $0.offset % ldc < columns || $0.element == 9 }, "\(label)")
        }
    }

    /// Every row count 1-20 (every remainder of the six-row blocks, with and without blocks of
    /// six before it; two rows left over go against two panels at once) over an odd number of
    /// panels with a partial last one, in groups of 1, 3 (pairs of panels across blocks) and 4
    /// (pairs across gates), in two parts split at every block (as threads' parts): against the naive
    /// product, and each row of C bit-identical to that A row multiplied alone (one row against
    /// up to four panels), so that a row's result does not depend on the block it falls in.
    @Test(arguments: [(37, 1), (21, 4), (40, 3), (16, 1)])
    func everyRowCountMatchesReferenceAndRowAlone(shape: (n: Int, groups: Int)) {
        let (n, groups) = shape, k = 13, columns = groups * n
        let lda = k + 2, ldb = k, ldc = columns + 3, rows = 20
        var random = SeededGenerator(seed: UInt64(n * 100 + groups))
        let a = random.floats(rows * lda), b = random.floats(columns * ldb)
        var packed = [Float](repeating: .nan, count: PanelProduct.packedCount(rows: n, depth: k, groups: groups)!)
        packed.withUnsafeMutableBufferPointer { PanelProduct.pack(b, ldb: ldb, rows: n, depth: k, groups: groups, into: $0.baseAddress!) }
        var expected = [Float](repeating: 9, count: rows * ldc), alone = [Float](repeating: 9, count: rows * ldc)
        expected.withUnsafeMutableBufferPointer {
            PanelProduct.reference(m: rows, n: columns, k: k, a: a, lda: lda, b: b, ldb: ldb, c: $0.baseAddress!, ldc: ldc)
        }
        a.withUnsafeBufferPointer { a in
            alone.withUnsafeMutableBufferPointer { alone in
                for i in 0..<rows {
                    PanelProduct.multiply(m: 1, n: n, k: k, groups: groups, a: a.baseAddress! + i * lda, lda: lda, packed: packed,
                                          c: alone.baseAddress! + i * ldc, ldc: ldc, parallelism: Parallelism(threads: 1))
                }
            }
        }
        for m in 1...rows {
            // The last m rows of A, so that each row lands at another index than when alone.
            let start = rows - m
            let blocks = PanelProduct.blockCount(n)
            // As two threads' parts: blocks 0..<split, then split..<blocks.
            for split in 0...blocks {
                var actual = [Float](repeating: 9, count: m * ldc)
                a.withUnsafeBufferPointer { a in
                    actual.withUnsafeMutableBufferPointer { c in
                        for part in [0..<split, split..<blocks] {
                            PanelProduct.multiplyBlocks(part, m: m, n: n, k: k, groups: groups, a: a.baseAddress! + start * lda, lda: lda,
                                                        packed: packed, c: c.baseAddress!, ldc: ldc)
                        }
                    }
                }
                let label = "m \(m) n \(n) groups \(groups) blocks split at \(split)"
                let worst = worstError(actual, Array(expected[(start * ldc)...]), atol: 1e-5 * Float(k))
                #expect(worst.excess <= 0, "\(label) at \(worst.index)")
                #expect(actual.elementsEqual(alone[(start * ldc)...]) { $0.bitPattern == $1.bitPattern }, "\(label)")
            }
        }
    }

    @Test func packedCountRefusesOverflow() {
        #expect(PanelProduct.packedCount(rows: 17, depth: 3) == 96)
        #expect(PanelProduct.packedCount(rows: 0, depth: 3) == 0)
        #expect(PanelProduct.packedCount(rows: Int.max, depth: 1) == nil)
        #expect(PanelProduct.packedCount(rows: 1 << 40, depth: 1 << 30) == nil)
        #expect(PanelProduct.packedCount(rows: 17, depth: 3, groups: 4) == 384)
        #expect(PanelProduct.packedCount(rows: 1 << 20, depth: 1 << 20, groups: 1 << 30) == nil)
    }
}
