import Engine
import Tensors
import Testing

/// Operator properties that passes act on live in the operators' definitions.
@Suite struct OperatorTraitsTests {
    typealias T = ConvTestSupport

    /// Exactly the random operators and the ONNX operators with graph attributes carry the traits.
    @Test func definitionsCarryTheTraits() {
        let definitions = OperatorRegistry.definitions.values
        let random = Set(definitions.filter { $0.traits.contains(.random) }.map(\.opType))
        let subgraphs = Set(definitions.filter { $0.traits.contains(.subgraphs) }.map(\.opType))
        #expect(random == ["RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Bernoulli", "Multinomial", "Dropout"])
        #expect(subgraphs == ["If", "Loop", "Scan", "SequenceMap"])
    }

    /// Constant folding runs a deterministic node of constants at load and leaves a random one
    /// to each run (whose draws then differ).
    @Test func constantFoldingLeavesRandomOperators() throws {
        let constant = Tensor([Float](repeating: 0.5, count: 64), shape: [64])
        let nodes = [
            Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
            Node(name: "draw", opType: "RandomUniformLike", inputs: ["r"], outputs: ["u"]),
            Node(name: "add", opType: "Add", inputs: ["u", "x"], outputs: ["y"]),
        ]
        let model = T.model(nodes, inputs: [("x", [64])], outputs: ["y"], initializers: ["c": constant])
        let optimized = try GraphOptimizer.optimize(model.graph, opsets: model.opsets)
        #expect(optimized.nodes.map(\.opType) == ["RandomUniformLike", "Add"])
        let x = Tensor([Float](repeating: 0, count: 64), shape: [64])
        let first = try T.run(model, ["x": x])[0].scalars(as: Float.self), second = try T.run(model, ["x": x])[0].scalars(as: Float.self)
        #expect(first != second)
    }
}
