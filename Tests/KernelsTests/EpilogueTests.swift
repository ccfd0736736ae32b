import Kernels
import Testing
import TestSupport

/// The epilogue against its definition, element by element, on a block inside a wider buffer.
@Suite struct EpilogueTests {
    static let rounding = Activation.quantizeDequantize(scale: 0.05, zeroPoint: 131, low: 0, high: 255)
    static let signedRounding = Activation.quantizeDequantize(scale: 0.03, zeroPoint: -7, low: -128, high: 127)

    /// `activation(beforeResidual(x + bias) + residual)` over rows 2..<11 and columns 3..<40 of a
    /// 13 × 45 buffer (odd sizes; everything outside the block untouched), per-row and per-column
    /// biases, with and without a residual, for the roundings of a QDQ model and a Relu.
    @Test(arguments: [(rounding, rounding), (signedRounding, Activation.relu), (rounding, nil), (signedRounding, signedRounding)])
    func beforeResidualMatchesDefinition(first: Activation, last: Activation?) {
        var random = SeededGenerator(seed: 41)
        let (height, ld, rows, columns) = (13, 45, 2..<11, 3..<40)
        let product = random.floats(height * ld, in: -7...7), residual = random.floats(height * ld, in: -2...2)
        let rowBias = random.floats(height), columnBias = random.floats(ld)
        for perRow in [true, false] {
            for withResidual in [true, false] {
                var actual = product
                rowBias.withUnsafeBufferPointer { rowBias in
                    columnBias.withUnsafeBufferPointer { columnBias in
                        residual.withUnsafeBufferPointer { residual in
                            let epilogue = Epilogue(bias: perRow ? .perRow(rowBias.baseAddress!) : .perColumn(columnBias.baseAddress!),
                                                    residual: withResidual ? residual.baseAddress! : nil,
                                                    activation: last, beforeResidual: first)
                            actual.withUnsafeMutableBufferPointer {
                                epilogue.apply($0.baseAddress!, offset: 0, ld: ld, rows: rows, columns: columns)
                            }
                        }
                    }
                }
                var expected = product
                for r in rows {
                    for c in columns {
                        let i = r * ld + c
                        var value = Self.inEpilogue(first)(product[i] + (perRow ? rowBias[r] : columnBias[c]))
                        if withResidual { value += residual[i] }
                        expected[i] = last.map { Self.inEpilogue($0)(value) } ?? value
                    }
                }
                #expect(actual == expected, "per row \(perRow), residual \(withResidual), \(first) then \(String(describing: last))")
            }
        }
    }

