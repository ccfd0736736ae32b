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
                        var value = first(product[i] + (perRow ? rowBias[r] : columnBias[c]))
                        if withResidual { value += residual[i] }
                        expected[i] = last.map { $0(value) } ?? value
                    }
                }
                #expect(actual == expected, "per row \(perRow), residual \(withResidual), \(first) then \(String(describing: last))")
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
