import Engine
import Tensors
import Testing

@Suite struct CastOperatorTests {
    private func cast(_ x: Tensor, to type: DataType) throws -> Tensor {
        try runNode("Cast", [x], attributes: ["to": .int(Int(type.rawValue))])[0]
    }

    @Test func numbersConvertWithCSemantics() throws {
        let reals = Tensor([-2.7, -0.5, 0.5, 2.7, 300] as [Float], shape: [5])
        #expect(try cast(reals, to: .int32).scalars(as: Int32.self) == [-2, 0, 0, 2, 300])
        #expect(try cast(reals, to: .uint8).scalars(as: UInt8.self) == [254, 0, 0, 2, 44])
        #expect(try cast(Tensor([300, -1] as [Int64], shape: [2]), to: .int8).scalars(as: Int8.self) == [44, -1])
        #expect(try cast(Tensor([UInt64.max] as [UInt64], shape: [1]), to: .int64).scalars(as: Int64.self) == [-1])
        #expect(try cast(Tensor([1 << 40] as [Int64], shape: [1]), to: .double).scalars(as: Double.self) == [Double(1 << 40)])
        let half = try cast(Tensor([1.0009765625, 65504, 1e6] as [Float], shape: [3]), to: .float16)
        #expect(half.scalars(as: Float16.self) == [1.0009765625, 65504, .infinity])
        #expect(try cast(half, to: .float).floats == [1.0009765625, 65504, .infinity])
        let unchanged = Tensor([1, 2] as [Float], shape: [2])
        #expect(try cast(unchanged, to: .float).floats == [1, 2])
    }

    @Test func boolsAndStrings() throws {
        #expect(try cast(Tensor([0, -0.5, .nan] as [Float], shape: [3]), to: .bool).scalars(as: Bool.self) == [false, true, true])
        #expect(try cast(Tensor([true, false], shape: [2]), to: .double).scalars(as: Double.self) == [1, 0])
        let text = Tensor(strings: ["1.5", "-2e3", "INF", "-inf", "NaN", "7"], shape: [6])
        let values = try cast(text, to: .float).floats
        #expect(values[0] == 1.5 && values[1] == -2000 && values[2] == .infinity && values[3] == -.infinity
                && values[4].isNaN && values[5] == 7)
        #expect(try cast(Tensor(strings: ["12", "100.5"], shape: [2]), to: .int64).scalars(as: Int64.self) == [12, 100])
        #expect(try cast(Tensor([1.5, -.infinity, 3] as [Float], shape: [3]), to: .string).strings == ["1.5", "-INF", "3"])
        #expect(try cast(Tensor([-7] as [Int16], shape: [1]), to: .string).strings == ["-7"])
        #expect(failure { try cast(Tensor(strings: ["seven"], shape: [1]), to: .float) }?.isInvalidArgument("seven") == true)
    }

    @Test func attributeForms() throws {
        let x = Tensor([1.5] as [Float], shape: [1])
        #expect(try runNode("Cast", [x], attributes: ["to": .string("INT64")], opset: 1)[0].scalars(as: Int64.self) == [1])
        #expect(failure { try runNode("Cast", [x], attributes: ["to": .int(14)]) }?.isInvalidNode("14") == true)
        #expect(failure { try runNode("Cast", [x]) }?.isInvalidNode("'to'") == true)
        #expect(try inferTypes("Cast", [TensorType(.float, [.symbolic("n")])], attributes: ["to": .int(7)])
                == [TensorType(.int64, [.symbolic("n")])])
        let like = try runNode("CastLike", [x, Tensor([0] as [Int32], shape: [1])])[0]
        #expect(like.scalars(as: Int32.self) == [1])
        #expect(try inferTypes("CastLike", [TensorType(.float, [.fixed(1)]), TensorType(.double, nil)]) == [TensorType(.double, [.fixed(1)])])
    }
}
