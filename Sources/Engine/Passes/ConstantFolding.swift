import Kernels
import Tensors

/// Runs, at load, every node whose inputs are all constants, and replaces it by its results.
/// Chains fold too (a folded output is a constant for the nodes after it). Operators whose
/// definition has the `random` or `subgraphs` trait are left alone.
///
/// Folded values live as long as the model, and their sizes come from the file's values (a
/// ConstantOfShape of [2^31] is a few bytes), so folding is bounded by what the file holds: a node
/// folds only when its outputs' sizes are known before it runs and fit what is left of a budget
/// of `minimumBudget` or twice the initializers' bytes. (Outputs whose size only running tells,
/// as NonZero's, fold when the inputs are small.) A node that does not fold runs with each request,
/// under the run-time limits.
struct ConstantFolding: GraphPass {
    var name: String { "constant-folding" }

    /// Bytes folding may always add, whatever the initializers hold.
    static let minimumBudget = 256 << 20
    /// Largest inputs (bytes, together) of a node whose output size is unknown until it runs.
    static let smallInputBytes = 1 << 20

    func run(_ graph: inout Graph, opsets: [String: Int]) throws(EngineError) {
        let order = try GraphOrder.sorted(graph)
        let context = ExecutionContext(pool: BufferPool(retainLimit: 0), parallelism: .serial)
        let initializerBytes = graph.initializers.values.reduce(0) { $0 + Self.bytes(of: $1) }
        var budget = max(Self.minimumBudget, initializerBytes.multipliedReportingOverflow(by: 2).partialValue)
        var folded = Set<Int>()
        for index in order {
            let node = graph.nodes[index]
            // Random operators and those with subgraphs (a Loop's body could run for long at load)
            // run per request: their definitions say so (`OperatorDefinition.Traits`).
            guard node.inputs.allSatisfy({ $0.isEmpty || graph.initializers[$0] != nil }),
                  case .success(let (definition, _)) = OperatorRegistry.resolve(node, opsets: opsets),
                  definition.traits.isDisjoint(with: [.random, .subgraphs]) else { continue }
            let inputs = node.inputs.map { $0.isEmpty ? nil : graph.initializers[$0] }
            // A node that fails here fails the same way at run time; leave it for then.
            guard let compiled = try? OperatorRegistry.compile(node, opsets: opsets, constants: inputs),
                  Self.fits(compiled, node: node, inputs: inputs, budget: budget),
                  let results = try? compiled.run(inputs, context),
                  node.outputs.indices.allSatisfy({ node.outputs[$0].isEmpty || $0 < results.count }) else { continue }
            for (position, output) in node.outputs.enumerated() where !output.isEmpty {
                graph.initializers[output] = results[position]
                budget -= Self.bytes(of: results[position])
            }
            folded.insert(index)
        }
        graph.nodes = graph.nodes.enumerated().filter { !folded.contains($0.offset) }.map(\.element)
    }

    /// True when the outputs `op` will produce from `inputs` are known to fit `budget` bytes (or
    /// their size is unknown but the inputs are small).
    private static func fits(_ compiled: CompiledOperator, node: Node, inputs: [Tensor?], budget: Int) -> Bool {
        // Inputs the operator's type rules refuse are never run: the plan refuses the model.
        guard let types = try? OperatorContract.outputTypes(of: compiled.op, contract: compiled.contract,
                                                            inputs.map { $0.map { TensorType($0.dataType, shape: $0.shape) } },
                                                            present: node.inputs.map { !$0.isEmpty }) else { return false }
        var total = 0
        for (position, output) in node.outputs.enumerated() where !output.isEmpty {
            guard position < types.count, let type = types[position], let shape = type.shape,
                  let count = shape.checkedElementCount else {
                return budget > 0 && inputs.reduce(0) { $0 + ($1.map(bytes(of:)) ?? 0) } <= smallInputBytes
            }
            // Strings are counted at 16 bytes each, about their smallest size.
            let elementSize = type.dataType == .string ? 16 : type.dataType.byteSize
            let (bytes, overflow) = count.multipliedReportingOverflow(by: elementSize)
            let (sum, sumOverflow) = total.addingReportingOverflow(bytes)
            guard !overflow, !sumOverflow, sum <= budget else { return false }
            total = sum
        }
        return true
    }

    private static func bytes(of tensor: Tensor) -> Int {
        tensor.dataType == .string ? 16 * tensor.elementCount : tensor.byteCount
    }
}
