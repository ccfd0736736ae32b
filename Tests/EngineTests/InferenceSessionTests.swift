import Dispatch
import Engine
import Kernels
import Synchronization
import Tensors
import TestSupport
import Testing

/// The executor: ordering, dynamic shapes, feeds validation, output selection, buffer reuse, and
/// many threads running one session at once.
@Suite struct InferenceSessionTests {
    /// x[N,3,8,8] → Conv(4, 3×3, pad 1) → Relu → GlobalAveragePool → Flatten → Gemm(2): a graph
    /// with the nodes listed out of order, so the executor must sort them.
    static func model() -> Model {
        var generator = SeededGenerator(seed: 11)
        let initializers: [String: Tensor] = [
            "w": Tensor(generator.floats(4 * 3 * 3 * 3), shape: [4, 3, 3, 3]),
            "b": Tensor(generator.floats(4), shape: [4]),
            "fc": Tensor(generator.floats(2 * 4), shape: [2, 4]),
        ]
        let nodes = [
            Node(name: "fc", opType: "Gemm", inputs: ["flat", "fc"], outputs: ["logits"], attributes: ["transB": .int(1)]),
            Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: ["pads": .ints([1, 1, 1, 1])]),
            Node(name: "flatten", opType: "Flatten", inputs: ["pooled"], outputs: ["flat"]),
            Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
            Node(name: "pool", opType: "GlobalAveragePool", inputs: ["r"], outputs: ["pooled"]),
        ]
        let graph = Graph(nodes: nodes,
                          inputs: [ValueInfo(name: "x", type: TensorType(.float, [.symbolic("N"), .fixed(3), .fixed(8), .fixed(8)]))],
                          outputs: [ValueInfo(name: "logits", type: nil), ValueInfo(name: "pooled", type: nil)],
                          initializers: initializers)
        return Model(graph: graph, opsets: ["": 17])
    }

    static func input(batch: Int, seed: UInt64) -> Tensor {
        var generator = SeededGenerator(seed: seed)
        return Tensor(generator.floats(batch * 3 * 64), shape: [batch, 3, 8, 8])
    }

    @Test func runsOutOfOrderNodesWithDynamicBatch() throws {
        let session = try InferenceSession(model: Self.model())
        #expect(session.inputs.map(\.name) == ["x"])
        #expect(session.outputs.first?.type == TensorType(.float, [.symbolic("N"), .fixed(2)]))
        for batch in [1, 3, 5] {
            let results = try session.run(["x": Self.input(batch: batch, seed: UInt64(batch))])
            #expect(results["logits"]?.shape == [batch, 2])
            #expect(results["pooled"]?.shape == [batch, 4, 1, 1])
        }
    }

    @Test func optimisedAndUnoptimisedAgree() throws {
        let x = Self.input(batch: 2, seed: 5)
        let fast = try InferenceSession(model: Self.model()).run(["x": x])["logits"]!.scalars(as: Float.self)
        let plain = try InferenceSession(model: Self.model(), options: .init(optimizations: false)).run(["x": x])["logits"]!.scalars(as: Float.self)
        #expect(zip(fast, plain).allSatisfy { abs($0 - $1) <= 1e-5 + 1e-4 * abs($1) })
    }

    @Test func profilerTimesEveryNodeRun() throws {
        let session = try InferenceSession(model: Self.model(), options: .init(intraOpThreads: 1, optimizations: false))
        let profiler = NodeProfiler()
        let feeds = ["x": Self.input(batch: 2, seed: 3)]
        for _ in 0..<3 { _ = try session.run(feeds, profiler: profiler) }
        let nodes = profiler.nodes
        // Every node once, in execution order (the graph lists them out of order).
        #expect(nodes.map(\.node) == ["Conv 'conv'", "Relu 'relu'", "GlobalAveragePool 'pool'", "Flatten 'flatten'", "Gemm 'fc'"])
        #expect(nodes.map(\.opType) == ["Conv", "Relu", "GlobalAveragePool", "Flatten", "Gemm"])
        #expect(nodes.allSatisfy { $0.runs == 3 && $0.total > .zero })
        #expect(nodes[0].outputShape == [2, 4, 8, 8])
        #expect(nodes[4].outputShape == [2, 2])
        // Profiling does not change the results.
        #expect(try session.run(feeds)["logits"]!.scalars(as: Float.self)
                == session.run(feeds, profiler: profiler)["logits"]!.scalars(as: Float.self))
    }

    @Test func returnsOnlyRequestedOutputs() throws {
        let session = try InferenceSession(model: Self.model())
        let results = try session.run(["x": Self.input(batch: 1, seed: 1)], outputs: ["pooled"])
        #expect(Array(results.keys) == ["pooled"])
        #expect(throws: EngineError.self) { try session.run(["x": Self.input(batch: 1, seed: 1)], outputs: ["nope"]) }
    }

    @Test func rejectsFeedsThatDoNotFit() throws {
        let session = try InferenceSession(model: Self.model())
        let cases: [([String: Tensor], String)] = [
            ([:], "missing input 'x'"),
            (["x": Self.input(batch: 1, seed: 1), "y": Self.input(batch: 1, seed: 1)], "unknown input 'y'"),
            (["x": Tensor(zeros: .double, shape: [1, 3, 8, 8])], "element type double"),
            (["x": Tensor(zeros: .float, shape: [1, 3, 8])], "expects float[N, 3, 8, 8]"),
            (["x": Tensor(zeros: .float, shape: [1, 4, 8, 8])], "dimension 1 must be 3"),
        ]
        for (feeds, fragment) in cases {
            do {
                _ = try session.run(feeds)
                Issue.record("accepted feeds for '\(fragment)'")
            } catch {
                #expect("\(error)".contains(fragment), "\(error)")
            }
        }
    }

    @Test func warmRunsReuseBuffers() throws {
        // One thread: on two, this batch of 4 runs as two parts (batch split), at once when the
        // pool is free and one after the other when other tests hold it, and the peak follows.
        let session = try InferenceSession(model: Self.model(), options: .init(intraOpThreads: 1))
        let x = Self.input(batch: 4, seed: 2)
        _ = try session.run(["x": x])
        let peak = session.memoryStatistics.peak
        for _ in 0..<10 { _ = try session.run(["x": x]) }
        #expect(session.memoryStatistics.peak == peak, "a warm run allocated new buffers")
    }

    @Test func manyThreadsShareOneSession() throws {
        let session = try InferenceSession(model: Self.model(), options: .init(intraOpThreads: 2))
        let inputs = (0..<16).map { Self.input(batch: 1 + $0 % 4, seed: UInt64(100 + $0)) }
        let expected = try inputs.map { try session.run(["x": $0])["logits"]!.scalars(as: Float.self) }
        let mismatches = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 64) { iteration in
            let index = iteration % inputs.count
            let result = try? session.run(["x": inputs[index]])["logits"]?.scalars(as: Float.self)
            if result != expected[index] { mismatches.withLock { $0 += 1 } }
        }
        #expect(mismatches.withLock { $0 } == 0)
    }
}

