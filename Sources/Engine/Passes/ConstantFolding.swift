import Kernels
import Tensors

/// Runs, at load, every node whose inputs are all constants, and replaces it by its results.
/// Chains fold too (a folded output is a constant for the nodes after it). Operators with
/// random output are left alone.
struct ConstantFolding: GraphPass {
    var name: String { "constant-folding" }

    static let nondeterministic: Set<String> = [
        "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
    ]

    func run(_ graph: inout Graph, opsets: [String: Int]) throws(EngineError) {
        let order = try GraphOrder.sorted(graph)
        let context = ExecutionContext(pool: BufferPool(retainLimit: 0), parallelism: .serial)
        var folded = Set<Int>()
        for index in order {
            let node = graph.nodes[index]
            guard !Self.nondeterministic.contains(node.opType),
                  node.inputs.allSatisfy({ $0.isEmpty || graph.initializers[$0] != nil }),
                  case .success = OperatorRegistry.resolve(node, opsets: opsets) else { continue }
            let inputs = node.inputs.map { $0.isEmpty ? nil : graph.initializers[$0] }
            // A node that fails here fails the same way at run time; leave it for then.
            guard let op = try? OperatorRegistry.make(node, opsets: opsets, constants: inputs),
                  let results = try? op.run(inputs, context),
                  node.outputs.indices.allSatisfy({ node.outputs[$0].isEmpty || $0 < results.count }) else { continue }
            for (position, output) in node.outputs.enumerated() where !output.isEmpty {
                graph.initializers[output] = results[position]
            }
            folded.insert(index)
        }
        graph.nodes = graph.nodes.enumerated().filter { !folded.contains($0.offset) }.map(\.element)
    }
}
