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

    /// The epilogue with the activations of CNNs and their gates (SiLU, sigmoid, HardSwish, HardSigmoid).
    @Test(arguments: [Activation.leakyRelu(alpha: 0.1), .silu, .sigmoid, .hardSwish, .hardSigmoid(alpha: 0.2, beta: 0.5)])
    func batchedWithEpilogue(_ activation: Activation) {
        var random = SeededGenerator(seed: 7)
        let (batch, m, n, k) = (5, 13, 70, 9)
        let a = random.floats(batch * m * k), b = random.floats(k * n), bias = random.floats(n)
        let residual = random.floats(batch * m * n)
        var actual = [Float](repeating: .nan, count: batch * m * n)
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
        #expect(worstError(actual, expected).excess <= 0, "\(activation)")
    }

    /// Products from ResNet-50, transformers and odd corners: (items, rows, columns, depth).
    static let panelShapes = [
        (1, 64, 3136, 576), (1, 512, 49, 4608), (3, 7, 5, 3), (1, 2048, 49, 512), (2, 1000, 1, 2048), (1, 1, 1, 1),
        (1, 256, 3136, 64), (3, 256, 784, 128), (1, 64, 12544, 147), (8, 256, 3136, 64), (1, 256, 196, 2304),
        (48, 512, 512, 32), (1, 65_536, 384, 384), (1, 20, 20, 1 << 20), (5, 0, 7, 3), (1, 3, 4, 0),
    ]

    /// Whatever the tuning: each task's B panel (depth × columns) stays within its budget unless
    /// already at the narrowest width; panel sizes are multiples of the alignment (or the whole
    /// dimension); a wide product is cut along rows only while each part keeps `minimumRowPanel`
    /// rows; and a product with work for several threads has a task for each.
    @Test func panelsRespectTheirLimits() {
        let align = GemmPanels.alignment
        for (items, rows, columns, depth) in Self.panelShapes {
            for threads in 1...4 {
                for expanded in [false, true] {
                    let panels = GemmPanels(items: items, rows: rows, columns: columns, depth: depth, threads: threads,
                                            expanded: expanded)
                    let label = "\(items)×\(rows)×\(columns)×\(depth), \(threads) threads, expanded \(expanded)"
                    let wide = columns >= rows
                    let budget = wide && expanded ? GemmPanels.expandedWidePanelFloats : GemmPanels.panelFloats
                    #expect(panels.columnPanel * max(depth, 1) <= budget || panels.columnPanel <= 4 * align, "\(label)")
                    #expect(panels.rowPanel == max(rows, 1) || panels.rowPanel % align == 0, "\(label)")
                    #expect(panels.columnPanel == max(columns, 1) || panels.columnPanel % align == 0, "\(label)")
                    if wide && panels.rowPanelCount > 1 {
                        #expect(panels.rowPanel >= GemmPanels.minimumRowPanel, "\(label)")
                    }
                    let work = items * rows * columns * max(depth, 1)
                    if work >= threads * GemmPanels.minimumParallelWork && items * max(rows, columns) >= threads * align {
                        #expect(panels.taskCount >= threads, "\(label): \(panels.taskCount) tasks")
                    }
                    #expect(panels.workers(Parallelism(threads: threads)) == min(threads, panels.taskCount), "\(label)")
                }
            }
        }
    }

    /// Blocks for the small-matrix kernel: when a block of all rows and two cache lines of
    /// columns, or of all columns and one cache line of rows, fits the work, every task fits it;
    /// else the panels are those without the limit. The tasks cover every output once.
    @Test func smallBlocksKeepTheirWork() {
        let align = GemmPanels.alignment
        for (items, rows, columns, depth) in Self.panelShapes where items * rows * columns <= 1 << 22 {
            for work in [3000, 1_000_000] {
                for threads in 1...3 {
                    let panels = GemmPanels(items: items, rows: rows, columns: columns, depth: depth, threads: threads,
                                            blockWork: work)
                    let plain = GemmPanels(items: items, rows: rows, columns: columns, depth: depth, threads: threads)
                    let label = "\(items)×\(rows)×\(columns)×\(depth), \(threads) threads, work \(work)"
                    var seen = [Int](repeating: 0, count: items * rows * columns)
                    for index in 0..<panels.taskCount {
                        let task = panels.task(index)
                        for r in task.rows { for c in task.columns { seen[(task.item * rows + r) * columns + c] += 1 } }
                    }
                    #expect(seen.allSatisfy { $0 == 1 }, "\(label)")
                    let whole = rows * columns * depth
                    if whole > work && (work / (rows * depth) >= 2 * align || work / (columns * depth) >= align) {
                        #expect(panels.rowPanel * panels.columnPanel * depth <= work, "\(label)")
                    } else {
                        #expect(panels.rowPanel == plain.rowPanel && panels.columnPanel == plain.columnPanel, "\(label)")
                    }
                }
            }
        }
    }

    @Test func panelsCoverEveryOutputOnce() {
        for (items, rows, columns, depth) in Self.panelShapes where items * rows * columns <= 1 << 22 {
            for threads in 1...4 {
                for expanded in [false, true] {
                    let panels = GemmPanels(items: items, rows: rows, columns: columns, depth: depth, threads: threads,
                                            expanded: expanded)
                    var seen = [Int](repeating: 0, count: items * rows * columns)
                    for index in 0..<panels.taskCount {
                        let task = panels.task(index)
                        for r in task.rows { for c in task.columns { seen[(task.item * rows + r) * columns + c] += 1 } }
                    }
                    #expect(seen.allSatisfy { $0 == 1 }, "\(items)×\(rows)×\(columns), \(threads) threads, expanded \(expanded)")
                }
            }
        }
    }
}
