import Tensors

/// The sequence and optional operators (every opset): sequences of tensors of one element type,
/// and optionals of a tensor or a sequence, made, read and taken apart. Positions and split sizes
/// come from the feeds, so each is checked: out of range is `invalidArgument`, never a trap.
enum SequenceOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("SequenceConstruct", versions: [11], contract: OperatorContract(
            inputs: [.init("inputs", "T", .variadic(min: 1))], outputs: [.init("output_sequence", "S")],
            types: ["T": elements], valueTypes: ["S": sequences])) { _ in SequenceConstruct() },
        OperatorDefinition("SequenceEmpty", versions: [11], contract: OperatorContract(
            inputs: [], outputs: [.init("output", "S")], types: [:], valueTypes: ["S": sequences])) { try SequenceEmpty($0) },
        OperatorDefinition("SequenceAt", versions: [11], contract: OperatorContract(
            inputs: [.init("input_sequence", "S"), .init("position", "I")], outputs: [.init("tensor", "T")],
            types: ["T": elements, "I": [.int32, .int64]], valueTypes: ["S": sequences])) { _ in SequenceAt() },
        // The tensor's element type is the sequence's (the operator's check: ONNX relates S and T
        // in its inference only).
        OperatorDefinition("SequenceInsert", versions: [11], contract: OperatorContract(
            inputs: [.init("input_sequence", "S"), .init("tensor", "T"), .init("position", "I", .optional)],
            outputs: [.init("output_sequence", "S")],
            types: ["T": elements, "I": [.int32, .int64]], valueTypes: ["S": sequences])) { _ in SequenceInsert() },
        OperatorDefinition("SequenceErase", versions: [11], contract: OperatorContract(
            inputs: [.init("input_sequence", "S"), .init("position", "I", .optional)], outputs: [.init("output_sequence", "S")],
            types: ["I": [.int32, .int64]], valueTypes: ["S": sequences])) { _ in SequenceErase() },
        OperatorDefinition("SequenceLength", versions: [11], contract: OperatorContract(
            inputs: [.init("input_sequence", "S")], outputs: [.init("length", "I")],
            types: ["I": [.int64]], valueTypes: ["S": sequences])) { _ in SequenceLength() },
        OperatorDefinition("SplitToSequence", versions: [11, 24], contract: OperatorContract(
            inputs: [.init("input", "T"), .init("split", "I", .optional)], outputs: [.init("output_sequence", "S")],
            types: ["T": elements, "I": [.int32, .int64]], valueTypes: ["S": sequences])) { try SplitToSequence($0) },
        OperatorDefinition("ConcatFromSequence", versions: [11], contract: OperatorContract(
            inputs: [.init("input_sequence", "S")], outputs: [.init("concat_result", "T")],
            types: ["T": elements], valueTypes: ["S": sequences])) { try ConcatFromSequence($0) },
        OperatorDefinition("SequenceMap", versions: [17], traits: .subgraphs, contract: OperatorContract(
            inputs: [.init("input_sequence", "S"), .init("additional_inputs", "V", .variadic(min: 0), homogeneous: false)],
            outputs: [.init("out_sequence", "S", .variadic(min: 1), homogeneous: false)],
            types: [:], valueTypes: ["S": sequences, "V": tensorsOrSequences])) { try SequenceMap($0) },
        OperatorDefinition("Optional", versions: [15, 28], contract: OperatorContract(
            inputs: [.init("input", "V", .optional)], outputs: [.init("output", "O")],
            types: [:], valueTypes: ["V": tensorsOrSequences, "O": optionals])) { try OptionalMake($0) },
        // In every version a tensor or sequence is taken (ONNX's list from 18): before 18 one gets
        // here only as a Loop's carried optional that its body replaced by its element, which
        // ONNX's reference takes (test_loop16_seq_none).
        OperatorDefinition("OptionalHasElement", versions: [15, 18, 28], contracts: { version in
            OperatorContract(inputs: [.init("input", "O", version < 18 ? .required : .optional)], outputs: [.init("output", "B")],
                             types: ["B": [.bool]], valueTypes: ["O": optionals.union(tensorsOrSequences)])
        }) { OptionalHasElement($0) },
        // The same.
        OperatorDefinition("OptionalGetElement", versions: [15, 18, 28], contract: OperatorContract(
            inputs: [.init("input", "O")], outputs: [.init("output", "V")],
            types: [:], valueTypes: ["O": optionals.union(tensorsOrSequences), "V": tensorsOrSequences])) { OptionalGetElement($0) },
    ]

    /// The element types of ONNX's sequences and optionals: opset 13's tensor types but bfloat16.
    static let elements = ElementTypes.allOfOpset13.subtracting([.bfloat16])
    static let sequences = OperatorContract.ValueType.all([.sequence], elements)
    static let tensorsOrSequences = OperatorContract.ValueType.all([.tensor, .sequence], elements)
    static let optionals = OperatorContract.ValueType.all([.optional(.tensor), .optional(.sequence)], elements)

    /// A position in a sequence of `count` tensors from a one-element (int32 or int64) tensor: negative
    /// counts from the end; `0..<count` is valid, and `count` too when `allowingEnd` (an insertion
    /// after the last tensor).
    static func position(_ tensor: Tensor, count: Int, allowingEnd: Bool) throws -> Int {
        guard tensor.elementCount == 1 else {
            throw OpError.invalidArgument("position must be one value, not \(tensor.dataType)\(tensor.shape)")
        }
        let value = tensor.integers()[0]
        let upper = allowingEnd ? count : count - 1
        guard value >= -count && value <= upper else {
            throw OpError.invalidArgument("position \(value) is out of range for a sequence of \(count) tensors (\(-count)...\(upper))")
        }
        return value < 0 ? value + count : value
    }
}

