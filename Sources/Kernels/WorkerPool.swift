internal import Synchronization
internal import CPUDetection
#if canImport(Glibc)
internal import Glibc
#endif

/// The engine's own threads for parallel loops: one per available core but the caller's, kept
/// spinning for a short while after each loop before they sleep.
///
/// A CNN runs dozens of parallel loops of a millisecond or less per inference; waking a sleeping
/// thread (Dispatch's pool, or a condition variable) costs tens of microseconds each time, which
/// adds up to several percent of the run and lets the caller finish alone before help arrives.
/// Workers that spin between loops start the next one within a microsecond, as ONNX Runtime's
/// and OpenMP's pools do. One loop runs on the pool at a time; a loop started while it is busy
/// (another session's run, or a loop nested in a loop) runs on Dispatch's pool instead, so
/// concurrent callers still share the cores.
final class WorkerPool: @unchecked Sendable {
    /// The process-wide pool: one worker per available core besides the caller's.
    static let shared = WorkerPool(workers: Parallelism.availableCores - 1)

    /// Pause instructions a worker spins for before sleeping (roughly 0.2–1 ms).
    static let spinLimit = 8_000

    /// Worker threads (the caller of `run` makes one more participant).
    let workers: Int

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

    private init(workers: Int) {
        self.workers = max(0, workers)
        mutex = .allocate(capacity: 1)
        wakeup = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wakeup, nil)
        for _ in 0..<self.workers { start() }
    }

    private func start() {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let result = pthread_create(&thread, nil, { context in
            Unmanaged<WorkerPool>.fromOpaque(context!).takeRetainedValue().work()
            return nil
        }, context)
        precondition(result == 0, "cannot start an engine worker thread (error \(result))")
        pthread_detach(thread)
    }

    /// Runs `body(i)` for every `i` in `0..<count` on the caller and up to `helpers` workers, each
    /// taking the next unclaimed index. Returns false, having run nothing, if the pool is busy.
    func run(_ count: Int, helpers: Int, _ body: (Int) -> Void) -> Bool {
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
        var seen = epoch.load(ordering: .acquiring)
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
