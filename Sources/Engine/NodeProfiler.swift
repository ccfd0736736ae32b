internal import Synchronization
public import Tensors

/// Time spent in each node over the runs it is passed to (like ONNX Runtime's
/// `enable_profiling`): pass one to `InferenceSession.run(_:outputs:profiler:)`.
public final class NodeProfiler: Sendable {
    /// One node's totals.
    public struct Entry: Sendable {
        /// The node's label (`OpType 'name'`).
        public var node: String
        /// The ONNX op type, or the fused form the optimiser made of it.
        public var opType: String
        /// Shape of its first output in the last profiled run.
        public var outputShape: Shape?
        /// Total time over all profiled runs.
        public var total: Duration
        /// Runs it took part in.
        public var runs: Int
    }

    private let entries = Mutex<[Int: Entry]>([:])

    public init() {}

    func record(step: Int, node: String, opType: String, outputShape: Shape?, duration: Duration) {
        entries.withLock { entries in
            if entries[step] == nil {
                entries[step] = Entry(node: node, opType: opType, outputShape: outputShape, total: .zero, runs: 0)
            }
            entries[step]!.total += duration
            entries[step]!.runs += 1
            entries[step]!.outputShape = outputShape
        }
    }

    /// Every node profiled, in execution order.
    public var nodes: [Entry] {
        entries.withLock { entries in entries.keys.sorted().map { entries[$0]! } }
    }
}
