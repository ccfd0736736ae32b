import Engine
import Tensors
import Testing

private typealias Ops = TensorOpsHarness

@Suite struct ShapeOperatorTests {
    @Test func reshapeCopiesZerosAndInfersMinusOneWithoutCopying() throws {
        let data = Ops.iota([2, 3, 4])
        let result = try Ops.one("Reshape", [data, Ops.int64s([0, -1])])
        #expect(result.shape == [2, 12])
        #expect(result.rawPointer == data.rawPointer)
        #expect(try Ops.one("Reshape", opset: 1, [data], ["shape": .ints([4, 6])]).shape == [4, 6])
    }

    @Test func reshapeAllowZeroKeepsLiteralZeros() throws {
        let empty = Tensor([Float](), shape: [0, 3])
        #expect(try Ops.one("Reshape", opset: 14, [empty, Ops.int64s([3, 0])], ["allowzero": .int(1)]).shape == [3, 0])
        #expect(Ops.error { try Ops.one("Reshape", opset: 14, [empty, Ops.int64s([-1, 0])], ["allowzero": .int(1)]) }?.isInvalidArgument("both -1 and 0") == true)
    }

    @Test func reshapeRejectsBadShapes() {
        let data = Ops.iota([2, 3])
        #expect(Ops.error { try Ops.one("Reshape", [data, Ops.int64s([4, -1])]) }?.isInvalidArgument("cannot reshape") == true)
        #expect(Ops.error { try Ops.one("Reshape", [data, Ops.int64s([-1, -1])]) }?.isInvalidArgument("more than one -1") == true)
        #expect(Ops.error { try Ops.one("Reshape", [data, Ops.int64s([5])]) }?.isInvalidArgument("6 elements") == true)
        #expect(Ops.error { try Ops.one("Reshape", [data, Ops.int64s([-2, 3])]) }?.isInvalidArgument("below -1") == true)
        #expect(Ops.error { try Ops.one("Reshape", [data, Ops.int64s([1, 1, 0, 6])]) }?.isInvalidArgument("copies dimension 2") == true)
    }

    @Test func reshapeInfersSymbolicShapes() throws {
        let input = TensorType(.float, [.symbolic("batch"), .fixed(3), .fixed(4)])
        let shape = TensorType(.int64, [.fixed(2)])
        let known = try Ops.types("Reshape", [input, shape], constants: [1: Ops.int64s([0, -1])])
        #expect(known == [TensorType(.float, [.symbolic("batch"), .fixed(12)])])
        let unknownShape = try Ops.types("Reshape", [input, shape])
        #expect(unknownShape == [TensorType(.float, [.unknown, .unknown])])
        let fixed = TensorType(.float, [.fixed(2), .fixed(6)])
        #expect(try Ops.types("Reshape", [fixed, shape], constants: [1: Ops.int64s([3, -1])]) == [TensorType(.float, [.fixed(3), .fixed(4)])])
    }

    @Test func shapeOnlyOperatorsPassStringsThrough() throws {
        let strings = Tensor(strings: ["a", "b", "c", "d", "e", "f"], shape: [1, 2, 3])
        #expect(try Ops.one("Reshape", [strings, Ops.int64s([3, 2])]).strings == strings.strings)
        #expect(try Ops.one("Flatten", [strings], ["axis": .int(2)]).shape == [2, 3])
        #expect(try Ops.one("Squeeze", [strings]).shape == [2, 3])
        #expect(try Ops.one("Unsqueeze", [strings, Ops.int64s([-1])]).shape == [1, 2, 3, 1])
        #expect(try Ops.one("Identity", [strings]).strings == strings.strings)
    }

    @Test func flattenTakesNegativeAxes() throws {
        let data = Ops.iota([2, 3, 4, 5])
        #expect(try Ops.one("Flatten", [data], ["axis": .int(-1)]).shape == [24, 5])
        #expect(try Ops.one("Flatten", [data], ["axis": .int(0)]).shape == [1, 120])
        #expect(try Ops.one("Flatten", [data], ["axis": .int(4)]).shape == [120, 1])
        #expect(Ops.error { try Ops.one("Flatten", [data], ["axis": .int(5)]) }?.isInvalidArgument("out of range") == true)
        let types = try Ops.types("Flatten", [TensorType(.float, [.symbolic("n"), .fixed(3), .fixed(4)])])
        #expect(types == [TensorType(.float, [.symbolic("n"), .fixed(12)])])
        let two = try Ops.types("Flatten", [TensorType(.float, [.symbolic("n"), .symbolic("m"), .fixed(4)])], ["axis": .int(2)])
        #expect(two == [TensorType(.float, [.unknown, .fixed(4)])])
    }

    @Test func squeezeAndUnsqueezeReadAxesFromAttributesThenInputs() throws {
        let data = Ops.iota([1, 3, 1, 2])
        #expect(try Ops.one("Squeeze", opset: 11, [data], ["axes": .ints([0, -2])]).shape == [3, 2])
        #expect(try Ops.one("Squeeze", opset: 13, [data, Ops.int64s([2])]).shape == [1, 3, 2])
        #expect(try Ops.one("Squeeze", opset: 13, [data]).shape == [3, 2])
        #expect(Ops.error { try Ops.one("Squeeze", opset: 13, [data, Ops.int64s([1])]) }?.isInvalidArgument("size 3") == true)
        #expect(try Ops.one("Unsqueeze", opset: 11, [Ops.iota([3, 2])], ["axes": .ints([0, 3])]).shape == [1, 3, 2, 1])
        #expect(try Ops.one("Unsqueeze", opset: 13, [Ops.iota([3]), Ops.int64s([-1, 0])]).shape == [1, 3, 1])
        #expect(Ops.error { try Ops.one("Unsqueeze", opset: 13, [Ops.iota([3]), Ops.int64s([0, 0])]) }?.isInvalidArgument("repeat") == true)
        #expect(Ops.error { try Ops.one("Unsqueeze", opset: 13, [Ops.iota([3]), Ops.int64s([5])]) }?.isInvalidArgument("out of range") == true)
    }

    @Test func shapeSizeAndDropoutReport() throws {
        let data = Ops.iota([3, 5, 2, 7])
        #expect(try Ops.one("Shape", [data]).scalars(as: Int64.self) == [3, 5, 2, 7])
        #expect(try Ops.one("Shape", [data], ["start": .int(-3), "end": .int(-1)]).scalars(as: Int64.self) == [5, 2])
        #expect(try Ops.one("Shape", [data], ["start": .int(10)]).scalars(as: Int64.self) == [])
        #expect(try Ops.one("Size", [data]).scalars(as: Int64.self) == [210])
        #expect(try Ops.types("Shape", [TensorType(.float, Array(repeating: .unknown, count: 4))], ["start": .int(1)])
            == [TensorType(.int64, [.fixed(3)])])
        let dropout = try Ops.run("Dropout", opset: 13, [data], outputs: 2)
        #expect(dropout[0].rawPointer == data.rawPointer)
        #expect(dropout[1].dataType == .bool && dropout[1].scalars(as: Bool.self).allSatisfy { $0 })
        #expect(try Ops.run("Dropout", opset: 7, [data], outputs: 2)[1].scalars(as: Float.self).allSatisfy { $0 == 1 })
        let training = [data, Tensor(scalar: Float(0.5)), Tensor(scalar: true)]
        #expect(Ops.error { try Ops.run("Dropout", opset: 13, training, outputs: 2) }?.isFailure("training") == true)
    }
}
