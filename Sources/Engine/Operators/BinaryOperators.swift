import Kernels
import Tensors

/// Binary and variadic elementwise operators with numpy broadcasting: arithmetic, comparison,
/// logic, bit operations, Pow, Where, and Sum/Mean/Max/Min over any number of inputs.
enum BinaryOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("Add", versions: [1, 6, 7, 13, 14], contracts: binary(.arithmetic(.add))) { try Binary(.arithmetic(.add), $0) },
        OperatorDefinition("Sub", versions: [1, 6, 7, 13, 14], contracts: binary(.arithmetic(.subtract))) {
            try Binary(.arithmetic(.subtract), $0)
        },
        OperatorDefinition("Mul", versions: [1, 6, 7, 13, 14], contracts: binary(.arithmetic(.multiply))) {
            try Binary(.arithmetic(.multiply), $0)
        },
        OperatorDefinition("Div", versions: [1, 6, 7, 13, 14], contracts: binary(.arithmetic(.divide))) {
            try Binary(.arithmetic(.divide), $0)
        },
        OperatorDefinition("Mod", versions: [10, 13, 28], contracts: binary(.arithmetic(.modulo))) { context in
            try Binary(.arithmetic(try context.int("fmod", default: 0) != 0 ? .remainder : .modulo), context)
        },
        // The exponent has a type of its own since opset 12, the base's before.
        OperatorDefinition("Pow", versions: [1, 7, 12, 13, 15], contracts: { version in
            version < 12
                ? OperatorContract(inputs: [.init("X", "T"), .init("Y", "T")], outputs: [.init("Z", "T")], types: ["T": Pow.baseTypes],
                                   shape: version < 7 ? .sameAs(0) : .broadcast)
                : OperatorContract(inputs: [.init("X", "T"), .init("Y", "T1")], outputs: [.init("Z", "T")],
                                   types: ["T": Pow.baseTypes, "T1": ElementTypes.numeric], shape: .broadcast)
        }) { try Pow($0) },
        OperatorDefinition("BitShift", versions: [11, 28], contracts: binary(.bitwise(.shiftLeft), names: ("X", "Y", "Z"))) { context in
            switch try context.required("direction", context.string) {
            case "LEFT": return try Binary(.bitwise(.shiftLeft), context)
            case "RIGHT": return try Binary(.bitwise(.shiftRight), context)
            case let other: throw OpError("direction must be \"LEFT\" or \"RIGHT\", got \"\(other)\"")
            }
        },
        OperatorDefinition("BitwiseAnd", versions: [18], contracts: binary(.bitwise(.and))) { try Binary(.bitwise(.and), $0) },
        OperatorDefinition("BitwiseOr", versions: [18], contracts: binary(.bitwise(.or))) { try Binary(.bitwise(.or), $0) },
        OperatorDefinition("BitwiseXor", versions: [18], contracts: binary(.bitwise(.xor))) { try Binary(.bitwise(.xor), $0) },
        OperatorDefinition("And", versions: [1, 7], contracts: binary(.logical(.and))) { try Binary(.logical(.and), $0) },
        OperatorDefinition("Or", versions: [1, 7], contracts: binary(.logical(.or))) { try Binary(.logical(.or), $0) },
        OperatorDefinition("Xor", versions: [1, 7], contracts: binary(.logical(.xor))) { try Binary(.logical(.xor), $0) },
        OperatorDefinition("Equal", versions: [1, 7, 11, 13, 19], contracts: binary(.comparison(.equal))) {
            try Binary(.comparison(.equal), $0)
        },
        OperatorDefinition("Less", versions: [1, 7, 9, 13], contracts: binary(.comparison(.less))) { try Binary(.comparison(.less), $0) },
        OperatorDefinition("LessOrEqual", versions: [12, 16], contracts: binary(.comparison(.lessOrEqual))) {
            try Binary(.comparison(.lessOrEqual), $0)
        },
        OperatorDefinition("Greater", versions: [1, 7, 9, 13], contracts: binary(.comparison(.greater))) {
            try Binary(.comparison(.greater), $0)
        },
        OperatorDefinition("GreaterOrEqual", versions: [12, 16], contracts: binary(.comparison(.greaterOrEqual))) {
            try Binary(.comparison(.greaterOrEqual), $0)
        },
        OperatorDefinition("Where", versions: [9, 16], contract: OperatorContract(
            inputs: [.init("condition", "B"), .init("X", "T"), .init("Y", "T")], outputs: [.init("output", "T")],
            types: ["B": [.bool], "T": ElementTypes.numeric.union([.bool, .string, .bfloat16])], shape: .broadcast)) { _ in Where() },
        OperatorDefinition("Sum", versions: [1, 6, 8, 13], contract: variadic("sum", ElementTypes.floatingPoint)) { _ in
            Variadic(function: .sum)
        },
        OperatorDefinition("Mean", versions: [1, 6, 8, 13], contract: variadic("mean", ElementTypes.floatingPoint)) { _ in
            Variadic(function: .mean)
        },
        OperatorDefinition("Max", versions: [1, 6, 8, 12, 13], contract: variadic("max", ElementTypes.numeric)) { _ in
            Variadic(function: .maximum)
        },
        OperatorDefinition("Min", versions: [1, 6, 8, 12, 13], contract: variadic("min", ElementTypes.numeric)) { _ in
            Variadic(function: .minimum)
        },
    ]

    /// Inputs A and B of one type T, output C of T (comparisons and logic: of bool, T1), broadcast
    /// from opset 7 on and A's shape before (see `LegacyBroadcast`).
    static func binary(_ function: BinaryFunction, names: (String, String, String) = ("A", "B", "C"))
        -> @Sendable (Int) -> OperatorContract
    {
        let output: OperatorContract.Parameter = switch function {
        case .comparison, .logical: .init(names.2, .bool)
        case .arithmetic, .bitwise: .init(names.2, "T")
        }
        let inputs: [OperatorContract.Parameter] = [.init(names.0, "T"), .init(names.1, "T")]
        let broadcast = OperatorContract(inputs: inputs, outputs: [output], types: ["T": function.allowed], shape: .broadcast)
        let legacy = OperatorContract(inputs: inputs, outputs: [output], types: ["T": function.allowed], shape: .sameAs(0))
        return { version in version < 7 ? legacy : broadcast }
    }

    /// Sum, Mean, Max, Min: one or more inputs `data_0` of one type T, broadcast together.
    static func variadic(_ output: String, _ allowed: Set<DataType>) -> OperatorContract {
        OperatorContract(inputs: [.init("data_0", "T", .variadic(min: 1))], outputs: [.init(output, "T")],
                         types: ["T": allowed], shape: .broadcast)
    }
}

