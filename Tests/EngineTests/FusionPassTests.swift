import Engine
import Kernels
import Tensors
import Testing

/// The fusion passes on small graphs: what the optimised graph holds, and that it computes what
/// the unfused operators would (computed here from an unfused Conv/Gemm model plus the elementwise
/// arithmetic written out).
@Suite struct FusionPassTests {
    typealias T = ConvTestSupport

    static let x = T.random([1, 3, 6, 5], seed: 1)
    static let weights = T.random([4, 3, 3, 3], seed: 2)
    static let pads: [String: AttributeValue] = ["pads": .ints([1, 1, 1, 1])]

    /// The plain convolution of `x` (no optimisation), as the starting point of expectations.
    static func convolution(bias: Tensor? = nil) throws -> [Float] {
        var initializers = ["w": weights]
        if let bias { initializers["b"] = bias }
        let conv = Node(name: "conv", opType: "Conv", inputs: bias == nil ? ["x", "w"] : ["x", "w", "b"], outputs: ["y"],
                        attributes: pads)
        let model = T.model([conv], inputs: [("x", x.shape)], outputs: ["y"], initializers: initializers)
        return try T.run(model, ["x": x], optimize: false)[0].scalars(as: Float.self)
    }

    static func optimized(_ model: Model) throws -> [Node] {
        try GraphOptimizer.optimize(model.graph, opsets: model.opsets).nodes
    }

    @Test func convBatchNormReluBecomesOneFusedConv() throws {
        let (scale, shift, mean, variance) = (T.random([4], seed: 3), T.random([4], seed: 4), T.random([4], seed: 5),
                                              Tensor([0.5, 1, 1.5, 2] as [Float], shape: [4]))
        let nodes = [
            Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"], attributes: Self.pads),
            Node(name: "bn", opType: "BatchNormalization", inputs: ["c", "scale", "shift", "mean", "var"], outputs: ["n"],
                 attributes: ["epsilon": .float(1e-3)]),
            Node(name: "relu", opType: "Relu", inputs: ["n"], outputs: ["y"]),
        ]
        let model = T.model(nodes, inputs: [("x", Self.x.shape)], outputs: ["y"],
                            initializers: ["w": Self.weights, "scale": scale, "shift": shift, "mean": mean, "var": variance])
        let fused = try Self.optimized(model)
        #expect(fused.map(\.opType) == ["FusedConv"])
        #expect(fused.first?.inputs.count == 3)
        let conv = try Self.convolution()
        let expected = conv.indices.map { at -> Float in
            let c = at / 30
            let normalized = (conv[at] - mean.scalars(as: Float.self)[c]) / (variance.scalars(as: Float.self)[c] + 1e-3).squareRoot()
            return max(0, normalized * scale.scalars(as: Float.self)[c] + shift.scalars(as: Float.self)[c])
        }
        #expect(T.isClose(try T.run(model, ["x": Self.x])[0].scalars(as: Float.self), expected))

        var training = model
        training.graph.nodes[1].attributes["training_mode"] = .int(1)
        #expect(try Self.optimized(training).map(\.opType) == ["Conv", "BatchNormalization", "Relu"])
    }

    @Test func residualAddAndActivationJoinTheLaterConv() throws {
        let skip = T.random([1, 4, 6, 5], seed: 6)
        let nodes = [
            Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"], attributes: Self.pads),
            Node(name: "add", opType: "Add", inputs: ["s", "c"], outputs: ["a"]),
            Node(name: "relu", opType: "HardSigmoid", inputs: ["a"], outputs: ["y"], attributes: ["alpha": .float(0.3)]),
        ]
        let model = T.model(nodes, inputs: [("x", Self.x.shape), ("s", skip.shape)], outputs: ["y"], initializers: ["w": Self.weights])
        let fused = try Self.optimized(model)
        #expect(fused.map(\.opType) == ["FusedConv"])
        #expect(fused.first?.inputs == ["x", "w", "", "s"])
        let conv = try Self.convolution(), residual = skip.scalars(as: Float.self)
        let expected = conv.indices.map { min(max(0.3 * (conv[$0] + residual[$0]) + 0.5, 0), 1) }
        #expect(T.isClose(try T.run(model, ["x": Self.x, "s": skip])[0].scalars(as: Float.self), expected))

        // Two convolutions meeting at an Add: the one that runs later takes the Add.
        let pair = T.model([
            Node(name: "first", opType: "Conv", inputs: ["x", "w"], outputs: ["c1"], attributes: Self.pads),
            Node(name: "second", opType: "Conv", inputs: ["x", "w"], outputs: ["c2"], attributes: Self.pads),
            Node(name: "add", opType: "Add", inputs: ["c2", "c1"], outputs: ["y"]),
        ], inputs: [("x", Self.x.shape)], outputs: ["y"], initializers: ["w": Self.weights])
        let pairFused = try Self.optimized(pair)
        #expect(pairFused.map(\.opType) == ["Conv", "FusedConv"])
        #expect(pairFused.last?.inputs.last == "c1")
        #expect(T.isClose(try T.run(pair, ["x": Self.x])[0].scalars(as: Float.self), conv.map { 2 * $0 }))
    }

