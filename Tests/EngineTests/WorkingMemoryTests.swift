import Engine
import Tensors
import Testing

/// Working memory: the estimate made from shapes before a run, the budget it enforces, the
/// allocation meter behind it, and the pool giving memory back after an unusually large run.
@Suite struct WorkingMemoryTests {
    /// The estimate for a run, and what the run then held at most.
    static func estimateAndPeak(_ session: InferenceSession, _ ids: Tensor) throws -> (WorkingMemoryEstimate, Int) {
        let estimate = try session.estimatedWorkingMemory(for: ["ids": ids.shape])
        let meter = WorkingMemoryMeter()
        _ = try session.run(["ids": ids], meter: meter)
        return (estimate, meter.peakBytes)
    }

    @Test(arguments: [(1, 8), (3, 40), (8, 128)])
    func estimateCoversWhatTheRunHolds(batch: Int, sequence: Int) throws {
        for optimizations in [true, false] {
            let session = try InferenceSession(model: EncoderModel.model(), options: .init(intraOpThreads: 2, optimizations: optimizations))
            let (estimate, peak) = try Self.estimateAndPeak(session, EncoderModel.ids(batch, sequence))
            #expect(estimate.isComplete, "not estimated: \(estimate.unestimatedNodes)")
            // Never below what the run held; above it only by buffers counted as live a step longer.
            #expect(estimate.peakBytes >= peak, "estimate \(estimate.peakBytes) below the run's \(peak) bytes")
            #expect(estimate.peakBytes <= 2 * peak, "estimate \(estimate.peakBytes) far above the run's \(peak) bytes")
        }
    }

    @Test func estimateGrowsWithTheScoresMatrix() throws {
        let session = try InferenceSession(model: EncoderModel.model())
        let small = try session.estimatedWorkingMemory(for: ["ids": [2, 64]]).peakBytes
        let large = try session.estimatedWorkingMemory(for: ["ids": [2, 512]]).peakBytes
        // Scores [2, 4, S, S] float dominate: 64× the elements for 8× the sequence.
        #expect(large > 40 * small)
        #expect(large >= 2 * 4 * 512 * 512 * 4)
    }

    @Test func estimateChecksShapesAsRunDoes() throws {
        let session = try InferenceSession(model: EncoderModel.model())
        #expect(throws: EngineError.invalidInput("missing input 'ids'")) { try session.estimatedWorkingMemory(for: [:]) }
        #expect(throws: EngineError.self) { try session.estimatedWorkingMemory(for: ["ids": [2, 3, 4]]) }
        #expect(throws: EngineError.self) { try session.estimatedWorkingMemory(for: ["ids": [1 << 40, 1 << 40]]) }
    }

    @Test func runOverTheBudgetIsRefusedBeforeItStarts() throws {
        let probe = try InferenceSession(model: EncoderModel.model(), options: .init(workingMemoryBudget: nil))
        let ids = EncoderModel.ids(4, 96)
        let estimate = try probe.estimatedWorkingMemory(for: ["ids": ids.shape]).peakBytes
        let tight = try InferenceSession(model: EncoderModel.model(), options: .init(workingMemoryBudget: estimate - 1))
        let meter = WorkingMemoryMeter()
        do {
            _ = try tight.run(["ids": ids], meter: meter)
            Issue.record("a run estimated above the budget ran")
        } catch {
            guard case .resourceExhausted(let message) = error else {
                Issue.record("expected resourceExhausted, got \(error)")
                return
            }
            #expect(message.contains("ids [4, 96]") && message.contains("budget"), "\(message)")
        }
        #expect(meter.peakBytes == 0, "the refused run allocated \(meter.peakBytes) bytes")
        let enough = try InferenceSession(model: EncoderModel.model(), options: .init(workingMemoryBudget: estimate))
        #expect(try enough.run(["ids": ids])["y"]?.shape == [4, 96, 16])
    }

    /// ids [N] → ReduceSum → scalar limit → Range(0, limit, 1): a length decided by the feed's
    /// values, which the estimate (from shapes) cannot know.
    static let valueSizedRange = Model(
        graph: Graph(nodes: [Node(name: "total", opType: "ReduceSum", inputs: ["counts"], outputs: ["limit"], attributes: ["keepdims": .int(0)]),
                             Node(name: "range", opType: "Range", inputs: ["start", "limit", "delta"], outputs: ["y"])],
                     inputs: [ValueInfo(name: "counts", type: TensorType(.int64, [.fixed(100)]))],
                     outputs: [ValueInfo(name: "y", type: nil)],
                     initializers: ["start": Tensor(scalar: Int64(0)), "delta": Tensor(scalar: Int64(1))]),
        opsets: ["": 13])

    @Test func meterStopsARunTheEstimateCouldNotSize() throws {
        let session = try InferenceSession(model: Self.valueSizedRange, options: .init(workingMemoryBudget: 1 << 20))
        let estimate = try session.estimatedWorkingMemory(for: ["counts": [100]])
        #expect(estimate.unestimatedNodes == ["Range 'range'"])
        let small = Tensor([Int64](repeating: 10, count: 100), shape: [100])
        #expect(try session.run(["counts": small])["y"]?.shape == [1000])
        // 100 × 10,000 int64s = 8 MB, past the 1 MiB budget: stopped at the Range's allocation.
        let large = Tensor([Int64](repeating: 10_000, count: 100), shape: [100])
        #expect {
            try session.run(["counts": large])
        } throws: { error in
            guard case .resourceExhausted(let message) = error as? EngineError else { return false }
            return message.hasPrefix("Range 'range': ") && message.contains("budget of 1048576 bytes")
        }
    }

    @Test func largeRunGivesItsMemoryBack() throws {
        let session = try InferenceSession(model: EncoderModel.model(), options: .init(intraOpThreads: 1))
        let small = EncoderModel.ids(1, 16)
        for _ in 0..<4 { _ = try session.run(["ids": small]) }
        let usual = session.bufferPool.allocatedBytes
        // Scores alone are 4 × 4 × 256² floats = 4 MiB here.
        _ = try session.run(["ids": EncoderModel.ids(4, 256)])
        #expect(session.bufferPool.allocatedBytes <= 2 * usual,
                "\(session.bufferPool.allocatedBytes) bytes kept after the large run, \(usual) before it")
        // Warm runs of the usual size still find every buffer they need.
        let peak = session.memoryStatistics.peak
        for _ in 0..<3 { _ = try session.run(["ids": small]) }
        #expect(session.bufferPool.allocatedBytes <= 2 * usual)
        #expect(session.memoryStatistics.peak == peak)
    }

    @Test func steadyLargeRunsKeepTheirBuffers() throws {
        let session = try InferenceSession(model: EncoderModel.model(), options: .init(intraOpThreads: 1))
        let ids = EncoderModel.ids(4, 256)
        for _ in 0..<3 { _ = try session.run(["ids": ids]) }
        let allocated = session.bufferPool.allocatedBytes
        for _ in 0..<5 { _ = try session.run(["ids": ids]) }
        #expect(session.bufferPool.allocatedBytes == allocated, "a warm run of the usual size allocated or freed")
    }
}
