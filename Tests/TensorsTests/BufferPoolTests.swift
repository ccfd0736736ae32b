import Tensors
import Testing

/// The buffer pool's retention between runs, and the meter that counts a run's buffers.
@Suite struct BufferPoolTests {
    /// Takes buffers of these sizes from `pool` inside one run and frees them at its end.
    static func run(_ pool: BufferPool, bytes: [Int]) {
        pool.beginRun()
        var buffers = bytes.map { Tensor(uninitialized: .uint8, shape: [$0], pool: pool) }
        buffers.removeAll()
        pool.endRun()
    }

    @Test func keepsWhatUsualRunsNeedAndGivesBackAnOutlier() {
        let pool = BufferPool()
        let usual = [100_000, 200_000, 300_000]
        for _ in 0..<5 { Self.run(pool, bytes: usual) }
        let kept = pool.retainedBytes
        #expect(kept >= usual.reduce(0, +), "usual runs lost buffers they reuse")
        // An outlier 100× the usual size: its buffers are freed when it ends, the usual ones kept.
        Self.run(pool, bytes: [30_000_000, 20_000_000] + usual)
        #expect(pool.retainedBytes == kept)
        #expect(pool.allocatedBytes == kept)
        let peak = pool.peakAllocatedBytes
        Self.run(pool, bytes: usual)
        #expect(pool.peakAllocatedBytes == peak && pool.retainedBytes == kept, "a usual run after the outlier allocated")
    }

    @Test func aWorkloadThatGrowsKeepsItsNewBuffers() {
        let pool = BufferPool()
        for _ in 0..<3 { Self.run(pool, bytes: [100_000]) }
        // Once most recent runs are large, their buffers are the usual ones.
        for _ in 0..<BufferPool.footprintHistory { Self.run(pool, bytes: [5_000_000]) }
        #expect(pool.retainedBytes >= 5_000_000)
    }

    @Test func buffersFreedBetweenRunsFollowTheUsualLimit() {
        let pool = BufferPool()
        for _ in 0..<5 { Self.run(pool, bytes: [100_000]) }
        // An output taken during a large run and freed after it (as a server does once it has
        // encoded the answer) is not kept either.
        pool.beginRun()
        var output: Tensor? = Tensor(uninitialized: .uint8, shape: [50_000_000], pool: pool)
        pool.endRun()
        #expect(output?.byteCount == 50_000_000)
        output = nil
        #expect(pool.retainedBytes < 1_000_000)
    }

    @Test func overlappingRunsKeepTheirBuffersUntilTheLastEnds() {
        let pool = BufferPool()
        for _ in 0..<5 { Self.run(pool, bytes: [100_000]) }
        pool.beginRun()
        Self.run(pool, bytes: [40_000_000])  // starts and ends while the other run goes on
        #expect(pool.retainedBytes >= 40_000_000)
        pool.endRun()
        #expect(pool.retainedBytes < 1_000_000)
    }

    @Test func meterCountsHeldBytesAgainstItsBudget() throws {
        let pool = BufferPool(), meter = WorkingMemoryMeter(budget: 10_000)
        var first = pool.take(byteCount: 6_000, meter: meter)
        #expect(first?.byteCount == 6_000)
        #expect(meter.heldBytes == BufferPool.sizeClass(6_000))
        #expect(pool.take(byteCount: 6_000, meter: meter) == nil, "the meter let the held bytes pass its budget")
        #expect(meter.heldBytes == BufferPool.sizeClass(6_000))
        first = nil
        #expect(meter.heldBytes == 0)
        let second = try #require(pool.take(byteCount: 8_000, meter: meter))
        #expect(second.byteCount == 8_000)
        #expect(meter.peakBytes == BufferPool.sizeClass(8_000))
    }

    /// Every size class has its own position in the pool's free lists, in increasing order, and
    /// the position gives the class back.
    @Test func sizeClassesHaveIncreasingPositions() {
        var last = (capacity: 0, index: -1)
        var bytes = 1
        while bytes < 1 << 40 {
            let capacity = BufferPool.sizeClass(bytes), index = BufferPool.classIndex(capacity)
            #expect(index >= 0 && index < BufferPool.classCount, "\(bytes) bytes")
            #expect(BufferPool.capacity(ofClass: index) == capacity, "\(bytes) bytes")
            #expect(capacity == last.capacity ? index == last.index : index > last.index, "\(bytes) bytes")
            last = (capacity, index)
            bytes += bytes < 5_000 ? 1 : bytes / 7
        }
    }

    /// A freed buffer is reused for a request of its size class, and never for another class.
    @Test func freedBuffersComeBackForTheirSizeClassOnly() {
        let pool = BufferPool()
        pool.beginRun()
        var first: TensorBuffer? = TensorBuffer.allocate(byteCount: 1_000, pool: pool)
        let address = first!.baseAddress
        first = nil
        let larger = TensorBuffer.allocate(byteCount: 1_100, pool: pool)
        #expect(BufferPool.sizeClass(1_100) != BufferPool.sizeClass(1_000))
        #expect(larger.baseAddress != address)
        let again = TensorBuffer.allocate(byteCount: 1_010, pool: pool)
        #expect(again.baseAddress == address)
        withExtendedLifetime((larger, again)) { pool.endRun() }
    }

    @Test func largeBuffersWorkAndReturn() {
        let bytes = 3 * SystemMemory.mappingThreshold + 5
        var buffer: TensorBuffer? = TensorBuffer.allocate(byteCount: bytes)
        buffer!.baseAddress.initializeMemory(as: UInt8.self, repeating: 7, count: bytes)
        #expect(buffer!.baseAddress.load(fromByteOffset: bytes - 1, as: UInt8.self) == 7)
        #expect(Int(bitPattern: buffer!.baseAddress) % TensorBuffer.alignment == 0)
        buffer = nil
        SystemMemory.returnFreeHeapMemory()
        #expect(SystemMemory.physicalBytes > 0)
    }
}
