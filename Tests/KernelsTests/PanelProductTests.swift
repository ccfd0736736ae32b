import Kernels
import Testing
import TestSupport

/// `PanelProduct` (B packed once, C = A · Bᵀ) against its naive twin over odd sizes: partial
/// panels, every remainder of the six-row blocks (two left past six: two blocks of four), a single row against 1-4 panels, padded strides, threads,
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

    @Test func packedCountRefusesOverflow() {
        #expect(PanelProduct.packedCount(rows: 17, depth: 3) == 96)
        #expect(PanelProduct.packedCount(rows: 0, depth: 3) == 0)
        #expect(PanelProduct.packedCount(rows: Int.max, depth: 1) == nil)
        #expect(PanelProduct.packedCount(rows: 1 << 40, depth: 1 << 30) == nil)
        #expect(PanelProduct.packedCount(rows: 17, depth: 3, groups: 4) == 384)
        #expect(PanelProduct.packedCount(rows: 1 << 20, depth: 1 << 20, groups: 1 << 30) == nil)
    }
}
