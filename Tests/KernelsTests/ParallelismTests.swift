import Dispatch
import Kernels
import Synchronization
import Testing

/// The parallel loop (on the engine's worker pool, or Dispatch when the pool is busy) runs every
/// index exactly once, from one caller, from many callers at once, and when nested.
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
}
