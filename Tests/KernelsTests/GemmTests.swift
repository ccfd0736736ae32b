import Kernels
import Testing
import TestSupport

@Suite struct GemmTests {
    @Test(arguments: [
        (1, 1, 1), (3, 7, 13), (13, 3, 7), (7, 13, 1), (64, 200, 37), (200, 64, 129), (1, 300, 50), (300, 1, 50),
        (5, 9, 0),
    ])
    func multiplyMatchesReference(size: (m: Int, n: Int, k: Int)) {
        var random = SeededGenerator(seed: UInt64(size.m * 10_000 + size.n * 100 + size.k))
        for (transposeA, transposeB) in [(false, false), (true, false), (false, true), (true, true)] {
            for threads in [1, 2, 3] {
                let (m, n, k) = size
                let lda = (transposeA ? m : k) + 2, ldb = (transposeB ? k : n) + 1, ldc = n + 3
                let a = random.floats((transposeA ? k : m) * lda), b = random.floats((transposeB ? n : k) * ldb)
                let c = random.floats(m * ldc)
                var actual = c, expected = c
                let alpha: Float = 0.75, beta: Float = threads == 2 ? 0 : -0.5
                actual.withUnsafeMutableBufferPointer { out in
                    Gemm.multiply(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                                  a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: out.baseAddress!, ldc: ldc,
                                  parallelism: Parallelism(threads: threads))
                }
                expected.withUnsafeMutableBufferPointer { out in
                    Gemm.reference(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                                   a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: out.baseAddress!, ldc: ldc)
                }
                let worst = worstError(actual, expected, atol: 1e-5 * Float(max(k, 1)))
                #expect(worst.excess <= 0, "m \(m) n \(n) k \(k) tA \(transposeA) tB \(transposeB) threads \(threads) at \(worst.index)")
            }
        }
    }

    @Test func batchedWithEpilogue() {
        var random = SeededGenerator(seed: 7)
        let (batch, m, n, k) = (5, 13, 70, 9)
        let a = random.floats(batch * m * k), b = random.floats(k * n), bias = random.floats(n)
        let residual = random.floats(batch * m * n)
        var actual = [Float](repeating: .nan, count: batch * m * n)
        let activation = Activation.leakyRelu(alpha: 0.1)
        actual.withUnsafeMutableBufferPointer { out in
            bias.withUnsafeBufferPointer { bias in
                residual.withUnsafeBufferPointer { residual in
                    Gemm.multiply(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: out.baseAddress!, ldc: n,
                                  epilogue: Epilogue(bias: .perColumn(bias.baseAddress!), residual: residual.baseAddress!,
                                                     activation: activation),
                                  batch: batch, batchOffsets: { ($0 * m * k, 0, $0 * m * n) },
                                  parallelism: Parallelism(threads: 2))
                }
            }
        }
        var expected = [Float](repeating: 0, count: batch * m * n)
        for item in 0..<batch {
            expected.withUnsafeMutableBufferPointer { out in
                a.withUnsafeBufferPointer { a in
                    Gemm.reference(transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: 1,
                                   a: a.baseAddress! + item * m * k, lda: k, b: b, ldb: n, beta: 0,
                                   c: out.baseAddress! + item * m * n, ldc: n)
                }
            }
        }
        for i in expected.indices { expected[i] = activation(expected[i] + bias[i % n] + residual[i]) }
        #expect(worstError(actual, expected).excess <= 0)
    }

    /// A wide product gets one block per thread: cut along rows while each keeps 128 of them,
    /// else along columns; a tall one is cut along rows.
    @Test func panelsFollowTheShapeOfTheProduct() {
        let wideTall = GemmPanels(items: 1, rows: 256, columns: 3136, depth: 64, threads: 2)
        #expect(wideTall.rowPanelCount == 2 && wideTall.columnPanelCount == 1)
        let wideFlat = GemmPanels(items: 1, rows: 64, columns: 3136, depth: 256, threads: 2)
        #expect(wideFlat.rowPanelCount == 1 && wideFlat.columnPanelCount == 2)
        let batch = GemmPanels(items: 8, rows: 256, columns: 3136, depth: 64, threads: 2)
        #expect(batch.taskCount == 8)
        let tall = GemmPanels(items: 1, rows: 2048, columns: 49, depth: 512, threads: 2)
        #expect(tall.columnPanelCount == 1 && tall.rowPanelCount >= 2 && tall.taskCount % 2 == 0)
        let serial = GemmPanels(items: 1, rows: 256, columns: 3136, depth: 64, threads: 1)
        #expect(serial.taskCount == 1)
        // An im2col product keeps each task's panel within 1 MB when wide (the 7×7 stem: 8 panels,
        // not 4), within 2 MB when tall (layer3's 3×3 stride 2: one shared column panel).
        let stem = GemmPanels(items: 1, rows: 64, columns: 12544, depth: 147, threads: 2, expanded: true)
        #expect(stem.columnPanelCount == 8 && stem.rowPanelCount == 1 && stem.columnPanel * 147 <= 1 << 18)
        #expect(GemmPanels(items: 1, rows: 64, columns: 12544, depth: 147, threads: 2).columnPanelCount == 4)
        let strided = GemmPanels(items: 1, rows: 256, columns: 196, depth: 2304, threads: 2, expanded: true)
        #expect(strided.columnPanelCount == 1 && strided.rowPanelCount >= 2)
    }

    @Test func panelsCoverEveryOutputOnce() {
        for (items, rows, columns, depth, threads) in [(1, 64, 3136, 576, 2), (1, 512, 49, 4608, 2), (3, 7, 5, 3, 4),
                                                       (1, 2048, 49, 512, 3), (2, 1000, 1, 2048, 2), (1, 1, 1, 1, 2),
                                                       (1, 256, 3136, 64, 2), (3, 256, 784, 128, 2), (1, 64, 12544, 147, 3)] {
            for expanded in [false, true] {
                let panels = GemmPanels(items: items, rows: rows, columns: columns, depth: depth, threads: threads,
                                        expanded: expanded)
                var seen = [Int](repeating: 0, count: items * rows * columns)
                for index in 0..<panels.taskCount {
                    let task = panels.task(index)
                    for r in task.rows { for c in task.columns { seen[(task.item * rows + r) * columns + c] += 1 } }
                }
                #expect(seen.allSatisfy { $0 == 1 }, "\(items)×\(rows)×\(columns) expanded \(expanded)")
            }
        }
    }
}
