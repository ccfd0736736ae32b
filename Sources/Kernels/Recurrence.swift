/// An activation of a recurrent cell (ONNX RNN/GRU/LSTM `activations`): the pointwise ones, plus
/// the two only recurrent nets use.
public enum RecurrentActivation: Sendable, Hashable {
    case pointwise(Activation)
    /// `alpha · x + beta`.
    case affine(alpha: Float, beta: Float)
    /// `alpha · tanh(beta · x)`.
    case scaledTanh(alpha: Float, beta: Float)

    /// The activation of one value.
    public func callAsFunction(_ x: Float) -> Float {
        switch self {
        case .pointwise(let activation): activation(x)
        case .affine(let alpha, let beta): alpha * x + beta
        case .scaledTanh(let alpha, let beta): alpha * Float.tanh(beta * x)
        }
    }

    /// Applies the activation in place to `count` floats.
    // Shapes: values[count].
    public func apply(_ values: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .pointwise(let activation): activation.apply(values, count: count)
        case .affine(let alpha, let beta): for i in 0..<count { values[i] = alpha * values[i] + beta }
        case .scaledTanh(let alpha, let beta): for i in 0..<count { values[i] = alpha * Float.tanh(beta * values[i]) }
        }
    }
}

/// The cell of a recurrent layer, which fixes its gates (ONNX order).
public enum RecurrentCell: Sendable, Hashable {
    /// `H = f(x·Wᵀ + H·Rᵀ + Wb + Rb)`: one gate.
    case rnn
    /// Gates z (update), r (reset), h; `linearBeforeReset` applies r after the recurrent product.
    case gru(linearBeforeReset: Bool)
    /// Gates i, o, f, c; `inputForget` couples the forget gate to the input gate (f = 1 - i).
    case lstm(inputForget: Bool)

    /// Number of gates, each `hidden` wide.
    public var gates: Int {
        switch self {
        case .rnn: 1
        case .gru: 3
        case .lstm: 4
        }
    }

    /// Number of activations a direction uses (f, g, h).
    public var activationCount: Int {
        switch self {
        case .rnn: 1
        case .gru: 2
        case .lstm: 3
        }
    }

    /// True when the cell has a cell state C beside H.
    public var hasCellState: Bool { if case .lstm = self { true } else { false } }
}

/// One direction of a recurrent layer over a batch of sequences: sizes, cell, activations.
public struct RecurrentLayer: Sendable {
    public var cell: RecurrentCell
    /// Time steps (the longest sequence).
    public var sequence: Int
    public var batch: Int
    public var input: Int
    public var hidden: Int
    /// f, g, h as the cell uses them (`cell.activationCount` of them).
    public var activations: [RecurrentActivation]
    /// Pre-activation values are clipped to [-clip, clip] when set.
    public var clip: Float?
    /// Runs from each sequence's last step to its first.
    public var reverse: Bool
    /// Steps of each batch row's sequence, each in `0...sequence`.
    public var lengths: [Int]

    public init(cell: RecurrentCell, sequence: Int, batch: Int, input: Int, hidden: Int,
                activations: [RecurrentActivation], clip: Float?, reverse: Bool, lengths: [Int]) {
        self.cell = cell
        self.sequence = sequence
        self.batch = batch
        self.input = input
        self.hidden = hidden
        self.activations = activations
        self.clip = clip
        self.reverse = reverse
        self.lengths = lengths
    }

    /// Width of all gates together.
    public var gateWidth: Int { cell.gates * hidden }

    /// Floats of scratch `Recurrence.run` needs on `threads` threads: the input projection of every
    /// step, the gates of one step, the states, and for an LSTM whose steps split the batch rows
    /// (`Recurrence.batchParts`), a slab of gathered input rows per part. Nil when the count overflows.
    public func scratchCount(threads: Int) -> Int? {
        let rows = sequence.multipliedReportingOverflow(by: batch), gates = (rows.partialValue + batch).multipliedReportingOverflow(by: gateWidth)
        let states = (4 * batch).multipliedReportingOverflow(by: hidden)
        let parts = cell.hasCellState ? Recurrence.batchParts(batch: batch, threads: threads) : 1
        let gathered = (parts > 1 ? parts * Recurrence.projectionSlab : 0).multipliedReportingOverflow(by: input)
        let total = gates.partialValue.addingReportingOverflow(states.partialValue)
        let all = total.partialValue.addingReportingOverflow(gathered.partialValue)
        return rows.overflow || gates.overflow || states.overflow || gathered.overflow || total.overflow || all.overflow
            ? nil : all.partialValue
    }
}

