import Kernels
import TestSupport

/// Largest violation of |actual − expected| ≤ atol + rtol·|expected| (≤ 0 when all within), and where.
func worstError(_ actual: [Float], _ expected: [Float], rtol: Float = 1e-4, atol: Float = 1e-5) -> (excess: Float, index: Int) {
    precondition(actual.count == expected.count, "compared arrays differ in length")
    var worst: (Float, Int) = (0, -1)
    for i in actual.indices {
        if actual[i] == expected[i] || (actual[i].isNaN && expected[i].isNaN) { continue }
        let excess = abs(actual[i] - expected[i]) - (atol + rtol * abs(expected[i]))
        if !(excess <= worst.0) { worst = (excess.isNaN ? .infinity : excess, i) }
    }
    return worst
}

/// Output size along one axis for explicit pads (floor, or ceil as pooling's ceil_mode).
func outputSize(input: Int, kernel: Int, stride: Int, dilation: Int, padBegin: Int, padEnd: Int, ceil: Bool = false) -> Int {
    let span = input + padBegin + padEnd - ((kernel - 1) * dilation + 1)
    if span < 0 { return 0 }
    if !ceil { return span / stride + 1 }
    // Ceil mode, where the last window must start inside the input or its leading padding.
    let size = (span + stride - 1) / stride + 1
    return (size - 1) * stride >= input + padBegin ? size - 1 : size
}

/// A window from per-axis sizes and symmetric-or-not pads, with its trailing pads.
func makeWindow(input: [Int], kernel: [Int], strides: [Int]? = nil, dilations: [Int]? = nil,
                padsBegin: [Int]? = nil, padsEnd: [Int]? = nil, ceil: Bool = false) -> (SpatialWindow, padsEnd: [Int]) {
    let rank = input.count
    let strides = strides ?? Array(repeating: 1, count: rank), dilations = dilations ?? Array(repeating: 1, count: rank)
    let begin = padsBegin ?? Array(repeating: 0, count: rank), end = padsEnd ?? begin
    let output = (0..<rank).map {
        outputSize(input: input[$0], kernel: kernel[$0], stride: strides[$0], dilation: dilations[$0],
                   padBegin: begin[$0], padEnd: end[$0], ceil: ceil)
    }
    return (SpatialWindow(inputSize: input, outputSize: output, kernel: kernel, strides: strides, dilations: dilations,
                          padsBegin: begin), end)
}
