import Testing
import Tensors

@Suite struct ShapeTests {
    @Test func broadcastFollowsNumpy() {
        #expect(Shape.broadcast([2, 1, 3], [4, 1]) == [2, 4, 3])
        #expect(Shape.broadcast([3], []) == [3])
        #expect(Shape.broadcast([2, 3], [3, 2]) == nil)
    }

    @Test func stridesAreRowMajor() {
        #expect(Shape([2, 3, 4]).strides == [12, 4, 1])
        #expect(Shape([]).elementCount == 1)
        #expect(Shape([2, 0, 3]).elementCount == 0)
    }

    @Test func checkedCountsReportOverflowAndNegativeSizes() {
        #expect(Shape([2147483647, 2147483647, 2147483647]).checkedElementCount == nil)
        #expect(Shape([Int.max, 2]).checkedElementCount == nil)
        #expect(Shape([Int.max, 0]).checkedElementCount == 0)
        #expect(Shape([3, -1]).checkedElementCount == nil)
        #expect(Shape([2, 3, 4]).checkedElementCount == 24)
        #expect(Shape([]).checkedElementCount == 1)
        #expect(DataType.float.checkedByteCount(elements: Int.max / 2) == nil)
        #expect(DataType.double.checkedByteCount(elements: 3) == 24)
        #expect(DataType.float.checkedByteCount(elements: -1) == nil)
    }

    @Test func boundedCountsLetNoZeroExcuseTheOtherSizes() {
        #expect(Shape([2, 3, 4]).boundedElementCount(limit: 24) == 24)
        #expect(Shape([2, 3, 4]).boundedElementCount(limit: 23) == nil)
        #expect(Shape([0, 1 << 20]).boundedElementCount(limit: 1 << 20) == 0)
        #expect(Shape([0, 1 << 20]).boundedElementCount(limit: 1 << 19) == nil)
        #expect(Shape([Int.max, 0, Int.max]).boundedElementCount(limit: .max) == nil)
        #expect(Shape([3, -1]).boundedElementCount(limit: .max) == nil)
        #expect(Shape([]).boundedElementCount(limit: 1) == 1)
    }

    @Test func poolReusesBuffersOfTheSameClass() {
        let pool = BufferPool()
        var first: Tensor? = Tensor(uninitialized: .float, shape: [1000], pool: pool)
        let address = first!.rawPointer
        first = nil
        let second = Tensor(uninitialized: .float, shape: [990], pool: pool)
        #expect(second.rawPointer == address)
        #expect(pool.retainedBytes == 0)
    }

    @Test func batchConcatAndSplitRoundTrip() {
        let a = Tensor([1, 2, 3, 4] as [Float], shape: [2, 2])
        let b = Tensor([5, 6] as [Float], shape: [1, 2])
        let joined = Tensor.concatenatingBatch([a, b])!
        #expect(joined.shape == [3, 2])
        #expect(joined.batchRows(2..<3).scalars(as: Float.self) == [5, 6])
        #expect(Tensor.concatenatingBatch([a, Tensor([1, 2, 3] as [Float], shape: [1, 3])]) == nil)
    }
}