/// Where the tensors of one direction are: each row of `input` (or `hidden`) floats is found by
/// strides, so both ONNX layouts and both directions of one output tensor are served in place.
public struct RecurrentOperands {
    // Shapes: x rows (t, b) at row t·xRows.time + b·xRows.batch of a contiguous [sequence·batch, input]
    //   matrix; w [gates·hidden, input]; r [gates·hidden, hidden]; bias [2·gates·hidden] (Wb then Rb)
    //   or nil; peepholes [3·hidden] (i, o, f) or nil; initial and final states: row b at
    //   b·stateStride; y: row (t, b) at t·yStrides.time + b·yStrides.batch.
    public var x: UnsafePointer<Float>
    public var xRows: (time: Int, batch: Int)
    public var w: UnsafePointer<Float>
    public var r: UnsafePointer<Float>
    /// R as `Recurrence.packWeights` packs it (what `run` reads; `reference` reads `r`).
    public var packedR: UnsafePointer<Float>
    /// W as `Recurrence.packInputWeights` packs it (what `run` reads; `reference` reads `w`).
    public var packedW: UnsafePointer<Float>
    public var bias: UnsafePointer<Float>?
    public var peepholes: UnsafePointer<Float>?
    public var initialH: UnsafePointer<Float>?
    public var initialC: UnsafePointer<Float>?
    public var initialStride: Int
    /// All of Y's steps (zero where a sequence has ended), or nil.
    public var y: UnsafeMutablePointer<Float>?
    public var yStrides: (time: Int, batch: Int)
    public var finalH: UnsafeMutablePointer<Float>?
    public var finalC: UnsafeMutablePointer<Float>?
    public var finalStride: Int

    public init(x: UnsafePointer<Float>, xRows: (time: Int, batch: Int), w: UnsafePointer<Float>, r: UnsafePointer<Float>,
                packedR: UnsafePointer<Float>, packedW: UnsafePointer<Float>, bias: UnsafePointer<Float>?, peepholes: UnsafePointer<Float>?,
                initialH: UnsafePointer<Float>?, initialC: UnsafePointer<Float>?, initialStride: Int,
                y: UnsafeMutablePointer<Float>?, yStrides: (time: Int, batch: Int),
                finalH: UnsafeMutablePointer<Float>?, finalC: UnsafeMutablePointer<Float>?, finalStride: Int) {
        self.x = x
        self.xRows = xRows
        self.w = w
        self.r = r
        self.packedR = packedR
        self.packedW = packedW
        self.bias = bias
        self.peepholes = peepholes
        self.initialH = initialH
        self.initialC = initialC
        self.initialStride = initialStride
        self.y = y
        self.yStrides = yStrides
        self.finalH = finalH
        self.finalC = finalC
        self.finalStride = finalStride
    }
}

/// RNN, GRU and LSTM layers (ONNX semantics, one direction at a time).
///
/// The input's share of every gate, for every step, is one product before the recurrence starts,
/// by `PanelProduct` against W packed once (`packInputWeights`), the threads splitting W's
/// columns, in slabs of rows that stay in cache while W passes over them, with Wb + Rb added to each slab (OpenBLAS ran it at three
/// quarters of our kernel's speed: it repacked X and cleared the output at every call); each step then multiplies the previous H by R, packed
/// once (`packWeights`), with `PanelProduct` (twice for a GRU whose reset gate comes before its
/// recurrent product) and finishes the gates pointwise, gate by gate. An LSTM with the default
/// activations and no clip instead runs each step as one parallel loop over blocks of hidden
/// units, product and pointwise together (`lstmSteps`), or, with at least four batch rows per
/// thread, gives each thread a part of the batch rows for the whole layer: their projection and
/// all their steps, in one parallel loop (`run`). A batch row whose sequence has
/// ended keeps its state, and its Y rows are zero. A row of length 0 ends with H (and C) zero,
/// as in ONNX Runtime.
public enum Recurrence {
    /// The rows of R packed as one `PanelProduct` operand each (first row, rows per group, groups):
    /// all gates (an LSTM's four as groups, so that a block of 16 units holds all their gates), or
    /// for a GRU whose reset gate comes before its recurrent product, z and r together and h alone.
    private static func segments(_ cell: RecurrentCell, hidden: Int) -> [(first: Int, rows: Int, groups: Int)] {
        switch cell {
        case .gru(linearBeforeReset: false): [(0, 2 * hidden, 1), (2 * hidden, hidden, 1)]
        case .lstm: [(0, hidden, 4)]
        default: [(0, cell.gates * hidden, 1)]
        }
    }

    /// Floats `packWeights` writes for one direction of this cell and hidden size; nil when the
    /// count overflows.
    public static func packedWeightCount(_ cell: RecurrentCell, hidden: Int) -> Int? {
        var total = 0
        for segment in segments(cell, hidden: hidden) {
            guard let count = PanelProduct.packedCount(rows: segment.rows, depth: hidden, groups: segment.groups) else { return nil }
            let (sum, overflow) = total.addingReportingOverflow(count)
            if overflow { return nil }
            total = sum
        }
        return total
    }