/// What a binary operator computes, by family.
enum BinaryFunction: Sendable {
    enum Arithmetic: Sendable { case add, subtract, multiply, divide, modulo, remainder, maximum, minimum }
    enum Comparison: Sendable { case equal, less, lessOrEqual, greater, greaterOrEqual }
    enum Bitwise: Sendable { case and, or, xor, shiftLeft, shiftRight }
    enum Logical: Sendable { case and, or, xor }

    case arithmetic(Arithmetic)
    case comparison(Comparison)
    case bitwise(Bitwise)
    case logical(Logical)

    /// Element types the inputs may have.
    var allowed: Set<DataType> {
        switch self {
        case .arithmetic: ElementTypes.numeric
        case .comparison(.equal): ElementTypes.numeric.union([.bool, .string])
        case .comparison: ElementTypes.numeric
        case .bitwise: ElementTypes.integers
        case .logical: [.bool]
        }
    }

    /// Element type of the output for inputs of type `input`.
    func outputType(_ input: DataType) -> DataType {
        switch self {
        case .comparison, .logical: .bool
        case .arithmetic, .bitwise: input
        }
    }

    /// `function(a, b)` elementwise, the inputs broadcast against each other, after checking their
    /// element types (for operators that compute with it on values no contract of this function checked).
    func apply(_ a: Tensor, _ b: Tensor, _ context: ExecutionContext) throws -> Tensor {
        if a.dataType != b.dataType { try checkSameElementType([a.dataType, b.dataType], roles: ["A", "B"]) }
        try checkElementType(a.dataType, allowed)
        return try compute(a, b, context)
    }

