internal import Synchronization
internal import CPUDetection

/// How many threads a computation may use, and the loop that spreads work over them.
///
/// All of the engine's parallel work goes through here (OpenBLAS itself is called single-threaded
/// from inside these loops), so one number governs every core a run uses, and one process-wide
/// budget (`computeThreadBudget`) every core the engine uses. Loops run on the engine's
/// `WorkerPool` (the budget's threads besides the caller, spinning briefly between loops); a loop
/// started while the pool runs another (a second session's or instance's run, or a loop nested in
/// a loop) runs on its caller alone, so concurrent runs share the cores instead of
/// oversubscribing them.
public struct Parallelism: Sendable, Hashable {
    /// Most threads one loop may use, at least 1.
    public let threads: Int
    /// Flush denormal floats to zero on the threads doing the work (see `withFloatingPointMode`).
    public let flushesDenormals: Bool

    /// A setting for `threads` threads (clamped to at least 1).
    public init(threads: Int, flushesDenormals: Bool = false) {
        self.threads = max(1, threads)
        self.flushesDenormals = flushesDenormals
    }

    /// Runs `body` with this setting's floating-point mode on the calling thread: with
    /// `flushesDenormals`, denormal results become zero and denormal inputs read as zero (FTZ and
    /// DAZ), which avoids the 10-100x slowdown of denormal arithmetic at the cost of IEEE
    /// gradual underflow. The thread's previous mode is restored afterwards.
    public func withFloatingPointMode<R, E>(_ body: () throws(E) -> R) throws(E) -> R {
        guard flushesDenormals else { return try body() }
        let saved = onnx_serve_flush_denormals()
        defer { onnx_serve_restore_floating_point_control(saved) }
        return try body()
    }

    /// Cores this process may run on (its CPU affinity mask, so containers and `taskset` count).
    public static let availableCores = Int(onnx_serve_available_cores())

    /// The engine's thread budget: the most threads that compute at once for parallel loops, the
    /// caller's included, across all sessions (the shared worker pool has one thread fewer).
    /// `availableCores` unless `reserveComputeThreads` set it before the pool started.
    public static var computeThreadBudget: Int { budget.withLock { $0.threads ?? availableCores } }

    /// Sets `computeThreadBudget` (at least 1). Only possible before the first parallel loop
    /// starts the worker pool (a daemon does it at start-up); returns false, changing nothing, after.
    @discardableResult
    public static func reserveComputeThreads(_ threads: Int) -> Bool {
        budget.withLock { budget in
            if budget.started { return false }
            budget.threads = max(1, threads)
            return true
        }
    }

    /// Fixes the budget for good and returns it (called once, by the pool as it starts).
    static func startComputeThreads() -> Int {
        budget.withLock { budget in
            budget.started = true
            return budget.threads ?? availableCores
        }
    }

    private static let budget = Mutex<(threads: Int?, started: Bool)>((nil, false))

    /// One thread: everything runs on the calling thread.
    public static let serial = Parallelism(threads: 1)

    /// Runs `body(i)` for every `i` in `0..<count`, spread over up to `threads` threads.
    /// `body` must be safe to call concurrently for different indices.
    ///
    /// The loop runs on the engine's spinning `WorkerPool` (the caller takes part); when the pool
    /// is already running another loop, on the caller alone (whose floating-point mode the run
    /// has set), so that the engine never computes on more threads than its budget and callers.
    public func forEach(_ count: Int, _ body: (Int) -> Void) {
        if count <= 0 { return }
        if threads > 1 && count > 1 {
            let helpers = min(threads, count) - 1
            let ran = flushesDenormals
                ? WorkerPool.shared.run(count, helpers: helpers) { index in withFloatingPointMode { body(index) } }
                : WorkerPool.shared.run(count, helpers: helpers, body)
            if ran { return }
        }
        for index in 0..<count { body(index) }
    }

    /// Splits `0..<total` into at most `threads` contiguous chunks of at least `minimumChunk`
    /// items and runs `body` on each chunk, in parallel.
    public func forEachChunk(_ total: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        if total <= 0 { return }
        let chunks = min(threads, max(1, total / max(1, minimumChunk)))
        if chunks == 1 {
            body(0..<total)
            return
        }
        forEach(chunks) { chunk in
            body(Self.chunk(chunk, of: chunks, total: total))
        }
    }

    /// The `index`-th of `count` near-equal contiguous parts of `0..<total`.
    public static func chunk(_ index: Int, of count: Int, total: Int) -> Range<Int> {
        let base = total / count, extra = total % count
        let start = index * base + min(index, extra)
        return start..<(start + base + (index < extra ? 1 : 0))
    }
}