    /// `apply(product:…)` (the product in its own block, the residual in the output) against
    /// `apply` on the product with the residual apart, over rows 2..<11 and columns 3..<40 of a
    /// 13 × 45 output from a 9 × 41 product block (odd sizes; everything outside the block
    /// untouched): bit for bit for a QDQ model's roundings with a rounding, a Relu or nothing
    /// last, for per-row, per-column and no bias; other steps within float rounding.
    @Test(arguments: [(rounding, rounding), (signedRounding, Activation.relu), (rounding, nil), (signedRounding, signedRounding),
                      (Activation.sigmoid, Activation.relu), (Activation.relu, nil)])
    func productApartMatchesResidualApart(first: Activation, last: Activation?) {
        var random = SeededGenerator(seed: 43)
        let (height, ld, rows, columns, productLD) = (13, 45, 2..<11, 3..<40, 41)
        let block = random.floats(rows.count * productLD, in: -7...7), residual = random.floats(height * ld, in: -2...2)
        let rowBias = random.floats(height), columnBias = random.floats(ld)
        // The product laid out like the output, where `apply` reads it.
        var product = [Float](repeating: .nan, count: height * ld)
        for r in rows { for c in columns { product[r * ld + c] = block[(r - rows.lowerBound) * productLD + c - columns.lowerBound] } }
        for bias in [0, 1, 2] {
            rowBias.withUnsafeBufferPointer { rowBias in
                columnBias.withUnsafeBufferPointer { columnBias in
                    let b: Epilogue.Bias? = bias == 0 ? .perRow(rowBias.baseAddress!) : bias == 1 ? .perColumn(columnBias.baseAddress!) : nil
                    var expected = product, actual = residual
                    residual.withUnsafeBufferPointer { residual in
                        expected.withUnsafeMutableBufferPointer {
                            Epilogue(bias: b, residual: residual.baseAddress!, activation: last, beforeResidual: first)
                                .apply($0.baseAddress!, ld: ld, rows: rows, columns: columns)
                        }
                    }
                    actual.withUnsafeMutableBufferPointer {
                        Epilogue(bias: b, activation: last, beforeResidual: first)
                            .apply(product: block, productLD: productLD, into: $0.baseAddress!, ld: ld, rows: rows, columns: columns)
                    }
                    for i in actual.indices where !(rows.contains(i / ld) && columns.contains(i % ld)) {
                        #expect(actual[i].bitPattern == residual[i].bitPattern, "outside the block at \(i)")
                        expected[i] = residual[i]
                    }
                    if case .quantizeDequantize = first {
                        #expect(actual.map(\.bitPattern) == expected.map(\.bitPattern), "bias \(bias), \(first) then \(String(describing: last))")
                    } else {
                        let worst = worstError(actual, expected, rtol: 1e-6, atol: 1e-6)
                        #expect(worst.excess <= 0, "bias \(bias), \(first) then \(String(describing: last)): at \(worst.index)")
                    }
                }
            }
        }
    }

