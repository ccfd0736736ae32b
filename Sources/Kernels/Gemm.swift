import Tensors
internal import Synchronization

/// Single-precision matrix products spread over threads: the output is cut into panels and each
/// thread runs OpenBLAS single-threaded on its own panels (see `GemmPanels`).
public enum Gemm {
    // Shapes (per batch item i, at the offsets `batchOffsets(i)`):
    //   A [m × k] ([k × m] if transposeA), row stride lda; B [k × n] ([n × k] if transposeB), row stride ldb;
    //   C [m × n], row stride ldc.
    /// `C = alpha · op(A) · op(B) + beta · C` for each of `batch` items, then `epilogue` on every
    /// finished panel of C. With `beta == 0`, C is not read. `batchOffsets(i)` gives item i's
    /// element offsets into a, b and c (needed only when `batch > 1`).
    public static func multiply(
        transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: Epilogue = Epilogue(),
        batch: Int = 1, batchOffsets: (Int) -> (a: Int, b: Int, c: Int) = { _ in (0, 0, 0) },
        parallelism: Parallelism
    ) {
        if batch == 0 || m == 0 || n == 0 { return }
        let panels = GemmPanels(items: batch, rows: m, columns: n, depth: k, threads: parallelism.threads)
        panels.run(parallelism) { _, task in
            let offsets = batchOffsets(task.item)
            let rows = task.rows, columns = task.columns
            let aPanel = a + offsets.a + (transposeA ? rows.lowerBound : rows.lowerBound * lda)
            let bPanel = b + offsets.b + (transposeB ? columns.lowerBound * ldb : columns.lowerBound)
            let cPanel = c + offsets.c + rows.lowerBound * ldc + columns.lowerBound
            if k == 0 {
                // BLAS leaves C alone when k is 0; the product of empty matrices is zero.
                for r in 0..<rows.count {
                    for j in 0..<columns.count { cPanel[r * ldc + j] = beta == 0 ? 0 : beta * cPanel[r * ldc + j] }
                }
            } else {
                BLAS.sgemm(transposeA: transposeA, transposeB: transposeB, m: rows.count, n: columns.count, k: k,
                           alpha: alpha, a: aPanel, lda: lda, b: bPanel, ldb: ldb, beta: beta, c: cPanel, ldc: ldc)
            }
            epilogue.apply(c, offset: offsets.c, ld: ldc, rows: rows, columns: columns)
        }
    }

    // Shapes: as `multiply` for one item.
    /// Naive twin of `multiply` (and the matrix product for element types BLAS lacks):
    /// `C = alpha · op(A) · op(B) + beta · C`, C not read when `beta == 0`. Integers wrap on
    /// overflow, as in ONNX Runtime, instead of trapping.
    public static func reference<T: ArithmeticElement>(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: T,
        a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int, beta: T,
        c: UnsafeMutablePointer<T>, ldc: Int
    ) {
        for i in 0..<m {
            for j in 0..<n {
                var sum: T = 0
                for p in 0..<k {
                    let x = transposeA ? a[p * lda + i] : a[i * lda + p]
                    let y = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                    sum = T.add(sum, T.multiply(x, y))
                }
                c[i * ldc + j] = T.add(T.multiply(alpha, sum), beta == 0 ? 0 : T.multiply(beta, c[i * ldc + j]))
            }
        }
    }
}

/// How a batch of matrix products (`items` × [rows × depth] · [depth × columns]) is cut into
/// tasks for threads. A task is one item's block of rows × columns: one single-threaded sgemm
/// whose B panel (depth × panel width) is at most a few MB, so an im2col panel is never huge.
///
/// Cutting along columns makes every thread pack all of A (the weights); cutting along rows makes
/// every thread pack all of B. A product with more rows than columns is cut along rows, into
/// blocks sized for L2. A wide one is cut only as far as the threads need: OpenBLAS ran the 1×1
/// convolutions of ResNet-50's first stages 10–40% faster as one block per thread than as many
/// cache-sized column panels (`kernel-bench`, two threads).
public struct GemmPanels: Sendable {
    /// Independent products.
    public let items: Int
    /// Rows of each product (M).
    public let rows: Int
    /// Columns of each product (N).
    public let columns: Int
    /// Rows per task.
    public let rowPanel: Int
    /// Columns per task.
    public let columnPanel: Int

