import Engine
import Tensors
import Testing
import TestSupport

private typealias Ops = TensorOpsHarness

@Suite struct DataMovementOperatorTests {
    @Test func transposeReversesByDefaultAndFollowsPerm() throws {
        let data = Ops.iota([2, 3])
        let reversed = try Ops.one("Transpose", [data])
        #expect(reversed.shape == [3, 2] && reversed.scalars(as: Float.self) == [0, 3, 1, 4, 2, 5])
        let permuted = try Ops.one("Transpose", [Ops.iota([2, 3, 4])], ["perm": .ints([1, 2, 0])])
        #expect(permuted.shape == [3, 4, 2])
        #expect(permuted.scalars(as: Float.self).prefix(6) == [0, 12, 1, 13, 2, 14])
        #expect(Ops.error { try Ops.one("Transpose", [data], ["perm": .ints([0, 0])]) }?.isInvalidArgument("permutation") == true)
    }

    @Test func transposeMovingOnlyUnitAxesSharesStorage() throws {
        let data = Ops.iota([1, 8, 1, 5])
        let result = try Ops.one("Transpose", [data], ["perm": .ints([2, 1, 0, 3])])
        #expect(result.shape == [1, 8, 1, 5] && result.rawPointer == data.rawPointer)
    }

    @Test func largeTransposesMatchIndexArithmetic() throws {
        var random = SeededGenerator(seed: 3)
        for (shape, perm) in [([67, 129], [1, 0]), ([2, 6, 29, 31], [0, 2, 3, 1]), ([1, 4, 29, 11, 13], [0, 2, 1, 3, 4])] as [([Int], [Int])] {
            let data = Tensor(random.floats(Shape(shape).elementCount), shape: Shape(shape))
            let result = try Ops.one("Transpose", [data], ["perm": .ints(perm)])
            let strides = Shape(shape).strides, outputShape = Shape(perm.map { shape[$0] })
            let values = data.scalars(as: Float.self)
            let expected = (0..<outputShape.elementCount).map { flat -> Float in
                var rest = flat, offset = 0
                for (axis, stride) in outputShape.strides.enumerated() {
                    offset += rest / stride * strides[perm[axis]]
                    rest %= stride
                }
                return values[offset]
            }
            #expect(result.shape == outputShape && result.scalars(as: Float.self) == expected)
        }
    }

