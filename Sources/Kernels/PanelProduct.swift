/// Products `A · Bᵀ` of a few rows of A against a B packed once into panels of 16 columns.
///
/// A recurrent layer multiplies its state by the same weight R at every time step, with one to a
/// few dozen rows: OpenBLAS repacks R at each call (a quarter of an LSTM's time at batch 16),
/// while here R is packed once, when the model loads, and each step streams the panels with
/// 8-wide vectors. Each row-block × panel is one tile of accumulators that stays in registers over
/// the whole depth. Multiply-adds are fused (`addingProduct`), which a Haswell-level build turns
/// into FMA instructions (a portable build computes the same values, more slowly).
public enum PanelProduct {
    private typealias Lanes = SIMD8<Float>

    /// Columns of B (rows of the packed matrix) in one panel.
    public static let panelWidth = 16

    /// Blocks of `panelWidth` columns that a group of n columns takes.
    public static func blockCount(_ n: Int) -> Int { n / panelWidth + (n % panelWidth == 0 ? 0 : 1) }

    /// Floats the packed form of a (groups·n)×k B takes (each group's n rounded up to whole panels,
    /// times k), or nil when that count overflows.
    public static func packedCount(rows n: Int, depth k: Int, groups: Int = 1) -> Int? {
        guard n >= 0, k >= 0, groups >= 1 else { return nil }
        let (panels, overflow) = blockCount(n).multipliedReportingOverflow(by: groups)
        let (columns, overflow2) = panels.multipliedReportingOverflow(by: panelWidth)
        let (count, overflow3) = columns.multipliedReportingOverflow(by: k)
        return overflow || overflow2 || overflow3 ? nil : count
    }

    // Shapes: b [groups·n × k], row stride ldb, element stride depthStride (a Gemm's B without
    //   transB is [k × n]: ldb 1, depthStride its row stride); packed [⌈n/16⌉ blocks][groups
    //   panels][k][16], zero past each group's column n.
    /// Packs B, times `scale`, for `multiply`. B's rows are `groups` groups of n (an LSTM's R: four
    /// gates of n units); block u holds, for each group g in turn, the panel of B's rows g·n + 16u
    /// ..< g·n + 16u + 16, one 16-float group per depth index. So the panels of one block are all
    /// the groups' columns of 16 units, and a thread that owns a block owns every gate of its units.
    public static func pack(_ b: UnsafePointer<Float>, ldb: Int, depthStride: Int = 1, rows n: Int, depth k: Int, groups: Int = 1,
                            scale: Float = 1, into packed: UnsafeMutablePointer<Float>) {
        for u in 0..<blockCount(n) {
            for g in 0..<groups {
                let panel = packed + (u * groups + g) * k * panelWidth
                for i in 0..<panelWidth {
                    let unit = u * panelWidth + i
                    if unit < n {
                        let source = b + (g * n + unit) * ldb
                        for p in 0..<k { panel[p * panelWidth + i] = scale * source[p * depthStride] }
                    } else {
                        for p in 0..<k { panel[p * panelWidth + i] = 0 }
                    }
                }
            }
        }
    }

    // Shapes: a [m × k], row stride lda; packed: B [groups·n × k] as `pack` leaves it; c [m × groups·n], row stride ldc.
    /// `C = A · Bᵀ` (C is not read). Blocks are spread over `parallelism`'s threads when the product
    /// is big enough to pay for the hand-over.
    public static func multiply(m: Int, n: Int, k: Int, groups: Int = 1, a: UnsafePointer<Float>, lda: Int, packed: UnsafePointer<Float>,
                                c: UnsafeMutablePointer<Float>, ldc: Int, parallelism: Parallelism) {
        if m <= 0 || n <= 0 { return }
        parallelism.forEachChunk(blockCount(n), minimumChunk: minimumBlocks(m: m, k: k, groups: groups)) { range in
            multiplyBlocks(range, m: m, n: n, k: k, groups: groups, a: a, lda: lda, packed: packed, c: c, ldc: ldc)
        }
    }

