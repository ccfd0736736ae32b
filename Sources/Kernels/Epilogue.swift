/// What a matrix-product producer does to each finished block of its output while the block is
/// still in cache: add a bias (per row or per column), optionally apply a first activation (a QDQ
/// model's rounding of the product before its residual Add), add a residual laid out like the
/// output, then apply an activation. Saves a separate pass over the whole output for each of them.
public struct Epilogue {
    /// A bias vector and the axis it runs along.
    public enum Bias {
        /// One value per output row (a convolution's per-channel bias).
        case perRow(UnsafePointer<Float>)
        /// One value per output column (a fully connected layer's bias).
        case perColumn(UnsafePointer<Float>)
    }

    /// Bias to add, if any.
    public var bias: Bias?
    /// Values to add, laid out exactly like the output (same offsets and row stride), if any.
    public var residual: UnsafePointer<Float>?
    /// Activation applied last, if any.
    public var activation: Activation?
    /// Activation applied to product + bias before the residual is added, if any (applied also
    /// when there is no residual: `activation(beforeResidual(product + bias) + residual)`).
    public var beforeResidual: Activation?

    /// An epilogue doing the given steps (none by default).
    public init(bias: Bias? = nil, residual: UnsafePointer<Float>? = nil, activation: Activation? = nil,
                beforeResidual: Activation? = nil) {
        self.bias = bias
        self.residual = residual
        self.activation = activation
        self.beforeResidual = beforeResidual
    }

    /// True when there is nothing to do.
    public var isEmpty: Bool { bias == nil && residual == nil && activation == nil && beforeResidual == nil }

