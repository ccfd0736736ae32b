import Tensors

/// Compiles an (optimised) graph into an `ExecutionPlan`: orders the nodes, builds every
/// operator, checks its contract, infers types and assigns value slots.
enum PlanBuilder {
    /// `inputsChecked`: the runs check the feeds against the graph inputs' declared element types
    /// (a session's main graph does; a subgraph's inputs come from its node unchecked).
    static func build(_ graph: Graph, opsets: [String: Int], inputsChecked: Bool) throws(EngineError) -> ExecutionPlan {
        let order = try GraphOrder.sorted(graph)
        var slots: [String: Int] = [:]
        var names: [String] = []
        func slot(_ name: String) -> Int {
            if let existing = slots[name] { return existing }
            slots[name] = names.count
            names.append(name)
            return names.count - 1
        }
        var inputSlots: [String: Int] = [:]
        var types: [String: TensorType] = graph.valueInfo
        // Tensor, sequence or optional, where known; a value without an entry is unknown.
        var kinds: [String: ValueKind] = [:]
        // Values whose element type is certain: checked feeds, constants, and what operators infer
        // from certain inputs. A type only the file declares (value_info) is a claim: the steps
        // reading such a value check their contract at run time.
        var certain = Set<String>()
        for input in graph.inputs {
            inputSlots[input.name] = slot(input.name)
            kinds[input.name] = input.kind
            // A sequence's or optional's declared type is that of its tensors, not its own.
            if let type = input.type, input.kind == .tensor {
                types[input.name] = type
                if inputsChecked { certain.insert(input.name) }
            }
        }
        var constants: [(slot: Int, tensor: Tensor)] = []
        for (name, tensor) in graph.initializers.sorted(by: { $0.key < $1.key }) {
            constants.append((slot(name), tensor))
            kinds[name] = .tensor
            types[name] = TensorType(tensor.dataType, shape: tensor.shape)
            certain.insert(name)
        }
        var steps: [ExecutionPlan.Step] = []
        for index in order {
            var node = graph.nodes[index]
            // Low-precision values widen before an operator that computes with them, and its
            // results in the wide type narrow back after it (see `LowPrecisionWidening`).
            let widening = LowPrecisionWidening(node, step: index, inputTypes: node.inputs.map { $0.isEmpty ? nil : types[$0] })
            for (input, wide) in widening?.widenedInputs ?? [] {
                steps.append(LowPrecisionWidening.conversion(from: node.inputs[input], to: wide, label: node.label, slot: slot))
                types[wide.name] = wide.type
                if certain.contains(node.inputs[input]) { certain.insert(wide.name) }
                node.inputs[input] = wide.name
            }
            let compiled = try OperatorRegistry.compile(node, opsets: opsets, constants: node.inputs.map { graph.initializers[$0] })
            let op = compiled.op, contract = compiled.contract
            let inputsCertain = node.inputs.allSatisfy { $0.isEmpty || certain.contains($0) }
            // Sequence operators and control flow infer from values (a subgraph's declared inputs)
            // that are not certain.
            let outputsCertain = inputsCertain && !(op is any ValueOperator) && !node.attributes.values.contains(where: \.holdsGraphs)
            let inputTypes = node.inputs.map { $0.isEmpty ? nil : types[$0] }
            let inputKinds = node.inputs.map { $0.isEmpty ? nil : kinds[$0] }
            // Kinds first: a tensor operator reading a sequence says so in its own words.
            try checkKinds(op, node: node, kinds: &kinds)
            let inferred: [TensorType?]
            do {
                inferred = try OperatorContract.outputTypes(of: op, contract: contract, inputTypes,
                                                            present: node.inputs.map { !$0.isEmpty }, kinds: inputKinds)
            } catch let error as OpError {
                throw .invalidGraph("\(node.label): \(error.message)")
            } catch {
                throw .invalidGraph("\(node.label): \(error)")
            }
            var narrowing: [(wide: String, narrow: (name: String, type: TensorType))] = []
            for (position, output) in node.outputs.enumerated() where !output.isEmpty {
                guard position < inferred.count, let type = inferred[position] else { continue }
                if outputsCertain { certain.insert(output) }
                if let widening, let narrow = widening.narrowedType(type) {
                    let wide = LowPrecisionWidening.wideName(output, step: index)
                    if outputsCertain { certain.insert(wide) }
                    types[wide] = type
                    node.outputs[position] = wide
                    narrowing.append((wide, (output, narrow)))
                    types[output] = refine(declared: types[output], inferred: narrow)
                } else {
                    types[output] = refine(declared: types[output], inferred: type)
                }
            }
            steps.append(ExecutionPlan.Step(
                op: op, label: node.label, opType: node.opType,
                inputs: node.inputs.map { $0.isEmpty ? nil : slot($0) },
                outputs: node.outputs.map { $0.isEmpty ? nil : slot($0) },
                contract: contract, checksAtRun: !inputsCertain))
            for (wide, narrow) in narrowing {
                steps.append(LowPrecisionWidening.conversion(from: wide, to: narrow, label: node.label, slot: slot))
            }
        }
        var outputSlots: [String: Int] = [:]
        for output in graph.outputs { outputSlots[output.name] = slot(output.name) }
        return ExecutionPlan(steps: steps, slotNames: names, constants: constants, inputSlots: inputSlots,
                             outputOrder: graph.outputs.map(\.name), outputSlots: outputSlots,
                             slotTypes: names.map { types[$0] }, slotKinds: names.map { kinds[$0] })
    }

    /// Checks the kinds of a node's inputs (a tensor operator reads tensors only; a
    /// `ValueOperator` says what it takes) and records the kinds of its outputs.
    private static func checkKinds(_ op: any Operator, node: Node, kinds: inout [String: ValueKind]) throws(EngineError) {
        let inputKinds = node.inputs.map { $0.isEmpty ? nil : kinds[$0] }
        var outputKinds: [ValueKind?]
        if let op = op as? any ValueOperator {
            do {
                outputKinds = try op.outputKinds(inputKinds)
            } catch let error as OpError {
                throw .invalidGraph("\(node.label): \(error.message)")
            } catch {
                throw .invalidGraph("\(node.label): \(error)")
            }
        } else {
            for (name, kind) in zip(node.inputs, inputKinds) {
                if let kind, kind != .tensor {
                    throw .invalidGraph("\(node.label) reads '\(name)', a \(kind); \(node.opType) takes tensors only")
                }
            }
            outputKinds = Array(repeating: .tensor, count: node.outputs.count)
        }
        for (position, output) in node.outputs.enumerated() where !output.isEmpty {
            kinds[output] = position < outputKinds.count ? outputKinds[position] : nil
        }
    }

    /// Combines a declared type with an inferred one: inferred fixed sizes win, declared symbolic
    /// names fill dimensions inference could not pin down.
    static func refine(declared: TensorType?, inferred: TensorType) -> TensorType {
        guard let declared, declared.dataType == inferred.dataType,
              let declaredDims = declared.dims else { return inferred }
        guard let inferredDims = inferred.dims else { return declared }
        guard declaredDims.count == inferredDims.count else { return inferred }
        let dims = zip(declaredDims, inferredDims).map { declared, inferred -> Dim in
            if case .unknown = inferred { return declared }
            return inferred
        }
        return TensorType(inferred.dataType, dims)
    }
}
