import Serving
import Testing

/// The batching state machine, driven with a fake clock: time is only ever the `now` we pass.
@Suite struct BatchQueueTests {
    let t0 = ContinuousClock.now
    let image = BatchSignature(parts: ["x:float:[3, 8, 8]", "outputs:*"])
    let other = BatchSignature(parts: ["x:float:[3, 16, 16]", "outputs:*"])

    func entry(_ id: Int, rows: Int = 1, _ signature: BatchSignature? = nil, at offset: Duration = .zero,
               deadline: Duration? = nil) -> BatchQueue.Entry {
        BatchQueue.Entry(id: id, rows: rows, signature: signature ?? image, arrival: t0 + offset,
                         deadline: deadline.map { t0 + $0 })
    }

    /// Starts a worker for `id` and lets it take its batch: the queue is then running it.
    func startRunning(_ queue: inout BatchQueue, _ id: Int, at now: ContinuousClock.Instant? = nil) {
        #expect(queue.handle(.arrived(entry(id)), now: now ?? t0) == [.startWorker])
        #expect(queue.handle(.workerReady, now: now ?? t0) == [.run([id])])
    }

    @Test func idleQueueStartsAWorkerThatRunsTheRequest() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 8))
        #expect(queue.handle(.arrived(entry(0)), now: t0) == [.startWorker])
        #expect(queue.running == 1 && queue.starting == 1)
        #expect(queue.handle(.workerReady, now: t0) == [.run([0])])
        #expect(queue.running == 1 && queue.starting == 0)
        #expect(queue.handle(.runFinished, now: t0) == [])
        #expect(queue.running == 0)
    }

    @Test func requestsArrivingWhileTheWorkerWakesJoinItsBatch() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 8))
        #expect(queue.handle(.arrived(entry(0)), now: t0) == [.startWorker])
        // Only one worker is ever starting: the later arrivals wait for it.
        #expect(queue.handle(.arrived(entry(1)), now: t0) == [])
        #expect(queue.handle(.arrived(entry(2)), now: t0) == [])
        #expect(queue.handle(.workerReady, now: t0) == [.run([0, 1, 2])])
    }

    @Test func requestsArrivingDuringARunAreBatchedWhenItFinishes() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 8))
        startRunning(&queue, 0)
        #expect(queue.handle(.arrived(entry(1)), now: t0) == [])
        #expect(queue.handle(.arrived(entry(2, rows: 3)), now: t0) == [])
        // The worker that finished goes on with the next batch itself: no new worker.
        #expect(queue.handle(.runFinished, now: t0 + .milliseconds(5)) == [.run([1, 2])])
        #expect(queue.running == 1)
    }

    @Test func batchNeverExceedsMaxRows() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 4))
        startRunning(&queue, 0)
        for id in 1...4 { _ = queue.handle(.arrived(entry(id, rows: 2)), now: t0) }
        #expect(queue.handle(.runFinished, now: t0) == [.run([1, 2])])
        #expect(queue.handle(.runFinished, now: t0) == [.run([3, 4])])
        #expect(queue.handle(.runFinished, now: t0) == [])
        #expect(queue.running == 0)
    }

    @Test func oversizedRequestRunsAlone() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 4))
        _ = queue.handle(.arrived(entry(0, rows: 10)), now: t0)
        _ = queue.handle(.arrived(entry(1, rows: 1)), now: t0)
        #expect(queue.handle(.workerReady, now: t0) == [.run([0])])
        #expect(queue.handle(.runFinished, now: t0) == [.run([1])])
    }

    @Test func incompatibleShapesNeverShareARun() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 8))
        startRunning(&queue, 0)
        _ = queue.handle(.arrived(entry(1, image)), now: t0)
        _ = queue.handle(.arrived(entry(2, other)), now: t0)
        _ = queue.handle(.arrived(entry(3, image)), now: t0)
        #expect(queue.handle(.runFinished, now: t0) == [.run([1, 3])])
        #expect(queue.handle(.runFinished, now: t0) == [.run([2])])
    }

    @Test func requestsWithoutSignatureRunOneByOne() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 8))
        for id in 0..<3 {
            _ = queue.handle(.arrived(BatchQueue.Entry(id: id, rows: 1, signature: nil, arrival: t0)), now: t0)
        }
        #expect(queue.handle(.workerReady, now: t0) == [.run([0])])
        #expect(queue.handle(.runFinished, now: t0) == [.run([1])])
    }

    @Test func disabledBatchingRunsOneRequestPerRun() {
        var queue = BatchQueue(policy: BatchPolicy(enabled: false, maxBatchSize: 8))
        for id in 0..<3 { _ = queue.handle(.arrived(entry(id)), now: t0) }
        #expect(queue.handle(.workerReady, now: t0) == [.run([0])])
        #expect(queue.handle(.runFinished, now: t0) == [.run([1])])
        #expect(queue.handle(.runFinished, now: t0) == [.run([2])])
        #expect(queue.handle(.runFinished, now: t0) == [])
    }

    @Test func queueDelayHoldsAPartialBatchUntilTheTimer() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 4, maxQueueDelay: .milliseconds(2)))
        #expect(queue.handle(.arrived(entry(0)), now: t0) == [.armTimer(t0 + .milliseconds(2))])
        #expect(queue.handle(.arrived(entry(1, at: .microseconds(500))), now: t0 + .microseconds(500)) == [])
        #expect(queue.handle(.timerFired, now: t0 + .milliseconds(2)) == [.startWorker])
        #expect(queue.handle(.workerReady, now: t0 + .milliseconds(2)) == [.run([0, 1])])
    }

    @Test func queueDelayEndsEarlyWhenTheBatchIsFull() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 2, maxQueueDelay: .milliseconds(2)))
        _ = queue.handle(.arrived(entry(0)), now: t0)
        #expect(queue.handle(.arrived(entry(1)), now: t0 + .microseconds(100)) == [.startWorker])
        #expect(queue.handle(.workerReady, now: t0 + .microseconds(110)) == [.run([0, 1])])
    }

    @Test func workerFindingItsBatchGoneGivesItsInstanceBack() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 2, maxQueueDelay: .milliseconds(2)))
        #expect(queue.handle(.arrived(entry(0)), now: t0) == [.armTimer(t0 + .milliseconds(2))])
        #expect(queue.handle(.arrived(entry(1)), now: t0) == [.startWorker])
        // A client leaves before the worker wakes: the rest is no longer a full batch, and
        // waits for the timer armed at its arrival.
        #expect(queue.handle(.clientGone(id: 1), now: t0) == [.drop(1)])
        #expect(queue.handle(.workerReady, now: t0 + .microseconds(10)) == [])
        #expect(queue.running == 0 && queue.starting == 0)
        #expect(queue.handle(.timerFired, now: t0 + .milliseconds(2)) == [.startWorker])
        #expect(queue.handle(.workerReady, now: t0 + .milliseconds(2)) == [.run([0])])
    }

    @Test func preferredSizeIsCutWithoutWaiting() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 8, maxQueueDelay: .milliseconds(5), preferredBatchSizes: [2, 4]))
        _ = queue.handle(.arrived(entry(0)), now: t0)
        #expect(queue.handle(.arrived(entry(1)), now: t0) == [.startWorker])
        _ = queue.handle(.arrived(entry(2)), now: t0)
        #expect(queue.handle(.workerReady, now: t0) == [.run([0, 1])])
    }

    @Test func fullQueueRejectsAtOnce() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 1, maxQueueLength: 2))
        startRunning(&queue, 0)
        _ = queue.handle(.arrived(entry(1)), now: t0)
        _ = queue.handle(.arrived(entry(2)), now: t0)
        #expect(queue.handle(.arrived(entry(3)), now: t0) == [.reject(3)])
        #expect(queue.waiting.map(\.id) == [1, 2])
    }

    @Test func expiredRequestIsAnsweredWithoutRunning() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 1))
        startRunning(&queue, 0)
        #expect(queue.handle(.arrived(entry(1, deadline: .milliseconds(10))), now: t0) == [.armTimer(t0 + .milliseconds(10))])
        #expect(queue.handle(.timerFired, now: t0 + .milliseconds(10)) == [.expire(1)])
        #expect(queue.handle(.runFinished, now: t0 + .milliseconds(20)) == [])
    }

    @Test func requestExpiringWhileTheWorkerWakesIsNotRun() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 4))
        #expect(queue.handle(.arrived(entry(0, deadline: .milliseconds(1))), now: t0)
                == [.startWorker, .armTimer(t0 + .milliseconds(1))])
        #expect(queue.handle(.workerReady, now: t0 + .milliseconds(2)) == [.expire(0)])
        #expect(queue.running == 0)
    }

    @Test func departedClientCostsNoCompute() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 4))
        startRunning(&queue, 0)
        _ = queue.handle(.arrived(entry(1)), now: t0)
        _ = queue.handle(.arrived(entry(2)), now: t0)
        #expect(queue.handle(.clientGone(id: 1), now: t0) == [.drop(1)])
        #expect(queue.handle(.runFinished, now: t0) == [.run([2])])
        #expect(queue.handle(.clientGone(id: 2), now: t0) == [])
    }

    @Test func instancesBoundConcurrentRuns() {
        var queue = BatchQueue(policy: BatchPolicy(enabled: false, instances: 2))
        #expect(queue.handle(.arrived(entry(0)), now: t0) == [.startWorker])
        #expect(queue.handle(.arrived(entry(1)), now: t0) == [])
        // Once the first worker has its batch, a second starts for what is left.
        #expect(queue.handle(.workerReady, now: t0) == [.run([0]), .startWorker])
        #expect(queue.handle(.arrived(entry(2)), now: t0) == [])
        #expect(queue.handle(.workerReady, now: t0) == [.run([1])])
        #expect(queue.running == 2)
        #expect(queue.handle(.arrived(entry(3)), now: t0) == [])
        #expect(queue.handle(.runFinished, now: t0) == [.run([2])])
        #expect(queue.handle(.runFinished, now: t0) == [.run([3])])
        #expect(queue.handle(.runFinished, now: t0) == [])
        #expect(queue.handle(.runFinished, now: t0) == [])
        #expect(queue.running == 0)
    }
}