@Suite struct DenormalTests {
    /// y = x · 1e-30: for x = 1e-10 the true result (1e-40) is a denormal float.
    static let model = Model(
        graph: Graph(nodes: [Node(name: "scale", opType: "Mul", inputs: ["x", "k"], outputs: ["y"])],
                     inputs: [ValueInfo(name: "x", type: TensorType(.float, [.fixed(4)]))],
                     outputs: [ValueInfo(name: "y", type: nil)],
                     initializers: ["k": Tensor(scalar: Float(1e-30))]),
        opsets: ["": 17])

    @Test(arguments: [1, 2])
    func flushingTurnsDenormalsIntoZero(threads: Int) throws {
        let x = Tensor([1e-10, 1, -1e-10, 2e-10] as [Float], shape: [4])
        let exact = try InferenceSession(model: Self.model, options: .init(intraOpThreads: threads, optimizations: false))
            .run(["x": x])["y"]!.scalars(as: Float.self)
        #expect(exact[0] != 0 && exact[0].isSubnormal)
        let flushed = try InferenceSession(model: Self.model, options: .init(intraOpThreads: threads, optimizations: false, flushDenormals: true))
            .run(["x": x])["y"]!.scalars(as: Float.self)
        #expect(flushed == [0, 1e-30, 0, 0])
        // The caller's floating-point mode is left as it was.
        var tiny = Float.leastNormalMagnitude
        tiny /= 4
        #expect(tiny.isSubnormal)
    }
}