extension Array where Element == Value? {
    /// Input `index` as a tensor, which the operator requires.
    func requiredTensor(_ index: Int) throws -> Tensor {
        guard let tensor = try optionalTensor(index) else { throw OpError("missing required input \(index)") }
        return tensor
    }

    /// Input `index` as a tensor, or nil when omitted; another kind of value is an error.
    func optionalTensor(_ index: Int) throws -> Tensor? {
        guard index < count, let value = self[index] else { return nil }
        guard let tensor = value.tensor else { throw OpError("input \(index) is a \(value.kind); a tensor is needed") }
        return tensor
    }

    /// Input `index` as a sequence, which the operator requires.
    func requiredSequence(_ index: Int) throws -> TensorSequence {
        guard index < count, let value = self[index] else { throw OpError("missing required input \(index)") }
        guard let sequence = value.sequence else { throw OpError("input \(index) is a \(value.kind); a sequence is needed") }
        return sequence
    }
}

// MARK: Making sequences

/// SequenceConstruct: the inputs (tensors of one element type), in order.
struct SequenceConstruct: ValueOperator {
    func outputKinds(_ inputs: [ValueKind?]) throws -> [ValueKind?] { [.sequence] }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] { [] }

    func run(values inputs: [Value?], _ context: ExecutionContext) throws -> [Value] {
        let tensors = try inputs.indices.map { try inputs.requiredTensor($0) }
        guard let first = tensors.first else { throw OpError("SequenceConstruct needs at least one input") }
        guard let sequence = TensorSequence.checked(elementType: first.dataType, tensors) else {
            throw OpError.invalidArgument("inputs mix element types: \(tensors.map { "\($0.dataType)" }.joined(separator: ", "))")
        }
        return [.sequence(sequence)]
    }
}

/// SequenceEmpty: an empty sequence of element type `dtype` (default float).
struct SequenceEmpty: ValueOperator {
    let elementType: DataType

    init(_ context: OperatorContext) throws {
        let code = try context.int("dtype", default: Int(DataType.float.rawValue))
        guard let type = Int32(exactly: code).flatMap(DataType.init(rawValue:)) else { throw OpError("unsupported dtype \(code)") }
        elementType = type
    }

    func outputKinds(_ inputs: [ValueKind?]) throws -> [ValueKind?] { [.sequence] }

    func run(values inputs: [Value?], _ context: ExecutionContext) throws -> [Value] {
        [.sequence(TensorSequence(elementType: elementType, tensors: []))]
    }
}

