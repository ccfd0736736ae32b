import Engine
import Tensors
import Testing

private typealias Ops = TensorOpsHarness

@Suite struct GeneratorOperatorTests {
    @Test func constantTakesEveryAttributeForm() throws {
        #expect(try Ops.one("Constant", [], ["value": .tensor(Ops.iota([2]))]).scalars(as: Float.self) == [0, 1])
        #expect(try Ops.one("Constant", [], ["value_float": .float(1.5)]).shape == [])
        #expect(try Ops.one("Constant", [], ["value_floats": .floats([1, 2])]).scalars(as: Float.self) == [1, 2])
        #expect(try Ops.one("Constant", [], ["value_int": .int(7)]).scalars(as: Int64.self) == [7])
        #expect(try Ops.one("Constant", [], ["value_ints": .ints([3, 4])]).scalars(as: Int64.self) == [3, 4])
        #expect(try Ops.one("Constant", [], ["value_string": .string("hi")]).strings == ["hi"])
        #expect(try Ops.one("Constant", [], ["value_strings": .strings(["a", "b"])]).shape == [2])
        #expect(Ops.error { try Ops.one("Constant", [], [:]) }?.isInvalidNode("exactly one") == true)
        #expect(Ops.error { try Ops.one("Constant", [], ["value_int": .int(1), "value_float": .float(1)]) }?.isInvalidNode("exactly one") == true)
        #expect(try Ops.types("Constant", [], ["value_ints": .ints([3, 4])]) == [TensorType(.int64, [.fixed(2)])])
    }

    @Test func constantOfShapeFillsWithTheValue() throws {
        let filled = try Ops.one("ConstantOfShape", [Ops.int64s([2, 3])], ["value": .tensor(Tensor([7] as [Int32], shape: [1]))])
        #expect(filled.dataType == .int32 && filled.shape == [2, 3] && filled.scalars(as: Int32.self).allSatisfy { $0 == 7 })
        #expect(try Ops.one("ConstantOfShape", [Ops.int64s([])]).scalars(as: Float.self) == [0])
        #expect(Ops.error { try Ops.one("ConstantOfShape", [Ops.int64s([2, -1])]) }?.isInvalidArgument("negative") == true)
        #expect(try Ops.types("ConstantOfShape", [TensorType(.int64, [.fixed(2)])], constants: [0: Ops.int64s([4, 5])])
            == [TensorType(.float, [.fixed(4), .fixed(5)])])
    }

    @Test func rangeCountsUpAndDown() throws {
        #expect(try Ops.one("Range", [Tensor(scalar: Int64(10)), Tensor(scalar: Int64(4)), Tensor(scalar: Int64(-3))]).scalars(as: Int64.self) == [10, 7])
        #expect(try Ops.one("Range", [Tensor(scalar: Float(1)), Tensor(scalar: Float(2)), Tensor(scalar: Float(0.25))]).scalars(as: Float.self) == [1, 1.25, 1.5, 1.75])
        #expect(try Ops.one("Range", [Tensor(scalar: Int32(3)), Tensor(scalar: Int32(3)), Tensor(scalar: Int32(1))]).elementCount == 0)
        #expect(Ops.error { try Ops.one("Range", [Tensor(scalar: Int64(0)), Tensor(scalar: Int64(1)), Tensor(scalar: Int64(0))]) }?.isInvalidArgument("delta is 0") == true)
        #expect(Ops.error { try Ops.one("Range", [Tensor(scalar: Float(0)), Tensor(scalar: Float(1e12)), Tensor(scalar: Float(1e-3))]) }?.isInvalidArgument("too large") == true)
    }

    @Test func eyeLikeOneHotAndTriluBuildMatrices() throws {
        let eye = try Ops.one("EyeLike", [Ops.iota([3, 4])], ["k": .int(1), "dtype": .int(Int(DataType.int64.rawValue))])
        #expect(eye.scalars(as: Int64.self) == [0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])
        #expect(try Ops.one("EyeLike", [Ops.iota([3, 2])], ["k": .int(-2)]).scalars(as: Float.self) == [0, 0, 0, 0, 1, 0])
        let hot = try Ops.one("OneHot", [Ops.int64s([1, -1, 5]), Tensor(scalar: Int64(3)), Tensor([0, 9] as [Float], shape: [2])])
        #expect(hot.shape == [3, 3] && hot.scalars(as: Float.self) == [0, 9, 0, 0, 0, 9, 0, 0, 0])
        let columns = try Ops.one("OneHot", [Ops.int64s([0, 2]), Tensor(scalar: Float(3)), Tensor(strings: ["n", "y"], shape: [2])], ["axis": .int(0)])
        #expect(columns.strings == ["y", "n", "n", "n", "n", "y"])
        let data = Ops.iota([3, 3])
        #expect(try Ops.one("Trilu", [data]).scalars(as: Float.self) == [0, 1, 2, 0, 4, 5, 0, 0, 8])
        #expect(try Ops.one("Trilu", [data, Tensor(scalar: Int64(-1))], ["upper": .int(0)]).scalars(as: Float.self) == [0, 0, 0, 3, 0, 0, 6, 7, 0])
        #expect(try Ops.one("Trilu", [data, Tensor(scalar: Int64(5))]).scalars(as: Float.self) == [Float](repeating: 0, count: 9))
        #expect(Ops.error { try Ops.one("Trilu", [Ops.iota([3])]) }?.isInvalidArgument("rank 2") == true)
    }
}