    /// `apply` on inputs of one element type in `allowed` (checked by the operator's contract).
    func compute(_ a: Tensor, _ b: Tensor, _ context: ExecutionContext) throws -> Tensor {
        let layout = try broadcastLayout([a, b])
        let c = try context.allocate(outputType(a.dataType), layout.shape)
        if layout.count == 0 { return c }
        switch (self, a.dataType) {
        case (.logical(.and), _): binaryElements(layout, a, b, into: c, context.parallelism, Elementwise.LogicalAnd())
        case (.logical(.or), _): binaryElements(layout, a, b, into: c, context.parallelism, Elementwise.LogicalOr())
        case (.logical(.xor), _): binaryElements(layout, a, b, into: c, context.parallelism, Elementwise.NotEqual<Bool>())
        case (.comparison, .bool): binaryElements(layout, a, b, into: c, context.parallelism, Elementwise.Equal<Bool>())
        case (.comparison, .string):
            a.strings.withUnsafeBufferPointer { x in
                b.strings.withUnsafeBufferPointer { y in
                    layout.binary(x.baseAddress!, y.baseAddress!, into: c.mutablePointer(as: Bool.self), parallelism: .serial,
                                  Elementwise.Equal<String>())
                }
            }
        case (.bitwise(let function), _):
            try requireKernel(a.dataType.visit(BitwiseKernel(function: function, layout: layout, a: a, b: b, c: c,
                                                                 parallelism: context.parallelism)), a)
        case (.arithmetic, _), (.comparison, _):
            try requireKernel(a.dataType.visit(ArithmeticKernel(function: self, layout: layout, a: a, b: b, c: c,
                                                                    parallelism: context.parallelism)), a)
        }
        return c
    }
}

/// The layout broadcasting `tensors` together, or an error naming their shapes.
func broadcastLayout(_ tensors: [Tensor]) throws -> BroadcastLayout {
    guard let layout = BroadcastLayout(tensors.map(\.shape)) else {
        throw OpError.invalidArgument("shapes \(tensors.map(\.shape.description).joined(separator: " and ")) do not broadcast")
    }
    return layout
}

private struct ArithmeticKernel: ArithmeticVisitor {
    let function: BinaryFunction, layout: BroadcastLayout, a: Tensor, b: Tensor, c: Tensor, parallelism: Parallelism

    func visit<T: ArithmeticElement>(_: T.Type) {
        @inline(__always) func run<F: BinaryElementFunction>(_ op: F) where F.Left == T, F.Right == T, F.Output: TensorElement {
            binaryElements(layout, a, b, into: c, parallelism, op)
        }
        switch function {
        case .arithmetic(.add): run(Elementwise.Add<T>())
        case .arithmetic(.subtract): run(Elementwise.Subtract<T>())
        case .arithmetic(.multiply): run(Elementwise.Multiply<T>())
        case .arithmetic(.divide): run(Elementwise.Divide<T>())
        case .arithmetic(.modulo): run(Elementwise.Modulo<T>())
        case .arithmetic(.remainder): run(Elementwise.Remainder<T>())
        case .arithmetic(.maximum): run(Elementwise.Maximum<T>())
        case .arithmetic(.minimum): run(Elementwise.Minimum<T>())
        case .comparison(.equal): run(Elementwise.Equal<T>())
        case .comparison(.less): run(Elementwise.Less<T>())
        case .comparison(.lessOrEqual): run(Elementwise.LessOrEqual<T>())
        case .comparison(.greater): run(Elementwise.Greater<T>())
        case .comparison(.greaterOrEqual): run(Elementwise.GreaterOrEqual<T>())
        case .bitwise, .logical: break  // Not arithmetic; `apply` routes them elsewhere.
        }
    }
}

private struct BitwiseKernel: IntegerVisitor {
    let function: BinaryFunction.Bitwise, layout: BroadcastLayout, a: Tensor, b: Tensor, c: Tensor, parallelism: Parallelism

