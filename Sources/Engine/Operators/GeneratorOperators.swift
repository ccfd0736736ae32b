import Kernels
import Tensors

/// Operators that make tensors from attributes and sizes rather than from input elements:
/// constants, filled shapes, ranges, identity-like and one-hot matrices, triangular masks.
enum GeneratorOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("Constant", versions: [1, 9, 11, 12, 13, 19, 21, 23, 24, 25], contract: OperatorContract(
            inputs: [], outputs: [.init("output", "T")], types: ["T": ElementTypes.all])) { try Constant($0) },
        OperatorDefinition("ConstantOfShape", versions: [9, 20, 21, 23, 24, 25], contract: OperatorContract(
            inputs: [.init("input", "T1")], outputs: [.init("output", "T2")],
            types: ["T1": [.int64], "T2": ElementTypes.all.subtracting([.string])])) { try ConstantOfShape($0) },
        OperatorDefinition("Range", versions: [11, 27], contract: OperatorContract(
            inputs: [.init("start", "T"), .init("limit", "T"), .init("delta", "T")], outputs: [.init("output", "T")],
            types: ["T": [.float, .double, .float16, .int16, .int32, .int64]])) { try RangeOperator($0) },
        OperatorDefinition("EyeLike", versions: [9, 22], contract: OperatorContract(
            inputs: [.init("input", "T1")], outputs: [.init("output", "T2")],
            types: ["T1": ElementTypes.allOfOpset13.subtracting([.string]), "T2": ElementTypes.allOfOpset13.subtracting([.string])])) {
            try EyeLike($0)
        },
        OperatorDefinition("OneHot", versions: [9, 11, 28], contract: OperatorContract(
            inputs: [.init("indices", "T1"), .init("depth", "T2"), .init("values", "T3")], outputs: [.init("output", "T3")],
            types: ["T1": ElementTypes.numeric, "T2": ElementTypes.numeric, "T3": ElementTypes.allOfOpset13])) { try OneHot($0) },
        // Strings are not taken.
        OperatorDefinition("Trilu", versions: [14], contract: OperatorContract(
            inputs: [.init("input", "T"), .init("k", .int64, .optional)], outputs: [.init("output", "T")],
            types: ["T": ElementTypes.allOfOpset13.subtracting([.string])])) { try Trilu($0) },
    ]
}


// MARK: Constant

/// Constant: the tensor of whichever `value*` attribute is set (`value`, `value_float(s)`,
/// `value_int(s)`, `value_string(s)`, `sparse_value` made dense at import).
struct Constant: Operator {
    let value: Tensor

    init(_ context: OperatorContext) throws {
        let forms = ["value", "sparse_value", "value_float", "value_floats", "value_int", "value_ints", "value_string", "value_strings"]
        let present = forms.filter(context.has)
        guard present.count == 1, let form = present.first else {
            throw OpError("Constant needs exactly one value attribute, has \(present.isEmpty ? "none" : present.joined(separator: ", "))")
        }
        switch form {
        // The importer makes a sparse_value dense (values scattered over zeros) when it reads it.
        case "value", "sparse_value": value = try context.required(form, context.tensor)
        case "value_float": value = Tensor(scalar: try context.required(form, context.float))
        case "value_floats":
            let floats = try context.required(form, context.floats)
            value = Tensor(floats, shape: [floats.count])
        case "value_int": value = Tensor(scalar: Int64(try context.required(form, context.int)))
        case "value_ints":
            let ints = try context.required(form, context.ints).map(Int64.init)
            value = Tensor(ints, shape: [ints.count])
        case "value_string": value = Tensor(strings: [try context.required(form, context.string)], shape: [])
        case "value_strings":
            let strings = try context.required(form, context.strings)
            value = Tensor(strings: strings, shape: [strings.count])
        default: throw OpError("Constant has an unknown value attribute '\(form)'")
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] { [TensorType(value.dataType, shape: value.shape)] }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] { [value] }
}

// MARK: ConstantOfShape

/// ConstantOfShape: a tensor of the shape given by the input, filled with the one-element `value`
/// attribute (default float 0).
struct ConstantOfShape: Operator {
    let value: Tensor
    var knownShape: [Int]?

