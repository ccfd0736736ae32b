import Engine
import Tensors
import Testing

/// If and Loop on small graphs: outer-scope reads through two levels, capture binding, and the
/// main graph's passes inside subgraphs.
@Suite struct ControlFlowTests {
    static let w = Tensor([0.5, -1, 2] as [Float], shape: [3])

    static func value(_ name: String, _ type: DataType, _ dims: [Int]) -> ValueInfo {
        ValueInfo(name: name, type: TensorType(type, shape: Shape(dims)))
    }

    /// y = if positive: x2 · w else: x2 + Loop(3 times: acc + w), where x2 = Identity(x): the
    /// branches read x2 and w from the main graph, the Loop's body reads w from two scopes out.
    static func model() -> Model {
        let thenBranch = Graph(nodes: [Node(name: "scale", opType: "Mul", inputs: ["x2", "w"], outputs: ["t"])],
                               inputs: [], outputs: [ValueInfo(name: "t", type: nil)])
        let body = Graph(nodes: [Node(name: "copy_acc", opType: "Identity", inputs: ["acc_in"], outputs: ["copied"]),
                                 Node(name: "acc", opType: "Add", inputs: ["copied", "w"], outputs: ["acc_out"]),
                                 Node(name: "keep", opType: "Identity", inputs: ["cond_in"], outputs: ["cond_out"])],
                         inputs: [value("i", .int64, []), value("cond_in", .bool, []), value("acc_in", .float, [3])],
                         outputs: [value("cond_out", .bool, []), value("acc_out", .float, [3])])
        let elseBranch = Graph(
            nodes: [Node(name: "loop", opType: "Loop", inputs: ["three", "", "zeros"], outputs: ["acc"], attributes: ["body": .graph(body)]),
                    Node(name: "shift", opType: "Add", inputs: ["x2", "acc"], outputs: ["e"])],
            inputs: [], outputs: [ValueInfo(name: "e", type: nil)],
            initializers: ["three": Tensor(scalar: Int64(3)), "zeros": Tensor(zeros: .float, shape: [3])])
        let graph = Graph(
            nodes: [Node(name: "copy", opType: "Identity", inputs: ["x"], outputs: ["x2"]),
                    Node(name: "choose", opType: "If", inputs: ["positive"], outputs: ["y"],
                         attributes: ["then_branch": .graph(thenBranch), "else_branch": .graph(elseBranch)])],
            inputs: [value("x", .float, [3]), value("positive", .bool, [])], outputs: [ValueInfo(name: "y", type: nil)],
            initializers: ["w": w])
        return Model(graph: graph, opsets: ["": 17])
    }

    @Test(arguments: [true, false])
    func branchesAndLoopsReadOuterScopes(optimizations: Bool) throws {
        let session = try InferenceSession(model: Self.model(), options: .init(intraOpThreads: 1, optimizations: optimizations))
        let x = Tensor([1, 2, 3] as [Float], shape: [3])
        let scaled = try session.run(["x": x, "positive": Tensor(scalar: true)])["y"]
        #expect(scaled?.scalars(as: Float.self) == [0.5, -2, 6])
        let shifted = try session.run(["x": x, "positive": Tensor(scalar: false)])["y"]
        #expect(shifted?.scalars(as: Float.self) == [2.5, -1, 9])
    }

    @Test func bindingListsCapturesAndOptimisesSubgraphs() throws {
        let bound = try SubgraphBinding.bind(Self.model().graph, opsets: ["": 17], optimize: true)
        let choose = try #require(bound.nodes.first { $0.opType == "If" })
        guard case .strings(let captures)? = choose.attributes[SubgraphBinding.capturesAttribute] else {
            Issue.record("the If node has no captures attribute")
            return
        }
        #expect(captures == ["w", "x2"])
        #expect(choose.inputs == ["positive", "w", "x2"])
        guard case .graph(let elseBranch)? = choose.attributes["else_branch"],
              let loop = elseBranch.nodes.first(where: { $0.opType == "Loop" }), case .graph(let body)? = loop.attributes["body"] else {
            Issue.record("the else branch lost its Loop")
            return
        }
        // The Loop reads w from the branch, which reads it from the main graph.
        #expect(loop.inputs == ["three", "", "zeros", "w"])
        #expect(elseBranch.inputs.map(\.name) == ["w", "x2"])
        #expect(body.inputs.map(\.name) == ["i", "cond_in", "acc_in", "w"])
        // The passes ran inside: the body's inner Identity is gone (the one making its output stays).
        #expect(body.nodes.map(\.opType) == ["Add", "Identity"])
        #expect(body.nodes.first?.inputs == ["acc_in", "w"])
        let plain = try SubgraphBinding.bind(Self.model().graph, opsets: ["": 17], optimize: false)
        guard case .graph(let plainElse)? = plain.nodes.first(where: { $0.opType == "If" })?.attributes["else_branch"],
              case .graph(let plainBody)? = plainElse.nodes.first(where: { $0.opType == "Loop" })?.attributes["body"] else {
            Issue.record("the unoptimised binding lost a subgraph")
            return
        }
        #expect(plainBody.nodes.map(\.opType) == ["Identity", "Add", "Identity"])
    }
}
