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
    /// `x · sigmoid(x)` (SiLU, Swish with beta 1).
    case silu
    /// QuantizeLinear then DequantizeLinear (a QDQ model's rounding of an activation onto its
    /// integer grid): `(clamp(round_half_even(x / scale) + zeroPoint, low, high) − zeroPoint) · scale`,
    /// computed in Float; NaN goes to `low`.
    case quantizeDequantize(scale: Float, zeroPoint: Float, low: Float, high: Float)

    /// The activation of one value.
    public func callAsFunction(_ x: Float) -> Float { value(x) }

    /// The activation of one value of any floating-point element type.
    @inlinable
    public func value<T: RealElement>(_ x: T) -> T {
        switch self {
        case .relu: Self.relu(x)
        case .leakyRelu(let alpha): Self.leakyRelu(x, T(alpha))
        case .clip(let low, let high): Self.clip(x, T(low), T(high))
        case .sigmoid: Self.sigmoid(x)
        case .tanh: T.tanh(x)
        case .hardSigmoid(let alpha, let beta): Self.hardSigmoid(x, T(alpha), T(beta))
        case .hardSwish: Self.hardSwish(x)
        case .elu(let alpha): Self.elu(x, T(alpha))
        case .selu(let alpha, let gamma): Self.selu(x, T(alpha), T(gamma))
        case .celu(let alpha): Self.celu(x, T(alpha))
        case .softplus: Self.softplus(x)
        case .softsign: Self.softsign(x)
        case .thresholdedRelu(let alpha): Self.thresholdedRelu(x, T(alpha))
        case .gelu: Self.gelu(x)
        case .geluTanh: Self.geluTanh(x)
        case .mish: x * T.tanh(Self.softplus(x))
        case .silu: Self.silu(x)
        case .quantizeDequantize(let scale, let zeroPoint, let low, let high):
            T(Self.quantizeDequantize(Float(x), scale, zeroPoint, low, high))
        }
    }

    /// Applies the activation in place to `count` floats.
    // Shapes: values[count].
    public func apply(_ values: UnsafeMutablePointer<Float>, count: Int) {
        apply(UnsafePointer(values), into: values, count: count)
    }

    /// `apply` for Float, with the costly formulas written into their own loops: in the generic
    /// `apply`, even specialised for Float, the compiler kept the formula of each case a closure
    /// called once per element (GELU on [128, 1536]: 0.90 ms a run, one call per float in perf),
    /// where a loop of the same formula is vectorised. Same formulas, same values (written out as in
    /// `Epilogue`: by name they are ambiguous with the enum's cases).
    // Shapes: source[count], target[count].
    public func apply(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, count: Int) {
        let inPlace = UnsafePointer(target) == source
        switch self {
        case .gelu:
            if inPlace {
                for i in 0..<count { let x = target[i]; target[i] = x / 2 * (1 + Float.erf(x * 0.7071067811865476)) }
            } else {
                for i in 0..<count { let x = source[i]; target[i] = x / 2 * (1 + Float.erf(x * 0.7071067811865476)) }
            }
        case .geluTanh:
            if inPlace {
                for i in 0..<count { let x = target[i]; target[i] = x / 2 * (1 + Float.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))) }
            } else {
                for i in 0..<count { let x = source[i]; target[i] = x / 2 * (1 + Float.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))) }
            }
        case .silu:
            if inPlace {
                for i in 0..<count { target[i] = Float.sigmoidLinear(target[i]) }
            } else {
                for i in 0..<count { target[i] = Float.sigmoidLinear(source[i]) }
            }
        case .sigmoid:
            if inPlace {
                for i in 0..<count { target[i] = 1 / (1 + Float.logisticExp(-target[i])) }
            } else {
                for i in 0..<count { target[i] = 1 / (1 + Float.logisticExp(-source[i])) }
            }
        case .tanh:
            if inPlace {
                for i in 0..<count { target[i] = Float.tanh(target[i]) }
            } else {
                for i in 0..<count { target[i] = Float.tanh(source[i]) }
            }
        default:
            applyElements(source, into: target, count: count)
        }
    }

    /// `target[i] = activation(source[i])`; `source` and `target` may be the same buffer. Floats
    /// take the Float overload, also from callers that are generic over the element type.
    // Shapes: source[count], target[count].
    @inlinable
    public func apply<T: RealElement>(_ source: UnsafePointer<T>, into target: UnsafeMutablePointer<T>, count: Int) {
        if T.self == Float.self {
            return apply(UnsafeRawPointer(source).assumingMemoryBound(to: Float.self),
                         into: UnsafeMutableRawPointer(target).assumingMemoryBound(to: Float.self), count: count)
        }
        applyElements(source, into: target, count: count)
    }

    /// The generic `apply`.
    // Shapes: source[count], target[count].
    @inlinable
    func applyElements<T: RealElement>(_ source: UnsafePointer<T>, into target: UnsafeMutablePointer<T>, count: Int) {
        // The switch outside the loops: each case is a tight loop the compiler can vectorise. In
        // place, the loop reads and writes through one pointer: with two that may overlap, the
        // vectorised loop's run-time overlap check fails and the scalar loop runs instead.
        @inline(__always) func each(_ f: (T) -> T) {
            if UnsafePointer(target) == source {
                for i in 0..<count { target[i] = f(target[i]) }
            } else {
                for i in 0..<count { target[i] = f(source[i]) }
            }
        }
        switch self {
        case .relu: each { Self.relu($0) }
        case .leakyRelu(let alpha):
            let alpha = T(alpha)
            each { Self.leakyRelu($0, alpha) }
        case .clip(let low, let high):
            let low = T(low), high = T(high)
            each { Self.clip($0, low, high) }
        case .sigmoid: each { Self.sigmoid($0) }
        case .tanh: each { T.tanh($0) }
        case .hardSigmoid(let alpha, let beta):
            let alpha = T(alpha), beta = T(beta)
            each { Self.hardSigmoid($0, alpha, beta) }
        case .hardSwish: each { Self.hardSwish($0) }
        case .elu(let alpha):
            let alpha = T(alpha)
            each { Self.elu($0, alpha) }
        case .selu(let alpha, let gamma):
            let alpha = T(alpha), gamma = T(gamma)
            each { Self.selu($0, alpha, gamma) }
        case .celu(let alpha):
            let alpha = T(alpha)
            each { Self.celu($0, alpha) }
        case .softplus: each { Self.softplus($0) }
        case .softsign: each { Self.softsign($0) }
        case .thresholdedRelu(let alpha):
            let alpha = T(alpha)
            each { Self.thresholdedRelu($0, alpha) }
        case .gelu: each { Self.gelu($0) }
        case .geluTanh: each { Self.geluTanh($0) }
        case .mish: each { $0 * T.tanh(Self.softplus($0)) }
        case .silu: each { Self.silu($0) }
        case .quantizeDequantize(let scale, let zeroPoint, let low, let high):
            each { T(Self.quantizeDequantize(Float($0), scale, zeroPoint, low, high)) }
        }
    }

    // MARK: Formulas

    /// Division, not a multiplication by the reciprocal, as QuantizeLinear is specified (and as
    /// ONNX Runtime computes it): the two differ in the last bit, which can move a value across a
    /// rounding boundary. Computed as `QuantizationGrid` does: the same value for every input.
    @inlinable @inline(__always)
    public static func quantizeDequantize(_ x: Float, _ scale: Float, _ zeroPoint: Float, _ low: Float, _ high: Float) -> Float {
        QuantizationGrid(scale: scale, zeroPoint: zeroPoint, low: low, high: high)(x)
    }
    @inlinable static func relu<T: RealElement>(_ x: T) -> T { Swift.max(x, 0) }
    @inlinable static func leakyRelu<T: RealElement>(_ x: T, _ alpha: T) -> T { x < 0 ? alpha * x : x }
    @inlinable static func clip<T: RealElement>(_ x: T, _ low: T, _ high: T) -> T { Swift.min(Swift.max(x, low), high) }
    @inlinable static func sigmoid<T: RealElement>(_ x: T) -> T { 1 / (1 + T.logisticExp(-x)) }
    @inlinable static func silu<T: RealElement>(_ x: T) -> T { T.sigmoidLinear(x) }
    @inlinable static func hardSigmoid<T: RealElement>(_ x: T, _ alpha: T, _ beta: T) -> T {
        Swift.min(Swift.max(alpha * x + beta, 0), 1)
    }
    @inlinable static func hardSwish<T: RealElement>(_ x: T) -> T { x * Swift.min(Swift.max(x / 6 + 0.5, 0), 1) }
    /// exp(x) - 1 from `exp`, not `expm1`: the vectorised exp, at an absolute error far below tolerance.
    @inlinable static func elu<T: RealElement>(_ x: T, _ alpha: T) -> T { x >= 0 ? x : alpha * (T.exp(x) - 1) }
    @inlinable static func selu<T: RealElement>(_ x: T, _ alpha: T, _ gamma: T) -> T {
        x > 0 ? gamma * x : gamma * alpha * (T.exp(x) - 1)
    }
    @inlinable static func celu<T: RealElement>(_ x: T, _ alpha: T) -> T {
        Swift.max(x, 0) + Swift.min(0, alpha * (T.exp(x / alpha) - 1))
    }
    /// `log(1 + eˣ)` without overflow for large x.
    @inlinable static func softplus<T: RealElement>(_ x: T) -> T { Swift.max(x, 0) + T.log1p(T.exp(-Swift.abs(x))) }
    @inlinable static func softsign<T: RealElement>(_ x: T) -> T { x / (1 + Swift.abs(x)) }
    @inlinable static func thresholdedRelu<T: RealElement>(_ x: T, _ alpha: T) -> T { x > alpha ? x : 0 }
    @inlinable static func gelu<T: RealElement>(_ x: T) -> T { x / 2 * (1 + T.erf(x * T(0.7071067811865476))) }
    @inlinable static func geluTanh<T: RealElement>(_ x: T) -> T {
        x / 2 * (1 + T.tanh(T(0.7978845608028654) * (x + T(0.044715) * x * x * x)))
    }
}

