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

    /// Floats the packed form of an n×k B takes (n rounded up to whole panels, times k), or nil
    /// when that count overflows.
    public static func packedCount(rows n: Int, depth k: Int) -> Int? {
        guard n >= 0, k >= 0 else { return nil }
        let panels = n / panelWidth + (n % panelWidth == 0 ? 0 : 1)
        let (columns, overflow) = panels.multipliedReportingOverflow(by: panelWidth)
        let (count, overflow2) = columns.multipliedReportingOverflow(by: k)
        return overflow || overflow2 ? nil : count
    }

    // Shapes: b [n × k], row stride ldb; packed [⌈n/16⌉ panels][k][16], zero past column n.
    /// Packs B for `multiply`: panel q holds B's rows 16q..<16q+16, one 16-float group per depth index.
    public static func pack(_ b: UnsafePointer<Float>, ldb: Int, rows n: Int, depth k: Int, into packed: UnsafeMutablePointer<Float>) {
        let panels = n / panelWidth + (n % panelWidth == 0 ? 0 : 1)
        for q in 0..<panels {
            let panel = packed + q * k * panelWidth
            for i in 0..<panelWidth {
                let row = q * panelWidth + i
                if row < n {
                    let source = b + row * ldb
                    for p in 0..<k { panel[p * panelWidth + i] = source[p] }
                } else {
                    for p in 0..<k { panel[p * panelWidth + i] = 0 }
                }
            }
        }
    }

    // Shapes: a [m × k], row stride lda; packed: B [n × k] as `pack` leaves it; c [m × n], row stride ldc.
    /// `C = A · Bᵀ` (C is not read). Panels are spread over `parallelism`'s threads when the product
    /// is big enough to pay for the hand-over.
    public static func multiply(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, packed: UnsafePointer<Float>,
                                c: UnsafeMutablePointer<Float>, ldc: Int, parallelism: Parallelism) {
        if m <= 0 || n <= 0 { return }
        let panels = n / panelWidth + (n % panelWidth == 0 ? 0 : 1)
        // About 32K multiply-adds per thread at least: below that, waking a helper costs more than it saves.
        let perPanel = m * k * panelWidth
        let minimumPanels = max(1, (1 << 15) / max(1, perPanel))
        parallelism.forEachChunk(panels, minimumChunk: minimumPanels) { range in
            multiplyPanels(range, m: m, n: n, k: k, a: a, lda: lda, packed: packed, c: c, ldc: ldc)
        }
    }

    /// The panels `range` of C, all rows: blocks of four rows per panel while a panel is in cache;
    /// the rows left over in a block of two or three, or a single row against four panels at once
    /// (so that it too has eight independent sums).
    private static func multiplyPanels(_ range: Range<Int>, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                                       packed: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let fullRows = m - m % 4, left = m % 4
        for q in range {
            let panel = UnsafeRawPointer(packed + q * k * panelWidth), columns = min(panelWidth, n - q * panelWidth)
            var row = 0
            while row < fullRows {
                rowBlock(4, k: k, a: a + row * lda, lda: lda, panel: panel, c: c + row * ldc + q * panelWidth, ldc: ldc, columns: columns)
                row += 4
            }
            let a = a + fullRows * lda, c = c + fullRows * ldc + q * panelWidth
            switch left {
            case 3: rowBlock(3, k: k, a: a, lda: lda, panel: panel, c: c, ldc: ldc, columns: columns)
            case 2: rowBlock(2, k: k, a: a, lda: lda, panel: panel, c: c, ldc: ldc, columns: columns)
            default: break
            }
        }
        guard left == 1 else { return }
        let a = a + fullRows * lda, c = c + fullRows * ldc
        var q = range.lowerBound
        while q < range.upperBound {
            let count = min(4, range.upperBound - q)
            let panel = UnsafeRawPointer(packed + q * k * panelWidth), target = c + q * panelWidth
            let columns = min(count * panelWidth, n - q * panelWidth)
            switch count {
            case 4: panelBlock(4, k: k, a: a, panel: panel, c: target, columns: columns)
            case 3: panelBlock(3, k: k, a: a, panel: panel, c: target, columns: columns)
            case 2: panelBlock(2, k: k, a: a, panel: panel, c: target, columns: columns)
            default: panelBlock(1, k: k, a: a, panel: panel, c: target, columns: columns)
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

    // Shapes: a [rows × k] row stride lda; panel [k][16]; c [rows × columns] row stride ldc.
    /// One panel against `rows` (1...4, a constant at every call, so each is its own unrolled loop).
    @inline(__always)
    private static func rowBlock(_ rows: Int, k: Int, a: UnsafePointer<Float>, lda: Int, panel: UnsafeRawPointer,
                                 c: UnsafeMutablePointer<Float>, ldc: Int, columns: Int) {
        var s00 = Lanes(), s01 = Lanes(), s10 = Lanes(), s11 = Lanes()
        var s20 = Lanes(), s21 = Lanes(), s30 = Lanes(), s31 = Lanes()
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
        }
        store(s00, s01, c, columns: columns)
        if rows > 1 { store(s10, s11, c + ldc, columns: columns) }
        if rows > 2 { store(s20, s21, c + 2 * ldc, columns: columns) }
        if rows > 3 { store(s30, s31, c + 3 * ldc, columns: columns) }
    }

    // Shapes: a [k]; panels: `count` consecutive panels of [k][16]; c [columns], columns ≤ 16·count.
    /// One row against `count` panels (1...4, a constant at every call).
    @inline(__always)
    private static func panelBlock(_ count: Int, k: Int, a: UnsafePointer<Float>, panel: UnsafeRawPointer,
                                   c: UnsafeMutablePointer<Float>, columns: Int) {
        var s00 = Lanes(), s01 = Lanes(), s10 = Lanes(), s11 = Lanes()
        var s20 = Lanes(), s21 = Lanes(), s30 = Lanes(), s31 = Lanes()
        let stride = k * panelWidth
        for p in 0..<k {
            let x = Lanes(repeating: a[p]), offset = p * panelWidth
            s00 = s00.addingProduct(x, load(panel, offset))
            s01 = s01.addingProduct(x, load(panel, offset + 8))
            if count > 1 {
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
        store(s00, s01, c, columns: columns)
        if count > 1 { store(s10, s11, c + panelWidth, columns: columns - panelWidth) }
        if count > 2 { store(s20, s21, c + 2 * panelWidth, columns: columns - 2 * panelWidth) }
        if count > 3 { store(s30, s31, c + 3 * panelWidth, columns: columns - 3 * panelWidth) }
    }

    // Shapes: a [m × k] row stride lda; b [n × k] row stride ldb (unpacked); c [m × n] row stride ldc.
    /// Naive twin of `pack` + `multiply`: one dot product per element of C.
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
