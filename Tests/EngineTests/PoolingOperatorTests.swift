import Engine
import Kernels
import Tensors
import Testing
import TestSupport

@Suite struct PoolingOperatorTests {
    typealias T = ConvTestSupport

    // ONNX node test values: maxpool_with_argmax_2d_precomputed_pads / _strides.
    @Test func maxPoolIndicesInBothStorageOrders() throws {
        let x = T.iota([1, 1, 5, 5], start: 1)
        let padded = try T.runNode("MaxPool", [x], attributes: ["kernel_shape": .ints([5, 5]), "pads": .ints([2, 2, 2, 2])],
                                   outputs: 2)
        #expect(padded[0].scalars(as: Float.self) == [13, 14, 15, 15, 15, 18, 19, 20, 20, 20, 23, 24, 25, 25, 25,
                                                      23, 24, 25, 25, 25, 23, 24, 25, 25, 25])
        #expect(padded[1].scalars(as: Int64.self) == [12, 13, 14, 14, 14, 17, 18, 19, 19, 19, 22, 23, 24, 24, 24,
                                                      22, 23, 24, 24, 24, 22, 23, 24, 24, 24])
        let columns = try T.runNode("MaxPool", [x], attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]),
                                                                 "storage_order": .int(1)], outputs: 2)
        #expect(columns[0].scalars(as: Float.self) == [7, 9, 17, 19])
        #expect(columns[1].scalars(as: Int64.self) == [6, 16, 8, 18])
    }

    @Test func maxPoolIndicesCountEarlierPlanes() throws {
        let x = T.iota([2, 3, 4])
        let result = try T.runNode("MaxPool", [x], attributes: ["kernel_shape": .ints([2]), "strides": .ints([2])], outputs: 2)
        #expect(result[1].scalars(as: Int64.self) == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23])
    }

    // Values from ONNX Runtime 1.32 (5×5 ones, 2×2 windows, stride 2).
    @Test func averagePoolPaddingCounts() throws {
        let ones = Tensor([Float](repeating: 1, count: 25), shape: [1, 1, 5, 5])
        let ceil = try T.runNode("AveragePool", [ones], attributes: [
            "kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "ceil_mode": .int(1), "count_include_pad": .int(1),
            "pads": .ints([1, 1, 0, 0]),
        ])[0]
        #expect(ceil.scalars(as: Float.self) == [0.25, 0.5, 0.5, 0.5, 1, 1, 0.5, 1, 1])
        let same = try T.runNode("AveragePool", [ones], attributes: [
            "kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "auto_pad": .string("SAME_UPPER"), "count_include_pad": .int(1),
        ])[0]
        #expect(same.scalars(as: Float.self) == [1, 1, 0.5, 1, 1, 0.5, 0.5, 0.5, 0.25])
        let excluded = try T.runNode("AveragePool", [ones], attributes: [
            "kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "auto_pad": .string("SAME_UPPER"),
        ])[0]
        #expect(excluded.scalars(as: Float.self) == [Float](repeating: 1, count: 9))
        let corrected = try T.runNode("MaxPool", [T.iota([1, 1, 4, 4])], attributes: [
            "kernel_shape": .ints([2, 2]), "strides": .ints([2, 2]), "pads": .ints([0, 0, 1, 1]), "ceil_mode": .int(1),
        ])[0]
        #expect(corrected.shape == [1, 1, 2, 2])
    }

    @Test func lpPoolAndGlobalPools() throws {
        let x = Tensor([3, -4, 0, 1, 2, 2, -1, 0] as [Float], shape: [1, 2, 2, 2])
        let lp = try T.runNode("LpPool", [x], attributes: ["kernel_shape": .ints([2, 2]), "p": .int(2)])[0]
        #expect(T.isClose(lp.scalars(as: Float.self), [(26 as Float).squareRoot(), 3]))
        let global = try T.runNode("GlobalLpPool", [x], attributes: ["p": .int(1)])[0]
        #expect(global.scalars(as: Float.self) == [8, 5])
        let average = try T.runNode("GlobalAveragePool", [x])[0]
        #expect(average.shape == [1, 2, 1, 1])
        #expect(average.scalars(as: Float.self) == [0, 0.75])
        let maximum = try T.runNode("GlobalMaxPool", [T.iota([1, 2, 2, 3, 2])])[0]
        #expect(maximum.shape == [1, 2, 1, 1, 1])
        #expect(maximum.scalars(as: Float.self) == [11, 23])
    }

    @Test func maxPoolOnBytes() throws {
        let x = Tensor([5, 200, 7, 9, 1, 255, 3, 0] as [UInt8], shape: [1, 1, 8])
        let y = try T.runNode("MaxPool", [x], attributes: ["kernel_shape": .ints([3]), "strides": .ints([2]),
                                                           "dilations": .ints([2]), "ceil_mode": .int(1)])[0]
        #expect(y.scalars(as: UInt8.self) == [7, 7, 3])
    }

    /// 8-bit MaxPool without indices runs the float kernel between conversions; with indices, the
    /// integer kernel: both agree on padded, strided, dilated and ceil-mode windows.
    @Test(arguments: [DataType.int8, .uint8])
    func integerMaxPoolThroughFloatMatchesTheIntegerKernel(type: DataType) throws {
        var random = SeededGenerator(seed: 3)
        let shape: Shape = [2, 3, 9, 11]
        let values = (0..<shape.elementCount).map { _ in Int64.random(in: -40_000...70_000, using: &random) }
        let x: Tensor
        switch type {
        case .int8: x = Tensor(values.map { Int8(truncatingIfNeeded: $0) }, shape: shape)
        default: x = Tensor(values.map { UInt8(truncatingIfNeeded: $0) }, shape: shape)
        }
        for attributes: [String: AttributeValue] in [
            ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])],
            ["kernel_shape": .ints([2, 3]), "dilations": .ints([2, 1]), "ceil_mode": .int(1), "strides": .ints([2, 3])],
            ["kernel_shape": .ints([3, 2]), "pads": .ints([0, 1, 2, 1])],
        ] {
            let fast = try T.runNode("MaxPool", [x], attributes: attributes)[0]
            let integer = try T.runNode("MaxPool", [x], attributes: attributes, outputs: 2)[0]
            #expect(fast.dataType == type && fast.shape == integer.shape)
            #expect(fast.doubles() == integer.doubles(), "\(type) \(attributes)")
        }
    }

    @Test func outputTypes() throws {
        let types = try T.types("MaxPool", [TensorType(.float, [.symbolic("N"), .fixed(64), .fixed(112), .unknown])],
                                attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])],
                                outputs: 2)
        #expect(types.first == TensorType(.float, [.symbolic("N"), .fixed(64), .fixed(56), .unknown]))
        let global = try T.types("GlobalAveragePool", [TensorType(.float, [.symbolic("N"), .fixed(8), .fixed(7), .fixed(7)])])
        #expect(global.first == TensorType(.float, [.symbolic("N"), .fixed(8), .fixed(1), .fixed(1)]))
        #expect(throws: (any Error).self) {
            try T.types("AveragePool", [TensorType(.int32, shape: [1, 1, 4, 4])], attributes: ["kernel_shape": .ints([2, 2])])
        }
        #expect(throws: (any Error).self) { try T.runNode("MaxPool", [T.iota([1, 1, 4, 4])], attributes: ["kernel_shape": .ints([2])]) }
    }
}
