import Engine
import Tensors
import Testing

private typealias Ops = TensorOpsHarness

/// Extreme sizes, indices and steps from a request must fail with an error, never trap.
@Suite struct TensorOpsBadInputTests {
    private let data = Ops.iota([2, 3])

    @Test func extremeSlicesStillWork() throws {
        let data = self.data
        let huge = try Ops.one("Slice", [data, Ops.int64s([0]), Ops.int64s([Int.max]), Ops.int64s([1]), Ops.int64s([Int.max])])
        #expect(huge.scalars(as: Float.self) == [0, 3])
        let backwards = try Ops.one("Slice", [data, Ops.int64s([Int.max]), Ops.int64s([Int.min]), Ops.int64s([1]), Ops.int64s([Int.min])])
        #expect(backwards.scalars(as: Float.self) == [2, 5])
    }

    @Test func extremeSizesThrow() {
        let data = self.data
        #expect(Ops.error { try Ops.one("Pad", [data, Ops.int64s([0, Int.min, 0, Int.max])]) }?.isInvalidArgument("too large") == true)
        #expect(Ops.error { try Ops.run("Split", opset: 13, [data, Ops.int64s([Int.max, Int.max])], ["axis": .int(1)], outputs: 2) }?.isInvalidArgument("does not cut") == true)
        #expect(Ops.error { try Ops.one("Reshape", [data, Ops.int64s([1 << 40, 1 << 40, 0])]) }?.isInvalidArgument("copies dimension 2") == true)
        #expect(Ops.error { try Ops.one("Reshape", opset: 14, [Ops.iota([0]), Ops.int64s([1 << 40, 1 << 40, 0])], ["allowzero": .int(1)]) }?
            .isInvalidArgument("too large") == true)
        #expect(Ops.error { try Ops.one("OneHot", [Ops.int64s([1]), Tensor(scalar: Float(1e30)), Tensor([0, 1] as [Float], shape: [2])]) }?
            .isInvalidArgument("depth") == true)
        #expect(Ops.error { try Ops.one("DepthToSpace", [Ops.iota([1, 4, 1, 1])], ["blocksize": .int(1 << 40)]) }?.isInvalidNode("blocksize") == true)
        #expect(Ops.error { try Ops.one("Resize", opset: 13, [data, Tensor([Float](), shape: [0]), Tensor([1e30, 1] as [Float], shape: [2])]) }?
            .isInvalidArgument("too large") == true)
        let nanRoi = Tensor([0, .nan, 1, 1] as [Float], shape: [4])
        #expect(Ops.error { try Ops.one("Resize", opset: 13, [data, nanRoi, nil, Ops.int64s([2, 3])],
                                        ["mode": .string("linear"), "coordinate_transformation_mode": .string("tf_crop_and_resize")]) }?
            .isInvalidArgument("not finite") == true)
    }

    /// Integer element arithmetic wraps, as in ONNX Runtime; a trap would take the daemon down.
    @Test func integerArithmeticWraps() throws {
        let (max, min) = (Int64.max, Int64.min)
        #expect(try Ops.one("CumSum", [Tensor([max, 1, 1] as [Int64], shape: [3]), Tensor(scalar: Int64(0))])
            .scalars(as: Int64.self) == [max, min, min + 1])
        let range = try Ops.one("Range", [Tensor(scalar: min), Tensor(scalar: max), Tensor(scalar: Int64(1) << 62)])
        #expect(range.scalars(as: Int64.self) == [min, min / 2, 0, max / 2 + 1])
        #expect(try Ops.one("MatMul", [Tensor([max, 2] as [Int64], shape: [1, 2]), Tensor([2, max] as [Int64], shape: [2, 1])])
            .scalars(as: Int64.self) == [max &* 2 &+ 2 &* max])
        let scattered = try Ops.one("ScatterElements", opset: 18,
                                    [Tensor([max, 5] as [Int64], shape: [2]), Ops.int64s([0, 0]), Tensor([1, 1] as [Int64], shape: [2])],
                                    ["reduction": .string("add")])
        #expect(scattered.scalars(as: Int64.self) == [min + 1, 5])
        #expect(try Ops.one("ReduceSum", opset: 13, [Tensor([max, max] as [Int64], shape: [2])], ["keepdims": .int(0)])
            .scalars(as: Int64.self) == [max &+ max])
    }

    @Test func extremeDiagonalsSelectAllOrNothing() throws {
        let data = self.data
        #expect(try Ops.one("EyeLike", [data], ["k": .int(Int.min)]).scalars(as: Float.self) == [0, 0, 0, 0, 0, 0])
        #expect(try Ops.one("Trilu", [data, Tensor(scalar: Int64.max)], ["upper": .int(0)]).scalars(as: Float.self) == data.scalars(as: Float.self))
        #expect(try Ops.one("Trilu", [data, Tensor(scalar: Int64.min)]).scalars(as: Float.self) == data.scalars(as: Float.self))
        let wildRoi = Tensor([0, -1e30, 1, 1e30] as [Float], shape: [4])
        let cropped = try Ops.one("Resize", opset: 13, [data, wildRoi, nil, Ops.int64s([2, 3])],
                                  ["mode": .string("cubic"), "coordinate_transformation_mode": .string("tf_crop_and_resize")])
        #expect(cropped.shape == [2, 3])
    }
}