    @Test func copyingOperatorsMoveStrings() throws {
        let strings = Tensor(strings: ["a", "b", "c", "d", "e", "f"], shape: [2, 3])
        #expect(try Ops.one("Transpose", [strings]).strings == ["a", "d", "b", "e", "c", "f"])
        #expect(try Ops.one("Concat", [strings, strings], ["axis": .int(1)]).strings == ["a", "b", "c", "a", "b", "c", "d", "e", "f", "d", "e", "f"])
        #expect(try Ops.one("Slice", [strings, Ops.int64s([1]), Ops.int64s([3]), Ops.int64s([1])]).strings == ["b", "c", "e", "f"])
        #expect(try Ops.one("Gather", [strings, Ops.int64s([1, 0])], ["axis": .int(1)]).strings == ["b", "a", "e", "d"])
        #expect(try Ops.one("Expand", [Tensor(strings: ["x", "y"], shape: [2, 1]), Ops.int64s([2, 2])]).strings == ["x", "x", "y", "y"])
        #expect(try Ops.one("Tile", [Tensor(strings: ["x", "y"], shape: [2]), Ops.int64s([2])]).strings == ["x", "y", "x", "y"])
        #expect(Ops.error { try Ops.one("Concat", [strings, Ops.iota([2, 3])], ["axis": .int(0)]) }?
            .isInvalidArgument("inputs 'inputs[0]' and 'inputs[1]' must have one element type (T), got string and float") == true)
    }

    @Test func concatJoinsAlongNegativeAxes() throws {
        let result = try Ops.one("Concat", [Ops.iota([2, 1]), Tensor([7, 8, 9, 10] as [Float], shape: [2, 2])], ["axis": .int(-1)])
        #expect(result.shape == [2, 3] && result.scalars(as: Float.self) == [0, 7, 8, 1, 9, 10])
        #expect(try Ops.one("Concat", [Ops.iota([2]), Tensor([Float](), shape: [0])], ["axis": .int(0)]).scalars(as: Float.self) == [0, 1])
        #expect(Ops.error { try Ops.one("Concat", [Ops.iota([2, 1]), Ops.iota([3, 1])], ["axis": .int(1)]) }?.isInvalidArgument("cannot concatenate") == true)
        let types = try Ops.types("Concat", [TensorType(.float, [.symbolic("n"), .fixed(2)]), TensorType(.float, [.unknown, .fixed(3)])],
                                  ["axis": .int(1)])
        #expect(types == [TensorType(.float, [.symbolic("n"), .fixed(5)])])
    }

    @Test func splitCutsBySizesEqualPartsOrNumOutputs() throws {
        let data = Ops.iota([2, 5])
        let bySizes = try Ops.run("Split", opset: 13, [data, Ops.int64s([2, 3])], ["axis": .int(1)], outputs: 2)
        #expect(bySizes.map(\.shape) == [[2, 2], [2, 3]] && bySizes[0].scalars(as: Float.self) == [0, 1, 5, 6])
        let byAttribute = try Ops.run("Split", opset: 11, [data], ["axis": .int(-1), "split": .ints([4, 1])], outputs: 2)
        #expect(byAttribute[1].scalars(as: Float.self) == [4, 9])
        let uneven = try Ops.run("Split", opset: 18, [Ops.iota([7])], ["num_outputs": .int(3)], outputs: 3)
        #expect(uneven.map { $0.scalars(as: Float.self) } == [[0, 1, 2], [3, 4, 5], [6]])
        // Split 1 takes its sizes as the data's floating-point T.
        let oldest = try Ops.run("Split", opset: 1, [data, Tensor([3, 2] as [Float], shape: [2])], ["axis": .int(1)], outputs: 2)
        #expect(oldest.map(\.shape) == [[2, 3], [2, 2]])
        #expect(Ops.error { try Ops.run("Split", opset: 1, [data, Tensor([2.5, 2.5] as [Float], shape: [2])], ["axis": .int(1)], outputs: 2) }?
            .isInvalidArgument("'split' holds 2.5, not a whole number") == true)
        #expect(failure { try inferTypes("Split", [TensorType(.float, [.fixed(2), .fixed(5)]), TensorType(.int64, [.fixed(2)])], opset: 1) }?
            .isFailure("inputs 'input' and 'split' must have one element type (T), got float and int64") == true)
        let rows = try Ops.run("Split", opset: 13, [Ops.iota([4, 3])], outputs: 2)
        #expect(rows[1].scalars(as: Float.self) == [6, 7, 8, 9, 10, 11])
        #expect(Ops.error { try Ops.run("Split", opset: 13, [Ops.iota([5])], outputs: 2) }?.isInvalidArgument("equal parts") == true)
        #expect(Ops.error { try Ops.run("Split", opset: 13, [data, Ops.int64s([2, 2])], ["axis": .int(1)], outputs: 2) }?.isInvalidArgument("does not cut") == true)
    }

    @Test func sliceClampsCountsFromTheEndAndSteps() throws {
        let data = Ops.iota([3, 4])
        func slice(_ starts: [Int], _ ends: [Int], axes: [Int]? = nil, steps: [Int]? = nil) throws -> Tensor {
            try Ops.one("Slice", [data, Ops.int64s(starts), Ops.int64s(ends), axes.map { Ops.int64s($0) }, steps.map { Ops.int64s($0) }])
        }
        #expect(try slice([1, -3], [100, -1]).scalars(as: Float.self) == [5, 6, 9, 10])
        #expect(try slice([-1], [Int.min], axes: [1], steps: [-2]).scalars(as: Float.self) == [3, 1, 7, 5, 11, 9])
        #expect(try slice([0], [Int.max], axes: [-2], steps: [2]).scalars(as: Float.self) == [0, 1, 2, 3, 8, 9, 10, 11])
        #expect(try slice([2], [1], axes: [0]).shape == [0, 4])
        #expect(try Ops.one("Slice", opset: 1, [data], ["starts": .ints([1]), "ends": .ints([2]), "axes": .ints([1])]).scalars(as: Float.self) == [1, 5, 9])
        #expect(Ops.error { try slice([0], [1], axes: [0], steps: [0]) }?.isInvalidArgument("step is 0") == true)
        #expect(Ops.error { try slice([0], [1], axes: [2]) }?.isInvalidArgument("out of range") == true)
    }

    @Test func contiguousSlicesAndSplitsShareStorage() throws {
        let data = Ops.iota([4, 3])
        let slice = try Ops.one("Slice", [data, Ops.int64s([1]), Ops.int64s([3]), Ops.int64s([0])])
        #expect(slice.scalars(as: Float.self) == [3, 4, 5, 6, 7, 8] && slice.rawPointer == data.rawPointer + 3 * 4)
        let parts = try Ops.run("Split", opset: 13, [data], outputs: 2)
        #expect(parts[1].rawPointer == data.rawPointer + 6 * 4)
    }

    @Test func padSupportsEveryMode() throws {
        let data = Tensor([1, 2, 3] as [Float], shape: [1, 3])
        func pad(_ mode: String, _ pads: [Int], value: Tensor? = nil) throws -> [Float] {
            try Ops.one("Pad", opset: 19, [data, Ops.int64s(pads), value], ["mode": .string(mode)]).scalars(as: Float.self)
        }
        #expect(try pad("constant", [0, 2, 0, 1], value: Tensor([9] as [Float], shape: [1])) == [9, 9, 1, 2, 3, 9])
        #expect(try pad("constant", [0, -1, 0, 1]) == [2, 3, 0])
        #expect(try pad("reflect", [0, 2, 0, 2]) == [3, 2, 1, 2, 3, 2, 1])
        #expect(try pad("edge", [0, 2, 0, 1]) == [1, 1, 1, 2, 3, 3])
        #expect(try pad("wrap", [0, 2, 0, 4]) == [2, 3, 1, 2, 3, 1, 2, 3, 1])
        #expect(try Ops.one("Pad", opset: 2, [data], ["pads": .ints([1, 0, 0, 0]), "value": .float(5)]).scalars(as: Float.self) == [5, 5, 5, 1, 2, 3])
        let axes = try Ops.one("Pad", opset: 18, [data, Ops.int64s([1, 1]), nil, Ops.int64s([-1])])
        #expect(axes.shape == [1, 5] && axes.scalars(as: Float.self) == [0, 1, 2, 3, 0])
        #expect(Ops.error { try pad("constant", [0, -2, 0, -2]) }?.isInvalidArgument("negative") == true)
        #expect(Ops.error { try pad("bounce", [0, 0, 0, 0]) }?.isInvalidNode("unknown pad mode") == true)
    }

    @Test func tileAndExpandRepeat() throws {
        let data = Tensor([1, 2] as [Float], shape: [2, 1])
        #expect(try Ops.one("Tile", [data, Ops.int64s([2, 3])]).scalars(as: Float.self) == [1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2])
        let oldest = try Ops.one("Tile", opset: 1, [data, Tensor(scalar: Float(2)), Tensor(scalar: Float(1))])
        #expect(oldest.shape == [2, 2] && oldest.scalars(as: Float.self) == [1, 1, 2, 2])
        #expect(try Ops.one("Tile", opset: 1, [data, Tensor(scalar: Float(3)), Tensor(scalar: Float(-2))]).shape == [6, 1])
        // Tile 1's sizes are the data's T: integers are refused (as its schema types them), and so
        // are values that are not whole numbers.
        let float = TensorType(.float, [.fixed(2), .fixed(1)]), scalar = TensorType(.int64, [])
        #expect(failure { try inferTypes("Tile", [float, scalar, scalar], opset: 1) }?
            .isFailure("inputs 'input' and 'tiles' must have one element type (T), got float and int64") == true)
        #expect(failure { try inferTypes("Tile", [TensorType(.int32, [.fixed(2)]), nil, nil], opset: 1) }?.isFailure("int32") == true)
        #expect(Ops.error { try Ops.one("Tile", opset: 1, [data, Tensor(scalar: Float(1.5)), Tensor(scalar: Float(1))]) }?
            .isInvalidArgument("'tiles' holds 1.5, not a whole number") == true)
        #expect(Ops.error { try Ops.one("Tile", opset: 1, [data, Tensor(scalar: Float(2)), Tensor(scalar: Float.nan)]) }?
            .isInvalidArgument("'axis' holds nan") == true)
        #expect(Ops.error { try Ops.one("Tile", opset: 1, [data, Tensor(scalar: Float(1e30)), Tensor(scalar: Float(0))]) }?
            .isInvalidArgument("not a whole number") == true)
        #expect(Ops.error { try Ops.one("Tile", [data, Ops.int64s([2])]) }?.isInvalidArgument("repeats") == true)
        let expanded = try Ops.one("Expand", [data, Ops.int64s([2, 1, 3])])
        #expect(expanded.shape == [2, 2, 3] && expanded.scalars(as: Float.self) == [1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2])
        #expect(try Ops.one("Expand", [data, Ops.int64s([1, 1])]).rawPointer == data.rawPointer)
        #expect(Ops.error { try Ops.one("Expand", [data, Ops.int64s([3, 1])]) }?.isInvalidArgument("cannot expand") == true)
        #expect(Ops.error { try Ops.one("Expand", [data, Ops.int64s([-2, 1])]) }?.isInvalidArgument("negative") == true)
        #expect(Ops.error { try Ops.one("Tile", [data, Ops.int64s([1 << 40, 1 << 40])]) }?.isInvalidArgument("too large") == true)
    }

    @Test func depthAndSpaceRearrangementsInvertEachOther() throws {
        let data = Ops.iota([1, 8, 2, 3])
        let dcr = try Ops.one("DepthToSpace", [data], ["blocksize": .int(2)])
        #expect(dcr.shape == [1, 2, 4, 6])
        #expect(dcr.scalars(as: Float.self).prefix(6) == [0, 12, 1, 13, 2, 14])
        let crd = try Ops.one("DepthToSpace", [data], ["blocksize": .int(2), "mode": .string("CRD")])
        #expect(crd.scalars(as: Float.self).prefix(6) == [0, 6, 1, 7, 2, 8])
        #expect(try Ops.one("SpaceToDepth", [dcr], ["blocksize": .int(2)]).scalars(as: Float.self) == data.scalars(as: Float.self))
        #expect(try Ops.one("SpaceToDepth", opset: 28, [crd], ["blocksize": .int(2), "mode": .string("CRD")]).scalars(as: Float.self) == data.scalars(as: Float.self))
        #expect(Ops.error { try Ops.one("DepthToSpace", [Ops.iota([1, 6, 2, 2])], ["blocksize": .int(2)]) }?.isInvalidArgument("multiple of 4") == true)
    }
}
