/// Rotary position embedding: pairs of a head's first `rotaryDimension` elements are rotated by
/// angles read from cosine and sine tables, one table row per (batch item, position).
public enum RotaryEmbedding {
    // Shapes: x and y [batch, heads, length, headSize] through their operands' strides;
    //   cos and sin [rows, rotaryDimension / 2]; tableRows [batch · length] (row of each position).
    /// `(x1, x2) → (cos·x1 − sin·x2, sin·x1 + cos·x2)` where the pairs are the halves of the
    /// rotated part, or neighbouring elements when `interleaved`; elements past `rotaryDimension`
    /// are copied.
    public static func rotate(
        _ x: Attention.Operand, into y: Attention.Operand, batch: Int, heads: Int, length: Int, headSize: Int,
        rotaryDimension: Int, interleaved: Bool, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>,
        tableRows: UnsafePointer<Int>, parallelism: Parallelism
    ) {
        let half = rotaryDimension / 2
        parallelism.forEachChunk(batch * heads * length, minimumChunk: Swift.max(1, 4096 / Swift.max(headSize, 1))) { range in
            for index in range {
                let s = index % length, h = (index / length) % heads, b = index / (length * heads)
                let source = x.row(b, h, s), target = y.row(b, h, s)
                let table = tableRows[b * length + s] * half
                let c = cos + table, n = sin + table
                for i in 0..<half {
                    let first = interleaved ? 2 * i : i, second = interleaved ? 2 * i + 1 : i + half
                    let x1 = source[first], x2 = source[second]
                    target[first] = c[i] * x1 - n[i] * x2
                    target[second] = n[i] * x1 + c[i] * x2
                }
                for d in rotaryDimension..<Swift.max(rotaryDimension, headSize) { target[d] = source[d] }
            }
        }
    }
}
