import Engine
import Kernels
import Tensors
import Testing

/// The fusion passes on small graphs: what the optimised graph holds, and that it computes what
/// the same model computes without optimisations.
@Suite struct FusionPassTests {
    typealias T = ConvTestSupport

    static let x = T.random([1, 3, 6, 5], seed: 1)
    static let weights = T.random([4, 3, 3, 3], seed: 2)
    static let pads: [String: AttributeValue] = ["pads": .ints([1, 1, 1, 1])]

    static func optimized(_ model: Model) throws -> [Node] {
        try GraphOptimizer.optimize(model.graph, opsets: model.opsets).nodes
    }

    /// Runs `model` with and without optimisations and expects the same outputs.
    static func expectSameResults(_ model: Model, _ feeds: [String: Tensor], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let optimized = try T.outputs(model, feeds, optimize: true), plain = try T.outputs(model, feeds, optimize: false)
        let names = model.graph.outputs.map(\.name).sorted()
        #expect(!names.isEmpty && optimized.keys.sorted() == names && plain.keys.sorted() == names, sourceLocation: sourceLocation)
        for name in names {
            let fused = try #require(optimized[name], sourceLocation: sourceLocation)
            let reference = try #require(plain[name], sourceLocation: sourceLocation)
            #expect(fused.shape == reference.shape, "\(name)", sourceLocation: sourceLocation)
            #expect(T.isClose(fused.scalars(as: Float.self), reference.scalars(as: Float.self)), "\(name)", sourceLocation: sourceLocation)
        }
    }

    static func conv(_ inputs: [String] = ["x", "w"], _ output: String = "c") -> Node {
        Node(name: "conv_" + output, opType: "Conv", inputs: inputs, outputs: [output], attributes: pads)
    }

    @Test func convBatchNormReluBecomesOneFusedConv() throws {
        let statistics = ["scale": T.random([4], seed: 3), "shift": T.random([4], seed: 4), "mean": T.random([4], seed: 5),
                          "var": Tensor([0.5, 1, 1.5, 2] as [Float], shape: [4]), "w": Self.weights]
        let nodes = [
            Self.conv(),
            Node(name: "bn", opType: "BatchNormalization", inputs: ["c", "scale", "shift", "mean", "var"], outputs: ["n"],
                 attributes: ["epsilon": .float(1e-3)]),
            Node(name: "relu", opType: "Relu", inputs: ["n"], outputs: ["y"]),
        ]
        let model = T.model(nodes, inputs: [("x", Self.x.shape)], outputs: ["y"], initializers: statistics)
        let fused = try Self.optimized(model)
        #expect(fused.map(\.opType) == ["FusedConv"])
        #expect(fused.first?.inputs.count == 3)
        try Self.expectSameResults(model, ["x": Self.x])

        var training = model
        training.graph.nodes[1].attributes["training_mode"] = .int(1)
        #expect(try Self.optimized(training).map(\.opType) == ["Conv", "BatchNormalization", "Relu"])
    }

    /// A BatchNormalization no Conv can take (after a Concat, as in DenseNet) joins the Relu or
    /// other activation after it; a training-mode one does not; a `spatial = 0` one of opset 7
    /// keeps its per-position statistics, and `spatial` in opset 9 and later is ignored as before.
    @Test func batchNormalizationAfterConcatTakesTheActivation() throws {
        let a = T.random([2, 3, 4, 5], seed: 40), b = T.random([2, 2, 4, 5], seed: 41)
        func model(_ activation: Node, opset: Int = 17, attributes: [String: AttributeValue] = [:], perPosition: Bool = false) -> Model {
            let shape: Shape = perPosition ? [5, 4, 5] : [5]
            let statistics = ["scale": T.random(shape, seed: 42), "shift": T.random(shape, seed: 43),
                              "mean": T.random(shape, seed: 44), "var": Tensor((0..<shape.elementCount).map { 0.5 + Float($0 % 7) / 4 }, shape: shape)]
            return T.model([
                Node(name: "cat", opType: "Concat", inputs: ["a", "b"], outputs: ["c"], attributes: ["axis": .int(1)]),
                Node(name: "bn", opType: "BatchNormalization", inputs: ["c", "scale", "shift", "mean", "var"], outputs: ["n"],
                     attributes: attributes),
                activation,
            ], inputs: [("a", a.shape), ("b", b.shape)], outputs: ["y"], initializers: statistics, opset: opset)
        }
        let relu = Node(name: "relu", opType: "Relu", inputs: ["n"], outputs: ["y"])
        for activation in [relu, Node(name: "lrelu", opType: "LeakyRelu", inputs: ["n"], outputs: ["y"], attributes: ["alpha": .float(0.2)]),
                           Node(name: "sig", opType: "Sigmoid", inputs: ["n"], outputs: ["y"])] {
            let fused = model(activation)
            #expect(try Self.optimized(fused).map(\.opType) == ["Concat", "FusedBatchNormalization"], "\(activation.opType)")
            try Self.expectSameResults(fused, ["a": a, "b": b])
        }
        let training = model(relu, opset: 15, attributes: ["training_mode": .int(1)])
        #expect(try Self.optimized(training).map(\.opType) == ["Concat", "BatchNormalization", "Relu"])
        let perPosition = model(relu, opset: 7, attributes: ["spatial": .int(0)], perPosition: true)
        #expect(try Self.optimized(perPosition).map(\.opType) == ["Concat", "FusedBatchNormalization"])
        try Self.expectSameResults(perPosition, ["a": a, "b": b])
        let ignored = model(relu, opset: 9, attributes: ["spatial": .int(0)])
        #expect(try Self.optimized(ignored).map(\.opType) == ["Concat", "FusedBatchNormalization"])
        try Self.expectSameResults(ignored, ["a": a, "b": b])
    }

