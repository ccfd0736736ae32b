import Kernels
import Tensors

/// Cast and CastLike: element-type conversion between every numeric type, bool and string.
enum CastOperators {
    static let definitions: [OperatorDefinition] = [
        // Every type to every type; the output's comes from `to` (or target_type's).
        OperatorDefinition("Cast", versions: [1, 6, 9, 13, 19, 21, 23, 24, 25, 28], contract: OperatorContract(
            inputs: [.init("input", "T1")], outputs: [.init("output", "T2")], types: ["T1": ElementTypes.all, "T2": ElementTypes.all])) {
            try Cast($0)
        },
        OperatorDefinition("CastLike", versions: [15, 19, 21, 23, 24, 25], contract: OperatorContract(
            inputs: [.init("input", "T1"), .init("target_type", "T2")], outputs: [.init("output", "T2")],
            types: ["T1": ElementTypes.all, "T2": ElementTypes.all])) { try CastLike($0) },
    ]
}

/// Cast to the element type named by the `to` attribute (an ONNX type code; a name such as
/// "FLOAT" in opset 1). `saturate` (opset 19) decides what a float8 cast does past the type's
/// largest value; `round_mode` (opset 24) how a cast to float8e8m0 rounds.
struct Cast: Operator {
    let target: DataType
    var saturate = true
    var rounding = Float8E8M0.RoundMode.up

    init(target: DataType, saturate: Bool = true) {
        self.target = target
        self.saturate = saturate
    }

    init(_ context: OperatorContext) throws {
        saturate = try context.int("saturate", default: 1) != 0
        rounding = try Self.roundMode(context)
        switch context.attribute("to") {
        case .int(let code)?:
            guard let type = Int32(exactly: code).flatMap(DataType.init(rawValue:)) else {
                throw OpError("cannot cast to element type \(code): not supported")
            }
            target = type
        case .string(let name)?:
            guard let type = DataType.allCases.first(where: { $0.name.uppercased() == name.uppercased() }) else {
                throw OpError("cannot cast to element type \"\(name)\": not supported")
            }
            target = type
        case nil: throw OpError("missing required attribute 'to'")
        default: throw OpError("attribute 'to' must be an int")
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(target, x.dims)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        [try convert(try inputs.required(0), to: target, saturate: saturate, rounding: rounding, context)]
    }

    /// The `round_mode` attribute: up (the default), down or nearest.
    static func roundMode(_ context: OperatorContext) throws -> Float8E8M0.RoundMode {
        let text = try context.string("round_mode", default: "up")
        guard let mode = Float8E8M0.RoundMode(rawValue: text) else { throw OpError("round_mode must be up, down or nearest, got '\(text)'") }
        return mode
    }
}

/// Cast to the element type of the second input.
struct CastLike: Operator {
    var saturate = true
    var rounding = Float8E8M0.RoundMode.up

