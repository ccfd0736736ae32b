import Engine
import Foundation
import Tensors
import Testing

@Suite struct UnaryOperatorTests {
    @Test func elementaryFunctionsMatchTheCLibrary() throws {
        let x = Tensor([0.1, 0.5, 0.9] as [Float], shape: [3])
        let cases: [(String, (Double) -> Double)] = [
            ("Exp", exp), ("Log", log), ("Sqrt", sqrt), ("Reciprocal", { 1 / $0 }), ("Erf", erf), ("Sin", sin),
            ("Cos", cos), ("Tan", tan), ("Asin", asin), ("Acos", acos), ("Atan", atan), ("Sinh", sinh),
            ("Cosh", cosh), ("Asinh", asinh), ("Atanh", atanh),
        ]
        for (opType, function) in cases {
            let y = try runNode(opType, [x])[0]
            #expect(isClose(y.floats, x.floats.map { Float(function(Double($0))) }), "\(opType)")
            let doubles = try runNode(opType, [Tensor([0.25] as [Double], shape: [1])])[0]
            #expect(abs(doubles.scalars(as: Double.self)[0] - function(0.25)) < 1e-12, "\(opType) double")
        }
        #expect(try runNode("Acosh", [Tensor(scalar: Float(2))])[0].floats == [Float(acosh(2.0))])
    }

    @Test func roundingFunctions() throws {
        let x = Tensor([0.5, 1.5, 2.5, -0.5, -1.5, 1.2, -1.7] as [Float], shape: [7])
        #expect(try runNode("Round", [x])[0].floats == [0, 2, 2, -0, -2, 1, -2])
        #expect(try runNode("Floor", [x])[0].floats == [0, 1, 2, -1, -2, 1, -2])
        #expect(try runNode("Ceil", [x])[0].floats == [1, 2, 3, -0, -1, 2, -1])
        let half = Tensor([1.5, -2.5] as [Float16], shape: [2])
        #expect(try runNode("Round", [half])[0].scalars(as: Float16.self) == [2, -2])
    }

    @Test func absNegSignOnEveryNumericType() throws {
        let ints = Tensor([-3, 0, 5, Int32.min] as [Int32], shape: [4])
        #expect(try runNode("Abs", [ints])[0].scalars(as: Int32.self) == [3, 0, 5, Int32.min])
        #expect(try runNode("Neg", [ints])[0].scalars(as: Int32.self) == [3, 0, -5, Int32.min])
        #expect(try runNode("Sign", [ints])[0].scalars(as: Int32.self) == [-1, 0, 1, -1])
        let bytes = Tensor([0, 7, 255] as [UInt8], shape: [3])
        #expect(try runNode("Abs", [bytes])[0].scalars(as: UInt8.self) == [0, 7, 255])
        #expect(try runNode("Sign", [bytes])[0].scalars(as: UInt8.self) == [0, 1, 1])
        let floats = Tensor([-2.5, 0, .nan, 3] as [Double], shape: [4])
        let sign = try runNode("Sign", [floats])[0].scalars(as: Double.self)
        #expect(sign[0] == -1 && sign[1] == 0 && sign[2].isNaN && sign[3] == 1)
        #expect(failure { try runNode("Neg", [bytes]) }?.isInvalidArgument("uint8") == true)
    }

    @Test func classificationAndLogic() throws {
        let x = Tensor([1, .nan, .infinity, -.infinity] as [Float], shape: [4])
        #expect(try runNode("IsNaN", [x])[0].scalars(as: Bool.self) == [false, true, false, false])
        #expect(try runNode("IsInf", [x])[0].scalars(as: Bool.self) == [false, false, true, true])
        #expect(try runNode("IsInf", [x], attributes: ["detect_negative": .int(0)])[0].scalars(as: Bool.self)
                == [false, false, true, false])
        #expect(try runNode("IsInf", [x], attributes: ["detect_positive": .int(0)])[0].scalars(as: Bool.self)
                == [false, false, false, true])
        #expect(try runNode("Not", [Tensor([true, false], shape: [2])])[0].scalars(as: Bool.self) == [false, true])
        #expect(try runNode("BitwiseNot", [Tensor([0, 5, -1] as [Int16], shape: [3])])[0].scalars(as: Int16.self) == [-1, -6, 0])
        #expect(try runNode("BitwiseNot", [Tensor([0, 0xF0] as [UInt8], shape: [2])])[0].scalars(as: UInt8.self) == [0xFF, 0x0F])
    }

    @Test func typesAreCheckedAtLoad() throws {
        let types = try inferTypes("Exp", [TensorType(.float, [.symbolic("batch"), .fixed(3)])])
        #expect(types == [TensorType(.float, [.symbolic("batch"), .fixed(3)])])
        #expect(try inferTypes("IsNaN", [TensorType(.double, [.fixed(2)])]) == [TensorType(.bool, [.fixed(2)])])
        #expect(failure { try inferTypes("Exp", [TensorType(.int64, [.fixed(2)])]) }?.isFailure("int64") == true)
        #expect(failure { try runNode("Not", [Tensor([1] as [Float], shape: [1])]) }?.isInvalidArgument("float") == true)
    }
}