    /// A weight a pass replaced (here folded with the BatchNormalization after it) is not kept by
    /// the session: once the caller lets go of the model, only the folded copy remains.
    @Test func aFoldedWeightsSourceIsReleased() throws {
        weak var source: TensorBuffer?
        let session = try { () throws -> InferenceSession in
            let weights = T.random([4, 3, 3, 3], seed: 2)
            guard case .bytes(let buffer) = weights.storage else { throw EngineError.invalidGraph("the weights have no buffer") }
            source = buffer
            let model = T.model([Self.conv(), Node(name: "bn", opType: "BatchNormalization", inputs: ["c", "scale", "shift", "mean", "var"],
                                                   outputs: ["y"])],
                                inputs: [("x", Self.x.shape)], outputs: ["y"],
                                initializers: ["w": weights, "scale": T.random([4], seed: 3), "shift": T.random([4], seed: 4),
                                               "mean": T.random([4], seed: 5), "var": Tensor([0.5, 1, 1.5, 2] as [Float], shape: [4])])
            #expect(try Self.optimized(model).allSatisfy { $0.opType != "BatchNormalization" })
            return try InferenceSession(model: model, options: .init(intraOpThreads: 1))
        }()
        #expect(source == nil)
        #expect(try session.run(["x": Self.x])["y"]?.shape == [1, 4, 6, 5])
    }

    @Test func residualAddAndActivationJoinTheLaterConv() throws {
        let skip = T.random([1, 4, 6, 5], seed: 6)
        let model = T.model([
            Self.conv(),
            Node(name: "add", opType: "Add", inputs: ["s", "c"], outputs: ["a"]),
            Node(name: "act", opType: "HardSigmoid", inputs: ["a"], outputs: ["y"], attributes: ["alpha": .float(0.3)]),
        ], inputs: [("x", Self.x.shape), ("s", skip.shape)], outputs: ["y"], initializers: ["w": Self.weights])
        let fused = try Self.optimized(model)
        #expect(fused.map(\.opType) == ["FusedConv"])
        #expect(fused.first?.inputs == ["x", "w", "", "s"])
        try Self.expectSameResults(model, ["x": Self.x, "s": skip])

        // Two convolutions meeting at an Add: the one that runs later takes the Add.
        let pair = T.model([Self.conv(["x", "w"], "c1"), Self.conv(["x", "w"], "c2"),
                            Node(name: "add", opType: "Add", inputs: ["c2", "c1"], outputs: ["y"])],
                           inputs: [("x", Self.x.shape)], outputs: ["y"], initializers: ["w": Self.weights])
        let pairFused = try Self.optimized(pair)
        #expect(pairFused.map(\.opType) == ["Conv", "FusedConv"])
        #expect(pairFused.last?.inputs.last == "c1")
        try Self.expectSameResults(pair, ["x": Self.x])

        // A residual that broadcasts ([4, 1, 1] from a graph input) still gives the Add's result.
        let small = T.random([4, 1, 1], seed: 18)
        let broadcast = T.model([Self.conv(), Node(name: "add", opType: "Add", inputs: ["c", "s"], outputs: ["y"])],
                                inputs: [("x", Self.x.shape), ("s", small.shape)], outputs: ["y"], initializers: ["w": Self.weights])
        #expect(try Self.optimized(broadcast).map(\.opType) == ["FusedConv"])
        try Self.expectSameResults(broadcast, ["x": Self.x, "s": small])
    }