    init(_ context: OperatorContext) throws {
        saturate = try context.int("saturate", default: 1) != 0
        rounding = try Cast.roundMode(context)
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0), let like = inputs.type(1) else { return [] }
        return [TensorType(like.dataType, x.dims)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        [try convert(try inputs.required(0), to: try inputs.required(1).dataType, saturate: saturate, rounding: rounding, context)]
    }
}

/// `x` with its elements converted to `target`, with C cast semantics between numbers (integers
/// wrap, reals truncate toward zero), `x != 0` to bool, and decimal text to and from strings.
/// Low-precision types convert through their compute type (see `DataType.computeType`): rounded
/// to nearest even, past their largest value saturating (`saturate`) or infinite/NaN; float8e8m0
/// rounds by `rounding`.
func convert(_ x: Tensor, to target: DataType, saturate: Bool = true, rounding: Float8E8M0.RoundMode = .up,
             _ context: ExecutionContext) throws -> Tensor {
    if x.dataType == target { return x }
    if target == .float8e8m0 {
        let widened = try convert(x, to: .float, context)
        let y = try context.allocate(target, x.shape)
        withExtendedLifetime(widened) {
            let source = widened.pointer(as: Float.self), codes = y.mutablePointer(as: Float8E8M0.self)
            for i in 0..<x.elementCount { codes[i] = Float8E8M0(narrowing: source[i], saturate: saturate, rounding: rounding) }
        }
        return y
    }
    if let wide = x.dataType.computeType {
        let widened = try context.allocate(wide, x.shape)
        LowPrecision.widen(x, into: widened)
        return try convert(widened, to: target, saturate: saturate, context)
    }
    if let wide = target.computeType {
        let widened = try convert(x, to: wide, context)
        let y = try context.allocate(target, x.shape)
        LowPrecision.narrow(widened, into: y, saturate: saturate)
        return y
    }
    switch (x.dataType, target) {
    case (.string, _):
        let values = try x.strings.map(parseNumber)
        let y = try context.allocate(target, x.shape)
        if target == .bool {
            let flags = y.mutablePointer(as: Bool.self)
            for (index, value) in values.enumerated() { flags[index] = Double(casting: value) != 0 }
        } else {
            _ = try target.visit(FromCastValues(values: values, y: y))
        }
        return y
    case (_, .string):
        return Tensor(strings: formatNumbers(x), shape: x.shape)
    case (.bool, _):
        // A bool is stored as one byte, 0 or 1: cast it as that uint8.
        return try convert(Tensor(dataType: .uint8, shape: x.shape, storage: x.storage), to: target, context)
    default:
        let y = try context.allocate(target, x.shape)
        _ = try x.dataType.visit(ConversionKernel(x: x, y: y, parallelism: context.parallelism))
        return y
    }
}

private struct ConversionKernel: ArithmeticVisitor {
    let x: Tensor, y: Tensor, parallelism: Parallelism
    func visit<T: ArithmeticElement>(_: T.Type) throws {
        if y.dataType == .bool {
            mapElements(x, into: y, parallelism, Elementwise.IsNonzero<T>())
        } else {
            _ = try y.dataType.visit(TargetKernel<T>(source: self))
        }
    }

    struct TargetKernel<T: ArithmeticElement>: ArithmeticVisitor {
        let source: ConversionKernel
        func visit<U: ArithmeticElement>(_: U.Type) {
            mapElements(source.x, into: source.y, source.parallelism, Elementwise.Convert<T, U>())
        }
    }
}

private struct FromCastValues: ArithmeticVisitor {
    let values: [CastValue], y: Tensor
    func visit<T: ArithmeticElement>(_: T.Type) {
        let target = y.mutablePointer(as: T.self)
        for (index, value) in values.enumerated() { target[index] = T(casting: value) }
    }
}

/// A number written in decimal or scientific notation, or "INF", "+INF", "-INF", "NaN" (any case).
private func parseNumber(_ text: String) throws -> CastValue {
    if let value = Int64(text) { return .signed(value) }
    if let value = UInt64(text) { return .unsigned(value) }
    switch text.uppercased() {
    case "INF", "+INF", "INFINITY", "+INFINITY": return .real(.infinity)
    case "-INF", "-INFINITY": return .real(-.infinity)
    case "NAN", "+NAN", "-NAN": return .real(.nan)
    default:
        guard let value = Double(text) else { throw OpError.invalidArgument("cannot cast string \"\(text)\" to a number") }
        return .real(value)
    }
}

/// Elements as decimal text: integers exactly, reals as the shortest text that reads back the same.
private func formatNumbers(_ x: Tensor) -> [String] {
    if x.dataType == .bool { return x.scalars(as: Bool.self).map { $0 ? "1" : "0" } }
    if x.dataType.isInteger { return x.integerTexts() }
    return x.doubles().map { value in
        value.isNaN ? "NaN" : value.isInfinite ? (value < 0 ? "-INF" : "INF") : formatReal(value, x.dataType)
    }
}

private func formatReal(_ value: Double, _ type: DataType) -> String {
    let text = type == .float ? Float(value).description : type == .float16 ? Float16(value).description : value.description
    return text.hasSuffix(".0") ? String(text.dropLast(2)) : text
}

private extension Tensor {
    /// Integer elements as decimal text (uint64 above Int64.max kept exact).
    func integerTexts() -> [String] {
        dataType == .uint64 ? scalars(as: UInt64.self).map(String.init) : integers().map(String.init)
    }
}
