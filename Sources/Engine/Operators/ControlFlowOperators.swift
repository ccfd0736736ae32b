import Tensors

/// If, Loop and Scan (every opset). Their subgraphs are bound, optimised and planned once at load
/// (see `SubgraphBinding`, `Subgraph`); a run executes the plans, an iteration costs one run of
/// the body's plan. The values a subgraph reads from outside arrive as the node's trailing inputs.
enum ControlFlowOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("If", versions: [1, 11, 13, 16, 19, 21, 23, 24, 25], traits: .subgraphs, contract: OperatorContract(
            inputs: [.init("cond", "B")], outputs: [.init("outputs", "V", .variadic(min: 1), homogeneous: false)],
            types: ["B": [.bool]], valueTypes: ["V": values])) { try IfOperator($0) },
        OperatorDefinition("Loop", versions: [1, 11, 13, 16, 19, 21, 23, 24, 25], traits: .subgraphs, contracts: { version in
            OperatorContract(
                inputs: [.init("M", "I", .optional), .init("cond", "B", .optional),
                         .init("v_initial", "V", .variadic(min: version == 1 ? 1 : 0), homogeneous: false)],
                outputs: [.init("v_final_and_scan_outputs", "V", .variadic(min: 1), homogeneous: false)],
                types: ["I": [.int64], "B": [.bool]], valueTypes: ["V": values])
        }) { try LoopOperator($0) },
        OperatorDefinition("Scan", versions: [8, 9, 11, 16, 19, 21, 23, 24, 25], traits: .subgraphs, contracts: { version in
            OperatorContract(
                inputs: (version == 8 ? [.init("sequence_lens", "I", .optional)] : [])
                    + [.init("initial_state_and_scan_inputs", "V", .variadic(min: 1), homogeneous: false)],
                outputs: [.init("final_state_and_scan_outputs", "V", .variadic(min: 1), homogeneous: false)],
                types: ["V": ElementTypes.allOfOpset13].merging(version == 8 ? ["I": [.int64]] : [:]) { a, _ in a })
        }) { try ScanOperator($0) },
    ]

    /// What If's and Loop's values may be: tensors, sequences and optionals (ONNX's list from
    /// opset 16; before it, tensors).
    static let values = OperatorContract.ValueType.all([.tensor], ElementTypes.allOfOpset13)
        .union(OperatorContract.ValueType.all([.sequence, .optional(.tensor), .optional(.sequence)], SequenceOperators.elements))

    /// Most iterations one Loop runs: a Loop without a trip count runs until its body says stop,
    /// and a model file (or a feed) could ask for 2^63.
    static let maximumIterations = 1 << 20

    /// Number of the node's own inputs (its captured outer values follow them).
    static func explicitInputCount(_ context: OperatorContext) throws -> Int {
        let captures = try context.strings(SubgraphBinding.capturesAttribute)?.count ?? 0
        return context.inputCount - captures
    }

    /// The boolean value of a one-element tensor.
    static func flag(_ tensor: Tensor, _ role: String) throws -> Bool {
        guard tensor.dataType == .bool, tensor.elementCount == 1 else {
            throw OpError.invalidArgument("\(role) must be one bool, not \(tensor.dataType)\(tensor.shape)")
        }
        return tensor.pointer(as: Bool.self)[0]
    }

    /// `parts` (all of one type and shape) stacked along a new `axis` into [count] + shape at that
    /// axis; `reversed` puts the first part last. An empty list gives `[0] + emptyShape`.
    static func stack(_ parts: [Tensor], axis: Int, reversed: Bool, emptyType: TensorType?, _ context: ExecutionContext) throws -> Tensor {
        guard let first = parts.first else {
            let dims = emptyType?.dims?.map { $0.value ?? 0 } ?? []
            return try context.allocate(emptyType?.dataType ?? .float, Shape([0] + dims))
        }
        for part in parts where part.dataType != first.dataType || part.shape != first.shape {
            throw OpError.invalidArgument("scan output elements differ: \(first.dataType)\(first.shape) and \(part.dataType)\(part.shape)")
        }
        guard let axis = Shape.normalize(axis: axis, rank: first.shape.rank + 1) else {
            throw OpError("scan output axis \(axis) is out of range for rank \(first.shape.rank + 1)")
        }
        var dims = first.shape.dims
        dims.insert(parts.count, at: axis)
        let outer = first.shape.dims[..<axis].reduce(1, *), inner = first.shape.dims[axis...].reduce(1, *)
        if first.dataType == .string {
            var strings = [String](repeating: "", count: outer * parts.count * inner)
            for (index, part) in parts.enumerated() {
                let position = reversed ? parts.count - 1 - index : index, values = part.strings
                for o in 0..<outer { for i in 0..<inner { strings[(o * parts.count + position) * inner + i] = values[o * inner + i] } }
            }
            return Tensor(strings: strings, shape: Shape(dims))
        }
        let result = try context.allocate(first.dataType, Shape(dims))
        let size = first.dataType.byteSize, block = inner * size
        for (index, part) in parts.enumerated() {
            let position = reversed ? parts.count - 1 - index : index
            for o in 0..<outer {
                (result.rawPointer + ((o * parts.count + position) * inner) * size).copyMemory(from: part.rawPointer + o * block, byteCount: block)
            }
        }
        return result
    }

    /// Element `index` of `tensor` along `axis`, that axis removed.
    static func slice(_ tensor: Tensor, axis: Int, index: Int, _ context: ExecutionContext) throws -> Tensor {
        var dims = tensor.shape.dims
        let length = dims.remove(at: axis)
        let outer = dims[..<axis].reduce(1, *), inner = dims[axis...].reduce(1, *)
        if tensor.dataType == .string {
            let values = tensor.strings
            var strings: [String] = []
            strings.reserveCapacity(outer * inner)
            for o in 0..<outer { strings += values[((o * length + index) * inner)..<((o * length + index + 1) * inner)] }
            return Tensor(strings: strings, shape: Shape(dims))
        }
        let result = try context.allocate(tensor.dataType, Shape(dims))
        let size = tensor.dataType.byteSize, block = inner * size
        for o in 0..<outer {
            (result.rawPointer + o * block).copyMemory(from: tensor.rawPointer + ((o * length + index) * inner) * size, byteCount: block)
        }
        return result
    }
}