    @Test func constantChannelAddJoinsTheBias() throws {
        let model = T.model([Self.conv(["x", "w", "b"]), Node(name: "add", opType: "Add", inputs: ["c", "k"], outputs: ["y"])],
                            inputs: [("x", Self.x.shape)], outputs: ["y"],
                            initializers: ["w": Self.weights, "b": T.random([4], seed: 7), "k": T.random([1, 4, 1, 1], seed: 8)])
        #expect(try Self.optimized(model).map(\.opType) == ["Conv"])
        try Self.expectSameResults(model, ["x": Self.x])
    }

    @Test func channelScaleFoldsAndSumActsAsAdd() throws {
        let skip = T.random([1, 4, 6, 5], seed: 17)
        let model = T.model([
            Self.conv(["x", "w", "b"]),
            Node(name: "mul", opType: "Mul", inputs: ["k", "c"], outputs: ["m"]),
            Node(name: "sum", opType: "Sum", inputs: ["m", "s"], outputs: ["y"]),
        ], inputs: [("x", Self.x.shape), ("s", skip.shape)], outputs: ["y"],
           initializers: ["w": Self.weights, "b": T.random([4], seed: 15), "k": T.random([4, 1, 1], seed: 16)])
        #expect(try Self.optimized(model).map(\.opType) == ["FusedConv"])
        try Self.expectSameResults(model, ["x": Self.x, "s": skip])
    }

    @Test func valuesOthersReadAreNotFused() throws {
        let exposed = T.model([Self.conv(), Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["y"])],
                              inputs: [("x", Self.x.shape)], outputs: ["y", "c"], initializers: ["w": Self.weights])
        #expect(try Self.optimized(exposed).map(\.opType) == ["Conv", "Relu"])
        try Self.expectSameResults(exposed, ["x": Self.x])

