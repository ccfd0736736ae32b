package import Tensors

/// An operator's type rules, written like its ONNX schema: named inputs and outputs, each bound to
/// a type variable ("T", "T1", ...) or a fixed element type, the element types each variable
/// accepts, and optionally a shape rule. One checker (`check`) applies it when the model loads
/// (`PlanBuilder`) and, for the steps whose input types were not all known then, before the
/// operator runs (`ExecutionPlan.execute`); the operator itself then checks no element types.
///
/// Inputs bound to one variable must have one element type (ONNX's homogeneity), except the
/// positions of a heterogeneous variadic input, each of which may have any of the variable's types.
/// A variadic input comes last and covers every position from its own on.
///
/// A variable takes tensors, unless `valueTypes` lists what else it takes, as ONNX's type strings
/// do: `seq(tensor(T))`, `optional(tensor(T))`, `optional(seq(tensor(T)))`, `map(K, T)` (the
/// sequence, optional and map operators, If, Loop). Their kinds are checked where the element types
/// are: at load where known, else on the step's values before it runs.
package struct OperatorContract: Sendable {
    /// How many values a formal input or output takes.
    package enum Arity: Sendable, Equatable {
        case required
        case optional
        /// One or more positions, at least `min` of them.
        case variadic(min: Int)
    }

    /// What an input or output's element type is: that bound to a variable, or a fixed one.
    package enum ElementType: Sendable, Equatable {
        case variable(String)
        case fixed(DataType)
    }

    /// A formal input or output.
    package struct Parameter: Sendable {
        package let name: String
        package let arity: Arity
        package let type: ElementType
        /// False for a variadic input whose positions may each have another of the variable's
        /// types (ONNX's `is_homogeneous` false: FeatureVectorizer's inputs); the variable is then
        /// not bound by them.
        package let homogeneous: Bool

        package init(_ name: String, _ variable: String, _ arity: Arity = .required, homogeneous: Bool = true) {
            self.name = name
            self.arity = arity
            self.type = .variable(variable)
            self.homogeneous = homogeneous
        }

        package init(_ name: String, _ type: DataType, _ arity: Arity = .required) {
            self.name = name
            self.arity = arity
            self.type = .fixed(type)
            homogeneous = true
        }
    }

    /// A type a variable of `valueTypes` takes: a kind of value and its element type (a map's
    /// values' type).
    package struct ValueType: Hashable, Sendable, CustomStringConvertible {
        package let kind: ValueKind
        package let element: DataType

        package init(_ kind: ValueKind, _ element: DataType) {
            self.kind = kind
            self.element = element
        }

        /// Every kind with every element type.
        package static func all(_ kinds: [ValueKind], _ elements: Set<DataType>) -> Set<ValueType> {
            Set(kinds.flatMap { kind in elements.map { ValueType(kind, $0) } })
        }

        /// ONNX's type string: `tensor(float)`, `seq(tensor(float))`, `optional(seq(tensor(float)))`,
        /// `map(int64, float)`.
        package var description: String {
            func text(_ kind: ValueKind) -> String {
                switch kind {
                case .tensor: "tensor(\(element.name))"
                case .sequence: "seq(tensor(\(element.name)))"
                case .map(let key): "map(\(key.name), \(element.name))"
                case .optional(let inner): "optional(\(text(inner)))"
                }
            }
            return text(kind)
        }
    }

    /// The outputs' shape for the common cases; operators with other rules keep their own
    /// `outputTypes`.
    package enum ShapeRule: Sendable {
        /// Every output has the shape of input `k`.
        case sameAs(Int)
        /// Every output has the multidirectional (numpy) broadcast of all present inputs' shapes.
        case broadcast
    }

    package let inputs: [Parameter]
    package let outputs: [Parameter]
    /// Element types each variable accepts.
    package let types: [String: Set<DataType>]
    /// The value types of the variables that take other values than tensors (their `types` are
    /// the element types among them).
    package let valueTypes: [String: Set<ValueType>]
    /// The outputs' shape; nil when the operator's own `outputTypes` gives the output types.
    package let shape: ShapeRule?

    /// How many input positions the contract covers: nil, all; a control-flow node's captured outer
    /// values follow its own inputs and are not its formals (`covering(first:)`).
    package private(set) var coveredPositions: Int?

    /// This contract for a node whose first `count` inputs are its own.
    package func covering(first count: Int) -> OperatorContract {
        var contract = self
        contract.coveredPositions = max(0, count)
        return contract
    }

    /// Variables in a fixed order, and for each input its variable's index (nil: a fixed type).
    private let variables: [String]
    private let inputVariables: [Int?]
    private let variableTypes: [Set<DataType>]

    package init(inputs: [Parameter], outputs: [Parameter], types: [String: Set<DataType>],
                 valueTypes: [String: Set<ValueType>] = [:], shape: ShapeRule? = nil) {
        let types = types.merging(valueTypes.mapValues { Set($0.map(\.element)) }) { $0.union($1) }
        self.inputs = inputs
        self.outputs = outputs
        self.types = types
        self.valueTypes = valueTypes
        self.shape = shape
        variables = types.keys.sorted()
        variableTypes = variables.map { types[$0] ?? [] }
        inputVariables = inputs.map { input in
            guard case .variable(let name) = input.type else { return nil }
            return types.keys.sorted().firstIndex(of: name)
        }
    }

    /// An input of element type `T` and an output of the same type and shape (names "X", "Y"
    /// unless given): the unary elementwise operators and activations.
    package static func unary(_ allowed: Set<DataType>, input: String = "X", output: String = "Y",
                              variable: String = "T", result: DataType? = nil) -> OperatorContract {
        OperatorContract(inputs: [Parameter(input, variable)],
                         outputs: [result.map { Parameter(output, $0) } ?? Parameter(output, variable)],
                         types: [variable: allowed], shape: .sameAs(0))
    }

    // MARK: Checking

    /// Formal input at `position`, and the name to call it by in messages.
    private func formal(at position: Int) -> (index: Int, name: String)? {
        if position < inputs.count {
            if case .variadic = inputs[position].arity { return (position, "\(inputs[position].name)[0]") }
            return (position, inputs[position].name)
        }
        guard let last = inputs.indices.last, case .variadic = inputs[last].arity else { return nil }
        return (last, "\(inputs[last].name)[\(position - last)]")
    }

    /// Checks a node's inputs: `count` positions, `present(i)` false for an omitted one,
    /// `elementType(i)` and `valueKind(i)` nil where unknown. Returns the element type bound to each variable (by
    /// `variables` order; nil where unknown). Throws `OpError` of `kind` naming the input by its
    /// schema name.
    private func check(count: Int, present: (Int) -> Bool, elementType: (Int) -> DataType?, valueKind: (Int) -> ValueKind?,
                       kind: OpError.Kind) throws(OpError) -> [DataType?] {
        var count = min(count, coveredPositions ?? count)
        while count > 0 && !present(count - 1) { count -= 1 }
        if count > 0, formal(at: count - 1) == nil {
            throw OpError("takes at most \(inputs.count) inputs (\(inputs.map(\.name).joined(separator: ", "))), got \(count)", kind: kind)
        }
        for (index, input) in inputs.enumerated() {
            switch input.arity {
            case .required where index >= count || !present(index):
                throw OpError("missing required input '\(input.name)'", kind: kind)
            case .variadic(let min):
                if let omitted = (index..<max(index, count)).first(where: { !present($0) }) {
                    throw OpError("input '\(input.name)[\(omitted - index)]' is omitted; a variadic input takes values only", kind: kind)
                }
                if count - index < min {
                    throw OpError("needs at least \(min) '\(input.name)' inputs, got \(max(0, count - index))", kind: kind)
                }
            default: break
            }
        }
        var bindings = [DataType?](repeating: nil, count: variables.count)
        var boundBy = [String](repeating: "", count: variables.count)
        for position in 0..<count where present(position) {
            guard let (index, name) = formal(at: position) else { continue }
            try checkKind(of: inputs[index], name: name, valueKind(position), elementType(position), kind: kind)
            guard let type = elementType(position) else { continue }
            switch inputs[index].type {
            case .fixed(let fixed):
                if type != fixed {
                    throw OpError("input '\(name)' has element type \(type); it must be \(fixed)", kind: kind)
                }
            case .variable(let variable):
                guard let slot = inputVariables[index] else { continue }
                // A heterogeneous variadic input's positions neither bind the variable nor meet it.
                let binds = inputs[index].homogeneous
                if binds, let bound = bindings[slot] {
                    if bound != type {
                        throw OpError("inputs '\(boundBy[slot])' and '\(name)' must have one element type (\(variable)), got \(bound) and \(type)",
                                      kind: kind)
                    }
                    continue
                }
                guard variableTypes[slot].contains(type) else {
                    throw OpError("input '\(name)' has element type \(type); \(variable) must be one of: \(ElementTypes.names(variableTypes[slot]))",
                                  kind: kind)
                }
                if binds {
                    bindings[slot] = type
                    boundBy[slot] = name
                }
            }
        }
        return bindings
    }

    /// Checks the kind of value at a formal `input` (called `name`): a tensor unless its variable
    /// has `valueTypes`, then one of those (with `element`, when known).
    private func checkKind(of input: Parameter, name: String, _ valueKind: ValueKind?, _ element: DataType?,
                           kind: OpError.Kind) throws(OpError) {
        guard let valueKind else { return }
        guard case .variable(let variable) = input.type, let allowed = valueTypes[variable] else {
            if valueKind != .tensor { throw OpError("input '\(name)' has kind \(valueKind); it must be a tensor", kind: kind) }
            return
        }
        let accepted = element.map { allowed.contains(ValueType(valueKind, $0)) } ?? allowed.contains { $0.kind == valueKind }
        guard accepted else {
            let what = element.map { "type \(ValueType(valueKind, $0))" } ?? "kind \(valueKind)"
            throw OpError("input '\(name)' has \(what); \(variable) must be one of: \(ValueType.names(allowed))", kind: kind)
        }
    }

    /// The load-time check of a node's inputs (`inputs[i]` nil where omitted or unknown;
    /// `present[i]` false where omitted). Returns the output types when the contract has a shape
    /// rule (nil: the operator's `outputTypes` gives them). Throws `OpError` (kind `.failure`).
    /// `kinds[i]`: the input's kind of value, nil (or absent) where unknown.
    package func check(_ inputs: [TensorType?], present: [Bool], kinds: [ValueKind?] = []) throws -> [TensorType?]? {
        let bindings = try check(count: present.count, present: { present[$0] },
                                 elementType: { inputs.type($0)?.dataType },
                                 valueKind: { $0 < kinds.count ? kinds[$0] : nil }, kind: .failure)
        guard let shape else { return nil }
        let dims: [Dim]?
        switch shape {
        case .sameAs(let index): dims = inputs.type(index)?.dims
        case .broadcast: dims = try TensorType.broadcast(present.indices.filter { present[$0] }.map { inputs.type($0)?.dims })
        }
        let outputTypes = outputs.map { output -> TensorType? in
            switch output.type {
            case .fixed(let type): return TensorType(type, dims)
            case .variable(let name):
                guard let slot = variables.firstIndex(of: name), let type = bindings[slot] else { return nil }
                return TensorType(type, dims)
            }
        }
        return outputTypes
    }

    /// The run-time check of a step's inputs (nil: omitted). Throws `OpError.invalidArgument`: at
    /// run time an element type the load could not know comes from the feeds.
    package func check(_ inputs: [Tensor?]) throws(OpError) {
        _ = try check(count: inputs.count, present: { inputs[$0] != nil }, elementType: { inputs[$0]?.dataType },
                      valueKind: { _ in .tensor }, kind: .invalidArgument)
    }

    /// The run-time check of a `ValueOperator` step's values (nil: omitted). Throws
    /// `OpError.invalidArgument`.
    package func check(values inputs: [Value?]) throws(OpError) {
        _ = try check(count: inputs.count, present: { inputs[$0] != nil }, elementType: { inputs[$0]?.elementType },
                      valueKind: { inputs[$0]?.kind }, kind: .invalidArgument)
    }
}

