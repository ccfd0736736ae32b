import Kernels
import Tensors

/// Unary math: `y = f(x)` element by element, same shape.
enum UnaryOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("Abs", versions: [1, 6, 13], contract: .unary(ElementTypes.numeric)) { _ in ArithmeticUnary(function: .absolute) },
        OperatorDefinition("Neg", versions: [1, 6, 13], contract: .unary(ElementTypes.signedNumeric)) { _ in ArithmeticUnary(function: .negate) },
        OperatorDefinition("Sign", versions: [9, 13], contract: .unary(ElementTypes.numeric, input: "input", output: "output")) { _ in ArithmeticUnary(function: .sign) },
        OperatorDefinition("Exp", versions: [1, 6, 13], contract: .unary(ElementTypes.floatingPoint, input: "input", output: "output")) { _ in RealUnary(function: .exp) },
        OperatorDefinition("Log", versions: [1, 6, 13], contract: .unary(ElementTypes.floatingPoint, input: "input", output: "output")) { _ in RealUnary(function: .log) },
        OperatorDefinition("Sqrt", versions: [1, 6, 13], contract: .unary(ElementTypes.floatingPoint)) { _ in RealUnary(function: .sqrt) },
        OperatorDefinition("Reciprocal", versions: [1, 6, 13], contract: .unary(ElementTypes.floatingPoint)) { _ in RealUnary(function: .reciprocal) },
        OperatorDefinition("Floor", versions: [1, 6, 13], contract: .unary(ElementTypes.floatingPoint)) { _ in RealUnary(function: .floor) },
        OperatorDefinition("Ceil", versions: [1, 6, 13], contract: .unary(ElementTypes.floatingPoint)) { _ in RealUnary(function: .ceil) },
        OperatorDefinition("Round", versions: [11, 22], contract: .unary(ElementTypes.floatingPoint)) { _ in RealUnary(function: .round) },
        OperatorDefinition("Erf", versions: [9, 13], contract: .unary(ElementTypes.floatingPoint, input: "input", output: "output")) { _ in RealUnary(function: .erf) },
        OperatorDefinition("Sin", versions: [7, 22], contract: .unary(ElementTypes.floatingPoint, input: "input", output: "output")) { _ in RealUnary(function: .sin) },
        OperatorDefinition("Cos", versions: [7, 22], contract: .unary(ElementTypes.floatingPoint, input: "input", output: "output")) { _ in RealUnary(function: .cos) },
        OperatorDefinition("Tan", versions: [7, 22], contract: .unary(ElementTypes.floatingPoint, input: "input", output: "output")) { _ in RealUnary(function: .tan) },
        OperatorDefinition("Asin", versions: [7, 22], contract: .unary(ElementTypes.floatingPoint, input: "input", output: "output")) { _ in RealUnary(function: .asin) },
        OperatorDefinition("Acos", versions: [7, 22], contract: .unary(ElementTypes.floatingPoint, input: "input", output: "output")) { _ in RealUnary(function: .acos) },
        OperatorDefinition("Atan", versions: [7, 22], contract: .unary(ElementTypes.floatingPoint, input: "input", output: "output")) { _ in RealUnary(function: .atan) },
        OperatorDefinition("Sinh", versions: [9, 22], contract: .unary(ElementTypes.floatingPoint, input: "input", output: "output")) { _ in RealUnary(function: .sinh) },
        OperatorDefinition("Cosh", versions: [9, 22], contract: .unary(ElementTypes.floatingPoint, input: "input", output: "output")) { _ in RealUnary(function: .cosh) },
        OperatorDefinition("Asinh", versions: [9, 22], contract: .unary(ElementTypes.floatingPoint, input: "input", output: "output")) { _ in RealUnary(function: .asinh) },
        OperatorDefinition("Acosh", versions: [9, 22], contract: .unary(ElementTypes.floatingPoint, input: "input", output: "output")) { _ in RealUnary(function: .acosh) },
        OperatorDefinition("Atanh", versions: [9, 22], contract: .unary(ElementTypes.floatingPoint, input: "input", output: "output")) { _ in RealUnary(function: .atanh) },
        OperatorDefinition("IsNaN", versions: [9, 13, 20], contract: .unary(ElementTypes.floatingPoint, variable: "T1", result: .bool)) { _ in FloatClassification(detectNaN: true) },
        OperatorDefinition("IsInf", versions: [10, 20], contract: .unary(ElementTypes.floatingPoint, variable: "T1", result: .bool)) { context in
            FloatClassification(detectNegativeInfinity: try context.int("detect_negative", default: 1) != 0,
                                detectPositiveInfinity: try context.int("detect_positive", default: 1) != 0)
        },
        OperatorDefinition("Not", versions: [1], contract: .unary([.bool])) { _ in Not() },
        OperatorDefinition("BitwiseNot", versions: [18], contract: .unary(ElementTypes.integers)) { _ in BitwiseNot() },
    ]
}

/// A unary elementwise operator: allocates `y` with `x`'s shape and fills it. Its definition's
/// contract (`OperatorContract.unary`) says which element types `x` may have, and `y`'s.
protocol UnaryElementwise: Operator {
    /// Element type of `y` for an `x` of type `input` (the same, unless the operator says otherwise).
    func outputElementType(_ input: DataType) -> DataType
    /// Fills `y` from `x`.
    func compute(_ x: Tensor, into y: Tensor, _ parallelism: Parallelism) throws
}

extension UnaryElementwise {
    func outputElementType(_ input: DataType) -> DataType { input }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let y = try context.allocate(outputElementType(x.dataType), x.shape)
        try compute(x, into: y, context.parallelism)
        return [y]
    }
}

