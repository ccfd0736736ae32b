import Tensors

/// Structural checks and topological order of a graph.
enum GraphOrder {
    /// Node indices in an order where every node comes after the producers of its inputs.
    ///
    /// Throws when a node reads a value nobody produces, two nodes (or a node and an input or
    /// initializer) produce the same value, a graph output is never produced, or the nodes form
    /// a cycle.
    static func sorted(_ graph: Graph) throws(EngineError) -> [Int] {
        var producer: [String: Int] = [:]
        var external = Set(graph.inputs.map(\.name))
        external.formUnion(graph.initializers.keys)
        for (index, node) in graph.nodes.enumerated() {
            for output in node.outputs where !output.isEmpty {
                if external.contains(output) {
                    throw .invalidGraph("\(node.label) writes '\(output)', which is already a graph input or initializer")
                }
                if let other = producer[output] {
                    throw .invalidGraph("value '\(output)' is produced by both \(graph.nodes[other].label) and \(node.label)")
                }
                producer[output] = index
            }
        }
        var pending = [Int](repeating: 0, count: graph.nodes.count)
        var consumers = [[Int]](repeating: [], count: graph.nodes.count)
        for (index, node) in graph.nodes.enumerated() {
            for input in node.inputs where !input.isEmpty {
                if let source = producer[input] {
                    pending[index] += 1
                    consumers[source].append(index)
                } else if !external.contains(input) {
                    throw .invalidGraph("\(node.label) reads '\(input)', which no node, graph input or initializer produces")
                }
            }
        }
        for output in graph.outputs where producer[output.name] == nil && !external.contains(output.name) {
            throw .invalidGraph("graph output '\(output.name)' is not produced by any node")
        }
        // Kahn's algorithm; a stable queue keeps the file's order where it is already valid.
        var ready = (0..<graph.nodes.count).filter { pending[$0] == 0 }
        var order: [Int] = []
        order.reserveCapacity(graph.nodes.count)
        var head = 0
        while head < ready.count {
            let index = ready[head]
            head += 1
            order.append(index)
            for consumer in consumers[index] {
                pending[consumer] -= 1
                if pending[consumer] == 0 { ready.append(consumer) }
            }
        }
        if let stuck = (0..<graph.nodes.count).first(where: { pending[$0] > 0 }) {
            throw .invalidGraph("the graph has a cycle through \(graph.nodes[stuck].label)")
        }
        return order
    }
}
