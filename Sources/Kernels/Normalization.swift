/// Normalisation kernels: per-row standardisation with an affine map (layer, instance and group
/// normalisation), per-channel affine maps (batch normalisation) and local response normalisation.
public enum Normalization {
    /// Standardises each row, `(x - mean) / sqrt(variance + epsilon)`, then scales and shifts it.
    ///
    /// Each row splits into `segments` equal segments; segment `s` of row `r` uses
    /// `scale[(r % rowPeriod) * segments + s]` and the same element of `bias` (0 when nil). So
    /// layer normalisation has one segment per element (`rowPeriod` 1), instance normalisation one
    /// segment per row (`rowPeriod` = channels) and group normalisation one per channel.
    /// `mean` and `inverseDeviation`, when given, receive each row's statistics. Not `centered`:
    /// the mean is taken as 0, so rows are divided by their root mean square (RMS normalisation).
    // Shapes: x[rows, length], y[rows, length], scale and bias [rowPeriod * segments],
    // mean and inverseDeviation [rows].
    @inlinable
    public static func normalizeRows<T: RealElement>(
        _ x: UnsafePointer<T>, into y: UnsafeMutablePointer<T>, rows: Int, length: Int, epsilon: T,
        scale: UnsafePointer<T>, bias: UnsafePointer<T>?, segments: Int, rowPeriod: Int,
        mean: UnsafeMutablePointer<T>? = nil, inverseDeviation: UnsafeMutablePointer<T>? = nil,
        centered: Bool = true, parallelism: Parallelism
    ) {
        let segmentLength = length / segments
        parallelism.forEachRun(rows: rows, columns: 1, grain: Reduction.grain / max(length, 1)) { r, _ in
            let x = x + r * length, y = y + r * length
            let average = centered ? Reduction.combineRun(x, count: length, Reduction.Sum()) / T(length) : 0
            let variance = Reduction.combineRun(x, count: length, Reduction.SumOfSquaredDeviations(from: average)) / T(length)
            let inverse = 1 / (variance + epsilon).squareRoot()
            mean?[r] = average
            inverseDeviation?[r] = inverse
            let parameters = (r % rowPeriod) * segments
            let scale = scale + parameters, bias = bias.map { $0 + parameters }
            if segmentLength == 1 {
                if let bias {
                    for j in 0..<length { y[j] = (x[j] - average) * inverse * scale[j] + bias[j] }
                } else {
                    for j in 0..<length { y[j] = (x[j] - average) * inverse * scale[j] }
                }
            } else {
                for s in 0..<segments {
                    let a = inverse * scale[s], b = (bias?[s] ?? 0) - average * a
                    let start = s * segmentLength
                    for j in start..<(start + segmentLength) { y[j] = x[j] * a + b }
                }
            }
        }
    }

    /// `y[o, c, i] = activation(x[o, c, i] * scale[c] + shift[c])` (batch normalisation at
    /// inference, and the activation after it, if any, in the same pass: ReLU in the loop, the
    /// others over each run while it is in cache).
    // Shapes: x[outer, channels, inner], y[outer, channels, inner], scale[channels], shift[channels].
    @inlinable
    public static func channelAffine<T: RealElement>(
        _ x: UnsafePointer<T>, into y: UnsafeMutablePointer<T>, outer: Int, channels: Int, inner: Int,
        scale: UnsafePointer<T>, shift: UnsafePointer<T>, activation: Activation? = nil, parallelism: Parallelism
    ) {
        parallelism.forEachRun(rows: outer * channels, columns: inner, grain: Reduction.grain) { row, columns in
            let c = row % channels, a = scale[c], b = shift[c]
            let x = x + row * inner, y = y + row * inner
            switch activation {
            case nil:
                for i in columns { y[i] = x[i] * a + b }
            case .relu?:
                // `v < 0 ? 0 : v` keeps NaN, as Relu does.
                for i in columns {
                    let v = x[i] * a + b
                    y[i] = v < 0 ? 0 : v
                }
            case let other?:
                for i in columns { y[i] = x[i] * a + b }
                let run = y + columns.lowerBound
                other.apply(UnsafePointer(run), into: run, count: columns.count)
            }
        }
    }

    /// Local response normalisation across channels:
    /// `y = x / (bias + alpha / size · Σ x²)^beta`, the sum over the `size` channels centred on
    /// each one (`(size - 1) / 2` before, the rest after, clipped at the edges).
    // Shapes: x[batches, channels, inner], y[batches, channels, inner].
    @inlinable
    public static func localResponse<T: RealElement>(
        _ x: UnsafePointer<T>, into y: UnsafeMutablePointer<T>, batches: Int, channels: Int, inner: Int,
        size: Int, alpha: T, beta: T, bias: T, parallelism: Parallelism
    ) {
        let before = (size - 1) / 2, after = size - 1 - before
        let coefficient = alpha / T(size)
        parallelism.forEachRun(rows: batches * channels, columns: inner, grain: Reduction.grain / size) { row, columns in
            let n = row / channels, c = row % channels
            let batch = x + n * channels * inner
            let target = y + row * inner
            for i in columns { target[i] = 0 }
            for neighbour in max(0, c - before)...min(channels - 1, c + after) {
                let source = batch + neighbour * inner
                for i in columns { target[i] += source[i] * source[i] }
            }
            let source = x + row * inner
            for i in columns { target[i] = source[i] * T.pow(bias + coefficient * target[i], -beta) }
        }
    }

    // MARK: Reference

    /// Reference twin of `normalizeRows`, in Double with the textbook two-pass variance.
    public static func naiveNormalizeRows<T: RealElement>(
        _ x: [T], rows: Int, length: Int, epsilon: Double, scale: [T], bias: [T]?, segments: Int, rowPeriod: Int,
        centered: Bool = true
    ) -> [T] {
        var y = x
        let segmentLength = length / segments
        for r in 0..<rows {
            let values = (0..<length).map { Double(x[r * length + $0]) }
            let mean = centered ? values.reduce(0, +) / Double(length) : 0
            let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(length)
            for j in 0..<length {
                let parameter = (r % rowPeriod) * segments + j / segmentLength
                let normalized = (values[j] - mean) / (variance + epsilon).squareRoot()
                y[r * length + j] = T(normalized * Double(scale[parameter]) + Double(bias?[parameter] ?? 0))
            }
        }
        return y
    }

    /// Reference twin of `localResponse`.
    public static func naiveLocalResponse<T: RealElement>(
        _ x: [T], batches: Int, channels: Int, inner: Int, size: Int, alpha: Double, beta: Double, bias: Double
    ) -> [T] {
        var y = x
        for n in 0..<batches {
            for c in 0..<channels {
                for i in 0..<inner {
                    var sum = 0.0
                    for neighbour in 0..<channels where neighbour >= c - (size - 1) / 2 && neighbour <= c + size / 2 {
                        let value = Double(x[(n * channels + neighbour) * inner + i])
                        sum += value * value
                    }
                    let index = (n * channels + c) * inner + i
                    y[index] = T(Double(x[index]) / Double.pow(bias + alpha / Double(size) * sum, beta))
                }
            }
        }
        return y
    }
}