    func visit<T: ArithmeticElement & FixedWidthInteger>(_: T.Type) {
        @inline(__always) func run<F: BinaryElementFunction>(_ op: F) where F.Left == T, F.Right == T, F.Output == T {
            binaryElements(layout, a, b, into: c, parallelism, op)
        }
        switch function {
        case .and: run(Elementwise.BitwiseAnd<T>())
        case .or: run(Elementwise.BitwiseOr<T>())
        case .xor: run(Elementwise.BitwiseXor<T>())
        case .shiftLeft: run(Elementwise.ShiftLeft<T>())
        case .shiftRight: run(Elementwise.ShiftRight<T>())
        }
    }
}

/// Broadcasting before opset 7: with `broadcast` set, B's shape matches a run of A's dimensions
/// starting at `axis` (by default A's trailing ones); without it the shapes must be equal.
struct LegacyBroadcast: Sendable {
    let enabled: Bool
    let axis: Int?

    /// The node's rule, or nil from opset 7 on (numpy broadcasting).
    init?(_ context: OperatorContext) throws {
        guard context.version < 7 else { return nil }
        enabled = try context.int("broadcast", default: 0) != 0
        axis = try context.int("axis")
    }

    /// B reshaped so that numpy broadcasting aligns it with A as this rule says.
    func align(_ b: Tensor, to a: Tensor) throws -> Tensor {
        guard enabled else {
            guard a.shape == b.shape else {
                throw OpError.invalidArgument("shapes \(a.shape) and \(b.shape) differ and the broadcast attribute is not set")
            }
            return b
        }
        let rank = a.shape.rank
        let start = axis.map { $0 < 0 ? $0 + rank : $0 } ?? rank - b.shape.rank
        guard start >= 0, start + b.shape.rank <= rank,
              b.shape.indices.allSatisfy({ b.shape[$0] == 1 || b.shape[$0] == a.shape[start + $0] }) else {
            throw OpError.invalidArgument("B of shape \(b.shape) does not match A of shape \(a.shape) at axis \(axis ?? start)")
        }
        return b.reshaped(Shape(b.shape.dims + [Int](repeating: 1, count: rank - start - b.shape.rank)))
    }
}

/// One binary operator.
struct Binary: Operator {
    let function: BinaryFunction
    let legacy: LegacyBroadcast?

    init(_ function: BinaryFunction, _ context: OperatorContext) throws {
        self.function = function
        legacy = try LegacyBroadcast(context)
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let a = try inputs.required(0), b = try inputs.required(1)
        return [try function.compute(a, try legacy?.align(b, to: a) ?? b, context)]
    }
}

/// Pow: a numeric base raised to an exponent of any numeric type; the result has the base's type.
struct Pow: Operator {
    /// Element types of the base.
    static let baseTypes = ElementTypes.floatingPoint.union([.int32, .int64])
    let legacy: LegacyBroadcast?

    init(_ context: OperatorContext) throws {
        legacy = try LegacyBroadcast(context)
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let base = try inputs.required(0)
        let exponent = try legacy?.align(try inputs.required(1), to: base) ?? inputs.required(1)
        let layout = try broadcastLayout([base, exponent])
        let result = try context.allocate(base.dataType, layout.shape)
        if base.dataType == exponent.dataType, base.dataType.isFloatingPoint {
            try requireKernel(base.dataType.visit(RealKernel(layout: layout, base: base, exponent: exponent, result: result,
                                                                 parallelism: context.parallelism)), base)
        } else {
            try requireKernel(base.dataType.visit(MixedKernel(layout: layout, base: base, exponent: exponent, result: result,
                                                                  parallelism: context.parallelism)), base)
        }
        return [result]
    }

    /// Same floating-point type: the C library's pow, and a multiply for the common square.
    private struct RealKernel: RealVisitor {
        let layout: BroadcastLayout, base: Tensor, exponent: Tensor, result: Tensor, parallelism: Parallelism
        func visit<T: RealElement>(_: T.Type) {
            if exponent.elementCount == 1, exponent.pointer(as: T.self)[0] == 2 {
                binaryElements(layout, base, exponent, into: result, parallelism, Elementwise.Square<T>())
            } else {
                binaryElements(layout, base, exponent, into: result, parallelism, Elementwise.Power<T>())
            }
        }
    }

