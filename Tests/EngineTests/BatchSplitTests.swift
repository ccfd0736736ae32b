import Engine
import Foundation
import Tensors
import Testing

/// A batch run as one sub-batch per thread (`BatchSplit`, `InferenceSession.batchParts`): the
/// same results as the whole batch on separable graphs with every kind of node the rule allows,
/// and models that mix images detected and run whole.
@Suite struct BatchSplitTests {
    typealias T = ConvTestSupport

    static func model(_ nodes: [Node], inputs: [(String, [Dim])], outputs: [String], initializers: [String: Tensor] = [:],
                      opset: Int = 17) -> Model {
        let graph = Graph(name: "test", nodes: nodes, inputs: inputs.map { ValueInfo(name: $0.0, type: TensorType(.float, $0.1)) },
                          outputs: outputs.map { ValueInfo(name: $0, type: nil) }, initializers: initializers)
        return Model(graph: graph, opsets: ["": opset])
    }

    static func ints(_ values: [Int]) -> Tensor { Tensor(values.map(Int64.init), shape: [values.count]) }

    static func node(_ opType: String, _ inputs: [String], _ output: String, _ attributes: [String: AttributeValue] = [:]) -> Node {
        Node(name: output, opType: opType, inputs: inputs, outputs: [output], attributes: attributes)
    }