    /// A grid point rounds to itself, bit for bit, by division (`QuantizationGrid`, the standalone
    /// QuantizeDequantize), by the reciprocal (the epilogue's) and through `Activation.apply`: every
    /// point of the 8- and 16-bit grids, zero points inside and at the ends, scales from the
    /// smallest normal float to the largest whose grid stays finite. `QuantizeDequantizeFusion`
    /// drops a second rounding onto the same grid on this ground.
    @Test func gridPointsRoundToThemselves() {
        var random = SeededGenerator(seed: 78)
        let ranges: [(Float, Float, [Float])] = [(0, 255, [0, 128, 255, 3]), (-128, 127, [0, -128, 127, -7]),
                                                  (0, 65535, [0, 32768, 65535]), (-32768, 32767, [0, -32768, 32767])]
        let scales: [Float] = [0.05, 0.5, 2, 0.0078125, 3.0517578e-05, 1234.5, 0.1, 1e-30, 1e30, .leastNormalMagnitude,
                               Float.greatestFiniteMagnitude / 65_536] + random.floats(6, in: 1e-4...10)
        var failures: [String] = []
        for (low, high, zeroPoints) in ranges {
            for zeroPoint in zeroPoints {
                for scale in scales {
                    let grid = QuantizationGrid(scale: scale, zeroPoint: zeroPoint, low: low, high: high)
                    let points = stride(from: low - zeroPoint, through: high - zeroPoint, by: 1).map { grid.point($0) }
                    var applied = [Float](repeating: .nan, count: points.count)
                    applied.withUnsafeMutableBufferPointer {
                        Activation.quantizeDequantize(scale: scale, zeroPoint: zeroPoint, low: low, high: high)
                            .apply(points, into: $0.baseAddress!, count: points.count)
                    }
                    for (i, point) in points.enumerated() where point.bitPattern != grid(point).bitPattern
                        || point.bitPattern != grid.multiplying(point, reciprocal: 1 / scale).bitPattern
                        || point.bitPattern != applied[i].bitPattern {
                        failures.append("scale \(scale) zero point \(zeroPoint) [\(low), \(high)]: \(point)")
                        break
                    }
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
    }

    /// An activation as an epilogue applies it: a QDQ rounding multiplies by the reciprocal of its
    /// scale (`QuantizationGrid.multiplying`), anything else is the activation itself.
    static func inEpilogue(_ activation: Activation) -> (Float) -> Float {
        guard case .quantizeDequantize(let scale, let zeroPoint, let low, let high) = activation else { return { activation($0) } }
        let grid = QuantizationGrid(scale: scale, zeroPoint: zeroPoint, low: low, high: high)
        return { grid.multiplying($0, reciprocal: 1 / scale) }
    }

    /// QuantizeLinear then DequantizeLinear as written in the spec, the definition `QuantizationGrid`
    /// must equal bit for bit (its clamp-first, shift-rounded form is a rewriting, not an approximation).
    static func definition(_ x: Float, _ scale: Float, _ zeroPoint: Float, _ low: Float, _ high: Float) -> Float {
        let q = (x / scale).rounded(.toNearestOrEven) + zeroPoint
        return (Swift.min(Swift.max(q.isNaN ? low : q, low), high) - zeroPoint) * scale
    }

    /// The grid against the definition for the integer types of 8 and 16 bits, scales from tiny to
    /// large, zero points inside and at the ends of the range: random values, every exact tie
    /// `(k + ½)·scale` and its neighbours one ulp away, both zeros, infinities, NaN, huge values and
    /// subnormals; scalar and through the vectorised loop of `Activation.apply`, bit for bit. The
    /// epilogue's rounding, by the reciprocal, equals `multiplying` bit for bit, and the definition
    /// except within a few ulps of a half (the ties and their neighbours), where it is one step off.
    @Test func quantizationGridEqualsTheDefinition() {
        var random = SeededGenerator(seed: 77)
        let ranges: [(Float, Float, [Float])] = [(0, 255, [0, 128, 255, 3]), (-128, 127, [0, -128, 127, -7]),
                                                  (0, 65535, [0, 32768, 65535]), (-32768, 32767, [0, -32768, 32767])]
        let scales: [Float] = [0.05, 0.5, 2, 0.0078125, 3.0517578e-05, 1234.5, 0.1, 1e-30, 1e30]
        var cases = 0, ties = 0, differences: [String] = []
        for (low, high, zeroPoints) in ranges {
            for zeroPoint in zeroPoints {
                for scale in scales {
                    var xs: [Float] = [0, -0, .infinity, -.infinity, .nan, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                                       .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude]
                    let span = (high - low + 20) * scale
                    xs += random.floats(400, in: -span...span)
                    for k in stride(from: low - zeroPoint - 3, through: Swift.min(high - zeroPoint + 3, low - zeroPoint + 300), by: 1) {
                        let tie = (k + 0.5) * scale
                        xs += [tie, tie.nextUp, tie.nextDown, k * scale, -tie]
                    }
                    let grid = QuantizationGrid(scale: scale, zeroPoint: zeroPoint, low: low, high: high)
                    let activation = Activation.quantizeDequantize(scale: scale, zeroPoint: zeroPoint, low: low, high: high)
                    var vectorised = [Float](repeating: 7, count: xs.count)
                    vectorised.withUnsafeMutableBufferPointer { activation.apply(xs, into: $0.baseAddress!, count: xs.count) }
                    var epilogue = xs
                    epilogue.withUnsafeMutableBufferPointer {
                        Epilogue(activation: activation).apply($0.baseAddress!, ld: xs.count, rows: 0..<1, columns: 0..<xs.count)
                    }
                    for (i, x) in xs.enumerated() {
                        let expected = Self.definition(x, scale, zeroPoint, low, high).bitPattern
                        cases += 1
                        let multiplied = grid.multiplying(x, reciprocal: 1 / scale)
                        if multiplied.bitPattern != expected {
                            // One step apart, for an x / scale within a few ulps of a half.
                            let index = x / scale, fraction = index - index.rounded(.down)
                            let nearHalf = abs(fraction - 0.5) <= 4 * index.ulp
                            let steps = (multiplied / scale).rounded() - (Float(bitPattern: expected) / scale).rounded()
                            let oneStep = abs(steps) == 1
                            if !(nearHalf && oneStep) { differences.append("x \(x) scale \(scale): \(multiplied)") }
                            ties += 1
                        }
                        guard grid(x).bitPattern == expected, vectorised[i].bitPattern == expected,
                              epilogue[i].bitPattern == multiplied.bitPattern else {
                            let values = "grid \(grid(x)), apply \(vectorised[i]), epilogue \(epilogue[i]), definition \(Float(bitPattern: expected))"
                            Issue.record("x \(x) scale \(scale) zero point \(zeroPoint) range \(low)...\(high): \(values)")
                            return
                        }
                    }
                }
            }
        }
        #expect(cases > 100_000)
        #expect(differences.count == 0, Comment(rawValue: differences.prefix(5).joined(separator: "; ")))
        #expect(ties > 0, "no case near a tie: the multiplying rounding was not compared where it differs")
    }

    /// `activation(x + bias + residual)` for the activations applied inside the additions' loop
    /// (and tanh, ELU and no activation, applied after it), on rows 1..<10 and columns 2..<37 of a
    /// 11 × 39 buffer (odd sizes; everything outside the block untouched), per-row and per-column
    /// biases, with and without a residual and a bias, values far into both tails included.
    @Test(arguments: [Activation.relu, .clip(min: -1, max: 6), .silu, .sigmoid, .hardSwish, .hardSigmoid(alpha: 0.2, beta: 0.5),
                      .gelu, .geluTanh, .tanh, .elu(alpha: 0.7), nil])
    func activationMatchesDefinition(activation: Activation?) {
        var random = SeededGenerator(seed: 43)
        let (height, ld, rows, columns) = (11, 39, 1..<10, 2..<37)
        var product = random.floats(height * ld, in: -9...9)
        product[ld + 2] = 120
        product[ld + 3] = -120
        product[2 * ld + 5] = .nan
        let residual = random.floats(height * ld, in: -2...2)
        let rowBias = random.floats(height), columnBias = random.floats(ld)
        for bias in ["row", "column", "none"] {
            for withResidual in [true, false] {
                var actual = product
                rowBias.withUnsafeBufferPointer { rowBias in
                    columnBias.withUnsafeBufferPointer { columnBias in
                        residual.withUnsafeBufferPointer { residual in
                            let epilogue = Epilogue(bias: bias == "row" ? .perRow(rowBias.baseAddress!)
                                                        : bias == "column" ? .perColumn(columnBias.baseAddress!) : nil,
                                                    residual: withResidual ? residual.baseAddress! : nil, activation: activation)
                            actual.withUnsafeMutableBufferPointer {
                                epilogue.apply($0.baseAddress!, offset: 0, ld: ld, rows: rows, columns: columns)
                            }
                        }
                    }
                }
                var expected = product
                for r in rows {
                    for c in columns {
                        let i = r * ld + c
                        let added = (bias == "row" ? rowBias[r] : bias == "column" ? columnBias[c] : 0) + (withResidual ? residual[i] : 0)
                        let value = bias == "none" && !withResidual ? product[i] : product[i] + added
                        expected[i] = activation.map { $0(value) } ?? value
                    }
                }
                #expect(zip(actual, expected).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) },
                        "bias \(bias), residual \(withResidual), \(String(describing: activation))")
            }
        }
    }

    /// QuantizeLinear then DequantizeLinear: ties to even, clamping at both ends, NaN to the low end.
    @Test func quantizeDequantizeValues() {
        let f = Activation.quantizeDequantize(scale: 0.5, zeroPoint: 10, low: 0, high: 255)
        #expect(f(0.25) == 0 && f(0.75) == 1 && f(-0.25) == 0 && f(-0.75) == -1)
        #expect(f(-100) == -5 && f(1000) == 122.5 && f(.nan) == -5 && f(.infinity) == 122.5 && f(-.infinity) == -5)
        let g = Activation.quantizeDequantize(scale: 2, zeroPoint: -128, low: -128, high: 127)
        #expect(g(-1) == 0 && g(3) == 4 && g(5) == 4 && g(509) == 508 && g(511) == 510 && g(600) == 510 && g(-5) == 0)
    }
}
