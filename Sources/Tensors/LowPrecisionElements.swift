/// An element type that tensors store but operators compute in a wider type (see
/// `DataType.computeType`): bfloat16, the float8 and float4 formats (wide type Float) and the 4-
/// and 2-bit integers (Int8 or UInt8, one element per byte in memory).
public protocol LowPrecisionElement: TensorElement {
    /// The type values widen to.
    associatedtype Wide: TensorElement
    /// The value in the wide type (exact).
    var widened: Wide { get }
    /// `value` by ONNX Cast's rules: reals round to the nearest value (ties to even), and past the
    /// largest finite value become it when `saturate` is set (or the format has no infinity and
    /// no NaN), infinity or NaN otherwise; NaN stays NaN where the format has one. Integers keep
    /// their low bits, as a C cast.
    init(narrowing value: Wide, saturate: Bool)
}

/// bfloat16: float's sign and exponent with 7 mantissa bits.
public struct BFloat16: LowPrecisionElement, Equatable, Sendable {
    public var bitPattern: UInt16
    public init(bitPattern: UInt16) { self.bitPattern = bitPattern }

    public var widened: Float { Float(bitPattern: UInt32(bitPattern) << 16) }

    public init(narrowing value: Float, saturate: Bool = false) {
        let bits = value.bitPattern
        if value.isNaN {
            bitPattern = UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
        } else {
            // Round to nearest, ties to even, in the upper half (cannot overflow past infinity's bits).
            let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
            bitPattern = UInt16(truncatingIfNeeded: rounded >> 16)
        }
    }
}

/// A small floating-point format, converted to and from Float by table (at most 256 codes).
struct MinifloatFormat: Sendable {
    enum Specials: Sendable {
        /// Infinity is exponent all ones with mantissa 0; NaN the other codes there (E5M2).
        case ieee
        /// No infinity; NaN is all exponent and mantissa bits set (E4M3FN).
        case finiteWithNaN
        /// No infinity and no negative zero; NaN is the negative-zero code (the FNUZ formats).
        case unsignedZeroNaN
        /// No infinity and no NaN (E2M1).
        case finite
    }

    let mantissaBits: Int
    let signBit: UInt8
    let specials: Specials
    /// Value of each code (NaN for NaN codes).
    let values: [Float]
    /// Finite values ≥ 0, ascending, and their codes.
    let positives: [Float]
    let positiveCodes: [UInt8]
    /// The code a NaN converts to.
    let nanCode: UInt8

    init(exponentBits: Int, mantissaBits: Int, bias: Int, specials: Specials, nanCode: UInt8) {
        self.mantissaBits = mantissaBits
        self.specials = specials
        self.nanCode = nanCode
        let width = 1 + exponentBits + mantissaBits
        signBit = UInt8(1 << (width - 1))
        let exponentMask = (1 << exponentBits) - 1, mantissaMask = (1 << mantissaBits) - 1
        var values: [Float] = []
        for code in 0..<(1 << width) {
            let negative = code & Int(1 << (width - 1)) != 0
            let exponent = (code >> mantissaBits) & exponentMask, mantissa = code & mantissaMask
            var value: Float
            switch specials {
            case .ieee where exponent == exponentMask:
                value = mantissa == 0 ? .infinity : .nan
            case .finiteWithNaN where exponent == exponentMask && mantissa == mantissaMask:
                value = .nan
            case .unsignedZeroNaN where code == 1 << (width - 1):
                value = .nan
            default:
                let fraction = Float(mantissa) / Float(1 << mantissaBits)
                value = exponent == 0 ? fraction * Float(sign: .plus, exponent: 1 - bias, significand: 1)
                    : (1 + fraction) * Float(sign: .plus, exponent: exponent - bias, significand: 1)
            }
            values.append(negative && !value.isNaN ? -value : value)
        }
        self.values = values
        let finite = (0..<Int(1 << (width - 1))).filter { values[$0].isFinite }.sorted { values[$0] < values[$1] }
        positives = finite.map { values[$0] }
        positiveCodes = finite.map { UInt8($0) }
    }

    func decode(_ code: UInt8) -> Float { values[Int(code) & (Int(signBit) << 1 - 1)] }

