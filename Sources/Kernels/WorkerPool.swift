internal import Synchronization
internal import CPUDetection
#if canImport(Glibc)
internal import Glibc
#endif

/// The engine's own threads for parallel loops, kept spinning for a short while after each loop
/// before they sleep. The process-wide pool (`shared`) has one worker fewer than the engine's
/// thread budget (`Parallelism.computeThreadBudget`): the caller of a loop is the other one.
///
/// A CNN runs dozens of parallel loops of a millisecond or less per inference; waking a sleeping
/// thread (Dispatch's pool, or a condition variable) costs tens of microseconds each time, which
/// adds up to several percent of the run and lets the caller finish alone before help arrives.
/// Workers that spin between loops start the next one within a microsecond, as ONNX Runtime's
/// and OpenMP's pools do. One loop runs on the pool at a time; `run` refuses a loop started while
/// it is busy (another session's run, or a loop nested in a loop), and `Parallelism` then runs
/// that loop on its caller alone: the pool is the only owner of threads besides the callers.
package final class WorkerPool: @unchecked Sendable {
    /// The process-wide pool: the thread budget's threads besides the caller's.
    static let shared = WorkerPool(workers: Parallelism.startComputeThreads() - 1)

    /// Pause instructions a worker spins for before sleeping (roughly 0.2–1 ms).
    static let spinLimit = 8_000

    /// Worker threads (the caller of `run` makes one more participant).
    package let workers: Int

    /// Held (true) by the caller whose loop is on the pool.
    private let busy = Atomic<Bool>(false)
    /// Bumped for every loop; sleeping and spinning workers watch it.
    private let epoch = Atomic<Int>(0)
    /// Places left for workers in the current loop; a worker joins by taking one. The caller
    /// takes back the ones still free when its loop is done, so late workers never touch it.
    private let slots = Atomic<Int>(0)
    /// Workers that joined the current loop and have finished.
    private let finished = Atomic<Int>(0)
    /// The current loop's next unclaimed index.
    private let next = Atomic<Int>(0)
    /// Workers waiting on `wakeup`.
    private let sleepers = Atomic<Int>(0)
    /// The current loop (valid while `slots` may be taken or joined workers run).
    private var count = 0
    private var body: UnsafeRawPointer?

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wakeup: UnsafeMutablePointer<pthread_cond_t>

    /// A pool of `workers` threads, each started by `startThread` with the worker's loop (which
    /// never returns). Tests pass an executor of their own; the default starts a detached pthread.
    package init(workers: Int, startThread: (@escaping @Sendable () -> Void) -> Void = WorkerPool.startDetachedThread) {
        self.workers = max(0, workers)
        mutex = .allocate(capacity: 1)
        wakeup = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wakeup, nil)
        for _ in 0..<self.workers {
            startThread { [self] in work() }
        }
    }

    /// Runs `body` on a new detached thread.
    package static func startDetachedThread(_ body: @escaping @Sendable () -> Void) {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        let result = pthread_create(&thread, nil, { context in
            Unmanaged<Box>.fromOpaque(context!).takeRetainedValue().body()
            return nil
        }, context)
        precondition(result == 0, "cannot start an engine worker thread (error \(result))")
        pthread_detach(thread)
    }

    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    /// Runs `body(i)` for every `i` in `0..<count` on the caller and up to `helpers` workers, each
    /// taking the next unclaimed index. Returns false, having run nothing, if the pool is busy.
    package func run(_ count: Int, helpers: Int, _ body: (Int) -> Void) -> Bool {
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        defer { busy.store(false, ordering: .releasing) }
        return withoutActuallyEscaping(body) { body in
            var job = body
            return withUnsafeMutablePointer(to: &job) { pointer in
                self.count = count
                self.body = UnsafeRawPointer(pointer)
                next.store(0, ordering: .relaxed)
                finished.store(0, ordering: .relaxed)
                let offered = min(helpers, workers)
                slots.store(offered, ordering: .releasing)
                epoch.add(1, ordering: .sequentiallyConsistent)
                if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                    pthread_mutex_lock(mutex)
                    pthread_cond_broadcast(wakeup)
                    pthread_mutex_unlock(mutex)
                }
                help(pointer)
                // Places nobody took are withdrawn; wait for the workers that did take one. They
                // are finishing their last index: spin, but yield the core if that takes long (a
                // helper descheduled by a busy machine needs it more than we do).
                let joined = offered - slots.exchange(0, ordering: .acquiringAndReleasing)
                var spins = 0
                while finished.load(ordering: .acquiring) < joined {
                    spins += 1
                    if spins < Self.spinLimit { onnx_serve_spin_pause() } else { sched_yield() }
                }
                self.body = nil
                return true
            }
        }
    }

    /// Runs unclaimed indices of the current loop until none are left. Not inlined, so every
    /// retain of the loop's closure made here is released before it returns (the caller checks
    /// that the closure did not escape once all helpers have returned from here).
    @inline(never)
    private func help(_ job: UnsafePointer<(Int) -> Void>) {
        let count = self.count
        while true {
            let index = next.add(1, ordering: .relaxed).oldValue
            if index >= count { return }
            job.pointee(index)
        }
    }

    /// A worker's life: wait for a loop, join it if there is room, help until it is done.
    private func work() {
        // The epoch the pool starts with, not the current one: a worker whose thread starts after
        // a loop was announced still offers to join it (`slots` decides whether it may; a loop
        // already over has none left). Starting from the current epoch, it sat out that loop.
        var seen = 0
        while true {
            var spins = 0
            while epoch.load(ordering: .acquiring) == seen {
                if spins < Self.spinLimit {
                    spins += 1
                    onnx_serve_spin_pause()
                    continue
                }
                pthread_mutex_lock(mutex)
                sleepers.add(1, ordering: .sequentiallyConsistent)
                while epoch.load(ordering: .sequentiallyConsistent) == seen { pthread_cond_wait(wakeup, mutex) }
                sleepers.subtract(1, ordering: .sequentiallyConsistent)
                pthread_mutex_unlock(mutex)
            }
            seen = epoch.load(ordering: .acquiring)
            guard join() else { continue }
            help(body!.assumingMemoryBound(to: ((Int) -> Void).self))
            finished.add(1, ordering: .releasing)
        }
    }

    /// Takes a free place in the current loop, if any.
    private func join() -> Bool {
        var free = slots.load(ordering: .relaxed)
        while free > 0 {
            let (exchanged, original) = slots.compareExchange(expected: free, desired: free - 1, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            free = original
        }
        return false
    }
}
