import Engine
import Foundation
import Kernels
import Tensors
import Testing
import TestSupport

@Suite struct BinaryOperatorTests {
    @Test func arithmeticBroadcastsLikeNumpy() throws {
        var generator = SeededGenerator(seed: 12)
        let a = Tensor(generator.floats(24), shape: [2, 3, 4]), b = Tensor(generator.floats(3), shape: [3, 1])
        let operations: [(String, (Float, Float) -> Float)] = [("Add", +), ("Sub", -), ("Mul", *), ("Div", /)]
        for (opType, operation) in operations {
            let c = try runNode(opType, [a, b])[0]
            #expect(c.shape == [2, 3, 4])
            let expected = BroadcastLayout.naive([a.floats, b.floats], shapes: [a.shape, b.shape], output: [2, 3, 4]) {
                operation($0[0], $0[1])
            }
            #expect(c.floats == expected, "\(opType)")
            // Scalar operands on either side.
            let scalar = Tensor(scalar: Float(2))
            #expect(try runNode(opType, [scalar, a])[0].floats == a.floats.map { operation(2, $0) }, "\(opType)")
        }
    }

    @Test func largeTensorsSplitOverThreadsGiveTheSameResult() throws {
        var generator = SeededGenerator(seed: 13)
        let a = Tensor(generator.floats(3 * 70_001), shape: [3, 70_001])
        let b = Tensor(generator.floats(70_001), shape: [70_001])
        #expect(try runNode("Mul", [a, b], threads: 2)[0].floats == runNode("Mul", [a, b])[0].floats)
        #expect(try runNode("Add", [a, a], threads: 2)[0].floats == a.floats.map { $0 + $0 })
    }

    @Test func mismatchedTypesAndShapesAreNamed() throws {
        let float = TensorType(.float, [.fixed(2)]), int64 = TensorType(.int64, [.fixed(2)])
        let message = failure { try inferTypes("Add", [float, int64]) }
        #expect(message?.isFailure("float") == true && message?.isFailure("int64") == true)
        let runMessage = failure {
            try runNode("Add", [Tensor([1, 2] as [Float], shape: [2]), Tensor([1, 2] as [Int64], shape: [2])])
        }
        #expect(runMessage?.isInvalidArgument("float") == true && runMessage?.isInvalidArgument("int64") == true)
        let shapes = failure { try runNode("Mul", [Tensor([1, 2] as [Float], shape: [2]), Tensor([1, 2, 3] as [Float], shape: [3])]) }
        #expect(shapes?.isInvalidArgument("[2] and [3]") == true)
        #expect(failure { try inferTypes("Mul", [float, TensorType(.float, [.fixed(3)])]) }?.isInvalidArgument("broadcast") == true)
        #expect(failure { try inferTypes("And", [float, float]) }?.isFailure("float") == true)
    }

