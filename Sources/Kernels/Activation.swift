/// A pointwise activation that can run on its own or be fused into a producer's epilogue
/// (bias + activation applied while the output is still in cache).
///
/// The formulas are written once, generically over the floating-point element types; parameters
/// are stored as Float (ONNX attributes are floats) and converted to the element type.
public enum Activation: Sendable, Hashable {
    case relu
    case leakyRelu(alpha: Float)
    case clip(min: Float, max: Float)
    case sigmoid
    case tanh
    case hardSigmoid(alpha: Float, beta: Float)
    case hardSwish
    /// `x` for x ≥ 0, `alpha · (eˣ - 1)` below.
    case elu(alpha: Float)
    /// `gamma · x` for x > 0, `gamma · alpha · (eˣ - 1)` below.
    case selu(alpha: Float, gamma: Float)
    /// `max(0, x) + min(0, alpha · (e^(x/alpha) - 1))`.
    case celu(alpha: Float)
    /// `log(1 + eˣ)`.
    case softplus
    /// `x / (1 + |x|)`.
    case softsign
    /// `x` above `alpha`, 0 elsewhere.
    case thresholdedRelu(alpha: Float)
    /// `x · Φ(x)` with the exact normal CDF (erf).
    case gelu
    /// GELU with the tanh approximation of Φ.
    case geluTanh
    /// `x · tanh(softplus(x))`.
    case mish

    /// The activation of one value.
    public func callAsFunction(_ x: Float) -> Float { value(x) }

    /// The activation of one value of any floating-point element type.
    @inlinable
    public func value<T: RealElement>(_ x: T) -> T {
        switch self {
        case .relu: return Swift.max(x, 0)
        case .leakyRelu(let alpha): return x < 0 ? T(alpha) * x : x
        case .clip(let low, let high): return Swift.min(Swift.max(x, T(low)), T(high))
        case .sigmoid: return 1 / (1 + T.exp(-x))
        case .tanh: return T.tanh(x)
        case .hardSigmoid(let alpha, let beta): return Swift.min(Swift.max(T(alpha) * x + T(beta), 0), 1)
        case .hardSwish: return x * Swift.min(Swift.max(x / 6 + 0.5, 0), 1)
        case .elu(let alpha): return x >= 0 ? x : T(alpha) * T.expm1(x)
        case .selu(let alpha, let gamma): return x > 0 ? T(gamma) * x : T(gamma) * T(alpha) * T.expm1(x)
        case .celu(let alpha): return Swift.max(x, 0) + Swift.min(0, T(alpha) * T.expm1(x / T(alpha)))
        case .softplus: return Self.softplus(x)
        case .softsign: return x / (1 + Swift.abs(x))
        case .thresholdedRelu(let alpha): return x > T(alpha) ? x : 0
        case .gelu: return x / 2 * (1 + T.erf(x * T(0.7071067811865476)))
        case .geluTanh: return x / 2 * (1 + T.tanh(T(0.7978845608028654) * (x + T(0.044715) * x * x * x)))
        case .mish: return x * T.tanh(Self.softplus(x))
        }
    }

    /// `log(1 + eˣ)` without overflow for large x.
    @inlinable
    static func softplus<T: RealElement>(_ x: T) -> T {
        x > 0 ? x + T.log1p(T.exp(-x)) : T.log1p(T.exp(x))
    }

    /// Applies the activation in place to `count` floats.
    // Shapes: values[count].
    public func apply(_ values: UnsafeMutablePointer<Float>, count: Int) {
        apply(values, into: values, count: count)
    }

    /// `target[i] = activation(source[i])`; `source` and `target` may be the same buffer.
    // Shapes: source[count], target[count].
    @inlinable
    public func apply<T: RealElement>(_ source: UnsafePointer<T>, into target: UnsafeMutablePointer<T>, count: Int) {
        // One loop per cheap case so each is a tight, vectorisable loop without a switch inside.
        switch self {
        case .relu:
            for i in 0..<count { target[i] = Swift.max(source[i], 0) }
        case .leakyRelu(let alpha):
            let alpha = T(alpha)
            for i in 0..<count { let x = source[i]; target[i] = x < 0 ? alpha * x : x }
        case .clip(let low, let high):
            let low = T(low), high = T(high)
            for i in 0..<count { target[i] = Swift.min(Swift.max(source[i], low), high) }
        case .hardSigmoid(let alpha, let beta):
            let alpha = T(alpha), beta = T(beta)
            for i in 0..<count { target[i] = Swift.min(Swift.max(alpha * source[i] + beta, 0), 1) }
        case .hardSwish:
            for i in 0..<count { let x = source[i]; target[i] = x * Swift.min(Swift.max(x / 6 + 0.5, 0), 1) }
        case .thresholdedRelu(let alpha):
            let alpha = T(alpha)
            for i in 0..<count { let x = source[i]; target[i] = x > alpha ? x : 0 }
        case .softsign:
            for i in 0..<count { let x = source[i]; target[i] = x / (1 + Swift.abs(x)) }
        case .sigmoid, .tanh, .elu, .selu, .celu, .softplus, .gelu, .geluTanh, .mish:
            for i in 0..<count { target[i] = value(source[i]) }
        }
    }
}