    // Shapes: r [gates·hidden, hidden]; packed [packedWeightCount].
    /// Packs one direction's R for `run` (done once per weight: at load when R is a constant).
    public static func packWeights(_ cell: RecurrentCell, hidden: Int, r: UnsafePointer<Float>, into packed: UnsafeMutablePointer<Float>) {
        var target = packed
        for segment in segments(cell, hidden: hidden) {
            PanelProduct.pack(r + segment.first * hidden, ldb: hidden, rows: segment.rows, depth: hidden, groups: segment.groups, into: target)
            target += PanelProduct.packedCount(rows: segment.rows, depth: hidden, groups: segment.groups) ?? 0
        }
    }

    /// Floats `packInputWeights` writes for one direction of this cell, hidden and input size; nil
    /// when the count overflows.
    public static func packedInputWeightCount(_ cell: RecurrentCell, hidden: Int, input: Int) -> Int? {
        let (rows, overflow) = cell.gates.multipliedReportingOverflow(by: hidden)
        return overflow ? nil : PanelProduct.packedCount(rows: rows, depth: input)
    }

    // Shapes: w [gates·hidden, input]; packed [packedInputWeightCount].
    /// Packs one direction's W for `run`'s input projection (once per weight: at load when W is a
    /// constant): all gates as one group, so the projection's columns are in W's row order.
    public static func packInputWeights(_ cell: RecurrentCell, hidden: Int, input: Int, w: UnsafePointer<Float>,
                                        into packed: UnsafeMutablePointer<Float>) {
        PanelProduct.pack(w, ldb: input, rows: cell.gates * hidden, depth: input, into: packed)
    }

    /// Most rows of X projected together: their slice of X (48 rows of `input` floats) stays in
    /// cache while every panel of W passes over it, and a slab's outputs get the bias while still there.
    static let projectionSlab = 48

    /// Rows per slab when `rows` rows go through in near-equal slabs of at most `projectionSlab`
    /// (a multiple of six, the product's row block).
    private static func slabRows(_ rows: Int) -> Int {
        let slabs = (rows + projectionSlab - 1) / projectionSlab
        return Swift.min(projectionSlab, ((rows + slabs - 1) / slabs + 5) / 6 * 6)
    }

    // Shapes: x [count, input] (contiguous); packedW as `packInputWeights` leaves it [width, input];
    //   bias [width] or nil; projection [count, width].
    /// One slab: `projection = x · Wᵀ + bias` in W's blocks `range` (their columns only).
    @inline(__always)
    private static func projectSlab(_ range: Range<Int>, count: Int, width: Int, input: Int, x: UnsafePointer<Float>,
                                    packedW: UnsafePointer<Float>, bias: UnsafePointer<Float>?, into projection: UnsafeMutablePointer<Float>) {
        PanelProduct.multiplyBlocks(range, m: count, n: width, k: input, a: x, lda: input, packed: packedW, c: projection, ldc: width)
        guard let bias else { return }
        let firstColumn = range.lowerBound * PanelProduct.panelWidth, endColumn = Swift.min(width, range.upperBound * PanelProduct.panelWidth)
        for row in 0..<count {
            let target = projection + row * width
            for j in firstColumn..<endColumn { target[j] += bias[j] }
        }
    }

    // Shapes: x [rows, input] (contiguous); packedW as `packInputWeights` leaves it [width, input];
    //   bias [width]; projection [rows, width].
    /// `projection = x · Wᵀ + bias`. The threads split W's columns (blocks of 16), so that each
    /// reads only its share of W, and every thread has the same work whatever the number of rows
    /// (split by slabs of 48 rows, the 100 rows of a batch-1 sequence gave one thread 96 of them);
    /// when W has fewer blocks than threads, they split the rows. Each part goes through its rows
    /// in near-equal slabs of at most 48.
    private static func project(rows: Int, width: Int, input: Int, x: UnsafePointer<Float>, packedW: UnsafePointer<Float>,
                                bias: UnsafePointer<Float>?, into projection: UnsafeMutablePointer<Float>, parallelism: Parallelism) {
        if rows <= 0 || width <= 0 { return }
        let blocks = PanelProduct.blockCount(width)
        // A part of at least about 32K multiply-adds, as `PanelProduct.minimumBlocks`.
        let work = Double(rows) * Double(blocks * PanelProduct.panelWidth) * Double(input)
        let parts = Int(Swift.min(Double(parallelism.threads), Swift.max(1, (work / 32_768).rounded(.down))))
        let blockParts = Swift.min(parts, blocks), rowParts = Swift.min(parts / blockParts, rows)
        parallelism.forEach(blockParts * rowParts) { part in
            let (rowPart, blockPart) = part.quotientAndRemainder(dividingBy: blockParts)
            let range = Parallelism.chunk(blockPart, of: blockParts, total: blocks), ownRows = Parallelism.chunk(rowPart, of: rowParts, total: rows)
            let slab = slabRows(ownRows.count)
            for first in stride(from: ownRows.lowerBound, to: ownRows.upperBound, by: slab) {
                projectSlab(range, count: Swift.min(slab, ownRows.upperBound - first), width: width, input: input,
                            x: x + first * input, packedW: packedW, bias: bias, into: projection + first * width)
            }
        }
    }

