import Tensors

/// Small queries and edits the fusion passes share.
extension Graph {
    /// The index of the node that produces each value.
    var producers: [String: Int] {
        var producers: [String: Int] = [:]
        for (index, node) in nodes.enumerated() {
            for output in node.outputs where !output.isEmpty { producers[output] = index }
        }
        return producers
    }

    /// True when `value` is read by exactly one node and is not a graph output, so that its
    /// producer and its consumer may become one node without anybody else losing the value.
    func hasSingleReader(_ value: String, uses: [String: Int], outputs: Set<String>) -> Bool {
        uses[value] == 1 && !outputs.contains(value)
    }

    /// A value name nobody uses yet: `base`, or `base` with a number appended.
    func unusedName(_ base: String) -> String {
        var taken = Set(initializers.keys)
        taken.formUnion(inputs.map(\.name))
        for node in nodes {
            taken.formUnion(node.inputs)
            taken.formUnion(node.outputs)
        }
        if !taken.contains(base) { return base }
        var suffix = 1
        while taken.contains("\(base)_\(suffix)") { suffix += 1 }
        return "\(base)_\(suffix)"
    }

    /// Drops the nodes at `indices`.
    mutating func removeNodes(_ indices: Set<Int>) {
        if indices.isEmpty { return }
        nodes = nodes.enumerated().filter { !indices.contains($0.offset) }.map(\.element)
    }

    /// Drops initializers that no node and no graph output reads any more (replaced weights).
    mutating func removeUnusedInitializers() {
        var used = Set(outputs.map(\.name))
        for node in nodes { used.formUnion(node.inputs) }
        initializers = initializers.filter { used.contains($0.key) }
    }
}

extension Node {
    /// True for an operator of the default ONNX domain.
    var isStandard: Bool { domain.isEmpty || domain == "ai.onnx" }

    /// True for a node of type `opType` in the default domain.
    func isStandard(_ opType: String) -> Bool { isStandard && self.opType == opType }

    /// True for our fused operator `opType`.
    func isInternal(_ opType: String) -> Bool { domain == OperatorRegistry.internalDomain && self.opType == opType }
}
