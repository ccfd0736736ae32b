#if canImport(Glibc)
import Glibc
#endif

/// A pointwise activation that can run on its own or be fused into a producer's epilogue
/// (bias + activation applied while the output is still in cache).
public enum Activation: Sendable, Hashable {
    case relu
    case leakyRelu(alpha: Float)
    case clip(min: Float, max: Float)
    case sigmoid
    case tanh
    case hardSigmoid(alpha: Float, beta: Float)
    case hardSwish

    /// The activation of one value.
    public func callAsFunction(_ x: Float) -> Float {
        switch self {
        case .relu: return Swift.max(x, 0)
        case .leakyRelu(let alpha): return x < 0 ? alpha * x : x
        case .clip(let low, let high): return Swift.min(Swift.max(x, low), high)
        case .sigmoid: return 1 / (1 + expf(-x))
        case .tanh: return tanhf(x)
        case .hardSigmoid(let alpha, let beta): return Swift.min(Swift.max(alpha * x + beta, 0), 1)
        case .hardSwish: return x * Swift.min(Swift.max(x / 6 + 0.5, 0), 1)
        }
    }

    /// Applies the activation in place to `count` floats.
    // Shapes: values[count].
    public func apply(_ values: UnsafeMutablePointer<Float>, count: Int) {
        // One loop per case so each is a tight, vectorisable loop without a switch inside.
        switch self {
        case .relu:
            for i in 0..<count { values[i] = Swift.max(values[i], 0) }
        case .leakyRelu(let alpha):
            for i in 0..<count { let x = values[i]; values[i] = x < 0 ? alpha * x : x }
        case .clip(let low, let high):
            for i in 0..<count { values[i] = Swift.min(Swift.max(values[i], low), high) }
        case .hardSigmoid(let alpha, let beta):
            for i in 0..<count { values[i] = Swift.min(Swift.max(alpha * values[i] + beta, 0), 1) }
        case .hardSwish:
            for i in 0..<count { let x = values[i]; values[i] = x * Swift.min(Swift.max(x / 6 + 0.5, 0), 1) }
        case .sigmoid, .tanh:
            for i in 0..<count { values[i] = self(values[i]) }
        }
    }
}