    @Test func constantChannelAddJoinsTheBias() throws {
        let bias = T.random([4], seed: 7), addend = T.random([1, 4, 1, 1], seed: 8)
        let model = T.model([
            Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: Self.pads),
            Node(name: "add", opType: "Add", inputs: ["c", "k"], outputs: ["y"]),
        ], inputs: [("x", Self.x.shape)], outputs: ["y"], initializers: ["w": Self.weights, "b": bias, "k": addend])
        let fused = try Self.optimized(model)
        #expect(fused.map(\.opType) == ["Conv"])
        let conv = try Self.convolution(bias: bias), extra = addend.scalars(as: Float.self)
        #expect(T.isClose(try T.run(model, ["x": Self.x])[0].scalars(as: Float.self), conv.indices.map { conv[$0] + extra[$0 / 30] }))
    }

    @Test func channelScaleFoldsAndSumActsAsAdd() throws {
        let bias = T.random([4], seed: 15), scale = T.random([4, 1, 1], seed: 16), skip = T.random([1, 4, 6, 5], seed: 17)
        let model = T.model([
            Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: Self.pads),
            Node(name: "mul", opType: "Mul", inputs: ["k", "c"], outputs: ["m"]),
            Node(name: "sum", opType: "Sum", inputs: ["m", "s"], outputs: ["y"]),
        ], inputs: [("x", Self.x.shape), ("s", skip.shape)], outputs: ["y"], initializers: ["w": Self.weights, "b": bias, "k": scale])
        let fused = try Self.optimized(model)
        #expect(fused.map(\.opType) == ["FusedConv"])
        let conv = try Self.convolution(bias: bias), factors = scale.scalars(as: Float.self), residual = skip.scalars(as: Float.self)
        let expected = conv.indices.map { conv[$0] * factors[$0 / 30] + residual[$0] }
        #expect(T.isClose(try T.run(model, ["x": Self.x, "s": skip])[0].scalars(as: Float.self), expected))
    }

    @Test func valuesOthersReadAreNotFused() throws {
        let exposed = T.model([
            Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"], attributes: Self.pads),
            Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["y"]),
        ], inputs: [("x", Self.x.shape)], outputs: ["y", "c"], initializers: ["w": Self.weights])
        #expect(try Self.optimized(exposed).map(\.opType) == ["Conv", "Relu"])
        let results = try T.run(exposed, ["x": Self.x])
        let conv = try Self.convolution()
        #expect(results[1].scalars(as: Float.self) == conv)
        #expect(results[0].scalars(as: Float.self) == conv.map { max(0, $0) })

        let shared = T.model([
            Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"], attributes: Self.pads),
            Node(name: "relu1", opType: "Relu", inputs: ["c"], outputs: ["y1"]),
            Node(name: "relu2", opType: "Relu", inputs: ["c"], outputs: ["y2"]),
        ], inputs: [("x", Self.x.shape)], outputs: ["y1", "y2"], initializers: ["w": Self.weights])
        #expect(try Self.optimized(shared).map(\.opType) == ["Conv", "Relu", "Relu"])
    }

    @Test func matMulAddActivationBecomesFusedGemm() throws {
        let a = T.random([2, 3, 4], seed: 9), b = T.random([4, 5], seed: 10), c = T.random([5], seed: 11)
        let model = T.model([
            Node(name: "matmul", opType: "MatMul", inputs: ["a", "b"], outputs: ["p"]),
            Node(name: "add", opType: "Add", inputs: ["c", "p"], outputs: ["s"]),
            Node(name: "act", opType: "LeakyRelu", inputs: ["s"], outputs: ["y"]),
        ], inputs: [("a", a.shape)], outputs: ["y"], initializers: ["b": b, "c": c])
        let fused = try Self.optimized(model)
        #expect(fused.map(\.opType) == ["FusedGemm"])
        let y = try T.run(model, ["a": a])[0]
        #expect(y.shape == [2, 3, 5])
        let product = MatrixOperatorTests.product(a.scalars(as: Float.self), b.scalars(as: Float.self), m: 6, k: 4, n: 5)
        let expected = product.indices.map { at -> Float in
            let value = product[at] + c.scalars(as: Float.self)[at % 5]
            return value < 0 ? 0.01 * value : value
        }
        #expect(T.isClose(y.scalars(as: Float.self), expected))
    }

    @Test func clipWithConstantBoundsFusesIntoGemm() throws {
        let a = T.random([3, 4], seed: 12), b = T.random([5, 4], seed: 13), c = T.random([5], seed: 14)
        let gemm = Node(name: "gemm", opType: "Gemm", inputs: ["a", "b", "c"], outputs: ["g"],
                        attributes: ["transB": .int(1), "alpha": .float(3)])
        let clip = Node(name: "clip", opType: "Clip", inputs: ["g", "low", "high"], outputs: ["y"])
        let bounds = ["low": Tensor(scalar: Float(-0.5)), "high": Tensor(scalar: Float(0.5))]
        let model = T.model([gemm, clip], inputs: [("a", a.shape)], outputs: ["y"],
                            initializers: bounds.merging(["b": b, "c": c]) { x, _ in x })
        #expect(try Self.optimized(model).map(\.opType) == ["FusedGemm"])
        var plain = gemm
        plain.outputs = ["y"]
        let unfused = try T.run(T.model([plain], inputs: [("a", a.shape)], outputs: ["y"], initializers: ["b": b, "c": c]),
                                ["a": a], optimize: false)[0]
        #expect(T.isClose(try T.run(model, ["a": a])[0].scalars(as: Float.self),
                          unfused.scalars(as: Float.self).map { min(max($0, -0.5), 0.5) }))
        // Bounds computed at run time keep the Clip separate.
        let dynamic = T.model([gemm, clip], inputs: [("a", a.shape), ("low", []), ("high", [])], outputs: ["y"],
                              initializers: ["b": b, "c": c])
        #expect(try Self.optimized(dynamic).map(\.opType) == ["Gemm", "Clip"])
    }
}
