/// Removes nodes that only forward a value at inference time: Identity, and Dropout whose mask
/// nobody reads. A node whose output is a graph output stays, so the output keeps its name.
struct IdentityElimination: GraphPass {
    var name: String { "identity-elimination" }

    func run(_ graph: inout Graph, opsets: [String: Int]) throws(EngineError) {
        let outputs = graph.outputNames
        var removed = Set<Int>()
        for index in graph.nodes.indices {
            // Read the node afresh: an earlier removal may have renamed its input.
            let node = graph.nodes[index]
            guard node.domain.isEmpty || node.domain == "ai.onnx" else { continue }
            let forwards: Bool
            switch node.opType {
            case "Identity": forwards = node.inputs.count == 1
            case "Dropout": forwards = node.outputs.count < 2 || node.outputs[1].isEmpty
            default: forwards = false
            }
            guard forwards, let input = node.inputs.first, !input.isEmpty, let output = node.outputs.first,
                  !outputs.contains(output) else { continue }
            graph.rename(uses: output, to: input)
            removed.insert(index)
        }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }
}