// MARK: If

/// Runs `then_branch` or `else_branch` on the outer values they read.
struct IfOperator: ValueOperator {
    let thenBranch: Subgraph
    let elseBranch: Subgraph
    let explicitInputs: Int

    init(_ context: OperatorContext) throws {
        thenBranch = try Subgraph(context, attribute: "then_branch")
        elseBranch = try Subgraph(context, attribute: "else_branch")
        explicitInputs = try ControlFlowOperators.explicitInputCount(context)
        guard explicitInputs == 1 else { throw OpError("If takes one input (cond), not \(explicitInputs)") }
        guard thenBranch.formalCount == 0, elseBranch.formalCount == 0 else { throw OpError("If's branches take no inputs") }
        guard thenBranch.outputSlots.count == elseBranch.outputSlots.count else {
            throw OpError("then_branch has \(thenBranch.outputSlots.count) outputs but else_branch \(elseBranch.outputSlots.count)")
        }
        guard context.outputCount <= thenBranch.outputSlots.count else {
            throw OpError("If has \(context.outputCount) outputs; its branches have \(thenBranch.outputSlots.count)")
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        // A branch's type where both agree; the element type alone where only that does.
        return zip(thenBranch.outputTypes, elseBranch.outputTypes).map { a, b in
            guard let a, let b, a.dataType == b.dataType else { return nil }
            return a == b ? a : TensorType(a.dataType, a.rank == b.rank ? a.rank.map { Array(repeating: .unknown, count: $0) } : nil)
        }
    }

    func outputKinds(_ inputs: [ValueKind?]) throws -> [ValueKind?] {
        // A branch's kind where both agree (a branch that fails to agree fails when it runs).
        return zip(thenBranch.outputKinds, elseBranch.outputKinds).map { $0 == $1 ? $0 : nil }
    }

    func run(values inputs: [Value?], _ context: ExecutionContext) throws -> [Value] {
        let branch = try ControlFlowOperators.flag(try inputs.requiredTensor(0), "cond") ? thenBranch : elseBranch
        return try branch.run([], captures: inputs[explicitInputs...], context: context)
    }
}

// MARK: Loop

/// `for i in 0..<M while cond`: the body maps (i, cond, carried...) to (cond, carried..., scan...);
/// the outputs are the final carried values and each scan output stacked over the iterations.
struct LoopOperator: ValueOperator {
    let body: Subgraph
    let explicitInputs: Int
    /// Loop-carried values (N).
    let carried: Int
    /// Scan outputs (K).
    let scans: Int