    func encode(_ value: Float, saturate: Bool) -> UInt8 {
        if value.isNaN { return nanCode }
        let negative = value.sign == .minus
        let magnitude = Swift.abs(value)
        let count = positives.count
        let largest = positives[count - 1]
        var code: UInt8
        if magnitude > largest {
            let step = largest - positives[count - 2]
            let midpoint = largest + step / 2
            let roundsDown = magnitude.isFinite && (magnitude < midpoint || (magnitude == midpoint && positiveCodes[count - 1] & 1 == 0))
            if saturate || specials == .finite || roundsDown {
                code = positiveCodes[count - 1]
            } else {
                switch specials {
                case .ieee: code = positiveCodes[count - 1] + 1  // infinity follows the largest finite code
                default: return nanCode
                }
            }
        } else {
            // The last value ≤ magnitude, then the nearer of it and the next one (ties to even codes).
            var low = 0, high = count - 1
            while low < high {
                let middle = (low + high + 1) / 2
                if positives[middle] <= magnitude { low = middle } else { high = middle - 1 }
            }
            code = positiveCodes[low]
            if low + 1 < count {
                let below = magnitude - positives[low], above = positives[low + 1] - magnitude
                if above < below || (above == below && code & 1 == 1) { code = positiveCodes[low + 1] }
            }
        }
        if negative && !(code == 0 && specials == .unsignedZeroNaN) { code |= signBit }
        return code
    }

    static let e4m3fn = MinifloatFormat(exponentBits: 4, mantissaBits: 3, bias: 7, specials: .finiteWithNaN, nanCode: 0x7F)
    static let e4m3fnuz = MinifloatFormat(exponentBits: 4, mantissaBits: 3, bias: 8, specials: .unsignedZeroNaN, nanCode: 0x80)
    static let e5m2 = MinifloatFormat(exponentBits: 5, mantissaBits: 2, bias: 15, specials: .ieee, nanCode: 0x7E)
    static let e5m2fnuz = MinifloatFormat(exponentBits: 5, mantissaBits: 2, bias: 16, specials: .unsignedZeroNaN, nanCode: 0x80)
    /// E2M1 has no NaN; a NaN converts to negative zero, as ml_dtypes (the ONNX reference) does.
    static let e2m1 = MinifloatFormat(exponentBits: 2, mantissaBits: 1, bias: 1, specials: .finite, nanCode: 0x8)
}

/// A float8 or float4 element: its code in a byte, converted through its format's table.
protocol MinifloatElement: LowPrecisionElement where Wide == Float {
    static var format: MinifloatFormat { get }
    var bitPattern: UInt8 { get set }
    init(bitPattern: UInt8)
}

extension MinifloatElement {
    public var widened: Float { Self.format.decode(bitPattern) }
    public init(narrowing value: Float, saturate: Bool) { self.init(bitPattern: Self.format.encode(value, saturate: saturate)) }
}

/// float8 E4M3 without infinities (NaN 0x7F/0xFF); largest 448.
public struct Float8E4M3FN: MinifloatElement, Equatable, Sendable {
    static var format: MinifloatFormat { .e4m3fn }
    public var bitPattern: UInt8
    public init(bitPattern: UInt8) { self.bitPattern = bitPattern }
}

/// float8 E4M3 without infinities or negative zero (NaN 0x80); largest 240.
public struct Float8E4M3FNUZ: MinifloatElement, Equatable, Sendable {
    static var format: MinifloatFormat { .e4m3fnuz }
    public var bitPattern: UInt8
    public init(bitPattern: UInt8) { self.bitPattern = bitPattern }
}

/// float8 E5M2 with IEEE infinities and NaNs; largest 57344.
public struct Float8E5M2: MinifloatElement, Equatable, Sendable {
    static var format: MinifloatFormat { .e5m2 }
    public var bitPattern: UInt8
    public init(bitPattern: UInt8) { self.bitPattern = bitPattern }
}

/// float8 E5M2 without infinities or negative zero (NaN 0x80); largest 57344.
public struct Float8E5M2FNUZ: MinifloatElement, Equatable, Sendable {
    static var format: MinifloatFormat { .e5m2fnuz }
    public var bitPattern: UInt8
    public init(bitPattern: UInt8) { self.bitPattern = bitPattern }
}

