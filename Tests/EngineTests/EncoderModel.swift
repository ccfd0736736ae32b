import Engine
import Tensors
import TestSupport

/// A small attention block as exported encoders have it, for the run-error and working-memory tests.
enum EncoderModel {
    /// Token ids [batch, sequence] → embedding [B, S, 16] → heads reshaped by a target computed
    /// from shapes (Shape → Gather → Unsqueeze → Concat) → scores [B, 4, S, S] → softmax →
    /// context → back to [B, S, 16] → dense + residual.
    static func model() -> Model {
        var generator = SeededGenerator(seed: 7)
        func weight(_ shape: Shape) -> Tensor { Tensor(generator.floats(shape.elementCount), shape: shape) }
        func ints(_ values: [Int64]) -> Tensor { Tensor(values, shape: [values.count]) }
        let initializers: [String: Tensor] = [
            "embedding": weight([100, 16]), "dense": weight([16, 16]), "bias": weight([16]),
            "zero": Tensor(scalar: Int64(0)), "one": Tensor(scalar: Int64(1)), "axes0": ints([0]),
            "heads": ints([4]), "width": ints([4]), "hidden": ints([16]), "scale": Tensor(scalar: Float(0.5)),
        ]
        func node(_ name: String, _ op: String, _ inputs: [String], _ attributes: [String: AttributeValue] = [:]) -> Node {
            Node(name: name, opType: op, inputs: inputs, outputs: [name], attributes: attributes)
        }
        let nodes = [
            node("x", "Gather", ["embedding", "ids"]),
            node("shape", "Shape", ["x"]),
            node("b", "Gather", ["shape", "zero"]), node("s", "Gather", ["shape", "one"]),
            node("b1", "Unsqueeze", ["b", "axes0"]), node("s1", "Unsqueeze", ["s", "axes0"]),
            node("split", "Concat", ["b1", "s1", "heads", "width"], ["axis": .int(0)]),
            node("joined", "Concat", ["b1", "s1", "hidden"], ["axis": .int(0)]),
            node("x4", "Reshape", ["x", "split"]),
            node("q", "Transpose", ["x4"], ["perm": .ints([0, 2, 1, 3])]),
            node("k", "Transpose", ["x4"], ["perm": .ints([0, 2, 3, 1])]),
            node("scores", "MatMul", ["q", "k"]),
            node("scaled", "Mul", ["scores", "scale"]),
            node("weights", "Softmax", ["scaled"], ["axis": .int(-1)]),
            node("context", "MatMul", ["weights", "q"]),
            node("back", "Transpose", ["context"], ["perm": .ints([0, 2, 1, 3])]),
            node("flat", "Reshape", ["back", "joined"]),
            node("projected", "MatMul", ["flat", "dense"]),
            node("biased", "Add", ["projected", "bias"]),
            node("y", "Add", ["biased", "x"]),
        ]
        let graph = Graph(nodes: nodes,
                          inputs: [ValueInfo(name: "ids", type: TensorType(.int64, [.symbolic("batch"), .symbolic("sequence")]))],
                          outputs: [ValueInfo(name: "y", type: nil)], initializers: initializers)
        return Model(graph: graph, opsets: ["": 14])
    }

    /// Random token ids (below the vocabulary of 100) of shape [batch, sequence].
    static func ids(_ batch: Int, _ sequence: Int, seed: UInt64 = 1) -> Tensor {
        var generator = SeededGenerator(seed: seed)
        return Tensor((0..<(batch * sequence)).map { _ in Int64.random(in: 0..<100, using: &generator) }, shape: [batch, sequence])
    }
}