    init(_ context: OperatorContext) throws {
        body = try Subgraph(context, attribute: "body")
        explicitInputs = try ControlFlowOperators.explicitInputCount(context)
        guard explicitInputs >= 2 else { throw OpError("Loop takes M, cond and the loop-carried values") }
        carried = explicitInputs - 2
        guard body.formalCount == carried + 2 else {
            throw OpError("the body takes \(body.formalCount) inputs; \(carried + 2) are needed (iteration, cond, \(carried) loop-carried)")
        }
        guard body.outputSlots.count >= carried + 1 else {
            throw OpError("the body has \(body.outputSlots.count) outputs; at least \(carried + 1) are needed (cond, \(carried) loop-carried)")
        }
        scans = body.outputSlots.count - 1 - carried
        guard context.outputCount <= carried + scans else { throw OpError("Loop has more outputs than its body gives") }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        let carriedTypes = (0..<carried).map { index -> TensorType? in
            guard let initial = inputs.type(2 + index) else { return body.outputTypes[1 + index] }
            return body.outputTypes[1 + index] == initial ? initial : TensorType(initial.dataType, initial.rank.map { Array(repeating: .unknown, count: $0) })
        }
        let scanTypes = body.outputTypes.suffix(scans).map { type in type.map { TensorType($0.dataType, $0.dims.map { [.unknown] + $0 }) } }
        return carriedTypes + scanTypes
    }

    func outputKinds(_ inputs: [ValueKind?]) throws -> [ValueKind?] {
        let carriedKinds = (0..<carried).map { index -> ValueKind? in
            let initial = 2 + index < inputs.count ? inputs[2 + index] : nil
            return body.outputKinds[1 + index] ?? initial
        }
        return carriedKinds + Array(repeating: .tensor, count: scans)
    }

    func run(values inputs: [Value?], _ context: ExecutionContext) throws -> [Value] {
        var tripCount: Int?
        if let m = try inputs.optionalTensor(0) {
            guard m.elementCount == 1 else { throw OpError.invalidArgument("M must be one int64, not \(m.dataType)\(m.shape)") }
            tripCount = Int(max(0, m.pointer(as: Int64.self)[0]))
        }
        var condition = try inputs.optionalTensor(1).map { try ControlFlowOperators.flag($0, "cond") } ?? true
        var state: [Value] = try (0..<carried).map { index in
            guard 2 + index < inputs.count, let value = inputs[2 + index] else { throw OpError("loop-carried input \(index) is missing") }
            return value
        }
        var scanned = [[Tensor]](repeating: [], count: scans)
        let captures = inputs[explicitInputs...]
        var iteration = 0
        while condition && (tripCount.map { iteration < $0 } ?? true) {
            guard iteration < ControlFlowOperators.maximumIterations else {
                throw OpError.invalidArgument("the loop reached \(ControlFlowOperators.maximumIterations) iterations, the engine's limit")
            }
            // The iteration number and condition, built without the generic `Tensor(scalar:)`,
            // whose unspecialised array code cost about a tenth of a small body's iteration.
            let counter = Tensor(uninitialized: .int64, shape: []), flag = Tensor(uninitialized: .bool, shape: [])
            counter.mutablePointer(as: Int64.self).pointee = Int64(iteration)
            flag.mutablePointer(as: Bool.self).pointee = condition
            state.insert(contentsOf: [.tensor(counter), .tensor(flag)], at: 0)
            let outputs = try body.run(state, captures: captures, context: context)
            guard let conditionOutput = outputs[0].tensor else { throw OpError("the body's cond output is a \(outputs[0].kind)") }
            condition = try ControlFlowOperators.flag(conditionOutput, "the body's cond output")
            state = Array(outputs[1..<(1 + carried)])
            for index in 0..<scans {
                let value = outputs[1 + carried + index]
                guard let tensor = value.tensor else { throw OpError("scan output \(index) of the body is a \(value.kind); a tensor is needed") }
                scanned[index].append(tensor)
            }
            iteration += 1
        }
        var results = state
        for index in 0..<scans {
            results.append(.tensor(try ControlFlowOperators.stack(scanned[index], axis: 0, reversed: false,
                                                                  emptyType: body.outputTypes[1 + carried + index], context)))
        }
        return results
    }
}

// MARK: Scan

/// Runs the body once per element of the scan inputs along their scan axes, carrying state:
/// the body maps (state..., elements...) to (state..., scan output elements...). Opset 8 has a
/// leading batch axis on every input and output, and optional sequence lengths per batch row.
struct ScanOperator: Operator {
    let body: Subgraph
    let explicitInputs: Int
    /// Opset 8: inputs are (sequence_lens, state..., scans...), each with a batch axis 0.
    let batched: Bool
    let stateCount: Int
    let scanInputCount: Int
    let scanOutputCount: Int
    let inputAxes: [Int]
    let inputReversed: [Bool]
    let outputAxes: [Int]
    let outputReversed: [Bool]