/// SplitToSequence: `input` cut along `axis` into a sequence: into parts of `split` elements (a
/// scalar; the last part may be shorter), of the sizes `split` lists (1-D, summing to the axis), or
/// without `split` into parts of one, the axis kept or (keepdims 0) removed.
struct SplitToSequence: ValueOperator {
    let axis: Int
    let keepDimensions: Bool

    init(_ context: OperatorContext) throws {
        axis = try context.int("axis", default: 0)
        keepDimensions = try context.int("keepdims", default: 1) != 0
    }

    func outputKinds(_ inputs: [ValueKind?]) throws -> [ValueKind?] { [.sequence] }

    func run(values inputs: [Value?], _ context: ExecutionContext) throws -> [Value] {
        let data = try inputs.requiredTensor(0)
        guard data.shape.rank > 0 else { throw OpError.invalidArgument("cannot split a scalar") }
        let axis = try Layout.axis(self.axis, rank: data.shape.rank)
        let length = data.shape[axis]
        var sizes: [Int]
        var squeeze = false
        if let split = try inputs.optionalTensor(1) {
            let values = split.integers()
            if split.shape.rank == 0 {
                guard values[0] > 0 else { throw OpError.invalidArgument("split \(values[0]) must be positive") }
                let chunk = values[0]
                sizes = stride(from: 0, to: length, by: chunk).map { min(chunk, length - $0) }
            } else {
                guard split.shape.rank == 1, values.allSatisfy({ $0 >= 0 }), values.reduce(0, { $0 &+ $1 }) == length,
                      values.allSatisfy({ $0 <= length }) else {
                    throw OpError.invalidArgument("split \(values) does not cut an axis of \(length) into parts")
                }
                sizes = values
            }
        } else {
            sizes = Array(repeating: 1, count: length)
            squeeze = !keepDimensions
        }
        let parts = try SplitParts(axis: axis, sizes: sizes).run([data], context)
        let tensors = squeeze ? parts.map { part in
            var dims = part.shape.dims
            dims.remove(at: axis)
            return part.reshaped(Shape(dims))
        } : parts
        return [.sequence(TensorSequence(elementType: data.dataType, tensors: tensors))]
    }
}

/// A tensor cut along `axis` into consecutive parts of `sizes` (which sum to the axis).
private struct SplitParts: ElementMovingOperator {
    let axis: Int
    let sizes: [Int]

    func move(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "input")
        return try Layout.split(data, axis: axis, sizes: sizes, context)
    }
}

// MARK: Reading and changing sequences

/// SequenceAt: the tensor at `position` (negative counts from the end).
struct SequenceAt: ValueOperator {
    func outputKinds(_ inputs: [ValueKind?]) throws -> [ValueKind?] { [.tensor] }

    func run(values inputs: [Value?], _ context: ExecutionContext) throws -> [Value] {
        let sequence = try inputs.requiredSequence(0)
        let index = try SequenceOperators.position(try inputs.requiredTensor(1), count: sequence.tensors.count, allowingEnd: false)
        return [.tensor(sequence.tensors[index])]
    }
}

/// SequenceInsert: `tensor` inserted before `position` (at the end when omitted).
struct SequenceInsert: ValueOperator {
    func outputKinds(_ inputs: [ValueKind?]) throws -> [ValueKind?] { [.sequence] }

    func run(values inputs: [Value?], _ context: ExecutionContext) throws -> [Value] {
        let sequence = try inputs.requiredSequence(0)
        let tensor = try inputs.requiredTensor(1)
        guard tensor.dataType == sequence.elementType else {
            throw OpError.invalidArgument("cannot insert a \(tensor.dataType) tensor into a sequence of \(sequence.elementType)")
        }
        var tensors = sequence.tensors
        let index = try inputs.optionalTensor(2).map {
            try SequenceOperators.position($0, count: tensors.count, allowingEnd: true)
        } ?? tensors.count
        tensors.insert(tensor, at: index)
        return [.sequence(TensorSequence(elementType: sequence.elementType, tensors: tensors))]
    }
}

/// SequenceErase: the sequence without the tensor at `position` (the last one when omitted).
struct SequenceErase: ValueOperator {
    func outputKinds(_ inputs: [ValueKind?]) throws -> [ValueKind?] { [.sequence] }

