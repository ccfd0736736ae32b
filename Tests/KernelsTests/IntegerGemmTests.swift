import Kernels
import Testing
import TestSupport

@Suite struct IntegerGemmTests {
    /// How the centred operands are filled.
    enum Values: CaseIterable {
        /// Uniform integers in -255...255 (8-bit values minus 8-bit zero points).
        case random
        /// A all 255, B all -255: every partial sum at its largest, so chunking is needed from
        /// K = 259 on.
        case extreme
    }

    /// The operands as float (centred integers) and as the int32 the naive twin multiplies.
    static func operands(_ values: Values, _ count: Int, sign: Int32, _ random: inout SeededGenerator) -> [Int32] {
        switch values {
        case .random: (0..<count).map { _ in Int32.random(in: -255...255, using: &random) }
        case .extreme: Array(repeating: 255 * sign, count: count)
        }
    }

    @Test(arguments: [(1, 1, 1), (3, 5, 7), (7, 13, 300), (5, 3, 1000), (2, 17, 3001), (37, 129, 515), (4, 6, 0), (1, 2, 40_000)],
          Values.allCases)
    func multiplyMatchesTheIntegerTwin(size: (m: Int, n: Int, k: Int), values: Values) {
        let (m, n, k) = size
        var random = SeededGenerator(seed: UInt64(m * 1_000_000 + n * 10_000 + k))
        let lda = k + 1, ldb = n + 2, ldc = n + 3
        let a = Self.operands(values, m * lda, sign: 1, &random), b = Self.operands(values, k * ldb, sign: -1, &random)
        let aFloats = a.map(Float.init), bFloats = b.map(Float.init)
        var expected = [Int32](repeating: 7, count: m * ldc)
        expected.withUnsafeMutableBufferPointer { out in
            Gemm.reference(transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: ldb,
                           beta: 0, c: out.baseAddress!, ldc: ldc)
        }
        let chunks = bFloats.withUnsafeBufferPointer {
            IntegerGemm.depthChunks(b: $0.baseAddress!, k: k, n: n, ldb: ldb, leftMagnitude: IntegerGemm.largestCenteredMagnitude)
        }
        if values == .extreme && k > 258 {
            // 255 · 255 · 258 < 2^24 < 255 · 255 · 259: chunks of 258 rows, and the sums pass
            // what one float sgemm over all of K holds exactly.
            #expect(chunks.count == (k + 257) / 258)
            #expect(Double(k) * 255 * 255 > IntegerGemm.exactLimit)
        }
        for threads in [1, 2, 3] {
            var actual = [Int32](repeating: 7, count: m * ldc)
            var scratch = [Float](repeating: .nan, count: m * ldc)
            actual.withUnsafeMutableBufferPointer { out in
                scratch.withUnsafeMutableBufferPointer { scratch in
                    IntegerGemm.multiply(m: m, n: n, k: k, a: aFloats, lda: lda, b: bFloats, ldb: ldb, c: out.baseAddress!, ldc: ldc,
                                         scratch: scratch.baseAddress!, chunks: { _ in chunks }, parallelism: Parallelism(threads: threads))
                }
            }
            for i in 0..<m {
                let row = i * ldc
                #expect(Array(actual[row..<(row + n)]) == Array(expected[row..<(row + n)]), "m \(m) n \(n) k \(k) row \(i) threads \(threads)")
                // Past n, C's padding is left alone.
                #expect(actual[(row + n)..<(row + ldc)].allSatisfy { $0 == 7 })
            }
        }
    }

    /// Batched items, each with its own B and its own chunks.
    @Test func batchedItemsUseTheirOwnChunks() {
        var random = SeededGenerator(seed: 11)
        let (batch, m, n, k) = (3, 5, 9, 700)
        let a = Self.operands(.random, batch * m * k, sign: 1, &random)
        // Item 1's B is extreme (needs chunks); the others random.
        let b = (0..<batch).flatMap { Self.operands($0 == 1 ? .extreme : .random, k * n, sign: -1, &random) }
        let aFloats = a.map(Float.init), bFloats = b.map(Float.init)
        var expected = [Int32](repeating: 0, count: batch * m * n)
        expected.withUnsafeMutableBufferPointer { out in
            for item in 0..<batch {
                a.withUnsafeBufferPointer { a in
                    b.withUnsafeBufferPointer { b in
                        Gemm.reference(transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: 1, a: a.baseAddress! + item * m * k,
                                       lda: k, b: b.baseAddress! + item * k * n, ldb: n, beta: 0, c: out.baseAddress! + item * m * n, ldc: n)
                    }
                }
            }
        }
        let chunks = bFloats.withUnsafeBufferPointer { b in
            (0..<batch).map { IntegerGemm.depthChunks(b: b.baseAddress! + $0 * k * n, k: k, n: n, ldb: n, leftMagnitude: 255) }
        }
        #expect(chunks[1].count == 3)
        var actual = [Int32](repeating: 0, count: batch * m * n)
        var scratch = [Float](repeating: 0, count: batch * m * n)
        actual.withUnsafeMutableBufferPointer { out in
            scratch.withUnsafeMutableBufferPointer { scratch in
                IntegerGemm.multiply(m: m, n: n, k: k, a: aFloats, lda: k, b: bFloats, ldb: n, c: out.baseAddress!, ldc: n,
                                     scratch: scratch.baseAddress!, chunks: { chunks[$0] }, batch: batch,
                                     batchOffsets: { ($0 * m * k, $0 * k * n, $0 * m * n) }, parallelism: Parallelism(threads: 2))
            }
        }
        #expect(actual == expected)
    }

    /// Chunks cover the depth in order, keep every column's bound, and end only where the next
    /// row would break it.
    @Test(arguments: [Float(255), 128, 1, 0])
    func depthChunksKeepTheBound(leftMagnitude: Float) {
        var random = SeededGenerator(seed: 5)
        let (k, n, ldb) = (2000, 7, 9)
        let b = (0..<(k * ldb)).map { _ in Float(Int.random(in: -255...255, using: &random)) }
        let chunks = b.withUnsafeBufferPointer {
            IntegerGemm.depthChunks(b: $0.baseAddress!, k: k, n: n, ldb: ldb, leftMagnitude: leftMagnitude)
        }
        #expect(chunks.first?.lowerBound == 0)
        #expect(chunks.last?.upperBound == k)
        #expect(zip(chunks, chunks.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound && !$0.isEmpty })
        func largestSum(_ rows: Range<Int>) -> Double {
            (0..<n).map { j in rows.reduce(0) { $0 + Double(abs(b[$1 * ldb + j])) } }.max() ?? 0
        }
        for (index, chunk) in chunks.enumerated() {
            #expect(Double(leftMagnitude) * largestSum(chunk) < IntegerGemm.exactLimit)
            if index + 1 < chunks.count {
                #expect(Double(leftMagnitude) * largestSum(chunk.lowerBound..<(chunk.upperBound + 1)) >= IntegerGemm.exactLimit)
            }
        }
        if leftMagnitude <= 1 { #expect(chunks == [0..<k]) } else { #expect(chunks.count > 1) }
        #expect(IntegerGemm.depthChunks(b: b, k: 0, n: n, ldb: ldb, leftMagnitude: leftMagnitude).isEmpty)
    }
}