    /// Convolutions (plain, depthwise with a residual, 1x1 with a per-image scale), BatchNorm,
    /// Relu, Clip, SiLU, squeeze-excite, MaxPool, AveragePool, GlobalAveragePool, Concat,
    /// Transpose, LayerNormalization, ReduceMean, Flatten, Gemm, MatMul + Add, Softmax.
    static func cnn() -> Model {
        let pads: [String: AttributeValue] = ["pads": .ints([1, 1, 1, 1])]
        let nodes = [
            node("Conv", ["x", "w1", "b1"], "c1", pads),
            node("BatchNormalization", ["c1", "scale", "shift", "mean", "var"], "n1"),
            node("Relu", ["n1"], "r1"),
            node("MaxPool", ["r1"], "mp", ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])]),
            node("Conv", ["mp", "wdw"], "dw", pads.merging(["group": .int(8)]) { a, _ in a }),
            node("Add", ["dw", "mp"], "a1"),
            node("Clip", ["a1", "zero", "six"], "cl"),
            node("Sigmoid", ["cl"], "sg"),
            node("Mul", ["cl", "sg"], "si"),
            node("GlobalAveragePool", ["si"], "g"),
            node("Conv", ["g", "wse"], "se"),
            node("HardSigmoid", ["se"], "hs"),
            node("Mul", ["si", "hs"], "sc"),
            node("Conv", ["sc", "wp"], "p"),
            node("Concat", ["p", "r1"], "cat", ["axis": .int(1)]),
            node("Transpose", ["cat"], "t", ["perm": .ints([0, 2, 3, 1])]),
            node("LayerNormalization", ["t", "lnscale", "lnbias"], "ln", ["axis": .int(-1)]),
            node("Transpose", ["ln"], "tb", ["perm": .ints([0, 3, 1, 2])]),
            node("AveragePool", ["tb"], "ap", ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])]),
            node("Flatten", ["ap"], "f", ["axis": .int(1)]),
            node("Gemm", ["f", "wg", "bg"], "gm"),
            node("Softmax", ["gm"], "y1", ["axis": .int(1)]),
            node("MatMul", ["f", "wm"], "mm"),
            node("Add", ["mm", "bm"], "y2"),
            node("ReduceMean", ["tb"], "y3", ["axes": .ints([2, 3]), "keepdims": .int(0)]),
        ]
        let initializers: [String: Tensor] = [
            "w1": T.random([8, 3, 3, 3], seed: 1), "b1": T.random([8], seed: 2),
            "scale": T.random([8], seed: 3), "shift": T.random([8], seed: 4), "mean": T.random([8], seed: 5),
            "var": Tensor((0..<8).map { 0.5 + Float($0) / 4 }, shape: [8]),
            "wdw": T.random([8, 1, 3, 3], seed: 6), "zero": Tensor(scalar: Float(0)), "six": Tensor(scalar: Float(6)),
            "wse": T.random([8, 8, 1, 1], seed: 7), "wp": T.random([6, 8, 1, 1], seed: 8),
            "lnscale": T.random([14], seed: 9), "lnbias": T.random([14], seed: 10),
            "wg": T.random([168, 10], seed: 11), "bg": T.random([10], seed: 12),
            "wm": T.random([168, 5], seed: 13), "bm": T.random([5], seed: 14),
        ]
        return model(nodes, inputs: [("x", [.symbolic("N"), .fixed(3), .fixed(9), .fixed(7)])], outputs: ["y1", "y2", "y3"],
                     initializers: initializers)
    }

    /// ShuffleNet's channel shuffle through Shape → Gather → Unsqueeze → Concat → Reshape, Reshape to
    /// [0, -1, ...] and [-1, image], Split, Slice, ReduceMax, Unsqueeze, Squeeze, ArgMax, MatMul, Tanh,
    /// Greater, Where, Neg; two inputs (the second with an unnamed axis 0).
    static func shapes() -> Model {
        let nodes = [
            node("Shape", ["x"], "s"),
            node("Gather", ["s", "zero"], "n", ["axis": .int(0)]),
            node("Unsqueeze", ["n", "axis0"], "n1"),
            node("Concat", ["n1", "groups"], "target", ["axis": .int(0)]),
            node("Reshape", ["x", "target"], "r5"),
            node("Transpose", ["r5"], "t5", ["perm": .ints([0, 2, 1, 3, 4])]),
            node("Reshape", ["t5", "keep"], "sh"),
            node("Reshape", ["x", "rows"], "flat"),
            Node(name: "split", opType: "Split", inputs: ["sh", "parts"], outputs: ["a", "b"], attributes: ["axis": .int(1)]),
            node("Slice", ["b", "starts", "ends", "axis2"], "y4"),
            node("ReduceMax", ["y4"], "rmx", ["axes": .ints([3]), "keepdims": .int(0)]),
            node("Unsqueeze", ["rmx", "axis3"], "u"),
            node("Squeeze", ["u", "axis3"], "sq"),
            node("ArgMax", ["sq"], "y2", ["axis": .int(2)]),
            node("MatMul", ["flat", "wm"], "mm"),
            node("Tanh", ["mm"], "y1"),
            node("Add", ["a", "z"], "az"),
            node("Greater", ["az", "half"], "big"),
            node("Neg", ["az"], "neg"),
            node("Where", ["big", "az", "neg"], "y3"),
        ]
        let initializers: [String: Tensor] = [
            "zero": Tensor(scalar: Int64(0)), "axis0": ints([0]), "groups": ints([2, 2, 5, 3]), "keep": ints([0, -1, 5, 3]),
            "rows": ints([-1, 60]), "parts": ints([1, 3]), "starts": ints([1]), "ends": ints([5]), "axis2": ints([2]),
            "axis3": ints([3]), "wm": T.random([60, 7], seed: 21), "half": Tensor(scalar: Float(0.5)),
        ]
        return model(nodes, inputs: [("x", [.symbolic("N"), .fixed(4), .fixed(5), .fixed(3)]),
                                     ("z", [.symbolic("N"), .fixed(1), .fixed(5), .fixed(3)])],
                     outputs: ["y1", "y2", "y3", "y4"], initializers: initializers)
    }

    /// A transformer's shapes: PyTorch's `expand(N, -1, -1)` of a class token (Shape → Gather →
    /// Unsqueeze → Concat → Reshape [-1] → Shape → ConstantOfShape → Mul -1 → Equal → Where →
    /// Expand) whose token is a Slice with computed ends and a constant axis, joined to the input;
    /// then attention: Q·Kᵀ and weights·V as products of two batched values.
    static func attention() -> Model {
        let nodes = [
            node("Shape", ["x"], "s"),
            node("Gather", ["s", "zero"], "n", ["axis": .int(0)]),
            node("Unsqueeze", ["n", "axis0"], "n1"),
            node("Concat", ["n1", "minus1", "minus1"], "list", ["axis": .int(0)]),
            node("Reshape", ["list", "flat"], "sizes"),
            node("Shape", ["sizes"], "length"),
            node("ConstantOfShape", ["length"], "ones", ["value": .tensor(Tensor([Int64(1)], shape: [1]))]),
            node("Mul", ["ones", "negativeOne"], "minusOnes"),
            node("Equal", ["sizes", "minusOnes"], "open"),
            node("Where", ["open", "ones", "sizes"], "target"),
            node("Gather", ["s", "two"], "width", ["axis": .int(0)]),
            node("Unsqueeze", ["width", "axis0"], "end"),
            node("Slice", ["tokens", "start", "end", "lastAxis"], "token"),
            node("Expand", ["token", "target"], "cls"),
            node("Concat", ["cls", "x"], "joined", ["axis": .int(1)]),
            node("MatMul", ["joined", "wq"], "q"),
            node("MatMul", ["joined", "wk"], "k"),
            node("Transpose", ["k"], "kt", ["perm": .ints([0, 2, 1])]),
            node("MatMul", ["q", "kt"], "scores"),
            node("Softmax", ["scores"], "weights", ["axis": .int(-1)]),
            node("MatMul", ["weights", "joined"], "y"),
        ]
        let initializers: [String: Tensor] = [
            "zero": Tensor(scalar: Int64(0)), "two": Tensor(scalar: Int64(2)), "axis0": ints([0]), "minus1": ints([-1]),
            "flat": ints([-1]), "negativeOne": Tensor(scalar: Int64(-1)), "start": ints([0]), "lastAxis": ints([2]),
            "tokens": T.random([1, 1, 8], seed: 31), "wq": T.random([6, 6], seed: 32), "wk": T.random([6, 6], seed: 33),
        ]
        return model(nodes, inputs: [("x", [.symbolic("N"), .fixed(4), .fixed(6)])], outputs: ["y"], initializers: initializers)
    }

    /// A session of two threads; `split` also splits odd batches.
    static func session(_ model: Model, split: Bool, optimize: Bool = true, budget: Int? = nil) throws -> InferenceSession {
        var options = InferenceSession.Options(intraOpThreads: 2, optimizations: optimize, workingMemoryBudget: budget,
                                               batchSplitting: split)
        options.splitsUnevenBatches = split
        return try InferenceSession(model: model, options: options)
    }

    static func feeds(_ model: Model, batch: Int, seed: UInt64) -> [String: Tensor] {
        var feeds: [String: Tensor] = [:]
        for (index, input) in model.graph.inputs.enumerated() {
            let dims = input.type!.dims!.map { $0.value ?? batch }
            feeds[input.name] = T.random(Shape(dims), seed: seed + UInt64(index))
        }
        return feeds
    }

    @Test(arguments: [true, false])
    func separableGraphsGiveTheWholeBatchResults(optimize: Bool) throws {
        for model in [Self.cnn(), Self.shapes(), Self.attention()] {
            let split = try Self.session(model, split: true, optimize: optimize)
            let whole = try Self.session(model, split: false, optimize: optimize)
            #expect(split.batchSeparability == .separable)
            #expect(whole.batchParts(for: ["x": [3, 4, 5, 3], "z": [3, 1, 5, 3]]) == nil)
            for batch in [3, 5, 8] {
                let feeds = Self.feeds(model, batch: batch, seed: UInt64(batch))
                let shapes = feeds.mapValues(\.shape)
                #expect(split.batchParts(for: shapes) == [0..<(batch + 1) / 2, (batch + 1) / 2..<batch])
                let parts = try split.run(feeds), reference = try whole.run(feeds)
                for name in model.graph.outputs.map(\.name) {
                    let a = try #require(parts[name]), b = try #require(reference[name])
                    #expect(a.shape == b.shape && a.dataType == b.dataType, "\(name)")
                    #expect(a.shape[0] == batch, "\(name)")
                    if a.dataType == .int64 {
                        #expect(a.scalars(as: Int64.self) == b.scalars(as: Int64.self), "\(name) at batch \(batch)")
                    } else {
                        #expect(T.isClose(a.scalars(as: Float.self), b.scalars(as: Float.self), rtol: 1e-5, atol: 1e-6),
                                "\(name) at batch \(batch)")
                    }
                }
            }
        }
    }

    /// A batch of 1, a session of one thread, uneven parts (by default), and inputs whose unnamed
    /// axes 0 differ (they broadcast) run whole.
    @Test func smallBatchesOneThreadAndUnequalInputsRunWhole() throws {
        let model = Self.shapes()
        let split = try Self.session(model, split: true)
        #expect(split.batchParts(for: ["x": [1, 4, 5, 3], "z": [1, 1, 5, 3]]) == nil)
        let oneThread = try InferenceSession(model: model, options: .init(intraOpThreads: 1))
        #expect(oneThread.batchParts(for: ["x": [4, 4, 5, 3], "z": [4, 1, 5, 3]]) == nil)
        // By default an odd batch splits only when its parts are nearly equal.
        let automatic = try InferenceSession(model: model, options: .init(intraOpThreads: 2))
        #expect(automatic.batchParts(for: ["x": [3, 4, 5, 3], "z": [3, 1, 5, 3]]) == nil)
        #expect(automatic.batchParts(for: ["x": [9, 4, 5, 3], "z": [9, 1, 5, 3]]) == nil)
        #expect(automatic.batchParts(for: ["x": [8, 4, 5, 3], "z": [8, 1, 5, 3]]) == [0..<4, 4..<8])
        #expect(automatic.batchParts(for: ["x": [11, 4, 5, 3], "z": [11, 1, 5, 3]]) == [0..<6, 6..<11])

        let add = Self.model([Self.node("Add", ["x", "y"], "s")], inputs: [("x", [.unknown, .fixed(4)]), ("y", [.unknown, .fixed(4)])],
                             outputs: ["s"])
        let session = try Self.session(add, split: true)
        #expect(session.batchSeparability == .separable)
        let x = T.random([3, 4], seed: 1), y = T.random([1, 4], seed: 2)
        #expect(session.batchParts(for: ["x": x.shape, "y": y.shape]) == nil)
        let sum = try #require(try session.run(["x": x, "y": y])["s"])
        let xs = x.scalars(as: Float.self), ys = y.scalars(as: Float.self)
        #expect(sum.shape == [3, 4] && sum.scalars(as: Float.self) == xs.indices.map { xs[$0] + ys[$0 % 4] })
    }

    /// Models whose images mix: detected, and the result is the whole batch's.
    @Test func modelsThatMixImagesRunWhole() throws {
        func check(_ model: Model, batch: Int, expected: ([String: [Float]]) -> [Float], sourceLocation: SourceLocation = #_sourceLocation) throws {
            let session = try Self.session(model, split: true)
            guard case .notSeparable = session.batchSeparability else {
                Issue.record("separable: \(model.graph.nodes.map(\.opType))", sourceLocation: sourceLocation)
                return
            }
            let feeds = Self.feeds(model, batch: batch, seed: 7)
            #expect(session.batchParts(for: feeds.mapValues(\.shape)) == nil, sourceLocation: sourceLocation)
            let output = try #require(try session.run(feeds)["y"], sourceLocation: sourceLocation)
            #expect(T.isClose(output.scalars(as: Float.self), expected(feeds.mapValues { $0.scalars(as: Float.self) })),
                    sourceLocation: sourceLocation)
        }
        let row: [Dim] = [.symbolic("N"), .fixed(6)]
        for batch in [3, 5] {
            // Reshape to [1, -1]: a Softmax over every image at once.
            try check(Self.model([Self.node("Reshape", ["x", "one"], "r"), Self.node("Softmax", ["r"], "s", ["axis": .int(1)]),
                                  Self.node("Reshape", ["s", "back"], "y")],
                                 inputs: [("x", row)], outputs: ["y"], initializers: ["one": Self.ints([1, -1]), "back": Self.ints([-1, 6])]),
                      batch: batch) { feeds in
                let x = feeds["x"]!, top = x.max()!, total = x.reduce(0) { $0 + exp($1 - top) }
                return x.map { exp($0 - top) / total }
            }
            // ReduceMean over axis 0: the batch's mean taken from every image.
            try check(Self.model([Self.node("ReduceMean", ["x"], "m", ["axes": .ints([0]), "keepdims": .int(1)]),
                                  Self.node("Sub", ["x", "m"], "y")], inputs: [("x", row)], outputs: ["y"]), batch: batch) { feeds in
                let x = feeds["x"]!
                let mean = (0..<6).map { column in stride(from: column, to: x.count, by: 6).reduce(Float(0)) { $0 + x[$1] } / Float(batch) }
                return x.indices.map { x[$0] - mean[$0 % 6] }
            }
            // Shape → Gather → Unsqueeze → Concat → Reshape to [6, N], then Transpose back to [N, 6].
            try check(Self.model([Self.node("Shape", ["x"], "s"), Self.node("Gather", ["s", "zero"], "n"),
                                  Self.node("Unsqueeze", ["n", "axis0"], "n1"), Self.node("Concat", ["rest", "n1"], "target", ["axis": .int(0)]),
                                  Self.node("Reshape", ["x", "target"], "r"), Self.node("Transpose", ["r"], "y", ["perm": .ints([1, 0])])],
                                 inputs: [("x", row)], outputs: ["y"],
                                 initializers: ["zero": Tensor(scalar: Int64(0)), "axis0": Self.ints([0]), "rest": Self.ints([-1])]),
                      batch: batch) { feeds in
                let x = feeds["x"]!
                return (0..<batch).flatMap { i in (0..<6).map { j in x[j * batch + i] } }
            }
            // MatMul of two batched operands of different ranks: B's axis 0 meets A's axis 1, and
            // every image of A is multiplied by every image of B.
            try check(Self.model([Self.node("MatMul", ["x", "z"], "y")],
                                 inputs: [("x", [.symbolic("N"), .fixed(1), .fixed(2), .fixed(3)]),
                                          ("z", [.symbolic("N"), .fixed(3), .fixed(2)])],
                                 outputs: ["y"]), batch: batch) { feeds in
                let x = feeds["x"]!, z = feeds["z"]!
                var y: [Float] = []
                for a in 0..<batch {
                    for b in 0..<batch {
                        for i in 0..<2 {
                            for j in 0..<2 {
                                var sum: Float = 0
                                for k in 0..<3 { sum += x[a * 6 + i * 3 + k] * z[b * 6 + k * 2 + j] }
                                y.append(sum)
                            }
                        }
                    }
                }
                return y
            }
            // An `expand` whose Equal compares the batch with 2, which a part of two images is: that
            // part would expand the token to one row, not two.
            let token = T.random([1, 1, 6], seed: 34)
            try check(Self.model([Self.node("Shape", ["x"], "s"), Self.node("Gather", ["s", "zero"], "n", ["axis": .int(0)]),
                                  Self.node("Unsqueeze", ["n", "axis0"], "n1"),
                                  Self.node("Concat", ["n1", "one", "one"], "sizes", ["axis": .int(0)]),
                                  Self.node("Equal", ["sizes", "twos"], "two"), Self.node("Where", ["two", "ones", "sizes"], "target"),
                                  Self.node("Expand", ["token", "target"], "cls"),
                                  Self.node("Concat", ["cls", "x"], "y", ["axis": .int(1)])],
                                 inputs: [("x", [.symbolic("N"), .fixed(4), .fixed(6)])], outputs: ["y"],
                                 initializers: ["zero": Tensor(scalar: Int64(0)), "axis0": Self.ints([0]), "one": Self.ints([1]),
                                                "twos": Self.ints([2, 2, 2]), "ones": Self.ints([1, 1, 1]), "token": token]),
                      batch: batch) { feeds in
                let x = feeds["x"]!, token = token.scalars(as: Float.self)
                return (0..<batch).flatMap { b in token + x[(b * 24)..<((b + 1) * 24)] }
            }
            // A Loop adding w three times.
            let body = Graph(nodes: [Self.node("Add", ["acc_in", "w"], "acc_out"), Self.node("Identity", ["cond_in"], "cond_out")],
                             inputs: [ValueInfo(name: "i", type: TensorType(.int64, shape: [])),
                                      ValueInfo(name: "cond_in", type: TensorType(.bool, shape: [])),
                                      ValueInfo(name: "acc_in", type: TensorType(.float, row))],
                             outputs: [ValueInfo(name: "cond_out", type: TensorType(.bool, shape: [])),
                                       ValueInfo(name: "acc_out", type: TensorType(.float, row))])
            let w = T.random([6], seed: 3)
            try check(Self.model([Node(name: "loop", opType: "Loop", inputs: ["three", "", "x"], outputs: ["y"], attributes: ["body": .graph(body)])],
                                 inputs: [("x", row)], outputs: ["y"], initializers: ["three": Tensor(scalar: Int64(3)), "w": w]),
                      batch: batch) { feeds in
                let x = feeds["x"]!, w = w.scalars(as: Float.self)
                return x.indices.map { x[$0] + 3 * w[$0 % 6] }
            }
        }
    }

    /// The budget check counts every part: a budget that holds one part's run refuses the split run
    /// of two before it starts.
    @Test func theBudgetCountsEveryPart() throws {
        let model = Self.cnn()
        let feeds = Self.feeds(model, batch: 8, seed: 1)
        let half = Self.feeds(model, batch: 4, seed: 1)
        let onePart = try InferenceSession(model: model, options: .init(intraOpThreads: 1))
            .estimatedWorkingMemory(for: half.mapValues(\.shape)).peakBytes
        let session = try Self.session(model, split: true, budget: onePart)
        #expect(session.batchParts(for: feeds.mapValues(\.shape))?.count == 2)
        #expect(try session.estimatedWorkingMemory(for: feeds.mapValues(\.shape)).peakBytes > 2 * onePart)
        #expect(throws: EngineError.self) { try session.run(feeds) }
        #expect(try Self.session(model, split: true, budget: 4 * onePart).run(feeds)["y1"]?.shape == [8, 10])
    }
}
