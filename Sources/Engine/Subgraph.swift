import Tensors

/// Subgraphs (the bodies and branches of If, Loop and Scan) made ready before the main graph is
/// ordered, optimised and planned.
///
/// A subgraph may read values of the scopes around it by name. `bind` makes those reads explicit:
/// each name a subgraph reads but does not define becomes an extra input of the subgraph (after
/// its own) and of the node that holds it (after the node's own, listed in the node's
/// `captures` attribute), so ordering, the passes and buffer lifetimes see them as ordinary
/// inputs. Subgraphs nested inside subgraphs are bound first, and each subgraph gets the same
/// passes as the main graph.
package enum SubgraphBinding {
    /// The attribute of a node that lists, in order, the names its subgraphs read from outside
    /// (the node's trailing inputs, as the subgraphs call them).
    package static let capturesAttribute = OperatorRegistry.internalDomain + ".captures"

    /// Subgraphs nested deeper than this are refused.
    static let maximumDepth = 16

    /// `graph` with every subgraph bound (and optimised when `optimize`).
    package static func bind(_ graph: Graph, opsets: [String: Int], optimize: Bool, depth: Int = 0) throws(EngineError) -> Graph {
        var graph = graph
        for index in graph.nodes.indices where graph.nodes[index].attributes.values.contains(where: \.holdsGraphs) {
            guard depth < maximumDepth else {
                throw .invalidGraph("\(graph.nodes[index].label): subgraphs are nested more than \(maximumDepth) deep")
            }
            var node = graph.nodes[index]
            var captures: [String] = []
            func prepared(_ subgraph: Graph) throws(EngineError) -> Graph {
                var subgraph = try bind(subgraph, opsets: opsets, optimize: optimize, depth: depth + 1)
                let free = subgraph.freeNames
                subgraph.inputs += free.map { ValueInfo(name: $0, type: nil, kind: nil) }
                for name in free where !captures.contains(name) { captures.append(name) }
                if optimize { subgraph = try GraphOptimizer.optimize(subgraph, opsets: opsets) }
                return subgraph
            }
            for (name, value) in node.attributes.sorted(by: { $0.key < $1.key }) {
                switch value {
                case .graph(let subgraph): node.attributes[name] = .graph(try prepared(subgraph))
                case .graphs(let subgraphs):
                    var bound: [Graph] = []
                    for subgraph in subgraphs { bound.append(try prepared(subgraph)) }
                    node.attributes[name] = .graphs(bound)
                default: break
                }
            }
            node.inputs += captures
            node.attributes[capturesAttribute] = .strings(captures)
            graph.nodes[index] = node
        }
        return graph
    }
}

extension AttributeValue {
    /// True for a graph or a list of graphs.
    var holdsGraphs: Bool {
        switch self {
        case .graph, .graphs: true
        default: false
        }
    }
}

extension Graph {
    /// Names the graph reads (node inputs, outputs) without defining them (inputs, initializers,
    /// node outputs), in the order first read.
    var freeNames: [String] {
        var defined = Set(inputs.map(\.name)).union(initializers.keys)
        for node in nodes { defined.formUnion(node.outputs.filter { !$0.isEmpty }) }
        var free: [String] = []
        var seen = Set<String>()
        for name in nodes.flatMap(\.inputs) + outputs.map(\.name) where !name.isEmpty && !defined.contains(name) {
            if seen.insert(name).inserted { free.append(name) }
        }
        return free
    }
}

/// A bound subgraph compiled once: its plan, and where each of its inputs comes from. Running it
/// places the feeds and constants in fresh slots and executes the plan; nothing is planned again.
struct Subgraph: Sendable {
    let plan: ExecutionPlan
    /// Slots of the subgraph's own inputs, in order.
    let formalSlots: [Int]
    /// For each captured input of the subgraph: its slot, and its position among the node's captures.
    let captureSlots: [(slot: Int, capture: Int)]
    /// Slots of the outputs, in order.
    let outputSlots: [Int]
    /// Output types inferred at load (nil where unknown).
    let outputTypes: [TensorType?]
    /// Output kinds inferred at load (nil where unknown).
    let outputKinds: [ValueKind?]
    /// Declared kinds of the subgraph's own inputs (nil where not declared).
    let formalKinds: [ValueKind?]

    /// Compiles attribute `name` of the node in `context`, which must hold one graph.
    init(_ context: OperatorContext, attribute name: String) throws {
        guard case .graph(let graph)? = context.attribute(name) else { throw OpError("missing required graph attribute '\(name)'") }
        let captures = try context.strings(SubgraphBinding.capturesAttribute) ?? []
        let plan = try PlanBuilder.build(graph, opsets: context.opsets, inputsChecked: false)
        // `SubgraphBinding.bind` appended the captured names after the subgraph's own inputs.
        let capturedCount = graph.inputs.reversed().prefix { captures.contains($0.name) }.count
        formalSlots = graph.inputs.dropLast(capturedCount).compactMap { plan.inputSlots[$0.name] }
        captureSlots = graph.inputs.suffix(capturedCount).compactMap { input in
            guard let slot = plan.inputSlots[input.name], let position = captures.firstIndex(of: input.name) else { return nil }
            return (slot, position)
        }
        outputSlots = graph.outputs.compactMap { plan.outputSlots[$0.name] }
        guard outputSlots.count == graph.outputs.count else { throw OpError("subgraph '\(name)' has outputs it does not produce") }
        outputTypes = outputSlots.map { plan.slotTypes[$0] }
        outputKinds = outputSlots.map { plan.slotKinds[$0] }
        formalKinds = graph.inputs.dropLast(capturedCount).map(\.kind)
        self.plan = plan
    }

    /// Number of inputs of its own the subgraph takes.
    var formalCount: Int { formalSlots.count }

    /// Runs the subgraph on its own inputs `formal` and the node's captured values `captures`.
    func run(_ formal: [Value], captures: ArraySlice<Value?>, context: ExecutionContext) throws -> [Value] {
        guard formal.count == formalSlots.count else {
            throw OpError("the subgraph takes \(formalSlots.count) inputs, \(formal.count) were given")
        }
        var values = [Value?](repeating: nil, count: plan.slotCount)
        for (slot, tensor) in plan.constants { values[slot] = .tensor(tensor) }
        for (slot, value) in zip(formalSlots, formal) { values[slot] = value }
        for (slot, capture) in captureSlots {
            let index = captures.startIndex + capture
            guard index < captures.endIndex, let value = captures[index] else {
                throw OpError("the subgraph reads an outer value that was not given")
            }
            values[slot] = value
        }
        try plan.execute(plan.fullSchedule, values: &values, context: context)
        var outputs: [Value] = []
        outputs.reserveCapacity(outputSlots.count)
        for slot in outputSlots {
            guard let value = values[slot] else { throw OpError("subgraph output '\(plan.slotNames[slot])' was not produced") }
            outputs.append(value)
        }
        return outputs
    }

    /// `run` for a subgraph of tensors (Scan's body): every output must be a tensor.
    func run(_ formal: [Tensor], captures: ArraySlice<Tensor?>, context: ExecutionContext) throws -> [Tensor] {
        let outputs = try run(formal.map(Value.tensor), captures: ArraySlice(captures.map { $0.map(Value.tensor) }), context: context)
        return try outputs.enumerated().map { index, value in
            guard let tensor = value.tensor else { throw OpError("subgraph output \(index) is a \(value.kind); a tensor is needed") }
            return tensor
        }
    }
}