    /// Blocks a thread should have at least: about 32K multiply-adds, below which waking a helper
    /// costs more than it saves.
    public static func minimumBlocks(m: Int, k: Int, groups: Int) -> Int {
        max(1, (1 << 15) / max(1, m * k * groups * panelWidth))
    }

    /// Where panel q of C starts (its column) and how many columns it has.
    @inline(__always)
    private static func placement(ofPanel q: Int, n: Int, groups: Int) -> (offset: Int, count: Int) {
        let (u, g) = q.quotientAndRemainder(dividingBy: groups)
        return (g * n + u * panelWidth, min(panelWidth, n - u * panelWidth))
    }

    // Shapes: as `multiply`; blocks ⊆ 0..<blockCount(n).
    /// The columns of C in the blocks `range` (every group's), all rows, on the calling thread:
    /// blocks of six rows per panel while a panel is in cache (twelve independent sums: FMA's
    /// latency times its two pipes is eight); the rows left over in a block of three to five, or,
    /// when two are left over (eight rows: a fused LSTM's part at batch 16 on two threads), two
    /// rows against two panels at once, after the six-row blocks of those two panels (a block of
    /// two rows against one panel has only four independent sums, and ran at half speed), or a
    /// single row against four panels at once (so that it too has eight independent sums). Each
    /// sum is formed in the same order whatever block its row is in.
    public static func multiplyBlocks(_ range: Range<Int>, m: Int, n: Int, k: Int, groups: Int = 1, a: UnsafePointer<Float>, lda: Int,
                                      packed: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m <= 0 || range.isEmpty { return }
        let panels = (range.lowerBound * groups)..<(range.upperBound * groups)
        let fullRows = m - m % 6, left = m - fullRows
        // Two rows left over take the panels two at a time (an odd last one alone).
        let step = left == 2 ? 2 : 1
        var first = panels.lowerBound
        while first < panels.upperBound {
            let count = min(step, panels.upperBound - first)
            for q in first..<(first + count) {
                let panel = UnsafeRawPointer(packed + q * k * panelWidth), (offset, columns) = placement(ofPanel: q, n: n, groups: groups)
                var row = 0
                while row < fullRows {
                    rowBlock(Rows6.self, k: k, a: a + row * lda, lda: lda, panel: panel, c: c + row * ldc + offset, ldc: ldc, columns: columns)
                    row += 6
                }
                let a = a + fullRows * lda, c = c + fullRows * ldc + offset
                switch left {
                case 5: rowBlock(Rows5.self, k: k, a: a, lda: lda, panel: panel, c: c, ldc: ldc, columns: columns)
                case 4: rowBlock(Rows4.self, k: k, a: a, lda: lda, panel: panel, c: c, ldc: ldc, columns: columns)
                case 3: rowBlock(Rows3.self, k: k, a: a, lda: lda, panel: panel, c: c, ldc: ldc, columns: columns)
                case 2 where count == 1: rowBlock(Rows2.self, k: k, a: a, lda: lda, panel: panel, c: c, ldc: ldc, columns: columns)
                default: break
                }
            }
            if left == 2 && count == 2 {
                twoRowsTwoPanels(k: k, a: a + fullRows * lda, lda: lda, panel: UnsafeRawPointer(packed + first * k * panelWidth),
                                 c: c + fullRows * ldc, ldc: ldc, first: first, n: n, groups: groups)
            }
            first += count
        }
        guard left == 1 else { return }
        let a = a + fullRows * lda, c = c + fullRows * ldc
        var q = panels.lowerBound
        while q < panels.upperBound {
            let count = min(4, panels.upperBound - q)
            let panel = UnsafeRawPointer(packed + q * k * panelWidth)
            switch count {
            case 4: panelBlock(4, k: k, a: a, panel: panel, c: c, first: q, n: n, groups: groups)
            case 3: panelBlock(3, k: k, a: a, panel: panel, c: c, first: q, n: n, groups: groups)
            case 2: panelBlock(2, k: k, a: a, panel: panel, c: c, first: q, n: n, groups: groups)
            default: panelBlock(1, k: k, a: a, panel: panel, c: c, first: q, n: n, groups: groups)
            }
            q += count
        }
    }

