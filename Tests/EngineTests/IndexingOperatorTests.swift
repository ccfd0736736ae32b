import Engine
import Tensors
import Testing

private typealias Ops = TensorOpsHarness

@Suite struct IndexingOperatorTests {
    @Test func gatherPicksSlicesWithNegativeIndices() throws {
        let data = Ops.iota([3, 2])
        let rows = try Ops.one("Gather", [data, Tensor([2, -3] as [Int32], shape: [1, 2])])
        #expect(rows.shape == [1, 2, 2] && rows.scalars(as: Float.self) == [4, 5, 0, 1])
        let column = try Ops.one("Gather", [data, Tensor(scalar: Int64(-1))], ["axis": .int(1)])
        #expect(column.shape == [3] && column.scalars(as: Float.self) == [1, 3, 5])
        let row = try Ops.one("Gather", [data, Tensor(scalar: Int64(1))])
        #expect(row.scalars(as: Float.self) == [2, 3] && row.rawPointer == data.rawPointer + 2 * 4)
        #expect(Ops.error { try Ops.one("Gather", [data, Ops.int64s([3])]) }?.isInvalidArgument("index 3 is out of range") == true)
        #expect(Ops.error { try Ops.one("Gather", [data, Ops.int64s([0])], ["axis": .int(2)]) }?.isInvalidArgument("axis 2") == true)
        #expect(Ops.error { try Ops.one("Gather", [data, Ops.iota([1])]) }?
            .isInvalidArgument("input 'indices' has element type float; Tind must be one of: int32, int64") == true)
    }

    @Test func gatherElementsAndGatherNDIndexElementsAndSlices() throws {
        let data = Ops.iota([2, 3])
        let elements = try Ops.one("GatherElements", [data, Tensor([2, -3, 0, 1] as [Int64], shape: [2, 2])], ["axis": .int(1)])
        #expect(elements.scalars(as: Float.self) == [2, 0, 3, 4])
        #expect(Ops.error { try Ops.one("GatherElements", [data, Ops.int64s([0])]) }?.isInvalidArgument("rank") == true)
        let tuples = try Ops.one("GatherND", [data, Tensor([1, 2, 0, -1] as [Int64], shape: [2, 2])])
        #expect(tuples.scalars(as: Float.self) == [5, 2])
        let rows = try Ops.one("GatherND", [data, Tensor([1, 0] as [Int64], shape: [2, 1])])
        #expect(rows.shape == [2, 3] && rows.scalars(as: Float.self) == [3, 4, 5, 0, 1, 2])
        let batched = try Ops.one("GatherND", [Ops.iota([2, 2, 2]), Tensor([1, 0] as [Int64], shape: [2, 1])], ["batch_dims": .int(1)])
        #expect(batched.shape == [2, 2] && batched.scalars(as: Float.self) == [2, 3, 4, 5])
        #expect(Ops.error { try Ops.one("GatherND", [data, Tensor([2, 0] as [Int64], shape: [1, 2])]) }?.isInvalidArgument("out of range") == true)
    }

    @Test func scattersReplaceOrCombine() throws {
        let data = Tensor([Float](repeating: 1, count: 6), shape: [2, 3])
        let indices = Tensor([2, 2] as [Int64], shape: [1, 2]), updates = Tensor([5, 6] as [Float], shape: [1, 2])
        let added = try Ops.one("ScatterElements", opset: 18, [data, indices, updates], ["axis": .int(1), "reduction": .string("add")])
        #expect(added.scalars(as: Float.self) == [1, 1, 12, 1, 1, 1])
        let maximum = try Ops.one("ScatterElements", opset: 18, [data, indices, updates], ["axis": .int(1), "reduction": .string("max")])
        #expect(maximum.scalars(as: Float.self) == [1, 1, 6, 1, 1, 1])
        let replaced = try Ops.one("Scatter", opset: 9, [data, Tensor([0, -1] as [Int64], shape: [1, 2]), updates], ["axis": .int(0)])
        #expect(replaced.scalars(as: Float.self) == [5, 1, 1, 1, 6, 1])
        let rows = try Ops.one("ScatterND", [data, Tensor([1] as [Int64], shape: [1, 1]), Tensor([7, 8, 9] as [Float], shape: [1, 3])])
        #expect(rows.scalars(as: Float.self) == [1, 1, 1, 7, 8, 9])
        #expect(data.scalars(as: Float.self) == [Float](repeating: 1, count: 6))
        #expect(Ops.error { try Ops.one("ScatterND", [data, Tensor([1] as [Int64], shape: [1, 1]), updates]) }?.isInvalidArgument("do not match") == true)
        let strings = try Ops.one("ScatterElements", [Tensor(strings: ["a", "b"], shape: [2]), Ops.int64s([1]), Tensor(strings: ["z"], shape: [1])])
        #expect(strings.strings == ["a", "z"])
    }

    @Test func compressReverseSequenceAndNonZeroSelect() throws {
        let data = Ops.iota([3, 2])
        let condition = Tensor([false, true, true], shape: [3])
        #expect(try Ops.one("Compress", [data, condition], ["axis": .int(0)]).scalars(as: Float.self) == [2, 3, 4, 5])
        #expect(try Ops.one("Compress", [data, condition]).scalars(as: Float.self) == [1, 2])
        #expect(Ops.error { try Ops.one("Compress", [data, Tensor([false, false, true], shape: [3])], ["axis": .int(1)]) }?.isInvalidArgument("index 2") == true)
        let sequences = try Ops.one("ReverseSequence", [Ops.iota([3, 2]), Ops.int64s([3, 1])], ["time_axis": .int(0), "batch_axis": .int(1)])
        #expect(sequences.scalars(as: Float.self) == [4, 1, 2, 3, 0, 5])
        #expect(Ops.error { try Ops.one("ReverseSequence", [data, Ops.int64s([4, 1])]) }?.isInvalidArgument("out of range") == true)
        let nonZero = try Ops.one("NonZero", [Tensor([0, 2, 0, 3] as [Float], shape: [2, 2])])
        #expect(nonZero.shape == [2, 2] && nonZero.scalars(as: Int64.self) == [0, 1, 1, 1])
    }

    @Test func topKOrdersTiesByIndex() throws {
        let data = Tensor([3, 1, 3, 2, 5, 5, 0, 4] as [Float], shape: [2, 4])
        let largest = try Ops.run("TopK", opset: 11, [data, Ops.int64s([2])], outputs: 2)
        #expect(largest[0].scalars(as: Float.self) == [3, 3, 5, 5] && largest[1].scalars(as: Int64.self) == [0, 2, 0, 1])
        let columns = try Ops.run("TopK", opset: 11, [data, Ops.int64s([1])], ["largest": .int(0), "axis": .int(0)], outputs: 2)
        #expect(columns[0].scalars(as: Float.self) == [3, 1, 0, 2] && columns[1].scalars(as: Int64.self) == [0, 0, 1, 0])
        #expect(try Ops.run("TopK", opset: 1, [data], ["k": .int(1)], outputs: 2)[0].scalars(as: Float.self) == [3, 5])
        #expect(Ops.error { try Ops.run("TopK", opset: 11, [data, Ops.int64s([5])], outputs: 2) }?.isInvalidArgument("out of range") == true)
    }

    @Test func cumSumRunsForwardBackwardAndExclusive() throws {
        let data = Tensor([1, 2, 3, 4, 5, 6] as [Int64], shape: [2, 3])
        #expect(try Ops.one("CumSum", [data, Tensor(scalar: Int32(1))]).scalars(as: Int64.self) == [1, 3, 6, 4, 9, 15])
        #expect(try Ops.one("CumSum", [data, Tensor(scalar: Int64(0))], ["exclusive": .int(1)]).scalars(as: Int64.self) == [0, 0, 0, 1, 2, 3])
        #expect(try Ops.one("CumSum", [data, Tensor(scalar: Int64(-1))], ["reverse": .int(1)]).scalars(as: Int64.self) == [6, 5, 3, 15, 11, 6])
        #expect(Ops.error { try Ops.one("CumSum", [data, Tensor(scalar: Int64(2))]) }?.isInvalidArgument("out of range") == true)
    }
}
