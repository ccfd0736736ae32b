import Kernels
import Testing
import TestSupport

@Suite struct PoolingTests {
    /// Windows with their trailing pads: 1-D to 3-D, strides, dilations, pads, ceil-mode overhang.
    static let windows: [(SpatialWindow, padsEnd: [Int])] = [
        makeWindow(input: [13], kernel: [3], strides: [2]),
        makeWindow(input: [12], kernel: [2], strides: [2], dilations: [2], padsBegin: [1], padsEnd: [0], ceil: true),
        makeWindow(input: [7, 9], kernel: [3, 3], strides: [2, 2], padsBegin: [1, 1]),
        makeWindow(input: [30, 30], kernel: [3, 3], strides: [2, 2], padsBegin: [1, 1]),
        makeWindow(input: [5, 61], kernel: [3, 3], strides: [2, 2], padsBegin: [1, 1], padsEnd: [1, 1]),
        makeWindow(input: [6, 5], kernel: [2, 3], strides: [2, 2], padsBegin: [0, 1], padsEnd: [1, 2], ceil: true),
        makeWindow(input: [8, 8], kernel: [3, 3], dilations: [2, 2], padsBegin: [2, 1], padsEnd: [1, 2]),
        makeWindow(input: [7, 7], kernel: [7, 7]),
        // Global pooling (`poolPlanes`): one value, fewer than 8, four sums of 8 with an 8-step
        // and a tail after them, and 1-D.
        makeWindow(input: [1, 1], kernel: [1, 1]),
        makeWindow(input: [3, 2], kernel: [3, 2]),
        makeWindow(input: [13, 13], kernel: [13, 13]),
        makeWindow(input: [75], kernel: [75]),
        makeWindow(input: [4, 5, 6], kernel: [2, 2, 3], strides: [2, 1, 2], padsBegin: [1, 0, 1], ceil: true),
        // 2×2 stride 2 (the halving kernel): odd sizes, eight or more outputs per row and fewer,
        // and a ceil-mode overhang (which the general kernel takes).
        makeWindow(input: [9, 21], kernel: [2, 2], strides: [2, 2]),
        makeWindow(input: [28, 28], kernel: [2, 2], strides: [2, 2]),
        makeWindow(input: [7, 11], kernel: [2, 2], strides: [2, 2]),
        makeWindow(input: [7, 9], kernel: [2, 2], strides: [2, 2], ceil: true),
        // The separable kernel (every window above without dilation takes it too) and, for the
        // stride-1 windows whose output has the input's size, the same-size kernel: rows narrower
        // than a SIMD step and wider, a 5×5 window, a window of one row, a plane of one value.
        makeWindow(input: [28, 28], kernel: [3, 3], padsBegin: [1, 1], padsEnd: [1, 1]),
        makeWindow(input: [14, 14], kernel: [3, 3], padsBegin: [1, 1], padsEnd: [1, 1], ceil: true),
        makeWindow(input: [5, 61], kernel: [2, 3], padsBegin: [0, 1], padsEnd: [1, 1]),
        makeWindow(input: [6, 5], kernel: [3, 2], padsBegin: [1, 0], padsEnd: [0, 1]),
        makeWindow(input: [9, 10], kernel: [3, 3]),
        makeWindow(input: [7, 11], kernel: [3, 2], padsBegin: [2, 0], padsEnd: [0, 1]),
        makeWindow(input: [20, 300], kernel: [3, 3], padsBegin: [1, 1], padsEnd: [1, 1]),
        makeWindow(input: [70, 70], kernel: [5, 5], padsBegin: [2, 2], padsEnd: [2, 2]),
        makeWindow(input: [3, 4], kernel: [2, 2], padsBegin: [1, 1], padsEnd: [1, 1]),
        makeWindow(input: [4, 6], kernel: [1, 3], padsBegin: [0, 1], padsEnd: [0, 1]),
        makeWindow(input: [1, 1], kernel: [3, 3], padsBegin: [1, 1], padsEnd: [1, 1]),
        // More for the same-size kernel: the 7×7 planes of late inception blocks, padding
        // uneven before and after, a window taller and wider than the plane (every row and column
        // an edge), a plane one value wide, a run of interior rows wider than a SIMD step.
        makeWindow(input: [7, 7], kernel: [3, 3], padsBegin: [1, 1], padsEnd: [1, 1]),
        makeWindow(input: [9, 13], kernel: [4, 2], padsBegin: [2, 0], padsEnd: [1, 1]),
        makeWindow(input: [2, 3], kernel: [5, 5], padsBegin: [2, 1], padsEnd: [2, 3]),
        makeWindow(input: [11, 1], kernel: [3, 3], padsBegin: [1, 1], padsEnd: [1, 1]),
        makeWindow(input: [13, 5], kernel: [5, 5], padsBegin: [2, 2], padsEnd: [2, 2]),
        // Horizontal strides above 2 (one output at a time across): the MNIST CNN's 3×3 stride 3.
        makeWindow(input: [24, 24], kernel: [3, 3], strides: [3, 3]),
        makeWindow(input: [10, 11], kernel: [3, 3], strides: [3, 3], padsBegin: [1, 1], ceil: true),
        makeWindow(input: [7, 30], kernel: [2, 4], strides: [1, 4], padsBegin: [0, 1], padsEnd: [1, 2]),
    ]