    @inline(__always)
    private static func load(_ panel: UnsafeRawPointer, _ offset: Int) -> Lanes {
        panel.loadUnaligned(fromByteOffset: offset * MemoryLayout<Float>.stride, as: Lanes.self)
    }

    /// Stores 16 sums at `target`, or their first `columns` when the panel is C's last, partial one.
    @inline(__always)
    private static func store(_ low: Lanes, _ high: Lanes, _ target: UnsafeMutablePointer<Float>, columns: Int) {
        if columns >= panelWidth {
            UnsafeMutableRawPointer(target).storeBytes(of: low, as: Lanes.self)
            UnsafeMutableRawPointer(target + 8).storeBytes(of: high, as: Lanes.self)
        } else {
            for i in 0..<columns { target[i] = i < 8 ? low[i] : high[i - 8] }
        }
    }

    // Shapes: a [R.count × k] row stride lda; panel [k][16]; c [R.count × columns] row stride ldc.
    /// One panel against `R.count` rows (2...6). A generic function of its own, so that each row
    /// count is its own specialised loop: as one inlined function of an `Int` count, the compiler
    /// kept a single copy with the count's tests in the loop and two sums spilled to the stack (a
    /// load and a store around each of their multiply-adds), and six rows, or five, ran at half
    /// the speed of four.
    @inline(never)
    private static func rowBlock<R: RowCount>(_: R.Type, k: Int, a: UnsafePointer<Float>, lda: Int, panel: UnsafeRawPointer,
                                              c: UnsafeMutablePointer<Float>, ldc: Int, columns: Int) {
        let rows = R.count
        var s00 = Lanes(), s01 = Lanes(), s10 = Lanes(), s11 = Lanes()
        var s20 = Lanes(), s21 = Lanes(), s30 = Lanes(), s31 = Lanes()
        var s40 = Lanes(), s41 = Lanes(), s50 = Lanes(), s51 = Lanes()
        for p in 0..<k {
            let low = load(panel, p * panelWidth), high = load(panel, p * panelWidth + 8)
            var x = Lanes(repeating: a[p])
            s00 = s00.addingProduct(x, low)
            s01 = s01.addingProduct(x, high)
            if rows > 1 {
                x = Lanes(repeating: a[lda + p])
                s10 = s10.addingProduct(x, low)
                s11 = s11.addingProduct(x, high)
            }
            if rows > 2 {
                x = Lanes(repeating: a[2 * lda + p])
                s20 = s20.addingProduct(x, low)
                s21 = s21.addingProduct(x, high)
            }
            if rows > 3 {
                x = Lanes(repeating: a[3 * lda + p])
                s30 = s30.addingProduct(x, low)
                s31 = s31.addingProduct(x, high)
            }
            if rows > 4 {
                x = Lanes(repeating: a[4 * lda + p])
                s40 = s40.addingProduct(x, low)
                s41 = s41.addingProduct(x, high)
            }
            if rows > 5 {
                x = Lanes(repeating: a[5 * lda + p])
                s50 = s50.addingProduct(x, low)
                s51 = s51.addingProduct(x, high)
            }
        }
        store(s00, s01, c, columns: columns)
        if rows > 1 { store(s10, s11, c + ldc, columns: columns) }
        if rows > 2 { store(s20, s21, c + 2 * ldc, columns: columns) }
        if rows > 3 { store(s30, s31, c + 3 * ldc, columns: columns) }
        if rows > 4 { store(s40, s41, c + 4 * ldc, columns: columns) }
        if rows > 5 { store(s50, s51, c + 5 * ldc, columns: columns) }
    }

    // Shapes: a [2 × k] row stride lda; panels: two consecutive panels of [k][16], the first of them
    //   panel `first`; c: two rows of C [groups·n], row stride ldc.
    /// Two rows against two panels at once (eight independent sums, as six rows against one):
    /// `panelBlock`'s two-row form, specialised here on its own.
    @inline(never)
    private static func twoRowsTwoPanels(k: Int, a: UnsafePointer<Float>, lda: Int, panel: UnsafeRawPointer,
                                         c: UnsafeMutablePointer<Float>, ldc: Int, first: Int, n: Int, groups: Int) {
        panelBlock(2, rows: 2, k: k, a: a, lda: lda, panel: panel, c: c, ldc: ldc, first: first, n: n, groups: groups)
    }