/// float4 E2M1 (values 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives), one per byte in memory.
public struct Float4E2M1: MinifloatElement, Equatable, Sendable {
    static var format: MinifloatFormat { .e2m1 }
    public var bitPattern: UInt8
    public init(bitPattern: UInt8) { self.bitPattern = bitPattern & 0xF }
}

/// float8 E8M0 (OCP microscaling's scale type): an exponent only, 2^(code − 127), no sign, no zero;
/// code 0xFF is NaN. Narrowing keeps the exponent of |x| and rounds by `RoundMode` (ONNX Cast's
/// `round_mode`, `up` by default) the way `onnx.numpy_helper.to_float8e8m0` does.
public struct Float8E8M0: LowPrecisionElement, Equatable, Sendable {
    public var bitPattern: UInt8
    public init(bitPattern: UInt8) { self.bitPattern = bitPattern }

    public enum RoundMode: String, Sendable {
        /// Away from zero: any mantissa bit moves to the next exponent.
        case up
        /// Toward zero: the exponent of x.
        case down
        /// To the nearer power of two (by the guard, round and sticky bits of the mantissa).
        case nearest
    }

    public var widened: Float { bitPattern == 0xFF ? .nan : Float(sign: .plus, exponent: Int(bitPattern) - 127, significand: 1) }

    public init(narrowing value: Float, saturate: Bool) { self.init(narrowing: value, saturate: saturate, rounding: .up) }

    public init(narrowing value: Float, saturate: Bool, rounding: RoundMode) {
        let bits = value.bitPattern
        var exponent = (bits >> 23) & 0xFF
        guard exponent != 0xFF else { self.init(bitPattern: 0xFF); return }  // NaN and infinities
        let roundsUp: Bool
        switch rounding {
        case .up: roundsUp = bits & 0x7F_FFFF != 0
        case .down: roundsUp = false
        case .nearest:
            let guardBit = bits & 0x40_0000 != 0, roundBit = bits & 0x20_0000 != 0, sticky = bits & 0x1F_FFFF != 0
            roundsUp = guardBit && (roundBit || sticky || exponent > 0)
        }
        // Rounding up from the largest exponent gives NaN unless saturating.
        if roundsUp && !(saturate && exponent == 0xFE) { exponent += 1 }
        self.init(bitPattern: UInt8(exponent))
    }
}

/// A signed 4-bit integer (-8...7), one per byte in memory.
public struct Int4: LowPrecisionElement, Equatable, Sendable {
    public let value: Int8
    public init(narrowing value: Int8, saturate: Bool = false) { self.value = (value << 4) >> 4 }
    public var widened: Int8 { value }
}

/// An unsigned 4-bit integer (0...15), one per byte in memory.
public struct UInt4: LowPrecisionElement, Equatable, Sendable {
    public let value: UInt8
    public init(narrowing value: UInt8, saturate: Bool = false) { self.value = value & 0xF }
    public var widened: UInt8 { value }
}

/// A signed 2-bit integer (-2...1), one per byte in memory.
public struct Int2: LowPrecisionElement, Equatable, Sendable {
    public let value: Int8
    public init(narrowing value: Int8, saturate: Bool = false) { self.value = (value << 6) >> 6 }
    public var widened: Int8 { value }
}

/// An unsigned 2-bit integer (0...3), one per byte in memory.
public struct UInt2: LowPrecisionElement, Equatable, Sendable {
    public let value: UInt8
    public init(narrowing value: UInt8, saturate: Bool = false) { self.value = value & 0x3 }
    public var widened: UInt8 { value }
}

/// Code generic over a low-precision element type, chosen at run time from a `DataType`.
public protocol LowPrecisionVisitor {
    associatedtype Output
    func visit<T: LowPrecisionElement>(_ type: T.Type) throws -> Output
}