    init(_ context: OperatorContext) throws {
        body = try Subgraph(context, attribute: "body")
        explicitInputs = try ControlFlowOperators.explicitInputCount(context)
        batched = context.version < 9
        scanInputCount = try context.required("num_scan_inputs", context.int)
        stateCount = explicitInputs - (batched ? 1 : 0) - scanInputCount
        guard scanInputCount >= 1, stateCount >= 0 else {
            throw OpError("num_scan_inputs \(scanInputCount) does not fit \(explicitInputs) inputs")
        }
        guard body.formalCount == stateCount + scanInputCount else {
            throw OpError("the body takes \(body.formalCount) inputs; \(stateCount + scanInputCount) are needed")
        }
        scanOutputCount = body.outputSlots.count - stateCount
        guard scanOutputCount >= 0 else { throw OpError("the body has fewer outputs than state values") }
        func list(_ name: String, count: Int, default value: Int) throws -> [Int] {
            let values = try context.ints(name) ?? Array(repeating: value, count: count)
            guard values.count == count else { throw OpError("\(name) has \(values.count) entries; \(count) are needed") }
            return values
        }
        if batched {
            inputReversed = try list("directions", count: scanInputCount, default: 0).map { $0 != 0 }
            inputAxes = Array(repeating: 0, count: scanInputCount)
            outputAxes = Array(repeating: 0, count: scanOutputCount)
            outputReversed = Array(repeating: false, count: scanOutputCount)
        } else {
            inputAxes = try list("scan_input_axes", count: scanInputCount, default: 0)
            inputReversed = try list("scan_input_directions", count: scanInputCount, default: 0).map { $0 != 0 }
            outputAxes = try list("scan_output_axes", count: scanOutputCount, default: 0)
            outputReversed = try list("scan_output_directions", count: scanOutputCount, default: 0).map { $0 != 0 }
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        let states = (0..<stateCount).map { index -> TensorType? in inputs.type((batched ? 1 : 0) + index) ?? body.outputTypes[index] }
        let scans = body.outputTypes.suffix(scanOutputCount).map { type in type.map { TensorType($0.dataType, $0.dims.map { Array(repeating: .unknown, count: $0.count + (batched ? 2 : 1)) }) } }
        return states + scans
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let first = batched ? 1 : 0
        let states = try (0..<stateCount).map { try inputs.required(first + $0) }
        let scanInputs = try (0..<scanInputCount).map { try inputs.required(first + stateCount + $0) }
        let captures = inputs[explicitInputs...]
        if !batched {
            return try scan(states: states, inputs: scanInputs, axes: inputAxes, lengths: nil, captures: captures, context)
        }
        // Opset 8: each batch row is a scan of its own over axis 1 (axis 0 once the row is taken).
        let batch = try scanInputs[0].shape.dims.first ?? { throw OpError.invalidArgument("scan inputs need a batch axis") }()
        for tensor in states + scanInputs where tensor.shape.rank < 1 || tensor.shape[0] != batch {
            throw OpError.invalidArgument("every input needs batch size \(batch), not \(tensor.shape)")
        }
        var lengths: [Int]?
        if let given = inputs.optional(0) {
            guard given.shape == [batch] else {
                throw OpError.invalidArgument("sequence_lens must be [\(batch)] integers, not \(given.dataType)\(given.shape)")
            }
            lengths = given.integers()
        }
        var rows: [[Tensor]] = []
        for b in 0..<batch {
            let rowStates = try states.map { try ControlFlowOperators.slice($0, axis: 0, index: b, context) }
            let rowInputs = try scanInputs.map { try ControlFlowOperators.slice($0, axis: 0, index: b, context) }
            rows.append(try scan(states: rowStates, inputs: rowInputs, axes: inputAxes, lengths: lengths.map { $0[b] },
                                 captures: captures, context))
        }
        return try (0..<(stateCount + scanOutputCount)).map { index in
            try ControlFlowOperators.stack(rows.map { $0[index] }, axis: 0, reversed: false, emptyType: nil, context)
        }
    }

    /// One scan: states and scan inputs without a batch axis; `length` steps (all when nil).
    private func scan(states: [Tensor], inputs: [Tensor], axes: [Int], lengths: Int?, captures: ArraySlice<Tensor?>,
                      _ context: ExecutionContext) throws -> [Tensor] {
        var normalized: [Int] = []
        for (tensor, axis) in zip(inputs, axes) {
            guard let axis = Shape.normalize(axis: axis, rank: tensor.shape.rank) else {
                throw OpError.invalidArgument("scan axis \(axis) is out of range for input \(tensor.shape)")
            }
            normalized.append(axis)
        }
        let sequence = inputs[0].shape[normalized[0]]
        for (tensor, axis) in zip(inputs, normalized) where tensor.shape[axis] != sequence {
            throw OpError.invalidArgument("scan inputs differ in length: \(inputs[0].shape) and \(tensor.shape)")
        }
        let steps = lengths ?? sequence
        guard steps >= 0 && steps <= sequence else { throw OpError.invalidArgument("sequence length \(steps) is outside 0...\(sequence)") }
        var state = states
        var scanned = [[Tensor]](repeating: [], count: scanOutputCount)
        for step in 0..<steps {
            var elements: [Tensor] = []
            for (index, tensor) in inputs.enumerated() {
                let position = inputReversed[index] ? steps - 1 - step : step
                elements.append(try ControlFlowOperators.slice(tensor, axis: normalized[index], index: position, context))
            }
            let outputs = try body.run(state + elements, captures: captures, context: context)
            state = Array(outputs[..<stateCount])
            for index in 0..<scanOutputCount { scanned[index].append(outputs[stateCount + index]) }
        }
        var results = state
        for index in 0..<scanOutputCount {
            var stacked = try ControlFlowOperators.stack(scanned[index], axis: outputAxes[index], reversed: outputReversed[index],
                                                         emptyType: body.outputTypes[stateCount + index], context)
            if steps < sequence, stacked.shape.rank > 0 {
                stacked = try padded(stacked, to: sequence, context)
            }
            results.append(stacked)
        }
        return results
    }

    /// A batched scan's output of a row that ended early, zero-padded along axis 0 to `length`.
    private func padded(_ tensor: Tensor, to length: Int, _ context: ExecutionContext) throws -> Tensor {
        guard tensor.dataType != .string else { throw OpError("string scan outputs of rows shorter than the sequence are not supported") }
        var dims = tensor.shape.dims
        dims[0] = length
        let result = try context.allocate(tensor.dataType, Shape(dims))
        result.rawPointer.initializeMemory(as: UInt8.self, repeating: 0, count: result.byteCount)
        result.rawPointer.copyMemory(from: tensor.rawPointer, byteCount: tensor.byteCount)
        return result
    }
}