    // Shapes: x rows as operands.xRows says; gathered [projectionSlab, input]; projection
    //   [sequence · rows.count, width], the row of (t, b) at t·rows.count + b - rows.lowerBound.
    /// The input projection of the batch rows `rows` at every step, all W's columns, on the calling
    /// thread: when the fused LSTM's steps split the batch rows, each thread projects its own rows
    /// just before it steps them, so that the projection it reads is in its own core's cache (and a
    /// second layer's input, the first's Y, was written by the same core). The rows of a slab are
    /// gathered from X into `gathered` first (in either layout, a part's rows of X are strided).
    private static func projectRows(_ rows: Range<Int>, _ layer: RecurrentLayer, x: UnsafePointer<Float>, xRows: (time: Int, batch: Int),
                                    packedW: UnsafePointer<Float>, bias: UnsafePointer<Float>?, gathered: UnsafeMutablePointer<Float>,
                                    into projection: UnsafeMutablePointer<Float>) {
        let input = layer.input, width = layer.gateWidth, count = rows.count, total = layer.sequence * count
        if total <= 0 || width <= 0 { return }
        let blocks = 0..<PanelProduct.blockCount(width), slab = slabRows(total)
        for first in stride(from: 0, to: total, by: slab) {
            let slabCount = Swift.min(slab, total - first)
            for row in 0..<slabCount {
                let (t, b) = (first + row).quotientAndRemainder(dividingBy: count)
                (gathered + row * input).update(from: x + (t * xRows.time + (rows.lowerBound + b) * xRows.batch) * input, count: input)
            }
            projectSlab(blocks, count: slabCount, width: width, input: input, x: gathered, packedW: packedW, bias: bias,
                        into: projection + first * width)
        }
    }

    // Shapes: as `RecurrentOperands`; h and c [batch, hidden].
    /// Sets H and C of the batch rows `rows` to their initial states, and zeroes those rows' Y
    /// past each sequence's end (the steps write all the others).
    private static func start(_ rows: Range<Int>, _ layer: RecurrentLayer, _ operands: RecurrentOperands,
                              h: UnsafeMutablePointer<Float>, c: UnsafeMutablePointer<Float>) {
        let hidden = layer.hidden
        for b in rows {
            for j in 0..<hidden {
                h[b * hidden + j] = operands.initialH.map { $0[b * operands.initialStride + j] } ?? 0
                c[b * hidden + j] = operands.initialC.map { $0[b * operands.initialStride + j] } ?? 0
            }
        }
        if let y = operands.y {
            for b in rows where layer.lengths[b] < layer.sequence {
                for t in layer.lengths[b]..<layer.sequence {
                    (y + t * operands.yStrides.time + b * operands.yStrides.batch).initialize(repeating: 0, count: hidden)
                }
            }
        }
    }

    // Shapes: as `RecurrentOperands`; h and c [batch, hidden].
    /// Writes the final H and C of the batch rows `rows` (zero for a sequence of length 0).
    private static func finish(_ rows: Range<Int>, _ layer: RecurrentLayer, _ operands: RecurrentOperands,
                               h: UnsafePointer<Float>, c: UnsafePointer<Float>) {
        let hidden = layer.hidden
        for b in rows {
            let empty = layer.lengths[b] == 0
            if let finalH = operands.finalH {
                for j in 0..<hidden { finalH[b * operands.finalStride + j] = empty ? 0 : h[b * hidden + j] }
            }
            if let finalC = operands.finalC {
                for j in 0..<hidden { finalC[b * operands.finalStride + j] = empty ? 0 : c[b * hidden + j] }
            }
        }
    }

