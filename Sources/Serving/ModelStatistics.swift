import Foundation
import Synchronization

/// Per-model-version counters in the shape of Triton's statistics extension: requests that
/// succeeded or failed and the time they took, time spent queued, decoding, computing and
/// encoding, engine runs, and per-batch-size figures.
public final class ModelStatistics: Sendable {
    /// A count and the total time of what was counted.
    public struct Duration: Sendable, Equatable {
        public var count: Int = 0
        public var nanoseconds: Int64 = 0

        public init() {}

        mutating func add(_ duration: Swift.Duration) {
            count += 1
            nanoseconds += duration.nanoseconds
        }
    }

    /// A snapshot of every counter.
    public struct Snapshot: Sendable, Equatable {
        /// Requests answered successfully, with their whole time in the server.
        public var success = Duration()
        /// Requests that failed after reaching the model.
        public var failure = Duration()
        /// Time requests waited for the engine.
        public var queue = Duration()
        /// Time spent turning request bodies into tensors.
        public var computeInput = Duration()
        /// Engine time, counted per request (a request shares its run's time).
        public var computeInfer = Duration()
        /// Time spent turning output tensors into response bodies.
        public var computeOutput = Duration()
        /// Rows (batch elements) inferred.
        public var inferenceCount = 0
        /// Engine runs.
        public var executionCount = 0
        /// Milliseconds since 1970 of the last run (0: never).
        public var lastInferenceMilliseconds: Int64 = 0
        /// Batch size (rows) → runs of that size and their engine time.
        public var batches: [Int: Duration] = [:]
    }

    private let state = Mutex(Snapshot())

    public init() {}

    /// The current counters.
    public var snapshot: Snapshot { state.withLock { $0 } }

    /// A request answered successfully after `total` in the server, having spent `input` and
    /// `output` in the codecs.
    public func recordSuccess(total: Swift.Duration, input: Swift.Duration, output: Swift.Duration) {
        state.withLock { state in
            state.success.add(total)
            state.computeInput.add(input)
            state.computeOutput.add(output)
        }
    }

    /// A request that reached the model and failed.
    public func recordFailure(total: Swift.Duration) {
        state.withLock { $0.failure.add(total) }
    }

    func recordRun(rows: Int, requests: Int, queueWaits: [Swift.Duration], engine: Swift.Duration) {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        state.withLock { state in
            state.executionCount += 1
            state.inferenceCount += rows
            state.lastInferenceMilliseconds = now
            for wait in queueWaits { state.queue.add(wait) }
            for _ in 0..<requests { state.computeInfer.add(engine) }
            state.batches[rows, default: Duration()].add(engine)
        }
    }
}