    // Shapes: output element (r, c) at output[offset + r·ld + c], residual likewise;
    //         bias[r] (per row) or bias[c] (per column).
    /// Applies the epilogue to rows `rows` × columns `columns` of the output block at `output + offset`.
    public func apply(_ output: UnsafeMutablePointer<Float>, offset: Int = 0, ld: Int, rows: Range<Int>, columns: Range<Int>) {
        if isEmpty || columns.isEmpty { return }
        if let first = beforeResidual {
            // A QDQ model's residual block rounds the product, adds the shortcut and rounds again
            // (with its Relu, if any): one pass over the block. Other pairs take two passes, bias
            // and the first activation, then the residual and the last one.
            if case .quantizeDequantize(let scale, let zeroPoint, let low, let high) = first {
                let round = QuantizationGrid(scale: scale, zeroPoint: zeroPoint, low: low, high: high), r = 1 / scale
                switch activation {
                case .quantizeDequantize(let scale, let zeroPoint, let low, let high)?:
                    let last = QuantizationGrid(scale: scale, zeroPoint: zeroPoint, low: low, high: high), s = 1 / scale
                    return combine(output, offset: offset, ld: ld, rows: rows, columns: columns,
                                   { round.multiplying($0, reciprocal: r) }, { last.multiplying($0, reciprocal: s) })
                case .relu?:
                    return combine(output, offset: offset, ld: ld, rows: rows, columns: columns,
                                   { round.multiplying($0, reciprocal: r) }, { $0 < 0 ? 0 : $0 })
                case nil:
                    return combine(output, offset: offset, ld: ld, rows: rows, columns: columns,
                                   { round.multiplying($0, reciprocal: r) }, { $0 })
                default:
                    break
                }
            }
            Epilogue(bias: bias, activation: first).apply(output, offset: offset, ld: ld, rows: rows, columns: columns)
            Epilogue(residual: residual, activation: activation).apply(output, offset: offset, ld: ld, rows: rows, columns: columns)
            return
        }
        // The activations of CNNs (ReLU, Clip, and the SiLU, sigmoid, HardSwish and HardSigmoid of
        // EfficientNet and MobileNetV3) and the GELUs of transformers and ConvNeXt go into the same
        // loop as the additions (one pass over each row; NaN passes through as in ONNX); the rest
        // run after them through `Activation.apply`.
        switch activation {
        case .relu?:
            combine(output, offset: offset, ld: ld, rows: rows, columns: columns) { $0 < 0 ? 0 : $0 }
        case .clip(let low, let high)?:
            combine(output, offset: offset, ld: ld, rows: rows, columns: columns) { $0 < low ? low : ($0 > high ? high : $0) }
        // The formulas of `Activation.silu` (Float.sigmoidLinear), `sigmoid`, `hardSwish`, `gelu` and
        // `geluTanh` for Float, written out (EpilogueTests holds them equal bit for bit): called
        // through a reference to the generic function, the loop made one call per element (SiLU
        // 2.9 -> 7.2 ms on a [3136, 384] product once logisticExp was always inlined), and by name
        // they are ambiguous with the enum's cases.
        case .silu?:
            combine(output, offset: offset, ld: ld, rows: rows, columns: columns) { Float.sigmoidLinear($0) }
        case .sigmoid?:
            combine(output, offset: offset, ld: ld, rows: rows, columns: columns) { x in 1 / (1 + Float.logisticExp(-x)) }
        case .hardSwish?:
            combine(output, offset: offset, ld: ld, rows: rows, columns: columns) { x in x * Swift.min(Swift.max(x / 6 + 0.5, 0), 1) }
        case .gelu?:
            combine(output, offset: offset, ld: ld, rows: rows, columns: columns) { x in x / 2 * (1 + Float.erf(x * 0.7071067811865476)) }
        case .geluTanh?:
            combine(output, offset: offset, ld: ld, rows: rows, columns: columns) { x in x / 2 * (1 + Float.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))) }
        case .hardSigmoid(let alpha, let beta)?:
            combine(output, offset: offset, ld: ld, rows: rows, columns: columns) { Activation.hardSigmoid($0, alpha, beta) }
        case .quantizeDequantize(let scale, let zeroPoint, let low, let high)?:
            let round = QuantizationGrid(scale: scale, zeroPoint: zeroPoint, low: low, high: high), r = 1 / scale
            combine(output, offset: offset, ld: ld, rows: rows, columns: columns) { round.multiplying($0, reciprocal: r) }
        case nil:
            combine(output, offset: offset, ld: ld, rows: rows, columns: columns) { $0 }
        case let other?:
            if bias != nil || residual != nil {
                combine(output, offset: offset, ld: ld, rows: rows, columns: columns) { $0 }
            }
            for r in rows { other.apply(output + offset + r * ld + columns.lowerBound, count: columns.count) }
        }
    }

    // Shapes: product block [rows.count × columns.count] at `product`, row stride `productLD`;
    //         output element (r, c) at output[offset + r·ld + c]; bias as in `apply`.
    /// `output = activation(beforeResidual(product + bias) + output)` over the block: the epilogue
    /// of a product made apart from the output, for an output that already holds the residual (a
    /// residual block computed in the residual's buffer, when a step before the residual keeps
    /// sgemm from adding the product to it). `residual` is not read. A QDQ model's roundings (with
    /// a Relu or nothing last) take one vectorised pass, with the same values as `apply` on the
    /// product with the residual apart; other steps go element by element.
    public func apply(product: UnsafePointer<Float>, productLD: Int, into output: UnsafeMutablePointer<Float>, offset: Int = 0,
                      ld: Int, rows: Range<Int>, columns: Range<Int>) {
        if columns.isEmpty { return }
        if case .quantizeDequantize(let scale, let zeroPoint, let low, let high)? = beforeResidual {
            let round = QuantizationGrid(scale: scale, zeroPoint: zeroPoint, low: low, high: high), r = 1 / scale
            switch activation {
            case .quantizeDequantize(let scale, let zeroPoint, let low, let high)?:
                let last = QuantizationGrid(scale: scale, zeroPoint: zeroPoint, low: low, high: high), s = 1 / scale
                return combine(output, offset: offset, ld: ld, rows: rows, columns: columns, product: product, productLD: productLD,
                               { round.multiplying($0, reciprocal: r) }, { last.multiplying($0, reciprocal: s) })
            case .relu?:
                return combine(output, offset: offset, ld: ld, rows: rows, columns: columns, product: product, productLD: productLD,
                               { round.multiplying($0, reciprocal: r) }, { $0 < 0 ? 0 : $0 })
            case nil:
                return combine(output, offset: offset, ld: ld, rows: rows, columns: columns, product: product, productLD: productLD,
                               { round.multiplying($0, reciprocal: r) }, { $0 })
            default:
                break
            }
        }
        for r in rows {
            let from = product + (r - rows.lowerBound) * productLD, row = output + offset + r * ld + columns.lowerBound
            for i in 0..<columns.count {
                var value = from[i]
                switch bias {
                case .perRow(let bias)?: value += bias[r]
                case .perColumn(let bias)?: value += bias[columns.lowerBound + i]
                case nil: break
                }
                if let beforeResidual { value = beforeResidual(value) }
                value += row[i]
                row[i] = activation.map { $0(value) } ?? value
            }
        }
    }

    /// `row = last(first(row + bias) + residual)` over the block: `beforeResidual` and
    /// `activation` in the same pass (the residual is added after `first`, so it cannot join the
    /// bias as in `combine(…, activate)`). With `product`, `row = last(first(product + bias) + row)`
    /// (see `apply(product:…)`).
    @inline(__always)
    private func combine(_ output: UnsafeMutablePointer<Float>, offset: Int, ld: Int, rows: Range<Int>, columns: Range<Int>,
                         product: UnsafePointer<Float>? = nil, productLD: Int = 0,
                         _ first: (Float) -> Float, _ last: (Float) -> Float) {
        let count = columns.count
        for r in rows {
            let start = offset + r * ld + columns.lowerBound
            let row = output + start
            if let product {
                let from = product + (r - rows.lowerBound) * productLD
                switch bias {
                case .perRow(let bias)?:
                    let value = bias[r]
                    for i in 0..<count { row[i] = last(first(from[i] + value) + row[i]) }
                case .perColumn(let bias)?:
                    let values = bias + columns.lowerBound
                    for i in 0..<count { row[i] = last(first(from[i] + values[i]) + row[i]) }
                case nil:
                    for i in 0..<count { row[i] = last(first(from[i]) + row[i]) }
                }
                continue
            }
            switch (bias, residual.map { $0 + start }) {
            case (.perRow(let bias)?, let residual?):
                let value = bias[r]
                for i in 0..<count { row[i] = last(first(row[i] + value) + residual[i]) }
            case (.perRow(let bias)?, nil):
                let value = bias[r]
                for i in 0..<count { row[i] = last(first(row[i] + value)) }
            case (.perColumn(let bias)?, let residual?):
                let values = bias + columns.lowerBound
                for i in 0..<count { row[i] = last(first(row[i] + values[i]) + residual[i]) }
            case (.perColumn(let bias)?, nil):
                let values = bias + columns.lowerBound
                for i in 0..<count { row[i] = last(first(row[i] + values[i])) }
            case (nil, let residual?):
                for i in 0..<count { row[i] = last(first(row[i]) + residual[i]) }
            case (nil, nil):
                for i in 0..<count { row[i] = last(first(row[i])) }
            }
        }
    }

    /// `row = activate(row + bias + residual)` over the block, one plain vectorisable loop per
    /// combination of the additions (specialised for each `activate` where it is inlined).
    @inline(__always)
    private func combine(_ output: UnsafeMutablePointer<Float>, offset: Int, ld: Int, rows: Range<Int>, columns: Range<Int>,
                         _ activate: (Float) -> Float) {
        let count = columns.count
        for r in rows {
            let start = offset + r * ld + columns.lowerBound
            let row = output + start
            switch (bias, residual.map { $0 + start }) {
            case (.perRow(let bias)?, let residual?):
                let value = bias[r]
                for i in 0..<count { row[i] = activate(row[i] + (value + residual[i])) }
            case (.perRow(let bias)?, nil):
                let value = bias[r]
                for i in 0..<count { row[i] = activate(row[i] + value) }
            case (.perColumn(let bias)?, let residual?):
                let values = bias + columns.lowerBound
                for i in 0..<count { row[i] = activate(row[i] + (values[i] + residual[i])) }
            case (.perColumn(let bias)?, nil):
                let values = bias + columns.lowerBound
                for i in 0..<count { row[i] = activate(row[i] + values[i]) }
            case (nil, let residual?):
                for i in 0..<count { row[i] = activate(row[i] + residual[i]) }
            case (nil, nil):
                for i in 0..<count { row[i] = activate(row[i]) }
            }
        }
    }
}