    /// Runs one direction. `scratch` holds `layer.scratchCount(threads: parallelism.threads)`
    /// floats; every size of `layer` is at most 2^24 (so `4 · batch`, `gates · hidden` and the like
    /// cannot overflow).
    public static func run(_ layer: RecurrentLayer, _ operands: RecurrentOperands, scratch: UnsafeMutablePointer<Float>,
                           parallelism: Parallelism) {
        let batch = layer.batch, hidden = layer.hidden, width = layer.gateWidth, steps = layer.sequence
        let rows = steps * batch
        let projection = scratch
        let gates = projection + rows * width
        let h = gates + batch * width
        let c = h + batch * hidden
        let resetH = c + batch * hidden
        let hActivated = resetH + batch * hidden
        let gathered = hActivated + batch * hidden

        // Wb + Rb, except a linear-before-reset GRU's Rbh, which the reset gate scales.
        var bias = [Float](repeating: 0, count: width)
        var recurrentBiasH = [Float](repeating: 0, count: hidden)
        let linearBeforeReset = if case .gru(true) = layer.cell { true } else { false }
        if let b = operands.bias {
            for j in 0..<width { bias[j] = b[j] + b[width + j] }
            if linearBeforeReset {
                for j in 0..<hidden {
                    recurrentBiasH[j] = b[width + 2 * hidden + j]
                    bias[2 * hidden + j] = b[2 * hidden + j]
                }
            }
        }
        let f = layer.activations[0]
        let g = layer.activations.count > 1 ? layer.activations[1] : f
        let hh = layer.activations.count > 2 ? layer.activations[2] : f
        let fusedLSTM = layer.cell == .lstm(inputForget: false) && layer.clip == nil
            && f == .pointwise(.sigmoid) && g == .pointwise(.tanh) && hh == .pointwise(.tanh)
        let rowParts = fusedLSTM ? batchParts(batch: batch, threads: parallelism.threads) : 1
        if rowParts > 1 {
            // The whole layer of a part's rows on one thread, in one parallel loop: their input
            // projection, then all their steps (`lstmSteps`), in the part's own slice of the
            // projection. The pool's caller takes part 0 (it starts taking parts first), so with
            // two threads every layer gives the same rows to the same thread.
            bias.withUnsafeBufferPointer { bias in
                let bias = operands.bias == nil ? nil : bias.baseAddress
                parallelism.forEach(rowParts) { part in
                    let rows = Parallelism.chunk(part, of: rowParts, total: batch)
                    let own = projection + rows.lowerBound * steps * width
                    projectRows(rows, layer, x: operands.x, xRows: operands.xRows, packedW: operands.packedW, bias: bias,
                                gathered: gathered + part * projectionSlab * layer.input, into: own)
                    start(rows, layer, operands, h: h, c: c)
                    lstmSteps(rows, layer, operands, projection: ProjectionRows(base: own, time: rows.count, batch: 1, first: rows.lowerBound),
                              gates: gates, h: h, spare: resetH, c: c, parallelism: .serial)
                    finish(rows, layer, operands, h: h, c: c)
                }
            }
            return
        }
        // Input projection of every (t, b), plus the bias: x is contiguous, so this is one product
        // over all rows, in x's own row order.
        bias.withUnsafeBufferPointer { bias in
            project(rows: rows, width: width, input: layer.input, x: operands.x, packedW: operands.packedW,
                    bias: operands.bias == nil ? nil : bias.baseAddress, into: projection, parallelism: parallelism)
        }
        start(0..<batch, layer, operands, h: h, c: c)

        let clip = layer.clip
        @inline(__always) func clipped(_ values: UnsafeMutablePointer<Float>, _ count: Int) {
            guard let clip else { return }
            for i in 0..<count { values[i] = Swift.min(Swift.max(values[i], -clip), clip) }
        }
        let resetFirst = layer.cell == .gru(linearBeforeReset: false)
        let candidateWeights = operands.packedR + (resetFirst ? PanelProduct.packedCount(rows: 2 * hidden, depth: hidden) ?? 0 : 0)
        let product = segments(layer.cell, hidden: hidden)[0]
        if fusedLSTM {
            lstmSteps(0..<batch, layer, operands, projection: ProjectionRows(base: projection, time: operands.xRows.time, batch: operands.xRows.batch, first: 0),
                      gates: gates, h: h, spare: resetH, c: c, parallelism: parallelism)
        }
        // Every other cell steps here (the fused LSTM has taken all its steps).
        let longest = fusedLSTM ? 0 : layer.lengths.max() ?? 0
        for step in 0..<longest {
            // gates = H · Rᵀ (for a reset-first GRU, z and r only).
            PanelProduct.multiply(m: batch, n: product.rows, k: hidden, groups: product.groups, a: h, lda: hidden,
                                  packed: operands.packedR, c: gates, ldc: width, parallelism: parallelism)
            if resetFirst {
                // (r ⊙ H) · Rhᵀ needs r first.
                for b in 0..<batch where step < layer.lengths[b] {
                    let t = layer.reverse ? layer.lengths[b] - 1 - step : step
                    let row = gates + b * width, x = projection + (t * operands.xRows.time + b * operands.xRows.batch) * width
                    let reset = row + hidden
                    for j in 0..<hidden { reset[j] += x[hidden + j] }
                    clipped(reset, hidden)
                    f.apply(reset, count: hidden)
                    for j in 0..<hidden { resetH[b * hidden + j] = reset[j] * h[b * hidden + j] }
                }
                PanelProduct.multiply(m: batch, n: hidden, k: hidden, a: resetH, lda: hidden, packed: candidateWeights,
                                      c: gates + 2 * hidden, ldc: width, parallelism: parallelism)
            }
            for b in 0..<batch where step < layer.lengths[b] {
                let t = layer.reverse ? layer.lengths[b] - 1 - step : step
                let row = gates + b * width, x = projection + (t * operands.xRows.time + b * operands.xRows.batch) * width
                let hRow = h + b * hidden, cRow = c + b * hidden
                switch layer.cell {
                case .rnn:
                    for j in 0..<hidden { row[j] += x[j] }
                    clipped(row, hidden)
                    f.apply(row, count: hidden)
                    hRow.update(from: row, count: hidden)
                case .gru(let linear):
                    let update = row, candidate = row + 2 * hidden
                    for j in 0..<hidden { update[j] += x[j] }
                    clipped(update, hidden)
                    f.apply(update, count: hidden)
                    if linear {
                        let reset = row + hidden
                        for j in 0..<hidden { reset[j] += x[hidden + j] }
                        clipped(reset, hidden)
                        f.apply(reset, count: hidden)
                        for j in 0..<hidden {
                            candidate[j] = x[2 * hidden + j] + reset[j] * (candidate[j] + recurrentBiasH[j])
                        }
                    } else {
                        for j in 0..<hidden { candidate[j] += x[2 * hidden + j] }
                    }
                    clipped(candidate, hidden)
                    g.apply(candidate, count: hidden)
                    for j in 0..<hidden { hRow[j] = (1 - update[j]) * candidate[j] + update[j] * hRow[j] }
                case .lstm(let inputForget):
                    let inputGate = row, outputGate = row + hidden, forgetGate = row + 2 * hidden, cell = row + 3 * hidden
                    for j in 0..<width { row[j] += x[j] }
                    if let p = operands.peepholes {
                        for j in 0..<hidden {
                            inputGate[j] += p[j] * cRow[j]
                            forgetGate[j] += p[2 * hidden + j] * cRow[j]
                        }
                    }
                    clipped(inputGate, hidden)
                    f.apply(inputGate, count: hidden)
                    if inputForget {
                        for j in 0..<hidden { forgetGate[j] = 1 - inputGate[j] }
                    } else {
                        clipped(forgetGate, hidden)
                        f.apply(forgetGate, count: hidden)
                    }
                    clipped(cell, hidden)
                    g.apply(cell, count: hidden)
                    for j in 0..<hidden { cRow[j] = forgetGate[j] * cRow[j] + inputGate[j] * cell[j] }
                    if let p = operands.peepholes {
                        for j in 0..<hidden { outputGate[j] += p[hidden + j] * cRow[j] }
                    }
                    clipped(outputGate, hidden)
                    f.apply(outputGate, count: hidden)
                    let activated = hActivated + b * hidden
                    activated.update(from: cRow, count: hidden)
                    hh.apply(activated, count: hidden)
                    for j in 0..<hidden { hRow[j] = outputGate[j] * activated[j] }
                }
                if let y = operands.y {
                    (y + t * operands.yStrides.time + b * operands.yStrides.batch).update(from: hRow, count: hidden)
                }
            }
        }
        finish(0..<batch, layer, operands, h: h, c: c)
    }