    init(_ context: OperatorContext) throws {
        let value = try context.tensor("value") ?? Tensor(scalar: Float(0))
        guard value.elementCount == 1 else { throw OpError("value must hold one element, not \(value.elementCount)") }
        self.value = value.reshaped([])
        knownShape = Layout.knownIntegers(context.constant(0))
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        if let knownShape { return [TensorType(value.dataType, shape: try Layout.checkedShape(knownShape))] }
        let rank = (inputs.first ?? nil)?.dims?.first?.value
        return [TensorType(value.dataType, rank.map(Layout.unknownDims))]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let shape = try Layout.checkedShape(Layout.integers(Layout.input(inputs, 0, "input"), "input"))
        if value.dataType == .string {
            return [Tensor(strings: Array(repeating: value.strings[0], count: shape.elementCount), shape: shape)]
        }
        let result = try context.allocate(value.dataType, shape)
        Layout.fill(result, count: shape.elementCount, with: value)
        return [result]
    }
}

// MARK: Range

/// Range: `start, start + delta, ...` up to `limit` (exclusive), from three scalars of one type.
/// Sizes are computed in double precision; values in the element type (float16 in float, 27's
/// default `stash_type`).
struct RangeOperator: Operator {
    /// The output length when all three inputs are known at load.
    var knownCount: Int?

    init(_ context: OperatorContext) throws {
        let constants = (0..<3).compactMap { context.constant($0) }
        knownCount = constants.count == 3 ? try Self.count(constants.map { $0.doubles().first ?? 0 }) : nil
    }

    /// `max(ceil((limit - start) / delta), 0)`, checked.
    static func count(_ bounds: [Double]) throws -> Int {
        guard bounds[2] != 0 else { throw OpError.invalidArgument("Range delta is 0") }
        let steps = ((bounds[1] - bounds[0]) / bounds[2]).rounded(.up)
        guard !(steps >= Double(Layout.maximumElementCount)) else { throw OpError.invalidArgument("Range of \(steps) elements is too large") }
        return steps > 0 ? Int(steps) : 0  // NaN and -infinity are not above 0
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let start = inputs.first ?? nil else { return [] }
        return [TensorType(start.dataType, [knownCount.map { .fixed($0) } ?? .unknown])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let bounds = try (0..<3).map { position in
            let tensor = try Layout.input(inputs, position, ["start", "limit", "delta"][position])
            guard tensor.elementCount == 1 else { throw OpError.invalidArgument("Range needs scalar inputs, not \(tensor.shape)") }
            return tensor
        }
        guard let result = try bounds[0].dataType.visit(Generator(bounds: bounds, context: context)) else {
            throw OpError("Range needs numbers, not \(bounds[0].dataType)")
        }
        return [result]
    }

    /// Integer values wrap on overflow (the result is exact wherever it fits), never trap.
    private struct Generator: ArithmeticVisitor {
        let bounds: [Tensor], context: ExecutionContext

        func visit<T: ArithmeticElement>(_ type: T.Type) throws -> Tensor {
            let (start, delta) = (bounds[0].pointer(as: T.self)[0], bounds[2].pointer(as: T.self)[0])
            let count = try RangeOperator.count(bounds.map { $0.pointer(as: T.self)[0].doubleValue })
            let result = try context.allocate(T.dataType, [count])
            let target = result.mutablePointer(as: T.self)
            if T.self == Float16.self {
                let (first, step) = (Float(start.doubleValue), Float(delta.doubleValue))
                for index in 0..<count { target[index] = T(converting: Double(first + Float(index) * step)) }
            } else {
                for index in 0..<count { target[index] = T.add(start, T.multiply(T(converting: Double(index)), delta)) }
            }
            return result
        }
    }
}

// MARK: EyeLike and OneHot

/// EyeLike: a 2-D tensor shaped like the input with ones on diagonal `k`, of type `dtype` (default:
/// the input's type).
struct EyeLike: Operator {
    let dataType: DataType?
    let k: Int

    init(_ context: OperatorContext) throws {
        if let code = try context.int("dtype") {
            guard let type = Int32(exactly: code).flatMap(DataType.init(rawValue:)), type != .string else {
                throw OpError("unsupported dtype \(code)")
            }
            dataType = type
        } else {
            dataType = nil
        }
        k = try context.int("k", default: 0)
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let input = inputs.first ?? nil else { return [] }
        if let rank = input.rank, rank != 2 { throw OpError("input must be 2-D, not rank \(rank)") }
        return [TensorType(dataType ?? input.dataType, input.dims)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let input = try Layout.input(inputs, 0, "input")
        guard input.shape.rank == 2 else { throw OpError.invalidArgument("input must be 2-D, not \(input.shape)") }
        let type = dataType ?? input.dataType
        let result = try context.allocate(type, input.shape)
        result.rawPointer.initializeMemory(as: UInt8.self, repeating: 0, count: result.byteCount)
        let one = try Layout.element(1, as: type)
        let (rows, columns) = (input.shape[0], input.shape[1])
        // Diagonals beyond the matrix select nothing; clamping keeps the arithmetic in range.
        let k = min(max(self.k, -rows - 1), columns + 1)
        for row in max(0, -k)..<max(max(0, -k), min(rows, columns - k)) {
            Layout.fill(result, offset: row * columns + row + k, count: 1, with: one)
        }
        return [result]
    }
}

/// OneHot: `indices` expanded along a new `axis` of size `depth`: `values[1]` where the index points,
/// `values[0]` elsewhere. Negative indices count from the end; out-of-range ones select nothing.
struct OneHot: ElementMovingOperator {
    let axis: Int

