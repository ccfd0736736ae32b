import Engine
import Foundation
import Tensors
import Testing
import TestSupport

@Suite struct SoftmaxOperatorTests {
    private static func softmax(_ values: [Float]) -> [Float] {
        let peak = values.max()!, exps = values.map { exp($0 - peak) }, sum = exps.reduce(0, +)
        return exps.map { $0 / sum }
    }

    @Test func axisSemanticsChangeAtOpset13() throws {
        var generator = SeededGenerator(seed: 14)
        let x = Tensor(generator.floats(24, in: -3...3), shape: [2, 3, 4])
        let values = x.floats
        // Opset 13, axis 1: each (i, k) column of 3 values.
        let along = try runNode("Softmax", [x], attributes: ["axis": .int(1)], opset: 13)[0].floats
        for i in 0..<2 {
            for k in 0..<4 {
                let indices = (0..<3).map { i * 12 + $0 * 4 + k }
                #expect(isClose(indices.map { along[$0] }, Self.softmax(indices.map { values[$0] })))
            }
        }
        // Opset 11, axis 1: each row of 12 values.
        let coerced = try runNode("Softmax", [x], attributes: ["axis": .int(1)], opset: 11)[0].floats
        #expect(isClose(coerced, Self.softmax(Array(values[..<12])) + Self.softmax(Array(values[12...]))))
        // Defaults: -1 from 13, 1 before.
        #expect(isClose(try runNode("Softmax", [x], opset: 13)[0].floats,
                        (0..<6).flatMap { Self.softmax(Array(values[($0 * 4)..<($0 * 4 + 4)])) }))
        #expect(try runNode("Softmax", [x], opset: 1)[0].floats == coerced)
        let log = try runNode("LogSoftmax", [x], opset: 13)[0].floats
        #expect(isClose(log.map { exp($0) }, try runNode("Softmax", [x], opset: 13)[0].floats))
    }

    @Test func hardmaxMarksTheFirstMaximum() throws {
        let x = Tensor([1, 3, 3, 0, 2, 1] as [Float], shape: [2, 3])
        #expect(try runNode("Hardmax", [x], opset: 13)[0].floats == [0, 1, 0, 0, 1, 0])
        #expect(try runNode("Hardmax", [x], attributes: ["axis": .int(0)], opset: 13)[0].floats == [1, 1, 1, 0, 0, 0])
        #expect(try runNode("Hardmax", [x], attributes: ["axis": .int(0)], opset: 11)[0].floats == [0, 1, 0, 0, 0, 0])
    }

    @Test func badAxesAndTypes() throws {
        let x = Tensor([1, 2] as [Float], shape: [1, 2])
        #expect(failure { try runNode("Softmax", [x], attributes: ["axis": .int(2)], opset: 13) }?.isInvalidArgument("axis 2") == true)
        #expect(failure { try inferTypes("Softmax", [TensorType(.float, [.fixed(2)])], attributes: ["axis": .int(-2)]) }?.isInvalidArgument("axis -2") == true)
        #expect(failure { try runNode("Softmax", [Tensor([1] as [Int64], shape: [1])]) }?.isInvalidArgument("int64") == true)
    }
}

@Suite struct HalfPrecisionTests {
    /// Float16 softmax and reductions compute in float: 2048 terms summed in float16 would drift.
    @Test func float16ComputesInFloat() throws {
        let values = (0..<2048).map { Float16(Float($0 % 7) / 7) }
        let x = Tensor(values, shape: [1, 2048])
        let sum = try runNode("ReduceSum", [x], opset: 13)[0].scalars(as: Float16.self)[0]
        let exact = values.reduce(Float(0)) { $0 + Float($1) }
        #expect(abs(Float(sum) - exact) <= Float(Float16(exact).ulp))
        let softmax = try runNode("Softmax", [x], opset: 13)[0]
        #expect(softmax.dataType == .float16)
        let total = softmax.scalars(as: Float16.self).reduce(Float(0)) { $0 + Float($1) }
        #expect(abs(total - 1) < 1e-2)
    }
}