    // Shapes: a [rows × k] row stride lda; panels: `count` consecutive panels of [k][16], the first
    //   of them panel `first`; c: `rows` rows of C [groups·n], row stride ldc.
    /// One row against `count` panels (1...4), or two rows against two panels (`rows` and `count`
    /// are constants at every call).
    @inline(__always)
    private static func panelBlock(_ count: Int, rows: Int = 1, k: Int, a: UnsafePointer<Float>, lda: Int = 0, panel: UnsafeRawPointer,
                                   c: UnsafeMutablePointer<Float>, ldc: Int = 0, first: Int, n: Int, groups: Int) {
        var s00 = Lanes(), s01 = Lanes(), s10 = Lanes(), s11 = Lanes()
        var s20 = Lanes(), s21 = Lanes(), s30 = Lanes(), s31 = Lanes()
        // The second row's sums, against panels 0 and 1.
        var t00 = Lanes(), t01 = Lanes(), t10 = Lanes(), t11 = Lanes()
        let stride = k * panelWidth
        for p in 0..<k {
            let x = Lanes(repeating: a[p]), offset = p * panelWidth
            let low0 = load(panel, offset), high0 = load(panel, offset + 8)
            s00 = s00.addingProduct(x, low0)
            s01 = s01.addingProduct(x, high0)
            if rows > 1 {
                let y = Lanes(repeating: a[lda + p])
                t00 = t00.addingProduct(y, low0)
                t01 = t01.addingProduct(y, high0)
                let low1 = load(panel, stride + offset), high1 = load(panel, stride + offset + 8)
                s10 = s10.addingProduct(x, low1)
                s11 = s11.addingProduct(x, high1)
                t10 = t10.addingProduct(y, low1)
                t11 = t11.addingProduct(y, high1)
            } else if count > 1 {
                s10 = s10.addingProduct(x, load(panel, stride + offset))
                s11 = s11.addingProduct(x, load(panel, stride + offset + 8))
            }
            if count > 2 {
                s20 = s20.addingProduct(x, load(panel, 2 * stride + offset))
                s21 = s21.addingProduct(x, load(panel, 2 * stride + offset + 8))
            }
            if count > 3 {
                s30 = s30.addingProduct(x, load(panel, 3 * stride + offset))
                s31 = s31.addingProduct(x, load(panel, 3 * stride + offset + 8))
            }
        }
        @inline(__always) func store(_ low: Lanes, _ high: Lanes, panel index: Int, row: Int = 0) {
            let (offset, columns) = placement(ofPanel: first + index, n: n, groups: groups)
            Self.store(low, high, c + row * ldc + offset, columns: columns)
        }
        store(s00, s01, panel: 0)
        if count > 1 { store(s10, s11, panel: 1) }
        if count > 2 { store(s20, s21, panel: 2) }
        if count > 3 { store(s30, s31, panel: 3) }
        if rows > 1 {
            store(t00, t01, panel: 0, row: 1)
            store(t10, t11, panel: 1, row: 1)
        }
    }

    // Shapes: a [m × k] row stride lda; b [n × k] row stride ldb (unpacked); c [m × n] row stride ldc.
    /// Naive twin of `pack` + `multiply` (for any grouping: n is then all groups' columns): one dot
    /// product per element of C.
    public static func reference(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                 c: UnsafeMutablePointer<Float>, ldc: Int) {
        for i in 0..<m {
            for j in 0..<n {
                var sum: Float = 0
                for p in 0..<k { sum += a[i * lda + p] * b[j * ldb + p] }
                c[i * ldc + j] = sum
            }
        }
    }
}

/// A row count fixed by the type, for `PanelProduct.rowBlock`'s specialisations.
private protocol RowCount { static var count: Int { get } }
private enum Rows2: RowCount { static var count: Int { 2 } }
private enum Rows3: RowCount { static var count: Int { 3 } }
private enum Rows4: RowCount { static var count: Int { 4 } }
private enum Rows5: RowCount { static var count: Int { 5 } }
private enum Rows6: RowCount { static var count: Int { 6 } }
