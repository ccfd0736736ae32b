/// Softmax and log-softmax along one axis of a tensor viewed as `[outer, length, inner]`.
public enum Softmax {
    /// `output = exp(x - max) / sum(exp(x - max))` along the middle axis, or its logarithm
    /// `x - max - log(sum(exp(x - max)))` when `logarithm`.
    // Shapes: input[outer, length, inner], output[outer, length, inner].
    @inlinable
    public static func softmax<T: RealElement>(
        _ input: UnsafePointer<T>, into output: UnsafeMutablePointer<T>,
        outer: Int, length: Int, inner: Int, logarithm: Bool, parallelism: Parallelism
    ) {
        if length == 0 { return }
        parallelism.forEachRun(rows: outer, columns: inner, grain: Reduction.grain / (4 * length)) { o, columns in
            for i in columns {
                let offset = o * length * inner + i
                // The common last-axis case gets its own copy of the loops with a constant stride.
                if inner == 1 {
                    row(input + offset, output + offset, length: length, stride: 1, logarithm: logarithm)
                } else {
                    row(input + offset, output + offset, length: length, stride: inner, logarithm: logarithm)
                }
            }
        }
    }

    @inlinable @inline(__always)
    static func row<T: RealElement>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, length: Int, stride: Int,
                                    logarithm: Bool) {
        var peak = x[0]
        if stride == 1 {
            peak = Reduction.combineRun(x, count: length, Reduction.Maximum())
        } else {
            for j in 1..<length { peak = T.maximum(peak, x[j * stride]) }
        }
        // The exponentials in a loop of their own (it vectorises), then their sum.
        for j in 0..<length { y[j * stride] = T.exp(x[j * stride] - peak) }
        var sum: T = 0
        if stride == 1 {
            sum = Reduction.combineRun(UnsafePointer(y), count: length, Reduction.Sum())
        } else {
            for j in 0..<length { sum += y[j * stride] }
        }
        if logarithm {
            let shift = peak + T.log(sum)
            for j in 0..<length { y[j * stride] = x[j * stride] - shift }
        } else {
            let scale = 1 / sum
            for j in 0..<length { y[j * stride] *= scale }
        }
    }

    // MARK: Reference

    /// Reference twin of `softmax`: the textbook formula in Double, one output at a time.
    public static func naive<T: RealElement>(_ input: [T], outer: Int, length: Int, inner: Int, logarithm: Bool) -> [T] {
        var output = input
        for o in 0..<outer {
            for i in 0..<inner {
                let indices = (0..<length).map { (o * length + $0) * inner + i }
                let values = indices.map { Double(input[$0]) }
                let peak = values.max() ?? 0
                let sum = values.reduce(0) { $0 + Double.exp($1 - peak) }
                for (index, value) in zip(indices, values) {
                    output[index] = T(logarithm ? value - peak - Double.log(sum) : Double.exp(value - peak) / sum)
                }
            }
        }
        return output
    }
}
