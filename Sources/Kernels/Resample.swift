/// Separable resampling (linear, cubic, antialiased Resize): each resized axis is one pass that
/// mixes a few input positions per output position with precomputed weights.
public enum Resample {
    /// One axis: `target[o, j, i] = Σ_t weights[j·taps + t] · source[o, indices[j·taps + t], i]`.
    /// Indices must lie in `0..<inputWidth`.
    // Shapes: source[outer, inputWidth, inner], target[outer, outputWidth, inner],
    //         indices[outputWidth, taps], weights[outputWidth, taps].
    public static func axis(
        source: UnsafePointer<Float>, target: UnsafeMutablePointer<Float>,
        outer: Int, inputWidth: Int, outputWidth: Int, inner: Int,
        taps: Int, indices: UnsafePointer<Int>, weights: UnsafePointer<Float>,
        parallelism: Parallelism = .serial
    ) {
        let lines = outer * outputWidth
        guard lines > 0, inner > 0 else { return }
        let minimumChunk = max(1, 16 * 1024 / (inner * max(taps, 1)))
        if inner == 1 {
            // Resizing the innermost axis: each output is a short dot product over gathered inputs.
            parallelism.forEachChunk(outer, minimumChunk: max(1, minimumChunk / max(outputWidth, 1))) { range in
                for o in range {
                    let row = source + o * inputWidth, output = target + o * outputWidth
                    if taps == 2 {
                        for j in 0..<outputWidth {
                            output[j] = weights[2 * j] * row[indices[2 * j]] + weights[2 * j + 1] * row[indices[2 * j + 1]]
                        }
                        continue
                    }
                    for j in 0..<outputWidth {
                        var sum: Float = 0
                        for t in (j * taps)..<((j + 1) * taps) { sum += weights[t] * row[indices[t]] }
                        output[j] = sum
                    }
                }
            }
            return
        }
        // An outer axis: each output row is a weighted sum of whole input rows (vectorisable).
        parallelism.forEachChunk(lines, minimumChunk: minimumChunk) { range in
            for line in range {
                let o = line / outputWidth, j = line % outputWidth
                let output = target + line * inner, tapIndices = indices + j * taps, tapWeights = weights + j * taps
                if taps == 0 {
                    output.update(repeating: 0, count: inner)
                    continue
                }
                let first = source + (o * inputWidth + tapIndices[0]) * inner, firstWeight = tapWeights[0]
                for i in 0..<inner { output[i] = firstWeight * first[i] }
                for t in 1..<taps {
                    let input = source + (o * inputWidth + tapIndices[t]) * inner, weight = tapWeights[t]
                    for i in 0..<inner { output[i] += weight * input[i] }
                }
            }
        }
    }

    /// Naive twin of `axis`.
    public static func axisReference(
        source: UnsafePointer<Float>, target: UnsafeMutablePointer<Float>,
        outer: Int, inputWidth: Int, outputWidth: Int, inner: Int,
        taps: Int, indices: UnsafePointer<Int>, weights: UnsafePointer<Float>
    ) {
        for o in 0..<outer {
            for j in 0..<outputWidth {
                for i in 0..<inner {
                    var sum: Float = 0
                    for t in 0..<taps {
                        sum += weights[j * taps + t] * source[(o * inputWidth + indices[j * taps + t]) * inner + i]
                    }
                    target[(o * outputWidth + j) * inner + i] = sum
                }
            }
        }
    }
}
