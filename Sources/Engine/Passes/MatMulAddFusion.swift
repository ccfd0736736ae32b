import Tensors

/// Turns MatMul by a constant matrix followed by Add of a constant bias vector into one
/// FusedGemm, which adds the bias in its epilogue (a fully connected layer, as exported for inputs
/// with more than two axes). FusedGemm flattens A's leading axes into rows, so any A rank works.
struct MatMulAddFusion: GraphPass {
    var name: String { "matmul-add-fusion" }

    func run(_ graph: inout Graph, opsets: [String: Int]) throws(EngineError) {
        let outputs = graph.outputNames, uses = graph.useCounts
        var producers = graph.producers
        var removed = Set<Int>()
        for (index, add) in graph.nodes.enumerated() where add.isStandard("Add") {
            guard add.inputs.count == 2, add.outputs.count == 1 else { continue }
            for side in 0..<2 {
                let value = add.inputs[side], bias = add.inputs[1 - side]
                guard let producer = producers[value], graph.nodes[producer].isStandard("MatMul"),
                      graph.nodes[producer].inputs.count == 2,
                      graph.hasSingleReader(value, uses: uses, outputs: outputs),
                      let matrix = graph.initializers[graph.nodes[producer].inputs[1]], matrix.dataType == .float,
                      matrix.shape.rank == 2,
                      let vector = graph.initializers[bias], vector.dataType == .float, vector.shape.rank <= 1,
                      vector.elementCount == 1 || vector.elementCount == matrix.shape[1] else { continue }
                let matMul = graph.nodes[producer]
                graph.nodes[producer] = Node(name: matMul.name, opType: "FusedGemm", domain: OperatorRegistry.internalDomain,
                                             inputs: matMul.inputs + [bias], outputs: add.outputs)
                producers[add.outputs[0]] = producer
                removed.insert(index)
                break
            }
        }
        graph.removeNodes(removed)
    }
}