/// `Activation.quantizeDequantize` with its constants prepared: `(clamp(round_half_even(x / scale)
/// + zeroPoint, low, high) − zeroPoint) · scale` computed in fewer steps with the same result for
/// every x, for a positive scale (the only kind the fused attributes accept). Since
/// `low − zeroPoint` and `high − zeroPoint` are whole numbers and rounding is monotone and leaves
/// whole numbers alone, clamping `x / scale` to them first and rounding after gives the same grid
/// point. NaN clamps to the low end, as before; the result is never −0 (nor was it: `(q −
/// zeroPoint)` is +0 when q equals the zero point).
public struct QuantizationGrid: Sendable {
    /// The step between grid points.
    public let scale: Float
    /// The lowest and highest grid index relative to the zero point (`low − zeroPoint`, `high − zeroPoint`).
    public let lowest: Float, highest: Float

    @inlinable
    public init(scale: Float, zeroPoint: Float, low: Float, high: Float) {
        self.scale = scale
        lowest = low - zeroPoint
        highest = high - zeroPoint
    }

    /// The grid point of `x` (see the type).
    @inlinable @inline(__always)
    public func callAsFunction(_ x: Float) -> Float { point(x / scale) }

    /// The grid point of `x` found by multiplying by `1 / scale` instead of dividing: as ONNX
    /// Runtime's fused quantized convolutions requantize (a product by a precomputed scale), and
    /// several times cheaper than a division, which is what the rounding in a QDQ convolution's
    /// epilogue costs. It differs from `callAsFunction` only where `x / scale` lies within an ulp
    /// or so of a rounding boundary (a half), by one step of the grid.
    @inlinable @inline(__always)
    public func multiplying(_ x: Float, reciprocal: Float) -> Float { point(x * reciprocal) }