        let shared = T.model([Self.conv(), Node(name: "relu1", opType: "Relu", inputs: ["c"], outputs: ["y1"]),
                              Node(name: "relu2", opType: "Sigmoid", inputs: ["c"], outputs: ["y2"])],
                             inputs: [("x", Self.x.shape)], outputs: ["y1", "y2"], initializers: ["w": Self.weights])
        #expect(try Self.optimized(shared).map(\.opType) == ["Conv", "Relu", "Sigmoid"])
        try Self.expectSameResults(shared, ["x": Self.x])
    }

    @Test func matMulAddActivationBecomesFusedGemm() throws {
        let a = T.random([2, 3, 4], seed: 9)
        let model = T.model([
            Node(name: "matmul", opType: "MatMul", inputs: ["a", "b"], outputs: ["p"]),
            Node(name: "add", opType: "Add", inputs: ["c", "p"], outputs: ["s"]),
            Node(name: "act", opType: "Gelu", inputs: ["s"], outputs: ["y"]),
        ], inputs: [("a", a.shape)], outputs: ["y"], initializers: ["b": T.random([4, 5], seed: 10), "c": T.random([5], seed: 11)],
           opset: 20)
        #expect(try Self.optimized(model).map(\.opType) == ["FusedGemm"])
        try Self.expectSameResults(model, ["a": a])
    }

    /// ONNX Runtime's BiasGelu, FastGelu (with and without a bias) and Gelu after a MatMul by a
    /// constant matrix join it as a FusedGemm; a bias computed at run time, or a MatMul output
    /// read elsewhere too, keeps them apart.
    @Test func microsoftBiasGeluJoinsTheMatMul() throws {
        let a = T.random([2, 3, 4], seed: 15)
        let weights = ["b": T.random([4, 7], seed: 16), "c": T.random([7], seed: 17)]
        func model(_ activation: Node, outputs: [String] = ["y"], inputs: [(String, Shape)] = [], weights: [String: Tensor] = weights) -> Model {
            var model = T.model([Node(name: "matmul", opType: "MatMul", inputs: ["a", "b"], outputs: ["p"]), activation],
                                inputs: [("a", a.shape)] + inputs, outputs: outputs, initializers: weights)
            model.opsets["com.microsoft"] = 1
            return model
        }
        for (op, inputs) in [("BiasGelu", ["p", "c"]), ("FastGelu", ["p", "c"]), ("FastGelu", ["p"]), ("Gelu", ["p"])] {
            let fused = model(Node(name: "act", opType: op, domain: "com.microsoft", inputs: inputs, outputs: ["y"]))
            let nodes = try Self.optimized(fused)
            #expect(nodes.map(\.opType) == ["FusedGemm"], "\(op) \(inputs)")
            #expect(nodes.first?.inputs == ["a", "b"] + inputs.dropFirst(), "\(op) \(inputs)")
            try Self.expectSameResults(fused, ["a": a])
        }
        let runTimeBias = model(Node(name: "act", opType: "BiasGelu", domain: "com.microsoft", inputs: ["p", "c"], outputs: ["y"]),
                                inputs: [("c", [7])], weights: ["b": weights["b"]!])
        #expect(try Self.optimized(runTimeBias).map(\.opType) == ["MatMul", "BiasGelu"])
        try Self.expectSameResults(runTimeBias, ["a": a, "c": weights["c"]!])
        let shared = model(Node(name: "act", opType: "BiasGelu", domain: "com.microsoft", inputs: ["p", "c"], outputs: ["y"]),
                           outputs: ["y", "p"])
        #expect(try Self.optimized(shared).map(\.opType) == ["MatMul", "BiasGelu"])
        try Self.expectSameResults(shared, ["a": a])
    }

    @Test func clipWithConstantBoundsFusesIntoGemm() throws {
        let a = T.random([3, 4], seed: 12)
        let gemm = Node(name: "gemm", opType: "Gemm", inputs: ["a", "b", "c"], outputs: ["g"],
                        attributes: ["transB": .int(1), "alpha": .float(3)])
        let clip = Node(name: "clip", opType: "Clip", inputs: ["g", "low", "high"], outputs: ["y"])
        let weights = ["b": T.random([5, 4], seed: 13), "c": T.random([5], seed: 14)]
        let model = T.model([gemm, clip], inputs: [("a", a.shape)], outputs: ["y"],
                            initializers: weights.merging(["low": Tensor(scalar: Float(-0.5)), "high": Tensor(scalar: Float(0.5))]) { x, _ in x })
        #expect(try Self.optimized(model).map(\.opType) == ["FusedGemm"])
        try Self.expectSameResults(model, ["a": a])
        // Bounds computed at run time keep the Clip separate.
        let dynamic = T.model([gemm, clip], inputs: [("a", a.shape), ("low", []), ("high", [])], outputs: ["y"], initializers: weights)
        #expect(try Self.optimized(dynamic).map(\.opType) == ["Gemm", "Clip"])
        try Self.expectSameResults(dynamic, ["a": a, "low": Tensor(scalar: Float(-0.1)), "high": Tensor(scalar: Float(0.2))])
    }

    // MARK: QDQ models

    /// `QuantizeLinear` then `DequantizeLinear` of one value, named after it.
    static func qdq(_ input: String, _ output: String, scale: String, zero: String) -> [Node] {
        [Node(name: "q_" + output, opType: "QuantizeLinear", inputs: [input, scale, zero], outputs: [output + "_q"]),
         Node(name: "dq_" + output, opType: "DequantizeLinear", inputs: [output + "_q", scale, zero], outputs: [output])]
    }

    /// A QDQ model's residual block, `QDQ(QDQ(Conv(x) + b) + QDQ(s))`, becomes a QuantizeDequantize of
    /// the skip and one FusedConv rounding before and after its residual, with exactly the
    /// unfused values (a different rounding would be a whole step off, far beyond tolerance):
    /// 3×3 (im2col) and 1×1 (pointwise), whose skip is handed over and made the output in place
    /// (the product rounded in scratch, then added to it), and depthwise, odd sizes, uint8 and int8 zero points. A Conv followed by one QDQ
    /// takes it as its activation; a scale computed at run time leaves the pair alone.
    @Test func quantizeDequantizeJoinsTheConvBeforeAndAfterItsResidual() throws {
        let x = T.random([2, 3, 7, 5], seed: 51), skip = T.random([2, 3, 7, 5], seed: 52)
        let grids: [String: Tensor] = ["s1": Self.scalar(0.043), "z1": Tensor(scalar: UInt8(121)), "s2": Self.scalar(0.031),
                                       "z2": Tensor(scalar: Int8(-5)), "s3": Self.scalar(0.057), "z3": Tensor(scalar: UInt8(0))]
        let variants: [(String, Tensor, [String: AttributeValue])] = [
            ("3x3", T.random([3, 3, 3, 3], seed: 53), Self.pads),
            ("1x1", T.random([3, 3, 1, 1], seed: 54), [:]),
            ("depthwise", T.random([3, 1, 3, 3], seed: 55), Self.pads.merging(["group": .int(3)]) { a, _ in a }),
        ]
        for (name, weights, attributes) in variants {
            let nodes = [Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: attributes)]
                + Self.qdq("c", "r", scale: "s1", zero: "z1") + Self.qdq("s", "k", scale: "s2", zero: "z2")
                + [Node(name: "add", opType: "Add", inputs: ["k", "r"], outputs: ["a"])] + Self.qdq("a", "y", scale: "s3", zero: "z3")
            let initializers = grids.merging(["w": weights, "b": T.random([3], seed: 56)]) { a, _ in a }
            let model = T.model(nodes, inputs: [("x", x.shape), ("s", skip.shape)], outputs: ["y"], initializers: initializers, opset: 13)
            let fused = try Self.optimized(model)
            #expect(fused.map(\.opType).sorted() == ["FusedConv", "QuantizeDequantize"], "\(name)")
            let conv = try #require(fused.first { $0.opType == "FusedConv" })
            #expect(conv.inputs == ["x", "w", "b", "k"], "\(name)")
            #expect(Self.fusedActivation(conv) == "QuantizeDequantize", "\(name)")
            guard case .string("QuantizeDequantize")? = conv.attributes["activation_before_residual"] else {
                Issue.record("\(name): no rounding before the residual")
                continue
            }
            try Self.expectSameResults(model, ["x": x, "s": skip])

            // Without the Add: the rounding is the Conv's activation.
            let single = T.model([nodes[0]] + Self.qdq("c", "y", scale: "s1", zero: "z1"), inputs: [("x", x.shape)], outputs: ["y"],
                                 initializers: initializers, opset: 13)
            let singleFused = try Self.optimized(single)
            #expect(singleFused.map(\.opType) == ["FusedConv"] && singleFused.first.map(Self.fusedActivation) == "QuantizeDequantize")
            try Self.expectSameResults(single, ["x": x])
        }
        // The scale an input: QuantizeLinear and DequantizeLinear stay.
        let dynamic = T.model([Self.conv()] + Self.qdq("c", "y", scale: "s1", zero: "z1"), inputs: [("x", Self.x.shape), ("s1", [])],
                              outputs: ["y"], initializers: ["w": Self.weights, "z1": Tensor(scalar: UInt8(3))], opset: 13)
        #expect(try Self.optimized(dynamic).map(\.opType) == ["Conv", "QuantizeLinear", "DequantizeLinear"])
        try Self.expectSameResults(dynamic, ["x": Self.x, "s1": Self.scalar(0.02)])
        // A negative scale: the pair stays too (the fused rounding takes positive scales only).
        let negative = T.model([Self.conv()] + Self.qdq("c", "y", scale: "s1", zero: "z1"), inputs: [("x", Self.x.shape)],
                               outputs: ["y"], initializers: ["w": Self.weights, "s1": Self.scalar(-0.02), "z1": Tensor(scalar: UInt8(3))],
                               opset: 13)
        #expect(try Self.optimized(negative).map(\.opType) == ["Conv", "QuantizeLinear", "DequantizeLinear"])
        try Self.expectSameResults(negative, ["x": Self.x])
    }

    /// A QDQ model rounds MaxPool's output onto its input's grid, which the Conv before it already
    /// rounded to: that second rounding goes (the Conv takes the first), with bit for bit the
    /// unfused values (odd sizes, two images, uint8 and int8 grids). It stays when its grid differs
    /// (another scale), when MaxPool might make a value off the grid (ceil_mode), or when it
    /// makes a graph output.
    @Test func aRoundingOfAValueOnItsGridGoes() throws {
        let x = T.random([2, 3, 9, 7], seed: 61)
        let pool = Node(name: "pool", opType: "MaxPool", inputs: ["r"], outputs: ["p"],
                        attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])])
        let flatten = Node(name: "flatten", opType: "Flatten", inputs: ["y"], outputs: ["f"])
        for (zero, type) in [(Tensor(scalar: UInt8(119)), "uint8"), (Tensor(scalar: Int8(-3)), "int8")] {
            let initializers: [String: Tensor] = ["w": Self.weights, "b": T.random([4], seed: 62), "s1": Self.scalar(0.047),
                                                  "s2": Self.scalar(0.031), "z": zero]
            func model(_ pool: Node, secondScale: String = "s1", outputs: [String] = ["f"]) -> Model {
                T.model([Self.conv(["x", "w", "b"])] + Self.qdq("c", "r", scale: "s1", zero: "z") + [pool]
                    + Self.qdq("p", "y", scale: secondScale, zero: "z") + [flatten],
                        inputs: [("x", x.shape)], outputs: outputs, initializers: initializers, opset: 13)
            }
            let repeated = model(pool)
            #expect(try Self.optimized(repeated).map(\.opType) == ["FusedConv", "MaxPool", "Flatten"], "\(type)")
            let optimized = try T.outputs(repeated, ["x": x]), plain = try T.outputs(repeated, ["x": x], optimize: false)
            let fused = try #require(optimized["f"]), reference = try #require(plain["f"])
            #expect(fused.shape == reference.shape && fused.scalars(as: Float.self).map(\.bitPattern)
                == reference.scalars(as: Float.self).map(\.bitPattern), "\(type)")

            var ceiling = pool
            ceiling.attributes["ceil_mode"] = .int(1)
            for (name, kept) in [("another scale", model(pool, secondScale: "s2")), ("ceil_mode", model(ceiling)),
                                 ("graph output", model(pool, outputs: ["y", "f"]))] {
                #expect(try Self.optimized(kept).map(\.opType).contains("QuantizeDequantize"), "\(type), \(name)")
                try Self.expectSameResults(kept, ["x": x])
            }
        }
    }

    // MARK: Chains recognised (ChainRecognition)

    static func scalar(_ value: Float) -> Tensor { Tensor(scalar: value) }

    @Test func siluAndHardSwishJoinTheConv() throws {
        // Opset 13: HardSwish is written as HardSigmoid(1/6, 1/2) times x.
        for (gate, attributes) in [("Sigmoid", [:]), ("HardSigmoid", ["alpha": AttributeValue.float(1.0 / 6), "beta": .float(0.5)])] {
            let model = T.model([
                Self.conv(),
                Node(name: "gate", opType: gate, inputs: ["c"], outputs: ["g"], attributes: attributes),
                Node(name: "mul", opType: "Mul", inputs: ["g", "c"], outputs: ["y"]),
            ], inputs: [("x", Self.x.shape)], outputs: ["y"], initializers: ["w": Self.weights], opset: 13)
            let fused = try Self.optimized(model)
            #expect(fused.map(\.opType) == ["FusedConv"], "\(gate)")
            #expect(fused.first.map { Self.fusedActivation($0) } == (gate == "Sigmoid" ? "SiLU" : "HardSwish"))
            try Self.expectSameResults(model, ["x": Self.x])
        }
        // Another HardSigmoid, or a gate of another value, stays as it is.
        let other = T.model([
            Node(name: "gate", opType: "HardSigmoid", inputs: ["x"], outputs: ["g"], attributes: ["alpha": .float(0.2)]),
            Node(name: "mul", opType: "Mul", inputs: ["x", "g"], outputs: ["y"]),
            Node(name: "gate2", opType: "Sigmoid", inputs: ["x"], outputs: ["h"]),
            Node(name: "mul2", opType: "Mul", inputs: ["y", "h"], outputs: ["z"]),
        ], inputs: [("x", Self.x.shape)], outputs: ["z"], opset: 13)
        #expect(try Self.optimized(other).map(\.opType) == ["HardSigmoid", "Mul", "Sigmoid", "Mul"])
        // A gate whose value is also a graph output is kept.
        let visible = T.model([
            Node(name: "gate", opType: "Sigmoid", inputs: ["x"], outputs: ["g"]),
            Node(name: "mul", opType: "Mul", inputs: ["x", "g"], outputs: ["y"]),
        ], inputs: [("x", Self.x.shape)], outputs: ["y", "g"], opset: 13)
        #expect(try Self.optimized(visible).map(\.opType) == ["Sigmoid", "Mul"])
        try Self.expectSameResults(visible, ["x": Self.x])
    }

    /// A squeeze-and-excitation end, `Conv1x1(Mul(scale, x))`, becomes one FusedConv scaling its
    /// weights per image; over odd sizes, both operand orders, a residual (handed over, so added
    /// in place, and broadcast), a scale shared by all images, more output channels than pixels
    /// (the product is made first) and factors that are not per channel (likewise).
    @Test func channelScaleJoinsTheNextPointwiseConv() throws {
        let weights = T.random([6, 5, 1, 1], seed: 30), bias = T.random([6], seed: 31)
        func model(_ x: Shape, scale: Shape?, weights: Tensor = weights, scaleFirst: Bool = true, residual: Shape? = nil) -> Model {
            var nodes: [Node] = []
            var inputs = [("x", x)]
            if let scale {
                inputs.append(("s", scale))
                nodes.append(Node(name: "gate", opType: "Sigmoid", inputs: ["s"], outputs: ["g"]))
            } else {
                nodes.append(Node(name: "pool", opType: "GlobalAveragePool", inputs: ["x"], outputs: ["p"]))
                nodes.append(Node(name: "gate", opType: "Sigmoid", inputs: ["p"], outputs: ["g"]))
            }
            nodes.append(Node(name: "mul", opType: "Mul", inputs: scaleFirst ? ["g", "x"] : ["x", "g"], outputs: ["m"]))
            nodes.append(Node(name: "conv", opType: "Conv", inputs: ["m", "w", "b"], outputs: ["c"]))
            var output = "c"
            if let residual {
                inputs.append(("z", residual))
                nodes.append(Node(name: "skip", opType: "Relu", inputs: ["z"], outputs: ["r"]))
                nodes.append(Node(name: "add", opType: "Add", inputs: ["c", "r"], outputs: ["a"]))
                output = "a"
            }
            nodes.append(Node(name: "act", opType: "Relu", inputs: [output], outputs: ["y"]))
            return T.model(nodes, inputs: inputs, outputs: ["y"], initializers: ["w": weights, "b": bias], opset: 13)
        }
        func check(_ model: Model, _ feeds: [String: Tensor], fused: Bool = true, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let nodes = try Self.optimized(model)
            #expect(nodes.contains { $0.opType == "Mul" } == !fused, sourceLocation: sourceLocation)
            if fused {
                let conv = try #require(nodes.first { $0.opType == "FusedConv" }, sourceLocation: sourceLocation)
                #expect(conv.inputs.count == 5, sourceLocation: sourceLocation)
            }
            try Self.expectSameResults(model, feeds, sourceLocation: sourceLocation)
        }
        let x = T.random([3, 5, 7, 9], seed: 32)
        // Squeeze and excitation from the image itself, either operand order, with and without a residual.
        for scaleFirst in [true, false] {
            try check(model(x.shape, scale: nil, scaleFirst: scaleFirst), ["x": x])
            let z = T.random([3, 6, 7, 9], seed: 33)
            try check(model(x.shape, scale: nil, scaleFirst: scaleFirst, residual: z.shape), ["x": x, "z": z])
        }
        // A residual that broadcasts; a scale shared by every image; factors per image and pixel.
        let small = T.random([6, 1, 1], seed: 34)
        try check(model(x.shape, scale: nil, residual: small.shape), ["x": x, "z": small])
        let shared = T.random([1, 5, 1, 1], seed: 35)
        try check(model(x.shape, scale: shared.shape), ["x": x, "s": shared])
        let full = T.random([3, 5, 7, 9], seed: 36)
        try check(model(x.shape, scale: full.shape), ["x": x, "s": full])
        let scalar = T.random([1], seed: 37)
        try check(model(x.shape, scale: scalar.shape), ["x": x, "s": scalar])
        // More output channels (11) than pixels (3 × 3): the product is made first.
        let tiny = T.random([2, 5, 3, 3], seed: 38)
        let wide = T.random([11, 5, 1, 1], seed: 39)
        var wideModel = model(tiny.shape, scale: nil, weights: wide)
        wideModel.graph.initializers["b"] = T.random([11], seed: 40)
        try check(wideModel, ["x": tiny])

        // Not fused: a 3×3 consumer, or a product somebody else reads too.
        var kernel3 = model(x.shape, scale: nil, weights: T.random([6, 5, 3, 3], seed: 41))
        kernel3.graph.nodes[3].attributes = Self.pads
        try check(kernel3, ["x": x], fused: false)
        var shared2 = model(x.shape, scale: nil)
        shared2.graph.outputs.append(ValueInfo(name: "m", type: nil))
        try check(shared2, ["x": x], fused: false)
    }

    static func fusedActivation(_ node: Node) -> String? {
        if case .string(let name)? = node.attributes["activation"] { return name }
        return nil
    }

    /// GELU written with Erf, in torch's association and with the half applied to x first, after a
    /// MatMul + Add (which becomes a FusedGemm applying it).
    @Test func erfGeluBecomesOneActivation() throws {
        let a = T.random([2, 3, 4], seed: 21)
        let weights = ["b": T.random([4, 7], seed: 22), "c": T.random([7], seed: 23), "root2": Self.scalar(1.4142135),
                       "one": Self.scalar(1), "half": Self.scalar(0.5), "invroot2": Self.scalar(0.70710678)]
        let product = [Node(name: "matmul", opType: "MatMul", inputs: ["a", "b"], outputs: ["p"]),
                       Node(name: "add", opType: "Add", inputs: ["p", "c"], outputs: ["s"])]
        let torchForm = product + [
            Node(name: "div", opType: "Div", inputs: ["s", "root2"], outputs: ["d"]),
            Node(name: "erf", opType: "Erf", inputs: ["d"], outputs: ["e"]),
            Node(name: "add1", opType: "Add", inputs: ["e", "one"], outputs: ["e1"]),
            Node(name: "mul", opType: "Mul", inputs: ["s", "e1"], outputs: ["m"]),
            Node(name: "half", opType: "Mul", inputs: ["m", "half"], outputs: ["y"]),
        ]
        let halfFirst = product + [
            Node(name: "scale", opType: "Mul", inputs: ["invroot2", "s"], outputs: ["d"]),
            Node(name: "erf", opType: "Erf", inputs: ["d"], outputs: ["e"]),
            Node(name: "add1", opType: "Add", inputs: ["one", "e"], outputs: ["e1"]),
            Node(name: "half", opType: "Mul", inputs: ["half", "s"], outputs: ["h"]),
            Node(name: "mul", opType: "Mul", inputs: ["e1", "h"], outputs: ["y"]),
        ]
        for nodes in [torchForm, halfFirst] {
            let model = T.model(nodes, inputs: [("a", a.shape)], outputs: ["y"], initializers: weights, opset: 13)
            let fused = try Self.optimized(model)
            #expect(fused.map(\.opType) == ["FusedGemm"])
            #expect(fused.first.map { Self.fusedActivation($0) } == "Gelu")
            try Self.expectSameResults(model, ["a": a])
        }
        // A factor that is not 1/2 leaves the chain alone.
        var wrong = torchForm
        wrong[6].inputs = ["m", "one"]
        let model = T.model(wrong, inputs: [("a", a.shape)], outputs: ["y"], initializers: weights, opset: 13)
        #expect(try Self.optimized(model).map(\.opType) == ["FusedGemm", "Div", "Erf", "Add", "Mul", "Mul"])
    }

    /// LayerNorm written out (as torch exports it before opset 17) over a last axis of odd length.
    @Test func writtenOutLayerNormBecomesOneNode() throws {
        let x = T.random([2, 5, 13], seed: 24)
        let nodes = [
            Node(name: "mean", opType: "ReduceMean", inputs: ["x"], outputs: ["mu"], attributes: ["axes": .ints([-1])]),
            Node(name: "sub", opType: "Sub", inputs: ["x", "mu"], outputs: ["d"]),
            Node(name: "pow", opType: "Pow", inputs: ["d", "two"], outputs: ["d2"]),
            Node(name: "var", opType: "ReduceMean", inputs: ["d2"], outputs: ["v"], attributes: ["axes": .ints([-1])]),
            Node(name: "eps", opType: "Add", inputs: ["v", "epsilon"], outputs: ["ve"]),
            Node(name: "sqrt", opType: "Sqrt", inputs: ["ve"], outputs: ["s"]),
            Node(name: "div", opType: "Div", inputs: ["d", "s"], outputs: ["n"]),
            Node(name: "scale", opType: "Mul", inputs: ["n", "gamma"], outputs: ["g"]),
            Node(name: "shift", opType: "Add", inputs: ["g", "beta"], outputs: ["y"]),
        ]
        let constants = ["two": Self.scalar(2), "epsilon": Self.scalar(1e-5), "gamma": T.random([13], seed: 25),
                         "beta": T.random([13], seed: 26)]
        let model = T.model(nodes, inputs: [("x", x.shape)], outputs: ["y"], initializers: constants, opset: 13)
        let fused = try Self.optimized(model)
        #expect(fused.map(\.opType) == ["LayerNormalization"])
        #expect(fused.first?.domain == OperatorRegistry.internalDomain)
        try Self.expectSameResults(model, ["x": x])
        // Over another axis, or with the centred values read elsewhere too, it stays written out.
        var otherAxis = nodes
        otherAxis[0].attributes["axes"] = .ints([1])
        #expect(try Self.optimized(T.model(otherAxis, inputs: [("x", x.shape)], outputs: ["y"], initializers: constants,
                                           opset: 13)).count == nodes.count)
        let leaked = T.model(nodes, inputs: [("x", x.shape)], outputs: ["y", "d"], initializers: constants, opset: 13)
        #expect(try Self.optimized(leaked).count == nodes.count)
        try Self.expectSameResults(leaked, ["x": x])
    }
}