    func run(values inputs: [Value?], _ context: ExecutionContext) throws -> [Value] {
        let sequence = try inputs.requiredSequence(0)
        var tensors = sequence.tensors
        guard !tensors.isEmpty else { throw OpError.invalidArgument("cannot erase from an empty sequence") }
        let index = try inputs.optionalTensor(1).map {
            try SequenceOperators.position($0, count: tensors.count, allowingEnd: false)
        } ?? tensors.count - 1
        tensors.remove(at: index)
        return [.sequence(TensorSequence(elementType: sequence.elementType, tensors: tensors))]
    }
}

/// SequenceLength: the number of tensors, an int64 scalar.
struct SequenceLength: ValueOperator {
    func outputKinds(_ inputs: [ValueKind?]) throws -> [ValueKind?] { [.tensor] }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] { [TensorType(.int64, [])] }

    func run(values inputs: [Value?], _ context: ExecutionContext) throws -> [Value] {
        [.tensor(Tensor(scalar: Int64(try inputs.requiredSequence(0).tensors.count)))]
    }
}

/// ConcatFromSequence: the tensors joined along `axis`, or (new_axis 1) stacked along a new axis
/// there (`axis` then ranges over rank + 1 positions).
struct ConcatFromSequence: ValueOperator {
    let axis: Int
    let newAxis: Bool

    init(_ context: OperatorContext) throws {
        axis = try context.required("axis", context.int)
        newAxis = try context.int("new_axis", default: 0) != 0
    }

    func outputKinds(_ inputs: [ValueKind?]) throws -> [ValueKind?] { [.tensor] }

    func run(values inputs: [Value?], _ context: ExecutionContext) throws -> [Value] {
        let sequence = try inputs.requiredSequence(0)
        guard let first = sequence.tensors.first else { throw OpError.invalidArgument("cannot concatenate an empty sequence") }
        var parts = sequence.tensors
        if newAxis {
            let axis = try Layout.axis(self.axis, rank: first.shape.rank + 1)
            parts = parts.map { part in
                var dims = part.shape.dims
                dims.insert(1, at: min(axis, dims.count))
                return part.reshaped(Shape(dims))
            }
        }
        // Concat checks element types, ranks and the other dimensions.
        return [.tensor(try Concat(axis: axis).run(parts, context)[0])]
    }
}

// MARK: SequenceMap

/// SequenceMap: the body run once per position of the input sequences (which must have one
/// length), on their tensors at that position and on the tensor inputs as they are; each body
/// output becomes a sequence.
struct SequenceMap: ValueOperator {
    let body: Subgraph
    let explicitInputs: Int

    init(_ context: OperatorContext) throws {
        body = try Subgraph(context, attribute: "body")
        explicitInputs = try ControlFlowOperators.explicitInputCount(context)
        guard explicitInputs >= 1 else { throw OpError("SequenceMap needs an input sequence") }
        guard body.formalCount == explicitInputs else {
            throw OpError("the body takes \(body.formalCount) inputs; the node gives \(explicitInputs)")
        }
        guard context.outputCount <= body.outputSlots.count else {
            throw OpError("SequenceMap has \(context.outputCount) outputs; its body has \(body.outputSlots.count)")
        }
    }

    func outputKinds(_ inputs: [ValueKind?]) throws -> [ValueKind?] {
        for (index, kind) in body.outputKinds.enumerated() where kind != nil && kind != .tensor {
            throw OpError("body output \(index) is a \(kind.map { "\($0)" } ?? "?"); SequenceMap's body makes tensors")
        }
        return Array(repeating: .sequence, count: body.outputSlots.count)
    }

