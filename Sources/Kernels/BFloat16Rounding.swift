#if canImport(Glibc)
import Glibc
#endif
import Tensors

/// bfloat16 Softmax and Attention rounded where ONNX's reference rounds them. ONNX Runtime's CPU
/// provider has no bfloat16 kernel for either, so `onnx.reference` is the oracle, and its numpy
/// code (ml_dtypes' bfloat16) rounds every elementwise step to bfloat16 (scaling, the shift by the
/// row maximum, the exponentials, the division), accumulates products in float and rounds each
/// once, and sums a softmax row in bfloat16, rounding after every addition. Computing in float and
/// rounding once gives results one bfloat16 step (0.4%) away, past the node tests' tolerance.
/// Float and float16 do not come here: float16 computes in float with one rounding, as ONNX
/// Runtime's CPU kernels do.
///
/// Values are Floats holding bfloat16 values (inputs widened exactly); results are too.
public enum BFloat16Rounding {
    /// `x` rounded to the nearest bfloat16 (ties to even).
    public static func round(_ x: Float) -> Float { BFloat16(narrowing: x).widened }

    /// Rows of at most this many terms sum as the reference does, rounding the running sum to
    /// bfloat16 after every addition; longer rows sum in float and round once. A running bfloat16
    /// sum loses every term below 1/512 of it: over random softmax rows it is about 1% short at
    /// 64 terms, 5% at 256 and 30% at 4,096, which no model should get.
    public static let runningSumLimit = 64

    /// The sum of `count` values read by `value`, rounded to bfloat16 (see `runningSumLimit`).
    static func sum(count: Int, _ value: (Int) -> Float) -> Float {
        var sum: Float = 0
        if count <= runningSumLimit {
            for j in 0..<count { sum = round(sum + value(j)) }
            return sum
        }
        for j in 0..<count { sum += value(j) }
        return round(sum)
    }

    // Shapes: input, output [outer, length, inner].
    /// Softmax along `length` as the reference's Softmax computes it in bfloat16:
    /// `e = round(exp(round(x − max)))`, `y = round(e / sum(e))`.
    public static func softmax(
        _ input: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>,
        outer: Int, length: Int, inner: Int, parallelism: Parallelism
    ) {
        if length == 0 { return }
        parallelism.forEachRun(rows: outer, columns: inner, grain: Reduction.grain / (8 * length)) { o, columns in
            for i in columns {
                let x = input + o * length * inner + i, y = output + o * length * inner + i
                var peak = x[0]
                for j in 1..<length { peak = Swift.max(peak, x[j * inner]) }
                for j in 0..<length { y[j * inner] = round(expf(round(x[j * inner] - peak))) }
                let total = sum(count: length) { y[$0 * inner] }
                for j in 0..<length { y[j * inner] = round(y[j * inner] / total) }
            }
        }
    }
}

extension Attention {
    // Shapes: as `attention`.
    /// `attention` for bfloat16 values, rounded as ONNX's reference Attention rounds them: Q and K
    /// each scaled by `round(√scale)` and rounded, each product Q·Kᵀ rounded, the biased score
    /// rounded, then the softmax rounded as `BFloat16Rounding.softmax` (after a soft cap, which the
    /// reference computes in float, the softmax is float and only its result rounds; so too when
    /// `softmaxInFloat`, ONNX's `softmax_precision` of float or double), and each output value
    /// rounded once from a float sum. A row whose bias is −∞ throughout gets zeros.
    public static func roundingToBFloat16(
        q: Operand, k: Operand, v: Operand, y: Operand, batch: Int, qHeads: Int, kvHeads: Int,
        queries: Int, keys: Int, headSize: Int, valueSize: Int, scale: Float, softcap: Float = 0,
        softmaxInFloat: Bool = false, masking: Masking = Masking(),
        scores: (pointer: UnsafeMutablePointer<Float>, stage: ScoreStage)? = nil, parallelism: Parallelism
    ) {
        typealias R = BFloat16Rounding
        let groups = Swift.max(1, qHeads / Swift.max(kvHeads, 1))
        let factor = R.round(Float(Double(scale).squareRoot()))
        let cap = softcap > 0 ? softcap : nil
        // The biased scores round unless the soft cap made them float; the softmax's steps round
        // unless they are float (after the soft cap, or by softmax_precision).
        let biasedInBFloat16 = cap == nil, softmaxInBFloat16 = cap == nil && !softmaxInFloat
        func softmaxStep(_ x: Float) -> Float { softmaxInBFloat16 ? R.round(x) : x }
        parallelism.forEach(batch * qHeads) { task in
            let b = task / qHeads, h = task % qHeads, kvHead = h / groups
            var scaledKeys = [Float](repeating: 0, count: keys * headSize)
            for j in 0..<keys {
                let row = k.row(b, kvHead, j)
                for d in 0..<headSize { scaledKeys[j * headSize + d] = R.round(row[d] * factor) }
            }
            var scaledQuery = [Float](repeating: 0, count: headSize)
            var product = [Float](repeating: 0, count: keys), biased = product, probabilities = product
            for i in 0..<queries {
                let query = q.row(b, h, i)
                for d in 0..<headSize { scaledQuery[d] = R.round(query[d] * factor) }
                var peak = -Float.infinity, biasPeak = -Float.infinity
                for j in 0..<keys {
                    var dot: Float = 0
                    for d in 0..<headSize { dot += scaledQuery[d] * scaledKeys[j * headSize + d] }
                    var x = R.round(dot)
                    if let cap { x = tanhf(x / cap) * cap }
                    product[j] = x
                    let bias = masking.bias(b, h, i, j, keys: keys)
                    biasPeak = Swift.max(biasPeak, bias)
                    biased[j] = bias == -.infinity ? -.infinity : biasedInBFloat16 ? R.round(x + bias) : x + bias
                    peak = Swift.max(peak, biased[j])
                }
                if biasPeak == -.infinity {
                    for j in 0..<keys { probabilities[j] = 0 }
                } else {
                    let shift = peak == -.infinity ? 0 : peak
                    for j in 0..<keys { probabilities[j] = softmaxStep(expf(softmaxStep(biased[j] - shift))) }
                    var total = softmaxInBFloat16 ? R.sum(count: keys, { probabilities[$0] }) : probabilities.reduce(0, +)
                    if total == 0 { total = 1 }
                    for j in 0..<keys { probabilities[j] = R.round(probabilities[j] / total) }
                }
                let out = y.row(b, h, i)
                for d in 0..<valueSize {
                    var sum: Float = 0
                    for j in 0..<keys { sum += probabilities[j] * v.row(b, kvHead, j)[d] }
                    out[d] = R.round(sum)
                }
                if let scores {
                    let row = scores.pointer + ((b * qHeads + h) * queries + i) * keys
                    let values = switch scores.stage { case .product: product; case .biased: biased; case .softmax: probabilities }
                    for j in 0..<keys { row[j] = R.round(values[j]) }
                }
            }
        }
    }
}