/// A node's operator with its definition's contract for the node's version, as a plan holds them.
package struct CompiledOperator: Sendable {
    package let op: any Operator
    /// Nil when the operator checks its inputs itself.
    package let contract: OperatorContract?

    /// The load-time output types (after the contract's check), every input present.
    package func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        try OperatorContract.outputTypes(of: op, contract: contract, inputs, present: inputs.map { _ in true })
    }

    /// Runs the operator after the run-time check of its contract (what a plan does for a step
    /// whose input types were not known at load).
    package func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        try contract?.check(inputs)
        return try op.run(inputs, context)
    }
}

extension OperatorContract {
    /// The output types of `op` for these input types (`present[i]` false for an omitted input),
    /// after the contract's check: from its shape rule when it has one, else from the operator.
    /// Without a contract, the operator's `outputTypes` alone.
    package static func outputTypes(of op: any Operator, contract: OperatorContract?, _ inputs: [TensorType?],
                                    present: [Bool], kinds: [ValueKind?] = []) throws -> [TensorType?] {
        guard let contract else { return try op.outputTypes(inputs) }
        return try contract.check(inputs, present: present, kinds: kinds) ?? op.outputTypes(inputs)
    }
}

extension OperatorContract.ValueType {
    /// `types` by their ONNX type strings, sorted, for messages.
    static func names(_ types: Set<Self>) -> String { types.map(\.description).sorted().joined(separator: ", ") }
}

extension Value {
    /// The element type of the tensor, of the sequence's tensors, of the map's values or of the
    /// optional's value; nil for an empty optional.
    var elementType: DataType? {
        switch self {
        case .tensor(let tensor): tensor.dataType
        case .sequence(let sequence): sequence.elementType
        case .map(let map): map.values.dataType
        case .optional(let value, _): value?.elementType
        }
    }
}