    @Test func symbolicDimensionsBroadcast() throws {
        let a = TensorType(.float, [.symbolic("batch"), .fixed(1), .fixed(4)])
        let b = TensorType(.float, [.fixed(3), .fixed(1)])
        #expect(try inferTypes("Add", [a, b]) == [TensorType(.float, [.symbolic("batch"), .fixed(3), .fixed(4)])])
        let c = TensorType(.float, [.symbolic("n"), .unknown])
        let d = TensorType(.float, [.symbolic("m"), .fixed(5)])
        #expect(try inferTypes("Sub", [c, d]) == [TensorType(.float, [.unknown, .fixed(5)])])
        #expect(try inferTypes("Less", [a, TensorType(.float, nil)]) == [TensorType(.bool, nil)])
        #expect(try inferTypes("Where", [TensorType(.bool, [.fixed(2), .fixed(1)]), TensorType(.int64, [.fixed(3)]),
                                         TensorType(.int64, [])]) == [TensorType(.int64, [.fixed(2), .fixed(3)])])
    }

    @Test func integerDivisionTruncatesAndNeverTraps() throws {
        let a = Tensor([-7, 7, 5, Int32.min] as [Int32], shape: [4]), b = Tensor([2, -2, 0, -1] as [Int32], shape: [4])
        #expect(try runNode("Div", [a, b])[0].scalars(as: Int32.self) == [-3, -3, 5, Int32.min])
        #expect(try runNode("Add", [Tensor([Int8.max] as [Int8], shape: [1]), Tensor([1] as [Int8], shape: [1])])[0]
            .scalars(as: Int8.self) == [Int8.min])
        let bytes = try runNode("Sub", [Tensor([1] as [UInt8], shape: [1]), Tensor([2] as [UInt8], shape: [1])])[0]
        #expect(bytes.scalars(as: UInt8.self) == [255])
    }

    @Test func modFollowsTheDivisorOrTheDividend() throws {
        let a = Tensor([-4, 7, 5, -3] as [Int64], shape: [4]), b = Tensor([3, -3, 0, -2] as [Int64], shape: [4])
        #expect(try runNode("Mod", [a, b])[0].scalars(as: Int64.self) == [2, -2, 0, -1])
        #expect(try runNode("Mod", [a, b], attributes: ["fmod": .int(1)])[0].scalars(as: Int64.self) == [-1, 1, 0, -1])
        let x = Tensor([-4.5, 7.5] as [Float], shape: [2]), y = Tensor([3, -2] as [Float], shape: [2])
        #expect(try runNode("Mod", [x, y], attributes: ["fmod": .int(1)])[0].floats == [-1.5, 1.5])
        #expect(try runNode("Mod", [x, y])[0].floats == [1.5, -0.5])
    }

    @Test func powAcceptsMixedTypes() throws {
        let x = Tensor([1, 2, 3, -2] as [Float], shape: [4])
        #expect(try runNode("Pow", [x, Tensor(scalar: Float(2))])[0].floats == [1, 4, 9, 4])
        #expect(isClose(try runNode("Pow", [x, Tensor(scalar: Float(0.5))])[0].floats.prefix(3).map { $0 }, [1, sqrt(2), sqrt(3)]))
        #expect(try runNode("Pow", [x, Tensor([3] as [Int64], shape: [1])])[0].floats == [1, 8, 27, -8])
        let ints = try runNode("Pow", [Tensor([2, 3, 4] as [Int32], shape: [3]), Tensor([2, 0.5, -1] as [Float], shape: [3])])[0]
        #expect(ints.scalars(as: Int32.self) == [4, 1, 0])
        #expect(try runNode("Pow", [Tensor([2, 3] as [Int64], shape: [2]), Tensor([10, 3] as [Int64], shape: [2])])[0]
            .scalars(as: Int64.self) == [1024, 27])
        #expect(failure { try runNode("Pow", [Tensor([2] as [UInt8], shape: [1]), Tensor(scalar: Float(1))]) }?
            .isInvalidArgument("uint8") == true)
    }

    @Test func bitOperations() throws {
        let x = Tensor([16, 4, 1] as [UInt8], shape: [3]), amount = Tensor([1, 2, 8] as [UInt8], shape: [3])
        #expect(try runNode("BitShift", [x, amount], attributes: ["direction": .string("RIGHT")])[0].scalars(as: UInt8.self) == [8, 1, 0])
        #expect(try runNode("BitShift", [x, amount], attributes: ["direction": .string("LEFT")])[0].scalars(as: UInt8.self) == [32, 16, 0])
        let signed = Tensor([-16, -1, 5] as [Int32], shape: [3])
        let shifted = try runNode("BitShift", [signed, Tensor([2, 40, -1] as [Int32], shape: [3])],
                                  attributes: ["direction": .string("RIGHT")], opset: 28)[0]
        #expect(shifted.scalars(as: Int32.self) == [-4, -1, 0])
        #expect(failure { try runNode("BitShift", [x, amount], attributes: ["direction": .string("UP")]) }?.isInvalidNode("direction") == true)
        let a = Tensor([0b1100, 0b1010] as [Int64], shape: [2]), b = Tensor([0b1010] as [Int64], shape: [1])
        #expect(try runNode("BitwiseAnd", [a, b])[0].scalars(as: Int64.self) == [0b1000, 0b1010])
        #expect(try runNode("BitwiseOr", [a, b])[0].scalars(as: Int64.self) == [0b1110, 0b1010])
        #expect(try runNode("BitwiseXor", [a, b])[0].scalars(as: Int64.self) == [0b0110, 0])
    }

    @Test func logicAndComparisons() throws {
        let p = Tensor([true, true, false, false], shape: [2, 2]), q = Tensor([true, false], shape: [2])
        #expect(try runNode("And", [p, q])[0].scalars(as: Bool.self) == [true, false, false, false])
        #expect(try runNode("Or", [p, q])[0].scalars(as: Bool.self) == [true, true, true, false])
        #expect(try runNode("Xor", [p, q])[0].scalars(as: Bool.self) == [false, true, true, false])
        #expect(try runNode("Equal", [p, q])[0].scalars(as: Bool.self) == [true, false, false, true])
        let a = Tensor([1, 2, 3] as [Int64], shape: [3]), b = Tensor(scalar: Int64(2))
        #expect(try runNode("Less", [a, b])[0].scalars(as: Bool.self) == [true, false, false])
        #expect(try runNode("LessOrEqual", [a, b])[0].scalars(as: Bool.self) == [true, true, false])
        #expect(try runNode("Greater", [a, b])[0].scalars(as: Bool.self) == [false, false, true])
        #expect(try runNode("GreaterOrEqual", [a, b])[0].scalars(as: Bool.self) == [false, true, true])
        #expect(try runNode("Equal", [a, b])[0].scalars(as: Bool.self) == [false, true, false])
        let words = Tensor(strings: ["a", "b"], shape: [2])
        #expect(try runNode("Equal", [words, Tensor(strings: ["b"], shape: [1])])[0].scalars(as: Bool.self) == [false, true])
        #expect(try runNode("Equal", [Tensor([.nan] as [Float], shape: [1]), Tensor([.nan] as [Float], shape: [1])])[0]
            .scalars(as: Bool.self) == [false])
    }

    @Test func whereSelectsAnyElementType() throws {
        let condition = Tensor([true, false], shape: [2, 1])
        let x = Tensor([1, 2, 3] as [Int16], shape: [3]), y = Tensor(scalar: Int16(-1))
        #expect(try runNode("Where", [condition, x, y])[0].scalars(as: Int16.self) == [1, 2, 3, -1, -1, -1])
        let doubles = try runNode("Where", [condition, Tensor(scalar: 1.5), Tensor([2.5, 3.5] as [Double], shape: [2])])[0]
        #expect(doubles.scalars(as: Double.self) == [1.5, 1.5, 2.5, 3.5])
        let strings = try runNode("Where", [condition, Tensor(strings: ["yes"], shape: []), Tensor(strings: ["no"], shape: [])])[0]
        #expect(strings.strings == ["yes", "no"] && strings.shape == [2, 1])
        #expect(failure { try runNode("Where", [x, x, x]) }?.isInvalidArgument("condition") == true)
    }

    @Test func variadicOperatorsFoldAllInputs() throws {
        let a = Tensor([1, 5] as [Float], shape: [2]), b = Tensor([3] as [Float], shape: [1])
        let c = Tensor([2, 0, 4, 6] as [Float], shape: [2, 2])
        #expect(try runNode("Sum", [a, b, c])[0].floats == [6, 8, 8, 14])
        #expect(isClose(try runNode("Mean", [a, b, c])[0].floats, [2, 8.0 / 3, 8.0 / 3, 14.0 / 3]))
        #expect(try runNode("Max", [a, b, c])[0].floats == [3, 5, 4, 6])
        #expect(try runNode("Min", [a, b, c])[0].floats == [1, 0, 1, 3])
        #expect(try runNode("Max", [a])[0].floats == [1, 5])
        #expect(try runNode("Min", [Tensor([3, -4] as [Int32], shape: [2]), Tensor([1] as [Int32], shape: [1])])[0]
            .scalars(as: Int32.self) == [1, -4])
        #expect(try inferTypes("Sum", [TensorType(.float, [.fixed(2)]), TensorType(.float, [.fixed(3), .fixed(1)])])
                == [TensorType(.float, [.fixed(3), .fixed(2)])])
    }

    @Test func legacyBroadcastAlignsAtAxis() throws {
        let a = Tensor((0..<24).map(Float.init), shape: [2, 3, 4]), b = Tensor([100, 200, 300] as [Float], shape: [3])
        let c = try runNode("Add", [a, b], attributes: ["broadcast": .int(1), "axis": .int(1)], opset: 6)[0]
        #expect(c.floats == a.floats.enumerated().map { $1 + [100, 200, 300][$0 / 4 % 3] })
        let trailing = try runNode("Mul", [a, Tensor([0, 1, 2, 3] as [Float], shape: [4])], attributes: ["broadcast": .int(1)], opset: 1)[0]
        #expect(trailing.floats == a.floats.enumerated().map { $1 * Float($0 % 4) })
        #expect(failure { try runNode("Add", [a, b], opset: 6) }?.isInvalidArgument("broadcast") == true)
        #expect(failure { try runNode("Add", [a, b], attributes: ["broadcast": .int(1)], opset: 6) }?.isInvalidArgument("does not match") == true)
    }
}