    /// `round_half_even(clamp(v, lowest, highest)) · scale`, NaN to `lowest`: the grid point of
    /// the grid index `v` (a value already divided by the scale).
    ///
    /// Rounded by the CPU's round instruction (`vroundps`) and scaled by a multiply-add onto +0:
    /// the round gives −0 for a v in [−½, 0), and `q · scale + 0` is +0 for both zeros (the sum of
    /// −0 and +0), the product itself otherwise (exact, then rounded once, as the multiplication
    /// is), for a positive scale. The earlier `((v + 1.5·2^23) − 1.5·2^23) · scale` (exact for
    /// |v| < 2^22, which the clamp guarantees for the bounds the fused attributes accept) gives the
    /// same values with one more instruction: in a QDQ residual block's epilogue (two roundings per
    /// element, ALU-bound: 0.18 ns per element whether the block is in L2 or not), 183 → 147 µs
    /// for ResNet-50's 256 × 3136 block in a C model of the loop (clang -O3 -march=haswell, best
    /// of 200; bit for bit equal over 10^8 values, NaN, infinities and subnormals included).
    /// Without SSE4.1 and FMA (the portable build) both would be library calls, so the earlier
    /// form stays there.
    @inlinable @inline(__always)
    public func point(_ v: Float) -> Float {
        // `v > lowest ? v : lowest` sends NaN to `lowest` (and vectorises to one max).
        let above = v > lowest ? v : lowest
        let clamped = above < highest ? above : highest
        #if ROUND_INSTRUCTION
        return Float(0).addingProduct(clamped.rounded(.toNearestOrEven), scale)
        #else
        let shift: Float = 12_582_912  // 1.5 · 2^23: adding it rounds to a whole number, half to even
        return ((clamped + shift) - shift) * scale
        #endif
    }
}