    /// Where the input projection's row of step t and batch row b is: at
    /// `base + (t·time + (b - first)·batch)·width`.
    private struct ProjectionRows {
        var base: UnsafePointer<Float>
        var time: Int
        var batch: Int
        var first: Int

        init(base: UnsafeMutablePointer<Float>, time: Int, batch: Int, first: Int) {
            self.base = UnsafePointer(base)
            self.time = time
            self.batch = batch
            self.first = first
        }
    }

    // Shapes: projection: x·Wᵀ + Wb + Rb, [4·hidden] per (t, b) where `projection` says; gates
    //   [batch, 4·hidden]; h, spare and c [batch, hidden] (h and c hold the initial states).
    /// The steps of the batch rows `rows` of an LSTM with sigmoid, tanh, tanh and no clip. Each
    /// step is one parallel loop over blocks of 16 hidden units: a thread multiplies the previous
    /// H by the four gates' panels of its blocks (packed side by side) and finishes those units at
    /// once, while the gates are still in its cache, writing the next H into the other buffer; a
    /// step costs one hand-over, and every thread then reads the H the others wrote. With at least
    /// four batch rows per thread (`batchParts`), `run` instead gives each thread a part of the
    /// rows and calls this on one thread for each part, which runs every step of its rows with no
    /// hand-over at all (as ONNX Runtime's LSTM does): a row's H never leaves its core. Either way
    /// a row's sums are formed in the same order, so the result does not depend on the split. The
    /// rows' H ends in `h`.
    ///
    /// Splitting the units, every step moves half of H between the cores: on this VM, whose two
    /// vCPUs the host places sometimes 50-60 ns apart (round trip of a cache line) and sometimes
    /// 340-420 ns apart, the same binary took 18 or 24 ms a run at batch 16 and two threads
    /// (hidden 256, 100 steps, 2 layers); split by rows it took 18.2 or 20.1 (ORT: 16.3 or 17.4),
    /// and with each part also projecting its own rows, and the product's eight rows as two blocks
    /// of four, 16.6 or 17.4 (ORT: 16.2 or 17.4).
    private static func lstmSteps(_ rows: Range<Int>, _ layer: RecurrentLayer, _ operands: RecurrentOperands, projection: ProjectionRows,
                                  gates: UnsafeMutablePointer<Float>, h: UnsafeMutablePointer<Float>, spare: UnsafeMutablePointer<Float>,
                                  c: UnsafeMutablePointer<Float>, parallelism: Parallelism) {
        let hidden = layer.hidden, width = layer.gateWidth, panel = PanelProduct.panelWidth
        let blocks = PanelProduct.blockCount(hidden), minimumBlocks = PanelProduct.minimumBlocks(m: rows.count, k: hidden, groups: 4)
        let longest = layer.lengths[rows].max() ?? 0
        layer.lengths.withUnsafeBufferPointer { lengths in
            // Step `step` of the rows, units of the blocks `range`: H · Rᵀ for those rows and
            // units, then the units' gates, reading H from `source`, writing `target`.
            func step(_ step: Int, blocks range: Range<Int>, source: UnsafePointer<Float>, target: UnsafeMutablePointer<Float>) {
                let first = range.lowerBound * panel, units = Swift.min(hidden, range.upperBound * panel) - first
                PanelProduct.multiplyBlocks(range, m: rows.count, n: hidden, k: hidden, groups: 4, a: source + rows.lowerBound * hidden,
                                            lda: hidden, packed: operands.packedR, c: gates + rows.lowerBound * width, ldc: width)
                for b in rows {
                    let from = source + b * hidden + first, to = target + b * hidden + first
                    guard step < lengths[b] else {
                        to.update(from: from, count: units)
                        continue
                    }
                    let t = layer.reverse ? lengths[b] - 1 - step : step
                    let x = projection.base + (t * projection.time + (b - projection.first) * projection.batch) * width + first
                    lstmStep(gates + b * width + first, x, stride: hidden, count: units,
                             peepholes: operands.peepholes.map { $0 + first }, h: to, c: c + b * hidden + first)
                    if let y = operands.y {
                        (y + t * operands.yStrides.time + b * operands.yStrides.batch + first).update(from: to, count: units)
                    }
                }
            }
            var previous = h, next = spare
            for index in 0..<longest {
                let source = previous, target = next
                parallelism.forEachChunk(blocks, minimumChunk: minimumBlocks) { range in
                    step(index, blocks: range, source: source, target: target)
                }
                swap(&previous, &next)
            }
        }
        if longest % 2 == 1 { (h + rows.lowerBound * hidden).update(from: spare + rows.lowerBound * hidden, count: rows.count * hidden) }
    }

