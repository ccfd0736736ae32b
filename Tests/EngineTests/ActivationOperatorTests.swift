import Engine
import Foundation
import Kernels
import Tensors
import Testing
import TestSupport

@Suite struct ActivationOperatorTests {
    private static let x: [Float] = [-3, -1, -0.25, 0, 0.25, 1, 3]

    @Test func eachActivationComputesItsFormula() throws {
        let input = Tensor(Self.x, shape: [7])
        let cases: [(String, [String: AttributeValue], (Float) -> Float)] = [
            ("Relu", [:], { max($0, 0) }),
            ("LeakyRelu", [:], { $0 < 0 ? 0.01 * $0 : $0 }),
            ("LeakyRelu", ["alpha": .float(0.2)], { $0 < 0 ? 0.2 * $0 : $0 }),
            ("Elu", ["alpha": .float(2)], { $0 >= 0 ? $0 : 2 * (exp($0) - 1) }),
            ("Selu", [:], { $0 > 0 ? 1.0507009873554805 * $0 : 1.0507009873554805 * 1.6732632423543772 * (exp($0) - 1) }),
            ("Celu", ["alpha": .float(2)], { max(0, $0) + min(0, 2 * (exp($0 / 2) - 1)) }),
            ("Sigmoid", [:], { 1 / (1 + exp(-$0)) }),
            ("HardSigmoid", [:], { min(max(0.2 * $0 + 0.5, 0), 1) }),
            ("HardSwish", [:], { $0 * min(max($0 / 6 + 0.5, 0), 1) }),
            ("Tanh", [:], { tanh($0) }),
            ("Softplus", [:], { log(1 + exp($0)) }),
            ("Softsign", [:], { $0 / (1 + abs($0)) }),
            ("ThresholdedRelu", ["alpha": .float(0.5)], { $0 > 0.5 ? $0 : 0 }),
            ("Gelu", [:], { 0.5 * $0 * (1 + erf($0 / sqrt(2))) }),
            ("Gelu", ["approximate": .string("tanh")], { 0.5 * $0 * (1 + tanh(sqrt(2 / .pi) * ($0 + 0.044715 * $0 * $0 * $0))) }),
            ("Mish", [:], { $0 * tanh(log(1 + exp($0))) }),
        ]
        for (opType, attributes, formula) in cases {
            let y = try runNode(opType, [input], attributes: attributes)[0]
            #expect(isClose(y.floats, Self.x.map(formula)), "\(opType) \(attributes.keys.sorted())")
            let doubles = try runNode(opType, [Tensor(Self.x.map(Double.init), shape: [7])], attributes: attributes)[0]
            #expect(isClose(doubles.scalars(as: Double.self).map(Float.init), Self.x.map(formula)), "\(opType) double")
        }
    }

    @Test func parallelRunsMatchSerialOnes() throws {
        var generator = SeededGenerator(seed: 11)
        let input = Tensor(generator.floats(100_003, in: -4...4), shape: [100_003])
        for opType in ["Sigmoid", "Relu", "Exp", "Gelu"] {
            #expect(try runNode(opType, [input], threads: 2)[0].floats == runNode(opType, [input])[0].floats, "\(opType)")
        }
    }

    @Test func integerReluAndBadAttributes() throws {
        #expect(try runNode("Relu", [Tensor([-5, 0, 7] as [Int8], shape: [3])])[0].scalars(as: Int8.self) == [0, 0, 7])
        #expect(failure { try runNode("Gelu", [Tensor(Self.x, shape: [7])], attributes: ["approximate": .string("fast")]) }?
            .isInvalidNode("approximate") == true)
        #expect(failure { try runNode("Sigmoid", [Tensor([1] as [Int32], shape: [1])]) }?.isInvalidArgument("int32") == true)
    }

    @Test func preluBroadcastsItsSlope() throws {
        let x = Tensor((0..<24).map { Float($0) - 12 }, shape: [2, 3, 2, 2])
        let slope = Tensor([0.1, 0.2, 0.3] as [Float], shape: [3, 1, 1])
        let y = try runNode("PRelu", [x, slope])[0]
        let expected = x.floats.enumerated().map { index, value in value < 0 ? value * [0.1, 0.2, 0.3][index / 4 % 3] : value }
        #expect(isClose(y.floats, expected))
        let ints = try runNode("PRelu", [Tensor([-4, 4] as [Int64], shape: [2]), Tensor([3] as [Int64], shape: [1])])[0]
        #expect(ints.scalars(as: Int64.self) == [-12, 4])
        #expect(failure { try runNode("PRelu", [x, Tensor([1, 2, 3] as [Float], shape: [3])]) }?.isInvalidArgument("slope") == true)
    }

    @Test func clipBoundsFromAttributesAndInputs() throws {
        let x = Tensor([-2, -0.5, 0.5, 2] as [Float], shape: [4])
        #expect(try runNode("Clip", [x], attributes: ["min": .float(-1), "max": .float(1)], opset: 6)[0].floats == [-1, -0.5, 0.5, 1])
        #expect(try runNode("Clip", [x], attributes: ["max": .float(0)], opset: 6)[0].floats == [-2, -0.5, 0, 0])
        #expect(try runNode("Clip", [x, Tensor(scalar: Float(0))], opset: 13)[0].floats == [0, 0, 0.5, 2])
        #expect(try runNode("Clip", [x, nil, Tensor(scalar: Float(0))], opset: 13)[0].floats == [-2, -0.5, 0, 0])
        #expect(try runNode("Clip", [x], opset: 13)[0].floats == x.floats)
        // min above max gives max everywhere.
        #expect(try runNode("Clip", [x, Tensor(scalar: Float(1)), Tensor(scalar: Float(0))], opset: 13)[0].floats == [0, 0, 0, 0])
        let big = Tensor([Int64.max, -1, Int64.min] as [Int64], shape: [3])
        let clipped = try runNode("Clip", [big, Tensor(scalar: Int64.min + 1), Tensor(scalar: Int64.max - 1)], opset: 13)[0]
        #expect(clipped.scalars(as: Int64.self) == [Int64.max - 1, -1, Int64.min + 1])
        #expect(failure { try runNode("Clip", [x, Tensor(scalar: Double(0))], opset: 13) }?.isInvalidArgument("double") == true)
        #expect(failure { try runNode("Clip", [x, Tensor([0, 1] as [Float], shape: [2])], opset: 13) }?.isInvalidArgument("scalar") == true)
    }
}