/// Abs, Neg and Sign: every numeric type (Neg: signed ones), integers wrapping like C.
struct ArithmeticUnary: UnaryElementwise {
    enum Function { case absolute, negate, sign }
    let function: Function

    func compute(_ x: Tensor, into y: Tensor, _ parallelism: Parallelism) throws {
        try requireKernel(x.dataType.visit(Kernel(function: function, x: x, y: y, parallelism: parallelism)), x)
    }

    private struct Kernel: ArithmeticVisitor {
        let function: Function, x: Tensor, y: Tensor, parallelism: Parallelism
        func visit<T: ArithmeticElement>(_: T.Type) {
            switch function {
            case .absolute: mapElements(x, into: y, parallelism, Elementwise.Absolute<T>())
            case .negate: mapElements(x, into: y, parallelism, Elementwise.Negate<T>())
            case .sign: mapElements(x, into: y, parallelism, Elementwise.Sign<T>())
            }
        }
    }
}

/// Elementary functions of floating-point elements.
struct RealUnary: UnaryElementwise {
    enum Function { case exp, log, sqrt, reciprocal, floor, ceil, round, erf, sin, cos, tan, asin, acos, atan, sinh, cosh, asinh, acosh, atanh }
    let function: Function

    func compute(_ x: Tensor, into y: Tensor, _ parallelism: Parallelism) throws {
        try requireKernel(x.dataType.visit(Kernel(function: function, x: x, y: y, parallelism: parallelism)), x)
    }

    private struct Kernel: RealVisitor {
        let function: Function, x: Tensor, y: Tensor, parallelism: Parallelism
        func visit<T: RealElement>(_: T.Type) {
            switch function {
            case .exp: mapElements(x, into: y, parallelism, Elementwise.Exp<T>())
            case .log: mapElements(x, into: y, parallelism, Elementwise.Log<T>())
            case .sqrt: mapElements(x, into: y, parallelism, Elementwise.SquareRoot<T>())
            case .reciprocal: mapElements(x, into: y, parallelism, Elementwise.Reciprocal<T>())
            case .floor: mapElements(x, into: y, parallelism, Elementwise.Rounded<T>(rule: .down))
            case .ceil: mapElements(x, into: y, parallelism, Elementwise.Rounded<T>(rule: .up))
            case .round: mapElements(x, into: y, parallelism, Elementwise.Rounded<T>(rule: .toNearestOrEven))
            case .erf: mapElements(x, into: y, parallelism, Elementwise.Erf<T>())
            case .sin: mapElements(x, into: y, parallelism, Elementwise.Sin<T>())
            case .cos: mapElements(x, into: y, parallelism, Elementwise.Cos<T>())
            case .tan: mapElements(x, into: y, parallelism, Elementwise.Tan<T>())
            case .asin: mapElements(x, into: y, parallelism, Elementwise.Asin<T>())
            case .acos: mapElements(x, into: y, parallelism, Elementwise.Acos<T>())
            case .atan: mapElements(x, into: y, parallelism, Elementwise.Atan<T>())
            case .sinh: mapElements(x, into: y, parallelism, Elementwise.Sinh<T>())
            case .cosh: mapElements(x, into: y, parallelism, Elementwise.Cosh<T>())
            case .asinh: mapElements(x, into: y, parallelism, Elementwise.Asinh<T>())
            case .acosh: mapElements(x, into: y, parallelism, Elementwise.Acosh<T>())
            case .atanh: mapElements(x, into: y, parallelism, Elementwise.Atanh<T>())
            }
        }
    }
}

/// IsNaN and IsInf: which floating-point elements are NaN, or infinite of the chosen signs.
struct FloatClassification: UnaryElementwise {
    var detectNaN = false
    var detectNegativeInfinity = false
    var detectPositiveInfinity = false

    func outputElementType(_ input: DataType) -> DataType { .bool }

    func compute(_ x: Tensor, into y: Tensor, _ parallelism: Parallelism) throws {
        try requireKernel(x.dataType.visit(Kernel(test: self, x: x, y: y, parallelism: parallelism)), x)
    }

    private struct Kernel: RealVisitor {
        let test: FloatClassification, x: Tensor, y: Tensor, parallelism: Parallelism
        func visit<T: RealElement>(_: T.Type) {
            let (nan, negative, positive) = (test.detectNaN, test.detectNegativeInfinity, test.detectPositiveInfinity)
            mapElements(x, into: y, parallelism, Elementwise.IsSpecial<T>(nan: nan, negativeInfinity: negative, positiveInfinity: positive))
        }
    }
}

/// Logical negation of a bool tensor.
struct Not: UnaryElementwise {
    func compute(_ x: Tensor, into y: Tensor, _ parallelism: Parallelism) {
        mapElements(x, into: y, parallelism, Elementwise.LogicalNot())
    }
}

/// Bitwise complement of an integer tensor.
struct BitwiseNot: UnaryElementwise {
    func compute(_ x: Tensor, into y: Tensor, _ parallelism: Parallelism) throws {
        try requireKernel(x.dataType.visit(Kernel(x: x, y: y, parallelism: parallelism)), x)
    }

    private struct Kernel: IntegerVisitor {
        let x: Tensor, y: Tensor, parallelism: Parallelism
        func visit<T: ArithmeticElement & FixedWidthInteger>(_: T.Type) {
            mapElements(x, into: y, parallelism, Elementwise.BitwiseNot<T>())
        }
    }
}
