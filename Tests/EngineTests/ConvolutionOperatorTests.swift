import Engine
import Kernels
import Tensors
import Testing

@Suite struct ConvolutionOperatorTests {
    typealias T = ConvTestSupport

    // The ONNX operator documentation's Conv examples: 5×5 input 0…24, 3×3 kernel of ones.
    @Test func onnxDocumentationExamples() throws {
        let x = T.iota([1, 1, 5, 5]), w = Tensor([Float](repeating: 1, count: 9), shape: [1, 1, 3, 3])
        let padded = try T.runNode("Conv", [x, w], attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])])[0]
        #expect(padded.shape == [1, 1, 5, 5])
        #expect(padded.scalars(as: Float.self) == [12, 21, 27, 33, 24, 33, 54, 63, 72, 51, 63, 99, 108, 117, 81,
                                                   93, 144, 153, 162, 111, 72, 111, 117, 123, 84])
        let unpadded = try T.runNode("Conv", [x, w], opset: 1)[0]
        #expect(unpadded.scalars(as: Float.self) == [54, 63, 72, 99, 108, 117, 144, 153, 162])
        let strided = try T.runNode("Conv", [x, w], attributes: ["strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])])[0]
        #expect(strided.scalars(as: Float.self) == [12, 27, 24, 63, 108, 81, 72, 117, 84])
        let same = try T.runNode("Conv", [x, w], attributes: ["strides": .ints([2, 2]), "auto_pad": .string("SAME_LOWER")])[0]
        #expect(same.shape == [1, 1, 3, 3])
        #expect(same.scalars(as: Float.self) == [12, 27, 24, 63, 108, 81, 72, 117, 84])
    }

    @Test func groupsStridesDilationsAgainstReference() throws {
        let x = T.random([2, 6, 11, 9], seed: 1), w = T.random([4, 3, 3, 3], seed: 2), b = T.random([4], seed: 3)
        let y = try T.runNode("Conv", [x, w, b], attributes: [
            "group": .int(2), "strides": .ints([2, 1]), "dilations": .ints([1, 2]), "pads": .ints([1, 2, 0, 2]),
        ])[0]
        let window = SpatialWindow(inputSize: [11, 9], outputSize: [5, 9], kernel: [3, 3], strides: [2, 1], dilations: [1, 2],
                                   padsBegin: [1, 2])
        #expect(y.shape == [2, 4, 5, 9])
        #expect(T.isClose(y.scalars(as: Float.self), T.referenceConv(x, w, bias: b, groups: 2, window: window)))
    }

    @Test func depthwiseAndOneDimensional() throws {
        let x = T.random([1, 5, 20], seed: 4), w = T.random([5, 1, 3], seed: 5)
        let y = try T.runNode("Conv", [x, w], attributes: ["group": .int(5), "auto_pad": .string("SAME_UPPER")])[0]
        let window = SpatialWindow(inputSize: [20], outputSize: [20], kernel: [3], strides: [1], dilations: [1], padsBegin: [1])
        #expect(T.isClose(y.scalars(as: Float.self), T.referenceConv(x, w, groups: 5, window: window)))
    }

    @Test func doubleElementsUseTheReferenceKernel() throws {
        let x = Tensor((0..<25).map(Double.init), shape: [1, 1, 5, 5]), w = Tensor([Double](repeating: 1, count: 9), shape: [1, 1, 3, 3])
        let y = try T.runNode("Conv", [x, w])[0]
        #expect(y.scalars(as: Double.self) == [54, 63, 72, 99, 108, 117, 144, 153, 162])
    }

    // The ONNX documentation's ConvInteger example, plus a per-channel weight zero point.
    @Test func convIntegerSubtractsZeroPoints() throws {
        let x = Tensor((2...10).map { UInt8($0) }, shape: [1, 1, 3, 3])
        let w = Tensor([UInt8](repeating: 1, count: 4), shape: [1, 1, 2, 2])
        let y = try T.runNode("ConvInteger", [x, w, Tensor(scalar: UInt8(1))], opset: 10)[0]
        #expect(y.dataType == .int32)
        #expect(y.scalars(as: Int32.self) == [12, 16, 24, 28])
        let twoChannels = Tensor([Int8](repeating: 3, count: 8), shape: [2, 1, 2, 2])
        let perChannel = try T.runNode("ConvInteger", [x, twoChannels, Tensor(scalar: UInt8(1)), Tensor([1, 2] as [Int8], shape: [2])],
                                       opset: 10)[0]
        #expect(perChannel.scalars(as: Int32.self) == [24, 32, 48, 56, 12, 16, 24, 28])
    }

    @Test func fusedConvAppliesBiasResidualAndActivation() throws {
        let x = T.random([1, 3, 6, 6], seed: 6), w = T.random([4, 3, 3, 3], seed: 7), b = T.random([4], seed: 8)
        let residual = T.random([1, 4, 6, 6], seed: 9)
        let attributes: [String: AttributeValue] = ["pads": .ints([1, 1, 1, 1]), "activation": .string("LeakyRelu"),
                                                    "activation_params": .floats([0.3])]
        let y = try T.runNode("FusedConv", [x, w, b, residual], attributes: attributes, domain: OperatorRegistry.internalDomain)[0]
        let window = SpatialWindow(inputSize: [6, 6], outputSize: [6, 6], kernel: [3, 3], strides: [1, 1], dilations: [1, 1],
                                   padsBegin: [1, 1])
        let sums = zip(T.referenceConv(x, w, bias: b, window: window), residual.scalars(as: Float.self)).map { $0 + $1 }
        #expect(T.isClose(y.scalars(as: Float.self), sums.map { $0 < 0 ? 0.3 * $0 : $0 }))
        // A residual that broadcasts (one value per channel) gives the same as adding it to the bias.
        let perChannel = T.random([4, 1, 1], seed: 10)
        let broadcast = try T.runNode("FusedConv", [x, w, b, perChannel], attributes: ["pads": .ints([1, 1, 1, 1])],
                                      domain: OperatorRegistry.internalDomain)[0]
        let shifted = Tensor(zip(b.scalars(as: Float.self), perChannel.scalars(as: Float.self)).map { $0 + $1 }, shape: [4])
        #expect(T.isClose(broadcast.scalars(as: Float.self), T.referenceConv(x, w, bias: shifted, window: window)))
    }

    /// A fused QDQ rounding names an integer grid: whole-number zero point and bounds of at most 2^16,
    /// and a positive scale (what its exact rounding needs); anything else is refused with the
    /// reason, not rounded wrongly.
    @Test func fusedRoundingNeedsAnIntegerGrid() throws {
        let x = T.random([1, 2, 4, 4], seed: 6), w = T.random([3, 2, 1, 1], seed: 7)
        func run(_ parameters: [Float]) throws -> Tensor {
            try T.runNode("FusedConv", [x, w], attributes: ["activation": .string("QuantizeDequantize"),
                                                            "activation_params": .floats(parameters)],
                          domain: OperatorRegistry.internalDomain)[0]
        }
        let y = try run([0.05, 128, 0, 255])
        let product = T.referenceConv(x, w, bias: nil, window: SpatialWindow(inputSize: [4, 4], outputSize: [4, 4], kernel: [1, 1],
                                                                              strides: [1, 1], dilations: [1, 1], padsBegin: [0, 0]))
        #expect(y.scalars(as: Float.self) == product.map { Activation.quantizeDequantize($0, 0.05, 128, 0, 255) })
        for bad: [Float] in [[0.05, 127.5, 0, 255], [0.05, 0, 0.5, 255], [0.05, 0, 0, 1e7], [0.05, 0, -1e9, 0], [0, 0, 0, 255], [-0.05, 0, 0, 255], [0.05, 0, 255, 0]] {
            do {
                _ = try run(bad)
                Issue.record("accepted \(bad)")
            } catch let error as EngineError {
                guard case .invalidGraph(let message) = error else {
                    Issue.record("\(bad): \(error)")
                    continue
                }
                #expect(message.contains("QuantizeDequantize needs a finite positive scale"), "\(bad): \(message)")
            }
        }
    }

    @Test func outputTypesKeepSymbolicBatch() throws {
        let types = try T.types("Conv", [TensorType(.float, [.symbolic("N"), .fixed(3), .fixed(224), .fixed(224)]),
                                         TensorType(.float, shape: [64, 3, 7, 7])],
                                attributes: ["strides": .ints([2, 2]), "pads": .ints([3, 3, 3, 3])])
        #expect(types.first == TensorType(.float, [.symbolic("N"), .fixed(64), .fixed(112), .fixed(112)]))
        let unknownWidth = try T.types("Conv", [TensorType(.float, [.fixed(1), .fixed(3), .fixed(10), .symbolic("W")]),
                                                TensorType(.float, shape: [8, 3, 3, 3])])
        #expect(unknownWidth.first == TensorType(.float, [.fixed(1), .fixed(8), .fixed(8), .unknown]))
    }

    @Test func badInputsThrow() throws {
        let x = T.random([1, 4, 5, 5], seed: 11), w = T.random([2, 3, 3, 3], seed: 12)
        #expect(throws: (any Error).self) { try T.runNode("Conv", [x, w]) }
        #expect(throws: (any Error).self) { try T.runNode("Conv", [x, T.random([2, 4, 3, 3], seed: 1)], attributes: ["auto_pad": .string("SAME")]) }
        #expect(throws: (any Error).self) { try T.runNode("Conv", [x, T.random([2, 4, 7, 7], seed: 1)]) }
        #expect(throws: (any Error).self) { try T.runNode("Conv", [x, T.random([2, 4, 3, 3], seed: 1), T.random([3], seed: 1)]) }
        #expect(throws: (any Error).self) { try T.runNode("Conv", [x, T.random([2, 4, 3, 3], seed: 1)], attributes: ["strides": .ints([0, 1])]) }
        #expect(throws: (any Error).self) { try T.runNode("Conv", [x, Tensor([Float](), shape: [2, 4, 0, 3])]) }
        #expect(throws: (any Error).self) { try T.runNode("Conv", [T.random([1, 1, 2, 2, 2, 2], seed: 1), T.random([1, 1, 1, 1, 1, 1], seed: 1)]) }
    }

    // ConvTranspose: the ONNX documentation example and ONNX Runtime's SAME_UPPER / output_shape results.
    @Test func convTransposeExamples() throws {
        let x = T.iota([1, 1, 3, 3]), w = Tensor([Float](repeating: 1, count: 18), shape: [1, 2, 3, 3])
        let y = try T.runNode("ConvTranspose", [x, w])[0]
        let plane: [Float] = [0, 1, 3, 3, 2, 3, 8, 15, 12, 7, 9, 21, 36, 27, 15, 9, 20, 33, 24, 13, 6, 13, 21, 15, 8]
        #expect(y.shape == [1, 2, 5, 5])
        #expect(y.scalars(as: Float.self) == plane + plane)
        let same = try T.runNode("ConvTranspose", [x, w], attributes: ["auto_pad": .string("SAME_UPPER"), "strides": .ints([2, 2])])[0]
        #expect(same.shape == [1, 2, 6, 6])
        #expect(Array(same.scalars(as: Float.self).prefix(12)) == [0, 0, 1, 1, 3, 2, 0, 0, 1, 1, 3, 2])
        let line = T.iota([1, 1, 3], start: 1), ones = Tensor([Float](repeating: 1, count: 3), shape: [1, 1, 3])
        let shaped = try T.runNode("ConvTranspose", [line, ones], attributes: ["strides": .ints([2]), "output_shape": .ints([6])])[0]
        #expect(shaped.scalars(as: Float.self) == [1, 3, 2, 5, 3, 3])
        let padded = try T.runNode("ConvTranspose", [line, ones, Tensor([Float(10)], shape: [1])],
                                   attributes: ["strides": .ints([2]), "output_padding": .ints([1]), "pads": .ints([1, 0])])[0]
        #expect(padded.scalars(as: Float.self) == [11, 13, 12, 15, 13, 13, 10])
        #expect(throws: (any Error).self) {
            try T.runNode("ConvTranspose", [line, ones], attributes: ["strides": .ints([2]), "output_shape": .ints([9])])
        }
    }
}
