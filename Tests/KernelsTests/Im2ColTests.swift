import Kernels
import Testing
import TestSupport

@Suite struct Im2ColTests {
    /// Windows over 1 to 3 axes with odd sizes, strides, dilations and pads (some as wide as the kernel).
    static let windows: [SpatialWindow] = [
        makeWindow(input: [7], kernel: [3], padsBegin: [1]).0,
        makeWindow(input: [13], kernel: [4], strides: [3], dilations: [2], padsBegin: [2], padsEnd: [3]).0,
        makeWindow(input: [5, 7], kernel: [3, 3], padsBegin: [1, 1]).0,
        makeWindow(input: [9, 6], kernel: [3, 2], strides: [2, 2], padsBegin: [1, 0], padsEnd: [0, 1]).0,
        makeWindow(input: [8, 11], kernel: [3, 3], dilations: [2, 2], padsBegin: [2, 2]).0,
        makeWindow(input: [3, 3], kernel: [5, 5], padsBegin: [2, 3], padsEnd: [3, 2]).0,
        makeWindow(input: [1, 1], kernel: [1, 1]).0,
        makeWindow(input: [4, 5, 6], kernel: [2, 3, 3], strides: [1, 2, 1], padsBegin: [1, 1, 1]).0,
        makeWindow(input: [5, 37], kernel: [3, 7], strides: [2, 2], padsBegin: [1, 3]).0,
        makeWindow(input: [14, 14], kernel: [3, 3], strides: [2, 2], padsBegin: [1, 1], padsEnd: [1, 1]).0,
        // Stride 2 over rows wide enough for the eight-at-a-time copy (a ResNet stem; a dilated one).
        makeWindow(input: [11, 64], kernel: [7, 7], strides: [2, 2], padsBegin: [3, 3], padsEnd: [2, 2]).0,
        makeWindow(input: [6, 41], kernel: [3, 3], strides: [2, 2], dilations: [1, 3], padsBegin: [0, 3]).0,
        makeWindow(input: [7, 7], kernel: [3, 3], padsBegin: [1, 1], padsEnd: [1, 1]).0,
        makeWindow(input: [6, 9], kernel: [2, 4], strides: [3, 3], dilations: [2, 1], padsBegin: [0, 2], padsEnd: [1, 0]).0,
        // Narrow outputs (at most `Im2Col.narrowWidth`) go through a padded copy of each channel:
        // a small CNN's 5×5 layers, a run of exactly eight and of nine (the overlapping vector copy).
        makeWindow(input: [28, 28], kernel: [5, 5], padsBegin: [2, 2], padsEnd: [2, 2]).0,
        makeWindow(input: [14, 14], kernel: [5, 5], padsBegin: [2, 2], padsEnd: [2, 2]).0,
        makeWindow(input: [10, 8], kernel: [3, 3], padsBegin: [1, 1], padsEnd: [1, 1]).0,
        makeWindow(input: [11, 9], kernel: [3, 3], dilations: [3, 1], padsBegin: [3, 1], padsEnd: [0, 1]).0,
        // Wider outputs keep the per-run path.
        makeWindow(input: [4, 70], kernel: [3, 3], padsBegin: [1, 1], padsEnd: [1, 1]).0,
        makeWindow(input: [9, 81], kernel: [7, 7], strides: [2, 2], padsBegin: [3, 3], padsEnd: [3, 3]).0,
    ]

    @Test(arguments: windows)
    func expandMatchesReference(window: SpatialWindow) {
        var random = SeededGenerator(seed: UInt64(window.inputCount * 31 + window.kernelCount))
        let channels = 3
        let input = random.floats(channels * window.inputCount)
        let total = window.outputCount
        for pixels in [0..<total, 0..<min(total, 5), (total / 3)..<total, min(total, 2)..<min(total, 2 + 7)] {
            let count = channels * window.kernelCount * pixels.count
            var actual = [Float](repeating: .nan, count: count), expected = [Float](repeating: .nan, count: count)
            actual.withUnsafeMutableBufferPointer {
                Im2Col.expand(input, channels: channels, window: window, pixels: pixels, into: $0.baseAddress!)
            }
            expected.withUnsafeMutableBufferPointer {
                Im2Col.referenceExpand(input, channels: channels, window: window, pixels: pixels, into: $0.baseAddress!)
            }
            #expect(actual == expected, "pixels \(pixels)")
        }
    }

    @Test(arguments: windows)
    func accumulateMatchesReference(window: SpatialWindow) {
        var random = SeededGenerator(seed: UInt64(window.outputCount * 17 + window.kernelCount))
        let channels = 2
        let total = window.outputCount
        for pixels in [0..<total, (total / 2)..<total] {
            let columns = random.floats(channels * window.kernelCount * pixels.count)
            let image = random.floats(channels * window.inputCount)
            var actual = image, expected = image
            actual.withUnsafeMutableBufferPointer {
                Im2Col.accumulate(columns, channels: channels, window: window, pixels: pixels, into: $0.baseAddress!)
            }
            expected.withUnsafeMutableBufferPointer {
                Im2Col.referenceAccumulate(columns, channels: channels, window: window, pixels: pixels, into: $0.baseAddress!)
            }
            #expect(worstError(actual, expected, rtol: 1e-6, atol: 1e-6).excess <= 0, "pixels \(pixels)")
        }
    }
}