    /// Parts the fused LSTM's steps split the batch rows into, each part taking all steps of its
    /// rows on one thread; 1 when the steps split the hidden units instead (one parallel loop per
    /// step). A part has at least four rows: every part reads all of R at every step, and with
    /// fewer rows that costs more than the hand-overs it saves (batch 4 on two threads: 7.0 ms a
    /// run split by rows, 6.6 by units; batch 8: 10.3 against 13.2).
    package static func batchParts(batch: Int, threads: Int) -> Int {
        Swift.max(1, Swift.min(threads, batch / 4))
    }

    // Shapes: gates and x: gate i's value of unit j at [i·stride + j] (gates i, o, f, c; gates is
    //   H·Rᵀ, overwritten; x is x·Wᵀ + Wb + Rb), peepholes likewise for i, o, f, or nil; h and c
    //   [count], c updated in place.
    /// One LSTM step of `count` units of one batch row with sigmoid, tanh, tanh and no clip: each
    /// activation in a pass over the units of its own (the loops vectorise: the activations are
    /// plain arithmetic, without branches or calls). One loop doing every gate of a unit was
    /// bound by latency: its iteration is a chain of some 200 instructions (activations feeding
    /// the cell feeding its tanh), too long for the core to overlap more than one or two of them,
    /// while a pass's iterations are short and independent (at batch 16, hidden 256, one thread:
    /// 11% of the run in one loop, 8% in passes; `perf record`).
    @inline(__always)
    private static func lstmStep(_ gates: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, stride: Int, count: Int,
                                 peepholes: UnsafePointer<Float>?, h: UnsafeMutablePointer<Float>, c: UnsafeMutablePointer<Float>) {
        let o = stride, f = 2 * stride, g = 3 * stride
        if let p = peepholes {
            for j in 0..<count { gates[j] = logistic((gates[j] + x[j]).addingProduct(p[j], c[j])) }
            for j in 0..<count { gates[f + j] = logistic((gates[f + j] + x[f + j]).addingProduct(p[f + j], c[j])) }
        } else {
            for j in 0..<count { gates[j] = logistic(gates[j] + x[j]) }
            for j in 0..<count { gates[f + j] = logistic(gates[f + j] + x[f + j]) }
        }
        for j in 0..<count { gates[g + j] = tanh(gates[g + j] + x[g + j]) }
        for j in 0..<count { c[j] = (gates[f + j] * c[j]).addingProduct(gates[j], gates[g + j]) }
        if let p = peepholes {
            for j in 0..<count { gates[o + j] = logistic((gates[o + j] + x[o + j]).addingProduct(p[o + j], c[j])) }
        } else {
            for j in 0..<count { gates[o + j] = logistic(gates[o + j] + x[o + j]) }
        }
        for j in 0..<count { h[j] = gates[o + j] * tanh(c[j]) }
    }