    /// Any other pair of types: computed in Double, converted to the base's type (C semantics).
    private struct MixedKernel: ArithmeticVisitor {
        let layout: BroadcastLayout, base: Tensor, exponent: Tensor, result: Tensor, parallelism: Parallelism
        func visit<T: ArithmeticElement>(_: T.Type) throws {
            try requireKernel(exponent.dataType.visit(ExponentKernel<T>(outer: self)), exponent)
        }
    }

    private struct ExponentKernel<T: ArithmeticElement>: ArithmeticVisitor {
        let outer: MixedKernel
        func visit<U: ArithmeticElement>(_: U.Type) {
            binaryElements(outer.layout, outer.base, outer.exponent, into: outer.result, outer.parallelism,
                           Elementwise.MixedPower<T, U>())
        }
    }
}

/// Where: `condition ? x : y` elementwise, all three broadcast together; any element type.
struct Where: Operator {
    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let condition = try inputs.required(0), x = try inputs.required(1), y = try inputs.required(2)
        let layout = try broadcastLayout([condition, x, y])
        if x.dataType == .string {
            var strings = [String](repeating: "", count: layout.count)
            if layout.count > 0 {
                withExtendedLifetime(condition) {
                    x.strings.withUnsafeBufferPointer { x in
                        y.strings.withUnsafeBufferPointer { y in
                            strings.withUnsafeMutableBufferPointer { result in
                                layout.ternary(condition.pointer(as: Bool.self), x.baseAddress!, y.baseAddress!,
                                               into: result.baseAddress!, parallelism: .serial, Elementwise.Select())
                            }
                        }
                    }
                }
            }
            return [Tensor(strings: strings, shape: layout.shape)]
        }
        let result = try context.allocate(x.dataType, layout.shape)
        // Selecting copies bits, so one loop per element width serves every type.
        func select<Bits: FixedWidthInteger>(_: Bits.Type) {
            withExtendedLifetime((condition, x, y)) {
                layout.ternary(condition.pointer(as: Bool.self), x.rawPointer.assumingMemoryBound(to: Bits.self),
                               y.rawPointer.assumingMemoryBound(to: Bits.self),
                               into: result.rawPointer.assumingMemoryBound(to: Bits.self),
                               parallelism: context.parallelism, Elementwise.Select())
            }
        }
        switch x.dataType.byteSize {
        case 1: select(UInt8.self)
        case 2: select(UInt16.self)
        case 4: select(UInt32.self)
        default: select(UInt64.self)
        }
        return [result]
    }
}

/// Sum, Mean, Max and Min of one or more inputs, all broadcast together.
struct Variadic: Operator {
    enum Function { case sum, mean, maximum, minimum }
    let function: Function

    private var pairwise: BinaryFunction.Arithmetic {
        switch function {
        case .sum, .mean: .add
        case .maximum: .maximum
        case .minimum: .minimum
        }
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let tensors = try inputs.indices.map { try inputs.required($0) }
        guard let first = tensors.first else { throw OpError("needs at least one input") }
        var result = first
        for next in tensors.dropFirst() {
            result = try BinaryFunction.arithmetic(pairwise).compute(result, next, context)
        }
        if function == .mean && tensors.count > 1 {
            let mean = try context.allocate(result.dataType, result.shape)
            try requireKernel(result.dataType.visit(DivideKernel(x: result, y: mean, divisor: tensors.count,
                                                                 parallelism: context.parallelism)), result)
            result = mean
        }
        return [result]
    }

    private struct DivideKernel: RealVisitor {
        let x: Tensor, y: Tensor, divisor: Int, parallelism: Parallelism
        func visit<T: RealElement>(_: T.Type) {
            let scale = 1 / T(divisor)
            mapElements(x, into: y, parallelism, Elementwise.Scale(factor: scale))
        }
    }
}
