import Kernels
import Tensors

/// Turns MatMul by a constant matrix followed by Add of a constant bias vector into one
/// FusedGemm, which adds the bias in its epilogue (a fully connected layer, as exported for inputs
/// with more than two axes). FusedGemm flattens A's leading axes into rows, so any A rank works.
/// ONNX Runtime's transformer optimiser writes the feed-forward layer's MatMul + Add + Gelu as
/// MatMul + com.microsoft BiasGelu (or FastGelu, with or without its bias, or Gelu): the FusedGemm
/// then takes the bias and the GELU too, instead of another pass over the widest activation.
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
        for (index, node) in graph.nodes.enumerated() where node.domain == "com.microsoft" && node.outputs.count == 1 {
            let activation: Activation
            switch node.opType {
            case "BiasGelu" where node.inputs.count == 2: activation = .gelu
            case "Gelu" where node.inputs.count == 1: activation = .gelu
            case "FastGelu" where (1...2).contains(node.inputs.count): activation = .geluTanh
            default: continue
            }
            let bias = node.inputs.count == 2 && !node.inputs[1].isEmpty ? node.inputs[1] : nil
            guard let producer = producers[node.inputs[0]], graph.nodes[producer].isStandard("MatMul"),
                  graph.nodes[producer].inputs.count == 2, graph.nodes[producer].outputs.count == 1,
                  graph.hasSingleReader(node.inputs[0], uses: uses, outputs: outputs),
                  let matrix = graph.initializers[graph.nodes[producer].inputs[1]], matrix.dataType == .float,
                  matrix.shape.rank == 2 else { continue }
            if let bias {
                guard let vector = graph.initializers[bias], vector.dataType == .float, vector.shape.dims == [matrix.shape[1]] else { continue }
            }
            let matMul = graph.nodes[producer]
            graph.nodes[producer] = Node(name: matMul.name, opType: "FusedGemm", domain: OperatorRegistry.internalDomain,
                                         inputs: matMul.inputs + (bias.map { [$0] } ?? []), outputs: node.outputs,
                                         attributes: activation.fusedAttributes())
            producers[node.outputs[0]] = producer
            removed.insert(index)
        }
        graph.removeNodes(removed)
    }
}