    /// Floats of B one task of a tall product reads, at most 512 K (2 MB): the size of an im2col panel.
    package static let panelFloats = 1 << 19
    /// The same for a wide product whose B is an im2col panel each task expands: 256 K (1 MB), so
    /// that OpenBLAS packs the panel from L2. In ResNet-50 (bench --profile, two threads, three
    /// runs of 6–8 interleaved rounds) this took the 7×7 stem from 2.7–2.9 to 2.3–2.5 ms and the
    /// 128-channel 3×3 stride-2 layer from 2.4–2.6 to 1.9–2.2 ms. 1 MB for tall products too cut
    /// layer3's 3×3 stride-2 layer into two column panels and made it 15–20% slower.
    package static let expandedWidePanelFloats = 1 << 18
    /// Floats of C one task writes, at most 128 K (512 KB), so that OpenBLAS's clearing of C, its
    /// product and our epilogue all find the block in L2 instead of memory.
    static let outputFloats = 1 << 17
    /// Below this many multiply-adds per thread, a product is not worth splitting further.
    package static let minimumParallelWork = 1 << 17
    /// Rows a row panel of a wide product keeps at least; narrower ones are cut along columns.
    package static let minimumRowPanel = 128
    /// Multiply-adds below which a task is not split further to balance threads (about 20 µs).
    static let minimumTaskWork = 1 << 21
    /// Panel sizes are multiples of this (a cache line of floats), except a whole dimension.
    package static let alignment = 16

    /// Panels for `items` products of [rows × depth] · [depth × columns] on up to `threads` threads;
    /// `expanded`: B is an im2col panel each task makes (not a matrix already in memory).
    /// `blockWork` (`BLAS.smallKernelWork`, 0 for none): a product of more multiply-adds is cut into
    /// tasks of at most that many, so that each runs in OpenBLAS's small-matrix kernel: along
    /// columns into blocks of all rows while they keep `2 · alignment` columns, else along rows
    /// into blocks of all columns while they keep `alignment` rows, else not at all (blocks of 16
    /// columns made 1×1 layers at 7×7 and 28×28 slower).
    public init(items: Int, rows: Int, columns: Int, depth: Int, threads: Int, expanded: Bool = false, blockWork: Int = 0) {
        self.items = items
        self.rows = rows
        self.columns = columns
        let align = Self.alignment
        let wide = columns >= rows
        let budget = wide && expanded ? Self.expandedWidePanelFloats : Self.panelFloats
        let (columnLimit, rowLimit) = Self.smallBlock(rows: rows, columns: columns, depth: depth, work: blockWork)
        let bWidth = Swift.min(columnLimit, Swift.max(4 * align, Swift.max(1, budget / Swift.max(depth, 1)) / align * align))
        let work = items * rows * columns * Swift.max(depth, 1)
        let useful = Swift.min(threads, Swift.max(1, work / Self.minimumParallelWork))
        var columnPanels: Int, rowPanels: Int
        if wide {
            // A wide product (the pixels of an early layer) runs fastest in as few, large blocks
            // as the B budget and the threads allow: cut into a multiple of the threads, along
            // rows while each part keeps `minimumRowPanel` of them (every part then packs all of
            // B, which is cheap next to its work), else along columns.
            columnPanels = Swift.max(1, (columns + bWidth - 1) / bWidth)
            rowPanels = 1
            if useful > 1 && (items * columnPanels) % useful != 0 {
                let total = (Swift.max(items * columnPanels, useful) + useful - 1) / useful * useful
                let parts = (total + items - 1) / items
                let rowParts = (parts + columnPanels - 1) / columnPanels
                if rows / rowParts >= Self.minimumRowPanel {
                    rowPanels = rowParts
                } else {
                    columnPanels = Swift.min(parts, Swift.max(1, columns / align))
                }
            }
        } else {
            // A tall one (the channels of a deep layer) is cut along rows into blocks whose
            // output stays in L2 (each re-packs B), up to four per thread while each keeps
            // `minimumTaskWork`, so a thread that started late or was slowed by another process
            // hands tasks to the others instead of holding everyone up.
            columnPanels = Swift.max(1, (columns + bWidth - 1) / bWidth)
            rowPanels = Swift.max(1, (rows * Swift.min(columns, bWidth) + Self.outputFloats - 1) / Self.outputFloats)
            let perItem = (useful + items - 1) / items
            if columnPanels * rowPanels < perItem {
                rowPanels = Swift.min(perItem, Swift.max(1, rows / align))
            } else if useful > 1, items * columnPanels * rowPanels < 4 * useful {
                let wanted = Swift.max(items * columnPanels * rowPanels, Swift.min(4 * useful, work / Self.minimumTaskWork))
                let total = (wanted + useful - 1) / useful * useful
                let needed = (total + items - 1) / items
                rowPanels = Swift.min((needed + columnPanels - 1) / columnPanels, Swift.max(1, rows / align))
            }
        }
        rowPanels = Swift.max(rowPanels, (rows + rowLimit - 1) / rowLimit)
        rowPanel = Self.panelSize(rows, parts: rowPanels)
        columnPanel = Self.panelSize(columns, parts: columnPanels)
    }

