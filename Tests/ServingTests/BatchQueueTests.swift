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

    @Test func idleQueueRunsARequestAtOnce() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 8))
        #expect(queue.handle(.arrived(entry(0)), now: t0) == [.run([0])])
        #expect(queue.running == 1)
    }

    @Test func requestsArrivingDuringARunAreBatchedWhenItFinishes() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 8))
        _ = queue.handle(.arrived(entry(0)), now: t0)
        #expect(queue.handle(.arrived(entry(1)), now: t0) == [])
        #expect(queue.handle(.arrived(entry(2, rows: 3)), now: t0) == [])
        #expect(queue.handle(.runFinished, now: t0 + .milliseconds(5)) == [.run([1, 2])])
    }

    @Test func batchNeverExceedsMaxRows() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 4))
        _ = queue.handle(.arrived(entry(0)), now: t0)
        for id in 1...4 { _ = queue.handle(.arrived(entry(id, rows: 2)), now: t0) }
        #expect(queue.handle(.runFinished, now: t0) == [.run([1, 2])])
        #expect(queue.handle(.runFinished, now: t0) == [.run([3, 4])])
    }

    @Test func oversizedRequestRunsAlone() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 4))
        #expect(queue.handle(.arrived(entry(0, rows: 10)), now: t0) == [.run([0])])
    }

    @Test func incompatibleShapesNeverShareARun() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 8))
        _ = queue.handle(.arrived(entry(0)), now: t0)
        _ = queue.handle(.arrived(entry(1, image)), now: t0)
        _ = queue.handle(.arrived(entry(2, other)), now: t0)
        _ = queue.handle(.arrived(entry(3, image)), now: t0)
        #expect(queue.handle(.runFinished, now: t0) == [.run([1, 3])])
        #expect(queue.handle(.runFinished, now: t0) == [.run([2])])
    }

    @Test func requestsWithoutSignatureRunOneByOne() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 8))
        _ = queue.handle(.arrived(BatchQueue.Entry(id: 0, rows: 1, signature: nil, arrival: t0)), now: t0)
        _ = queue.handle(.arrived(BatchQueue.Entry(id: 1, rows: 1, signature: nil, arrival: t0)), now: t0)
        _ = queue.handle(.arrived(BatchQueue.Entry(id: 2, rows: 1, signature: nil, arrival: t0)), now: t0)
        #expect(queue.handle(.runFinished, now: t0) == [.run([1])])
    }

    @Test func disabledBatchingRunsOneRequestPerRun() {
        var queue = BatchQueue(policy: BatchPolicy(enabled: false, maxBatchSize: 8))
        _ = queue.handle(.arrived(entry(0)), now: t0)
        _ = queue.handle(.arrived(entry(1)), now: t0)
        _ = queue.handle(.arrived(entry(2)), now: t0)
        #expect(queue.handle(.runFinished, now: t0) == [.run([1])])
    }

    @Test func queueDelayHoldsAPartialBatchUntilTheTimer() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 4, maxQueueDelay: .milliseconds(2)))
        #expect(queue.handle(.arrived(entry(0)), now: t0) == [.armTimer(t0 + .milliseconds(2))])
        #expect(queue.handle(.arrived(entry(1, at: .microseconds(500))), now: t0 + .microseconds(500)) == [])
        #expect(queue.handle(.timerFired, now: t0 + .milliseconds(2)) == [.run([0, 1])])
    }

    @Test func queueDelayEndsEarlyWhenTheBatchIsFull() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 2, maxQueueDelay: .milliseconds(2)))
        _ = queue.handle(.arrived(entry(0)), now: t0)
        #expect(queue.handle(.arrived(entry(1)), now: t0 + .microseconds(100)) == [.run([0, 1])])
    }

    @Test func preferredSizeIsCutWithoutWaiting() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 8, maxQueueDelay: .milliseconds(5), preferredBatchSizes: [2, 4]))
        _ = queue.handle(.arrived(entry(0)), now: t0)
        #expect(queue.handle(.arrived(entry(1)), now: t0) == [.run([0, 1])])
    }

    @Test func fullQueueRejectsAtOnce() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 1, maxQueueLength: 2))
        _ = queue.handle(.arrived(entry(0)), now: t0)  // runs
        _ = queue.handle(.arrived(entry(1)), now: t0)
        _ = queue.handle(.arrived(entry(2)), now: t0)
        #expect(queue.handle(.arrived(entry(3)), now: t0) == [.reject(3)])
        #expect(queue.waiting.map(\.id) == [1, 2])
    }

    @Test func expiredRequestIsAnsweredWithoutRunning() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 1))
        _ = queue.handle(.arrived(entry(0)), now: t0)
        #expect(queue.handle(.arrived(entry(1, deadline: .milliseconds(10))), now: t0) == [.armTimer(t0 + .milliseconds(10))])
        #expect(queue.handle(.timerFired, now: t0 + .milliseconds(10)) == [.expire(1)])
        #expect(queue.handle(.runFinished, now: t0 + .milliseconds(20)) == [])
    }

    @Test func departedClientCostsNoCompute() {
        var queue = BatchQueue(policy: BatchPolicy(maxBatchSize: 4))
        _ = queue.handle(.arrived(entry(0)), now: t0)
        _ = queue.handle(.arrived(entry(1)), now: t0)
        _ = queue.handle(.arrived(entry(2)), now: t0)
        #expect(queue.handle(.clientGone(id: 1), now: t0) == [.drop(1)])
        #expect(queue.handle(.runFinished, now: t0) == [.run([2])])
        #expect(queue.handle(.clientGone(id: 2), now: t0) == [])
    }

    @Test func instancesBoundConcurrentRuns() {
        var queue = BatchQueue(policy: BatchPolicy(enabled: false, instances: 2))
        #expect(queue.handle(.arrived(entry(0)), now: t0) == [.run([0])])
        #expect(queue.handle(.arrived(entry(1)), now: t0) == [.run([1])])
        #expect(queue.handle(.arrived(entry(2)), now: t0) == [])
        #expect(queue.handle(.runFinished, now: t0) == [.run([2])])
    }
}