    /// The logistic function 1 / (1 + e^-v) as Eigen (and so ONNX Runtime's MLAS) computes it:
    /// `Float.logisticOfClamped` of v clamped to ±18, held within [0, 1].
    @inline(__always)
    private static func logistic(_ v: Float) -> Float {
        Swift.min(Swift.max(Float.logisticOfClamped(Swift.min(Swift.max(v, -18), 18)), 0), 1)
    }

    /// tanh as Eigen (and ONNX Runtime's MLAS) computes it: `Float.tanh`, an odd rational function
    /// of v clamped to ±9, beyond which tanh rounds to ±1 in float.
    @inline(__always)
    private static func tanh(_ v: Float) -> Float { Float.tanh(v) }

    /// Naive twin of `run`, straight from the ONNX formulas: every gate a dot product, no BLAS,
    /// no precomputed projection, no scratch.
    public static func reference(_ layer: RecurrentLayer, _ operands: RecurrentOperands) {
        let batch = layer.batch, hidden = layer.hidden, width = layer.gateWidth, inputSize = layer.input
        let w = operands.w, r = operands.r
        func clip(_ value: Float) -> Float { layer.clip.map { Swift.min(Swift.max(value, -$0), $0) } ?? value }
        func bias(_ index: Int) -> (w: Float, r: Float) { operands.bias.map { ($0[index], $0[width + index]) } ?? (0, 0) }
        let f = layer.activations[0]
        let g = layer.activations.count > 1 ? layer.activations[1] : f
        let hh = layer.activations.count > 2 ? layer.activations[2] : f
        if let y = operands.y {
            for t in 0..<layer.sequence {
                for b in 0..<batch { for j in 0..<hidden { y[t * operands.yStrides.time + b * operands.yStrides.batch + j] = 0 } }
            }
        }
        for b in 0..<batch {
            var h = (0..<hidden).map { j in operands.initialH.map { $0[b * operands.initialStride + j] } ?? 0 }
            var c = (0..<hidden).map { j in operands.initialC.map { $0[b * operands.initialStride + j] } ?? 0 }
            let length = layer.lengths[b]
            for step in 0..<length {
                let t = layer.reverse ? length - 1 - step : step
                let x = operands.x + (t * operands.xRows.time + b * operands.xRows.batch) * inputSize
                /// x · W[gate row]ᵀ and state · R[gate row]ᵀ.
                func xw(_ row: Int) -> Float { (0..<inputSize).reduce(0) { $0 + x[$1] * w[row * inputSize + $1] } }
                func sr(_ state: [Float], _ row: Int) -> Float { (0..<hidden).reduce(0) { $0 + state[$1] * r[row * hidden + $1] } }
                var next = h
                switch layer.cell {
                case .rnn:
                    for j in 0..<hidden { next[j] = f(clip(xw(j) + sr(h, j) + bias(j).w + bias(j).r)) }
                case .gru(let linearBeforeReset):
                    let z = (0..<hidden).map { j in f(clip(xw(j) + sr(h, j) + bias(j).w + bias(j).r)) }
                    let reset = (0..<hidden).map { j in f(clip(xw(hidden + j) + sr(h, hidden + j) + bias(hidden + j).w + bias(hidden + j).r)) }
                    let resetH = (0..<hidden).map { reset[$0] * h[$0] }
                    for j in 0..<hidden {
                        let k = 2 * hidden + j
                        let candidate = linearBeforeReset
                            ? g(clip(xw(k) + reset[j] * (sr(h, k) + bias(k).r) + bias(k).w))
                            : g(clip(xw(k) + sr(resetH, k) + bias(k).r + bias(k).w))
                        next[j] = (1 - z[j]) * candidate + z[j] * h[j]
                    }
                case .lstm(let inputForget):
                    var nextC = c
                    for j in 0..<hidden {
                        let peephole = { (gate: Int) in operands.peepholes.map { $0[gate * hidden + j] } ?? 0 }
                        let pre = { (gate: Int) in xw(gate * hidden + j) + sr(h, gate * hidden + j) + bias(gate * hidden + j).w + bias(gate * hidden + j).r }
                        let i = f(clip(pre(0) + peephole(0) * c[j]))
                        let forget = inputForget ? 1 - i : f(clip(pre(2) + peephole(2) * c[j]))
                        let candidate = g(clip(pre(3)))
                        nextC[j] = forget * c[j] + i * candidate
                        let o = f(clip(pre(1) + peephole(1) * nextC[j]))
                        next[j] = o * hh(nextC[j])
                    }
                    c = nextC
                }
                h = next
                if let y = operands.y {
                    for j in 0..<hidden { y[t * operands.yStrides.time + b * operands.yStrides.batch + j] = h[j] }
                }
            }
            for j in 0..<hidden {
                operands.finalH?[b * operands.finalStride + j] = length == 0 ? 0 : h[j]
                operands.finalC?[b * operands.finalStride + j] = length == 0 ? 0 : c[j]
            }
        }
    }
}