    /// The most columns and rows of a task (multiples of `alignment`, or `Int.max` for no limit)
    /// that keep a product of more than `work` multiply-adds within it, as `init` describes.
    static func smallBlock(rows: Int, columns: Int, depth: Int, work: Int) -> (columns: Int, rows: Int) {
        let none = (Int.max, Int.max), align = alignment
        guard work > 0, rows > 0, columns > 0, depth > 0 else { return none }
        let (perColumn, overflow) = rows.multipliedReportingOverflow(by: depth)
        let (whole, overflow2) = perColumn.multipliedReportingOverflow(by: columns)
        if overflow || overflow2 || whole <= work { return none }
        let width = work / perColumn / align * align
        if width >= 2 * align { return (width, Int.max) }
        let (perRow, overflow3) = columns.multipliedReportingOverflow(by: depth)
        let height = overflow3 ? 0 : work / perRow / align * align
        return height >= align ? (Int.max, height) : none
    }

    /// Size of each of `parts` near-equal panels of `total`, rounded up to the alignment.
    static func panelSize(_ total: Int, parts: Int) -> Int {
        if parts <= 1 { return Swift.max(total, 1) }
        let size = (total + parts - 1) / parts
        return Swift.min(total, (size + alignment - 1) / alignment * alignment)
    }

    /// Number of row panels per item.
    public var rowPanelCount: Int { (rows + rowPanel - 1) / rowPanel }
    /// Number of column panels per item.
    public var columnPanelCount: Int { (columns + columnPanel - 1) / columnPanel }
    /// Number of tasks.
    public var taskCount: Int { items * columnPanelCount * rowPanelCount }

    /// One task: an item and the block of its output it computes.
    public struct Task: Equatable, Sendable {
        public let item: Int
        public let rows: Range<Int>
        public let columns: Range<Int>
    }

    /// Task `index`; row panels vary fastest, so consecutive tasks share an item's column panel.
    public func task(_ index: Int) -> Task {
        let rowIndex = index % rowPanelCount
        let columnIndex = (index / rowPanelCount) % columnPanelCount
        let item = index / (rowPanelCount * columnPanelCount)
        let r = rowIndex * rowPanel, c = columnIndex * columnPanel
        return Task(item: item, rows: r..<Swift.min(rows, r + rowPanel), columns: c..<Swift.min(columns, c + columnPanel))
    }

    /// Threads `run` uses with `parallelism`.
    public func workers(_ parallelism: Parallelism) -> Int { Swift.min(parallelism.threads, taskCount) }

    /// Runs every task, spread over up to `workers(parallelism)` threads that each take the next
    /// free task (so a thread slowed by another process does less). `body(worker, task)` gets the
    /// worker's number in `0..<workers(parallelism)`, e.g. to pick its scratch buffer.
    public func run(_ parallelism: Parallelism, _ body: (_ worker: Int, _ task: Task) -> Void) {
        let workers = workers(parallelism)
        if workers <= 1 {
            for index in 0..<taskCount { body(0, task(index)) }
            return
        }
        let next = Atomic<Int>(0)
        parallelism.forEach(workers) { worker in
            while true {
                let index = next.add(1, ordering: .relaxed).oldValue
                if index >= taskCount { return }
                body(worker, task(index))
            }
        }
    }
}