    func run(values inputs: [Value?], _ context: ExecutionContext) throws -> [Value] {
        let length = try inputs.requiredSequence(0).tensors.count
        for index in 1..<explicitInputs {
            guard index < inputs.count, let value = inputs[index] else { throw OpError("missing input \(index)") }
            if let sequence = value.sequence, sequence.tensors.count != length {
                throw OpError.invalidArgument("input sequences differ in length: \(length) and \(sequence.tensors.count)")
            }
        }
        var outputs = [[Tensor]](repeating: [], count: body.outputSlots.count)
        let captures = inputs[explicitInputs...]
        for position in 0..<length {
            let formal = try (0..<explicitInputs).map { index -> Value in
                guard let value = inputs[index] else { throw OpError("missing input \(index)") }
                switch value {
                case .sequence(let sequence): return .tensor(sequence.tensors[position])
                case .tensor: return value
                case .optional, .map: throw OpError("input \(index) is a \(value.kind); SequenceMap takes sequences and tensors")
                }
            }
            for (index, value) in try body.run(formal, captures: captures, context: context).enumerated() {
                guard let tensor = value.tensor else { throw OpError("body output \(index) is a \(value.kind); a tensor is needed") }
                outputs[index].append(tensor)
            }
        }
        return try outputs.enumerated().map { index, tensors in
            let elementType = tensors.first?.dataType ?? body.outputTypes[index]?.dataType ?? .float
            guard let sequence = TensorSequence.checked(elementType: elementType, tensors) else {
                throw OpError.invalidArgument("body output \(index) changes element type from one position to the next")
            }
            return .sequence(sequence)
        }
    }
}

// MARK: Optionals

/// Optional: an optional holding the input, or an empty one of the attribute `type`.
struct OptionalMake: ValueOperator {
    /// The element kind from the `type` attribute, for an optional without input.
    let declaredKind: ValueKind?

    init(_ context: OperatorContext) throws {
        switch context.attribute("type") {
        case nil: declaredKind = nil
        case .type(let kind, _)?:
            guard kind == .tensor || kind == .sequence else { throw OpError("attribute 'type' must be a tensor or sequence type, not \(kind)") }
            declaredKind = kind
        default: throw OpError("attribute 'type' must be a type")
        }
        guard context.hasInput(0) || declaredKind != nil else { throw OpError("Optional without input needs the attribute 'type'") }
    }

    func outputKinds(_ inputs: [ValueKind?]) throws -> [ValueKind?] {
        let element = (inputs.first ?? nil) ?? declaredKind
        return [element.map { .optional($0) }]
    }

    func run(values inputs: [Value?], _ context: ExecutionContext) throws -> [Value] {
        guard let input = inputs.first ?? nil else {
            guard let declaredKind else { throw OpError("Optional without input needs the attribute 'type'") }
            return [.optional(nil, kind: declaredKind)]
        }
        return [.optional(input, kind: input.kind)]
    }
}

/// OptionalHasElement: whether the optional holds a value (from opset 18 a tensor or sequence
/// input holds one, and an omitted input holds none).
struct OptionalHasElement: ValueOperator {
    let version: Int

    init(_ context: OperatorContext) { version = context.version }

    func outputKinds(_ inputs: [ValueKind?]) throws -> [ValueKind?] { [.tensor] }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] { [TensorType(.bool, [])] }

    func run(values inputs: [Value?], _ context: ExecutionContext) throws -> [Value] {
        let present: Bool
        switch inputs.first ?? nil {
        case nil: present = false
        case .optional(let element, _)?: present = element != nil
        case .tensor?, .sequence?, .map?: present = true
        }
        return [.tensor(Tensor(scalar: present))]
    }
}

/// OptionalGetElement: the value an optional holds (an error when it holds none); from opset 18 a
/// tensor or sequence input passes through.
struct OptionalGetElement: ValueOperator {
    let version: Int

    init(_ context: OperatorContext) { version = context.version }

    func outputKinds(_ inputs: [ValueKind?]) throws -> [ValueKind?] {
        switch inputs.first ?? nil {
        case nil: return [nil]
        case .optional(let element)?: return [element]
        case let kind?: return [kind]
        }
    }

    func run(values inputs: [Value?], _ context: ExecutionContext) throws -> [Value] {
        switch inputs.first ?? nil {
        case nil: throw OpError("missing required input 0")
        case .optional(let element, _)?:
            guard let element else { throw OpError.invalidArgument("the optional is empty") }
            return [element]
        case let value?:
            // Before opset 18 only a value whose kind the load could not tell gets here: a Loop's
            // carried optional that its body replaces by the element (as test_loop16_seq_none
            // does, and the ONNX reference accepts). It passes through as from opset 18.
            return [value]
        }
    }
}