    static let kinds: [Pooling.Kind] = [
        .max, .average(countIncludePad: false), .average(countIncludePad: true), .lp(p: 1), .lp(p: 2), .lp(p: 3),
    ]

    @Test(arguments: windows.indices)
    func floatMatchesReference(_ index: Int) {
        let (window, padsEnd) = Self.windows[index]
        var random = SeededGenerator(seed: UInt64(index + 1))
        let planes = 3
        let input = random.floats(planes * window.inputCount, in: -5...5)
        for kind in Self.kinds {
            // Max pooling with row-major indices, column-major indices, and none (the row kernel).
            for (columnMajor, withIndices) in kind == .max ? [(false, true), (true, true), (false, false)] : [(false, false)] {
                let count = planes * window.outputCount
                var actual = [Float](repeating: .nan, count: count), expected = actual
                var actualIndices = [Int64](repeating: -7, count: count), expectedIndices = actualIndices
                actual.withUnsafeMutableBufferPointer { out in
                    actualIndices.withUnsafeMutableBufferPointer { indices in
                        Pooling.forward(kind, input: input, output: out.baseAddress!,
                                        indices: withIndices ? indices.baseAddress! : nil, columnMajorIndices: columnMajor,
                                        planes: planes, window: window, padsEnd: padsEnd, parallelism: Parallelism(threads: 2))
                    }
                }
                expected.withUnsafeMutableBufferPointer { out in
                    expectedIndices.withUnsafeMutableBufferPointer { indices in
                        Pooling.reference(kind, input: input, output: out.baseAddress!,
                                          indices: withIndices ? indices.baseAddress! : nil, columnMajorIndices: columnMajor,
                                          planes: planes, window: window, padsEnd: padsEnd)
                    }
                }
                #expect(worstError(actual, expected).excess <= 0, "\(kind) window \(index)")
                #expect(actualIndices == expectedIndices, "\(kind) window \(index) column-major \(columnMajor)")
            }
        }
    }

    @Test func sameSizeKernelTakesStrideOneWindowsWhoseOutputHasTheInputSize() {
        let taken = [
            makeWindow(input: [7, 7], kernel: [3, 3], padsBegin: [1, 1], padsEnd: [1, 1]),
            makeWindow(input: [9, 13], kernel: [4, 2], padsBegin: [2, 0], padsEnd: [1, 1]),
            makeWindow(input: [2, 3], kernel: [5, 5], padsBegin: [2, 1], padsEnd: [2, 3]),
            makeWindow(input: [11, 1], kernel: [3, 3], padsBegin: [1, 1], padsEnd: [1, 1]),
        ]
        for (window, padsEnd) in taken { #expect(Pooling.isSameSize(window, padsEnd: padsEnd), "\(window)") }
        let others = [
            makeWindow(input: [3, 4], kernel: [2, 2], padsBegin: [1, 1], padsEnd: [1, 1]),  // larger output
            makeWindow(input: [9, 10], kernel: [3, 3]),  // smaller output
            makeWindow(input: [30, 30], kernel: [3, 3], strides: [2, 2], padsBegin: [1, 1]),
            makeWindow(input: [8, 8], kernel: [3, 3], dilations: [2, 2], padsBegin: [2, 2], padsEnd: [2, 2]),
            makeWindow(input: [300, 300], kernel: [3, 3], padsBegin: [1, 1], padsEnd: [1, 1]),  // 90,000 values a plane
        ]
        for (window, padsEnd) in others { #expect(!Pooling.isSameSize(window, padsEnd: padsEnd), "\(window)") }
    }

    @Test func integerAndDoubleElements() {
        let (window, padsEnd) = Self.windows[2]
        var random = SeededGenerator(seed: 99)
        let planes = 2
        let bytes: [Int8] = (0..<(planes * window.inputCount)).map { _ in Int8.random(in: -100...100, using: &random) }
        var actual = [Int8](repeating: 0, count: planes * window.outputCount), expected = actual
        actual.withUnsafeMutableBufferPointer {
            Pooling.forward(.max, input: bytes, output: $0.baseAddress!, planes: planes, window: window, padsEnd: padsEnd,
                            parallelism: .serial)
        }
        expected.withUnsafeMutableBufferPointer {
            Pooling.reference(.max, input: bytes, output: $0.baseAddress!, planes: planes, window: window, padsEnd: padsEnd)
        }
        #expect(actual == expected)

        let doubles = random.floats(planes * window.inputCount).map(Double.init)
        var actualDoubles = [Double](repeating: 0, count: planes * window.outputCount), expectedDoubles = actualDoubles
        actualDoubles.withUnsafeMutableBufferPointer {
            Pooling.forward(.average(countIncludePad: true), input: doubles, output: $0.baseAddress!, planes: planes,
                            window: window, padsEnd: padsEnd, parallelism: .serial)
        }
        expectedDoubles.withUnsafeMutableBufferPointer {
            Pooling.reference(.average(countIncludePad: true), input: doubles, output: $0.baseAddress!, planes: planes,
                              window: window, padsEnd: padsEnd)
        }
        #expect(zip(actualDoubles, expectedDoubles).allSatisfy { abs($0 - $1) <= 1e-12 })
    }
}