    init(_ context: OperatorContext) throws { axis = try context.int("axis", default: -1) }

    func movesElements(ofInput position: Int) -> Bool { position == 2 }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard inputs.count > 2, let values = inputs[2] else { return [] }
        guard let dims = inputs[0]?.dims else { return [TensorType(values.dataType, nil)] }
        var output = dims
        output.insert(.unknown, at: try Layout.axis(axis, rank: dims.count + 1))
        return [TensorType(values.dataType, output)]
    }

    func move(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let indexTensor = try Layout.input(inputs, 0, "indices"), values = try Layout.input(inputs, 2, "values")
        let depthTensor = try Layout.input(inputs, 1, "depth")
        guard depthTensor.elementCount == 1 else {
            throw OpError.invalidArgument("depth must be a single value, not \(depthTensor.elementCount) elements")
        }
        guard values.elementCount == 2 else { throw OpError.invalidArgument("values must hold [off, on], not \(values.elementCount) elements") }
        let depthValue = depthTensor.doubles()[0]
        guard depthValue >= 1, depthValue < Double(Layout.maximumElementCount) else { throw OpError.invalidArgument("depth \(depthValue) is out of range") }
        let depth = Int(depthValue)
        var dims = indexTensor.shape.dims
        let axis = try Layout.axis(self.axis, rank: dims.count + 1)
        dims.insert(depth, at: axis)
        let shape = try Layout.checkedShape(dims)
        let inner = indexTensor.shape.dims[axis...].reduce(1, *)
        let result = try context.allocate(values.dataType, shape)
        let size = values.dataType.byteSize
        withExtendedLifetime(values) {
            TensorCopy.fill(result.rawPointer, count: shape.elementCount, elementSize: size, value: values.rawPointer)
            for (position, value) in indexTensor.doubles().enumerated() where value.magnitude < Double(depth) + 1 {
                let index = Int(value), normalized = index < 0 ? index + depth : index
                guard (0..<depth).contains(normalized) else { continue }
                let (o, i) = (position / inner, position % inner)
                (result.rawPointer + ((o * depth + normalized) * inner + i) * size).copyMemory(from: values.rawPointer + size, byteCount: size)
            }
        }
        return [result]
    }
}

// MARK: Trilu

/// Trilu: the upper (default) or lower triangle of the last two axes, from diagonal `k` (input 1),
/// the rest zero.
struct Trilu: Operator {
    let upper: Bool

    init(_ context: OperatorContext) throws { upper = try context.int("upper", default: 1) != 0 }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let input = inputs.first ?? nil else { return [] }
        if let rank = input.rank, rank < 2 { throw OpError("input must have rank 2 or more, not \(rank)") }
        return [input]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let input = try Layout.input(inputs, 0, "input")
        guard input.shape.rank >= 2 else { throw OpError.invalidArgument("input must have rank 2 or more, not \(input.shape)") }
        let dims = input.shape.dims, rows = dims[dims.count - 2], columns = dims[dims.count - 1]
        let requestedK = try inputs.count > 1 && inputs[1] != nil ? Layout.scalar(inputs[1], "k") : 0
        // Diagonals beyond the matrix keep all or nothing; clamping keeps the arithmetic in range.
        let k = min(max(requestedK, -rows - 1), columns + 1)
        let result = try context.allocate(input.dataType, input.shape)
        Layout.copy(input, sourceStrides: [1], shape: [input.elementCount], into: result, targetStrides: [1], context)
        let size = input.dataType.byteSize
        for matrix in 0..<(rows == 0 || columns == 0 ? 0 : input.elementCount / (rows * columns)) {
            for row in 0..<rows {
                // Upper keeps columns >= row + k; lower keeps columns <= row + k.
                let boundary = min(max(row + k + (upper ? 0 : 1), 0), columns)
                let cleared = upper ? 0..<boundary : boundary..<columns
                let start = (matrix * rows + row) * columns + cleared.lowerBound
                (result.rawPointer + start * size).initializeMemory(as: UInt8.self, repeating: 0, count: cleared.count * size)
            }
        }
        return [result]
    }
}
