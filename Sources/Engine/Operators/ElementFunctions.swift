import Kernels
import Tensors

/// The per-element functions of the elementwise operators, as types: the broadcast kernels take
/// them as generic parameters, so each operator and element type compiles into its own loop
/// with the function inlined (a closure would cost an indirect call per element).
enum Elementwise {
    // MARK: Unary

    struct Absolute<T: ArithmeticElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { T.absolute(x) } }
    struct Negate<T: ArithmeticElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { T.negate(x) } }
    struct Sign<T: ArithmeticElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { T.sign(x) } }
    struct Exp<T: RealElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { T.exp(x) } }
    struct Log<T: RealElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { T.log(x) } }
    struct SquareRoot<T: RealElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { x.squareRoot() } }
    struct Reciprocal<T: RealElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { 1 / x } }
    /// Rounding in one direction; halfway cases to even for `.toNearestOrEven` (numpy, ONNX Runtime).
    struct Rounded<T: RealElement>: UnaryElementFunction {
        let rule: FloatingPointRoundingRule
        func callAsFunction(_ x: T) -> T { x.rounded(rule) }
    }
    struct Erf<T: RealElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { T.erf(x) } }
    struct Sin<T: RealElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { T.sin(x) } }
    struct Cos<T: RealElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { T.cos(x) } }
    struct Tan<T: RealElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { T.tan(x) } }
    struct Asin<T: RealElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { T.asin(x) } }
    struct Acos<T: RealElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { T.acos(x) } }
    struct Atan<T: RealElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { T.atan(x) } }
    struct Sinh<T: RealElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { T.sinh(x) } }
    struct Cosh<T: RealElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { T.cosh(x) } }
    struct Asinh<T: RealElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { T.asinh(x) } }
    struct Acosh<T: RealElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { T.acosh(x) } }
    struct Atanh<T: RealElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { T.atanh(x) } }
    struct LogicalNot: UnaryElementFunction { func callAsFunction(_ x: Bool) -> Bool { !x } }
    struct BitwiseNot<T: FixedWidthInteger>: UnaryElementFunction { func callAsFunction(_ x: T) -> T { ~x } }
    /// NaN, or infinite with the chosen signs.
    struct IsSpecial<T: RealElement>: UnaryElementFunction {
        let nan: Bool, negativeInfinity: Bool, positiveInfinity: Bool
        func callAsFunction(_ x: T) -> Bool { x.isNaN ? nan : x.isInfinite && (x < 0 ? negativeInfinity : positiveInfinity) }
    }
    struct Clamp<T: ArithmeticElement>: UnaryElementFunction {
        let low: T, high: T
        func callAsFunction(_ x: T) -> T { Swift.min(Swift.max(x, low), high) }
    }
    struct Scale<T: ArithmeticElement>: UnaryElementFunction {
        let factor: T
        func callAsFunction(_ x: T) -> T { T.multiply(x, factor) }
    }
    struct DivideBy<T: ArithmeticElement>: UnaryElementFunction {
        let divisor: T
        func callAsFunction(_ x: T) -> T { T.divide(x, divisor) }
    }
    /// A cast between arithmetic element types (C semantics, see `ArithmeticElement`).
    struct Convert<T: ArithmeticElement, U: ArithmeticElement>: UnaryElementFunction {
        func callAsFunction(_ x: T) -> U { U(casting: x.castValue) }
    }
    struct IsNonzero<T: ArithmeticElement>: UnaryElementFunction { func callAsFunction(_ x: T) -> Bool { x != 0 } }

    // MARK: Binary

    struct Add<T: ArithmeticElement>: BinaryElementFunction { func callAsFunction(_ a: T, _ b: T) -> T { T.add(a, b) } }
    struct Subtract<T: ArithmeticElement>: BinaryElementFunction { func callAsFunction(_ a: T, _ b: T) -> T { T.subtract(a, b) } }
    struct Multiply<T: ArithmeticElement>: BinaryElementFunction { func callAsFunction(_ a: T, _ b: T) -> T { T.multiply(a, b) } }
    struct Divide<T: ArithmeticElement>: BinaryElementFunction { func callAsFunction(_ a: T, _ b: T) -> T { T.divide(a, b) } }
    struct Modulo<T: ArithmeticElement>: BinaryElementFunction { func callAsFunction(_ a: T, _ b: T) -> T { T.modulo(a, b) } }
    struct Remainder<T: ArithmeticElement>: BinaryElementFunction { func callAsFunction(_ a: T, _ b: T) -> T { T.remainder(a, b) } }
    struct Maximum<T: ArithmeticElement>: BinaryElementFunction { func callAsFunction(_ a: T, _ b: T) -> T { T.maximum(a, b) } }
    struct Minimum<T: ArithmeticElement>: BinaryElementFunction { func callAsFunction(_ a: T, _ b: T) -> T { T.minimum(a, b) } }
    struct Equal<T: Equatable>: BinaryElementFunction { func callAsFunction(_ a: T, _ b: T) -> Bool { a == b } }
    struct NotEqual<T: Equatable>: BinaryElementFunction { func callAsFunction(_ a: T, _ b: T) -> Bool { a != b } }
    struct Less<T: Comparable>: BinaryElementFunction { func callAsFunction(_ a: T, _ b: T) -> Bool { a < b } }
    struct LessOrEqual<T: Comparable>: BinaryElementFunction { func callAsFunction(_ a: T, _ b: T) -> Bool { a <= b } }
    struct Greater<T: Comparable>: BinaryElementFunction { func callAsFunction(_ a: T, _ b: T) -> Bool { a > b } }
    struct GreaterOrEqual<T: Comparable>: BinaryElementFunction { func callAsFunction(_ a: T, _ b: T) -> Bool { a >= b } }
    struct LogicalAnd: BinaryElementFunction { func callAsFunction(_ a: Bool, _ b: Bool) -> Bool { a && b } }
    struct LogicalOr: BinaryElementFunction { func callAsFunction(_ a: Bool, _ b: Bool) -> Bool { a || b } }
    struct BitwiseAnd<T: FixedWidthInteger>: BinaryElementFunction { func callAsFunction(_ a: T, _ b: T) -> T { a & b } }
    struct BitwiseOr<T: FixedWidthInteger>: BinaryElementFunction { func callAsFunction(_ a: T, _ b: T) -> T { a | b } }
    struct BitwiseXor<T: FixedWidthInteger>: BinaryElementFunction { func callAsFunction(_ a: T, _ b: T) -> T { a ^ b } }
    /// Shifts by a negative amount or by the width or more leave only the sign fill (spec, opset 28).
    struct ShiftLeft<T: FixedWidthInteger>: BinaryElementFunction {
        func callAsFunction(_ x: T, _ amount: T) -> T { amount < 0 || amount >= T.bitWidth ? 0 : x &<< amount }
    }
    struct ShiftRight<T: FixedWidthInteger>: BinaryElementFunction {
        func callAsFunction(_ x: T, _ amount: T) -> T { amount < 0 || amount >= T.bitWidth ? (x < 0 ? ~0 : 0) : x &>> amount }
    }
    struct Power<T: RealElement>: BinaryElementFunction { func callAsFunction(_ x: T, _ y: T) -> T { T.pow(x, y) } }
    /// `x²`, ignoring the exponent operand (known to be 2).
    struct Square<T: RealElement>: BinaryElementFunction { func callAsFunction(_ x: T, _: T) -> T { x * x } }
    /// A power of any two numeric types, computed in Double and cast to the base's type.
    struct MixedPower<T: ArithmeticElement, U: ArithmeticElement>: BinaryElementFunction {
        func callAsFunction(_ x: T, _ y: U) -> T { T(casting: .real(Double.pow(x.doubleValue, y.doubleValue))) }
    }
    struct ParametricRelu<T: ArithmeticElement>: BinaryElementFunction {
        func callAsFunction(_ x: T, _ slope: T) -> T { x < 0 ? T.multiply(slope, x) : x }
    }

    // MARK: Ternary

    struct Select<T>: TernaryElementFunction { func callAsFunction(_ condition: Bool, _ x: T, _ y: T) -> T { condition ? x : y } }
}

/// `y[i] = f(x[i])` over all elements, spread over the threads.
@inline(__always)
func mapElements<F: UnaryElementFunction>(_ x: Tensor, into y: Tensor, _ parallelism: Parallelism, _ f: F)
    where F.Input: TensorElement, F.Output: TensorElement {
    withExtendedLifetime(x) {
        BroadcastLayout(elementwise: x.shape).map(x.pointer(as: F.Input.self), into: y.mutablePointer(as: F.Output.self),
                                                  parallelism: parallelism, f)
    }
}

/// `c[i] = op(a[i'], b[i''])` over typed tensors.
@inline(__always)
func binaryElements<F: BinaryElementFunction>(_ layout: BroadcastLayout, _ a: Tensor, _ b: Tensor, into c: Tensor,
                                              _ parallelism: Parallelism, _ op: F)
    where F.Left: TensorElement, F.Right: TensorElement, F.Output: TensorElement {
    withExtendedLifetime((a, b)) {
        layout.binary(a.pointer(as: F.Left.self), b.pointer(as: F.Right.self), into: c.mutablePointer(as: F.Output.self),
                      parallelism: parallelism, op)
    }
}