extension DataType {
    /// Calls `visitor` with the Swift type of this low-precision element type; nil for the others.
    public func visit<V: LowPrecisionVisitor>(_ visitor: V) throws -> V.Output? {
        switch self {
        case .bfloat16: try visitor.visit(BFloat16.self)
        case .float8e4m3fn: try visitor.visit(Float8E4M3FN.self)
        case .float8e4m3fnuz: try visitor.visit(Float8E4M3FNUZ.self)
        case .float8e5m2: try visitor.visit(Float8E5M2.self)
        case .float8e5m2fnuz: try visitor.visit(Float8E5M2FNUZ.self)
        case .float4e2m1: try visitor.visit(Float4E2M1.self)
        case .float8e8m0: try visitor.visit(Float8E8M0.self)
        case .int4: try visitor.visit(Int4.self)
        case .uint4: try visitor.visit(UInt4.self)
        case .int2: try visitor.visit(Int2.self)
        case .uint2: try visitor.visit(UInt2.self)
        default: nil
        }
    }
}

/// Conversions between low-precision tensors and their compute type, and the packed layout of
/// the sub-byte types in files and on the wire.
public enum LowPrecision {
    /// Writes `x` (a low-precision type) widened into `y`, of `x.dataType.computeType` and x's shape.
    public static func widen(_ x: Tensor, into y: Tensor) {
        struct Visitor: LowPrecisionVisitor {
            let x: Tensor, y: Tensor
            func visit<T: LowPrecisionElement>(_: T.Type) {
                let source = x.pointer(as: T.self), target = y.mutablePointer(as: T.Wide.self)
                for i in 0..<x.elementCount { target[i] = source[i].widened }
            }
        }
        precondition(y.dataType == x.dataType.computeType && y.elementCount == x.elementCount, "widening \(x.dataType) into \(y.dataType)")
        _ = try? x.dataType.visit(Visitor(x: x, y: y))
        withExtendedLifetime((x, y)) {}
    }

    /// Writes `x` (of `y.dataType.computeType`) narrowed into `y` (a low-precision type) by Cast's
    /// rules (see `LowPrecisionElement.init(narrowing:saturate:)`).
    public static func narrow(_ x: Tensor, into y: Tensor, saturate: Bool) {
        struct Visitor: LowPrecisionVisitor {
            let x: Tensor, y: Tensor, saturate: Bool
            func visit<T: LowPrecisionElement>(_: T.Type) {
                let source = x.pointer(as: T.Wide.self), target = y.mutablePointer(as: T.self)
                for i in 0..<x.elementCount { target[i] = T(narrowing: source[i], saturate: saturate) }
            }
        }
        precondition(x.dataType == y.dataType.computeType && y.elementCount == x.elementCount, "narrowing \(x.dataType) into \(y.dataType)")
        _ = try? y.dataType.visit(Visitor(x: x, y: y, saturate: saturate))
        withExtendedLifetime((x, y)) {}
    }

    /// Unpacks `count` elements of `dataType` from `packed` bytes (`dataType.bitWidth` bits each,
    /// the first element in the low bits) into `target`, one byte each, sign-extending the signed
    /// integer types. `packed` must hold `dataType.packedByteCount(elements: count)` bytes.
    public static func unpack(_ packed: UnsafeRawBufferPointer, count: Int, dataType: DataType, into target: UnsafeMutableRawPointer) {
        let bits = dataType.bitWidth, perByte = 8 / bits, mask = UInt8((1 << bits) - 1)
        let signed = dataType == .int4 || dataType == .int2
        let output = target.assumingMemoryBound(to: UInt8.self)
        for i in 0..<count {
            var value = (packed[i / perByte] >> UInt8((i % perByte) * bits)) & mask
            if signed && value & (1 << UInt8(bits - 1)) != 0 { value |= ~mask }
            output[i] = value
        }
    }

    /// The elements of `tensor` (a 4- or 2-bit type) packed as ONNX stores them.
    public static func pack(_ tensor: Tensor) -> [UInt8] {
        let bits = tensor.dataType.bitWidth, perByte = 8 / bits, mask = UInt8((1 << bits) - 1)
        var packed = [UInt8](repeating: 0, count: tensor.dataType.packedByteCount(elements: tensor.elementCount) ?? 0)
        withExtendedLifetime(tensor) {
            let source = tensor.rawPointer.assumingMemoryBound(to: UInt8.self)
            for i in 0..<tensor.elementCount { packed[i / perByte] |= (source[i] & mask) << UInt8((i % perByte) * bits) }
        }
        return packed
    }
}
