import Kernels
import Testing
import TestSupport

/// `PanelProduct` (B packed once, C = A · Bᵀ) against its naive twin over odd sizes: partial
/// panels, every row-block remainder, a single row against 1-4 panels, padded strides, threads.
@Suite struct PanelProductTests {
    @Test(arguments: [
        (1, 1, 1), (1, 16, 5), (1, 17, 3), (1, 63, 9), (1, 70, 33), (2, 31, 7), (3, 33, 11), (4, 16, 1),
        (5, 47, 13), (6, 80, 2), (7, 15, 19), (9, 100, 40), (16, 64, 17), (3, 5, 0),
    ])
    func multiplyMatchesReference(size: (m: Int, n: Int, k: Int)) {
        let (m, n, k) = size
        var random = SeededGenerator(seed: UInt64(m * 10_000 + n * 100 + k))
        let lda = k + 3, ldb = k + 1, ldc = n + 5
        let a = random.floats(m * lda), b = random.floats(n * ldb)
        // One float at least, so that an empty packing still has an address.
        var packed = [Float](repeating: .nan, count: max(1, PanelProduct.packedCount(rows: n, depth: k)!))
        packed.withUnsafeMutableBufferPointer { PanelProduct.pack(b, ldb: ldb, rows: n, depth: k, into: $0.baseAddress!) }
        var expected = [Float](repeating: 9, count: m * ldc)
        expected.withUnsafeMutableBufferPointer {
            PanelProduct.reference(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: $0.baseAddress!, ldc: ldc)
        }
        for threads in [1, 2, 3] {
            var actual = [Float](repeating: 9, count: m * ldc)
            actual.withUnsafeMutableBufferPointer {
                PanelProduct.multiply(m: m, n: n, k: k, a: a, lda: lda, packed: packed, c: $0.baseAddress!, ldc: ldc,
                                      parallelism: Parallelism(threads: threads))
            }
            let worst = worstError(actual, expected, atol: 1e-5 * Float(max(k, 1)))
            #expect(worst.excess <= 0, "m \(m) n \(n) k \(k) threads \(threads) at \(worst.index)")
            // The gap after each row of C keeps its 9s: a partial last panel stores only its columns.
            #expect(actual.enumerated().allSatisfy { $0.offset % ldc < n || $0.element == 9 }, "m \(m) n \(n) k \(k) threads \(threads)")
        }
    }

    @Test func packedCountRefusesOverflow() {
        #expect(PanelProduct.packedCount(rows: 17, depth: 3) == 96)
        #expect(PanelProduct.packedCount(rows: 0, depth: 3) == 0)
        #expect(PanelProduct.packedCount(rows: Int.max, depth: 1) == nil)
        #expect(PanelProduct.packedCount(rows: 1 << 40, depth: 1 << 30) == nil)
    }
}
