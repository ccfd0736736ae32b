import Dispatch
import Glibc
import Kernels
import Synchronization
import Testing

/// The parallel loop (on the engine's worker pool, or on its caller alone when the pool is busy)
/// runs every index exactly once, from one caller, from many callers at once, and when nested;
/// the pool's driver, with executors of our own, never uses more threads than its budget.
@Suite struct ParallelismTests {
    /// Runs `forEach(count)` and returns how many times each index ran.
    private func visits(_ count: Int, threads: Int, flushesDenormals: Bool = false,
                        inner: ((Int) -> Void)? = nil) -> [Int] {
        let counts = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: max(count, 1))
        for index in 0..<count { (counts + index).initialize(to: Atomic(0)) }
        defer { counts.deallocate() }
        Parallelism(threads: threads, flushesDenormals: flushesDenormals).forEach(count) { index in
            inner?(index)
            counts[index].add(1, ordering: .relaxed)
        }
        return (0..<count).map { counts[$0].load(ordering: .relaxed) }
    }

    @Test(arguments: [0, 1, 2, 3, 17, 1000])
    func everyIndexRunsOnce(count: Int) {
        for threads in [1, 2, 3, 8] {
            for _ in 0..<50 {
                let seen = visits(count, threads: threads)
                #expect(seen.allSatisfy { $0 == 1 }, "count \(count) threads \(threads)")
            }
        }
        #expect(visits(count, threads: 2, flushesDenormals: true).allSatisfy { $0 == 1 })
    }

    @Test func concurrentCallersEachGetEveryIndexOnce() {
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 8) { caller in
            for round in 0..<200 {
                let count = 1 + (caller * 31 + round * 7) % 97
                if !visits(count, threads: 2).allSatisfy({ $0 == 1 }) { failures.add(1, ordering: .relaxed) }
            }
        }
        #expect(failures.load(ordering: .relaxed) == 0)
    }

    @Test func nestedLoopsRunEveryIndexOnce() {
        let innerFailures = Atomic<Int>(0)
        let outer = visits(6, threads: 2) { _ in
            if !self.visits(33, threads: 2).allSatisfy({ $0 == 1 }) { innerFailures.add(1, ordering: .relaxed) }
        }
        #expect(outer.allSatisfy { $0 == 1 })
        #expect(innerFailures.load(ordering: .relaxed) == 0)
    }

    @Test func loopsAfterTheWorkersFellAsleepStillRun() async throws {
        #expect(visits(64, threads: 2).allSatisfy { $0 == 1 })
        try await Task.sleep(for: .milliseconds(50))
        #expect(visits(64, threads: 2).allSatisfy { $0 == 1 })
    }

    @Test func aLoopStartedWhileThePoolIsBusyRunsOnItsCallerAlone() {
        let strays = Atomic<Int>(0)
        let outer = visits(4, threads: 2) { _ in
            let caller = pthread_self()
            // The pool is running the outer loop: the inner one must not leave this thread.
            _ = self.visits(40, threads: 2) { _ in
                if pthread_self() != caller { strays.add(1, ordering: .relaxed) }
            }
        }
        #expect(outer.allSatisfy { $0 == 1 })
        #expect(strays.load(ordering: .relaxed) == 0)
    }

    /// A worker whose thread starts only after a loop was announced (a slow thread start on a busy
    /// machine) still joins that loop: the executor holds the worker loops back, and the caller's
    /// first index starts them and waits, within a generous bound, for another thread to run an
    /// index. (A worker that took the epoch current at its start as already seen sat that loop out.)
    @Test func aWorkerStartedAfterALoopWasAnnouncedJoinsIt() {
        let held = Mutex<[@Sendable () -> Void]>([])
        let pool = WorkerPool(workers: 1) { body in held.withLock { $0.append(body) } }
        let caller = pthread_self()
        for round in 0..<3 {
            let elsewhere = Atomic<Int>(0), runs = Mutex<[Int]>([0, 0])
            var waitedOut = false
            #expect(pool.run(2, helpers: 1) { index in
                runs.withLock { $0[index] += 1 }
                if pthread_self() != caller { elsewhere.add(1, ordering: .relaxed); return }
                if round == 0 { for body in held.withLock({ $0 }) { WorkerPool.startDetachedThread(body) } }
                let deadline = ContinuousClock.now + .seconds(20)
                while elsewhere.load(ordering: .relaxed) == 0 {
                    if ContinuousClock.now > deadline { waitedOut = true; break }
                    sched_yield()
                }
            })
            #expect(!waitedOut, "round \(round): the worker never joined")
            #expect(elsewhere.load(ordering: .relaxed) >= 1 && runs.withLock { $0 == [1, 1] }, "round \(round)")
        }
    }

    /// An executor that records the worker loops it is given and never runs them: no worker ever
    /// joins, and every loop still runs each index once, all on its caller.
    @Test func loopsFinishOnTheCallerWhenNoWorkerJoins() {
        let started = Atomic<Int>(0)
        let pool = WorkerPool(workers: 3) { _ in started.add(1, ordering: .relaxed) }
        #expect(started.load(ordering: .relaxed) == 3)
        let caller = pthread_self()
        for count in [1, 2, 50] {
            var seen = [Int](repeating: 0, count: count), elsewhere = 0
            #expect(pool.run(count, helpers: 3) { index in
                seen[index] += 1
                if pthread_self() != caller { elsewhere += 1 }
            })
            #expect(seen.allSatisfy { $0 == 1 } && elsewhere == 0, "count \(count)")
        }
    }

    /// Real threads through a counting executor: a pool started with a budget of three threads
    /// starts two workers, a loop asking for more helpers still runs on at most three threads, and
    /// a loop started while another runs on the pool is refused (its caller then runs it alone).
    @Test func thePoolStaysWithinItsBudget() {
        let started = Atomic<Int>(0)
        let pool = WorkerPool(workers: 2) { body in
            started.add(1, ordering: .relaxed)
            WorkerPool.startDetachedThread(body)
        }
        #expect(started.load(ordering: .relaxed) == 2 && pool.workers == 2)
        for _ in 0..<20 {
            let threads = Mutex<Set<UInt>>([]), counts = Mutex<[Int]>(Array(repeating: 0, count: 400))
            var refused = 0
            #expect(pool.run(400, helpers: 8) { index in
                threads.withLock { _ = $0.insert(UInt(pthread_self())) }
                counts.withLock { $0[index] += 1 }
                if index == 0, !pool.run(3, helpers: 1, { _ in }) { refused += 1 }
            })
            #expect(threads.withLock { $0.count } <= 3)
            #expect(counts.withLock { $0.allSatisfy { $0 == 1 } })
            #expect(refused == 1)
        }
    }

    @Test func theBudgetIsFixedOnceThePoolRuns() {
        _ = visits(8, threads: 2)
        let budget = Parallelism.computeThreadBudget
        #expect(budget >= 1)
        #expect(!Parallelism.reserveComputeThreads(budget + 1))
        #expect(Parallelism.computeThreadBudget == budget)
    }
}
