import Engine
import Foundation
import Kernels
import Tensors
import Testing

/// Builds and runs one `ai.onnx.preview.training` node (inputs x0, x1, ...).
private func runTraining(_ opType: String, _ inputs: [Tensor], _ attributes: [String: AttributeValue], outputs: Int) throws -> [Tensor] {
    let node = Node(name: "node", opType: opType, domain: "ai.onnx.preview.training", inputs: inputs.indices.map { "x\($0)" },
                    outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes)
    let op = try OperatorRegistry.compile(node, opsets: ["": 21, "ai.onnx.preview.training": 1], constants: inputs.map { _ in nil })
    return try op.run(inputs, ExecutionContext(pool: BufferPool(), parallelism: Parallelism(threads: 1)))
}

private func floats(_ values: [Float]) -> Tensor { Tensor(values, shape: [values.count]) }
private let rate = Tensor([Float(0.1)], shape: [])
private func count(_ t: Int) -> Tensor { Tensor([Int64(t)], shape: []) }

private func close(_ tensor: Tensor, _ expected: [Double]) -> Bool {
    let actual = tensor.scalars(as: Float.self)
    return actual.count == expected.count && zip(actual, expected).allSatisfy { abs(Double($0) - $1) <= 1e-6 + 1e-5 * abs($1) }
}

/// The optimisers against their definitions, written out per element (ONNX's operator documentation).
@Suite struct TrainingOperatorTests {
    let x: [Double] = [1, -2.5], g: [Double] = [-0.5, 3], accumulator: [Double] = [0.25, 1.5]

    @Test func adagrad() throws {
        let (decay, epsilon, norm) = (0.1, 1e-5, 0.01), t = 3.0
        let outputs = try runTraining("Adagrad", [rate, count(3), floats([1, -2.5]), floats([-0.5, 3]), floats([0.25, 1.5])],
                                      ["decay_factor": .float(0.1), "epsilon": .float(1e-5), "norm_coefficient": .float(0.01)],
                                      outputs: 2)
        let r = 0.1 / (1 + t * decay)
        let gradient = x.indices.map { norm * x[$0] + g[$0] }
        let h = x.indices.map { accumulator[$0] + gradient[$0] * gradient[$0] }
        #expect(outputs.count == 2)
        #expect(close(outputs[0], x.indices.map { x[$0] - r * gradient[$0] / (h[$0].squareRoot() + epsilon) }))
        #expect(close(outputs[1], h))
    }

    @Test(arguments: [0, 2])
    func adam(t: Int) throws {
        let (alpha, beta, epsilon, norm, post) = (0.9, 0.999, 1e-6, 0.001, 0.1)
        let v0: [Double] = [0.2, -0.1]
        let outputs = try runTraining("Adam", [rate, count(t), floats([1, -2.5]), floats([-0.5, 3]), floats([0.2, -0.1]), floats([0.25, 1.5])],
                                      ["alpha": .float(0.9), "beta": .float(0.999), "norm_coefficient": .float(0.001),
                                       "norm_coefficient_post": .float(0.1)], outputs: 3)
        let gradient = x.indices.map { norm * x[$0] + g[$0] }
        let v = x.indices.map { alpha * v0[$0] + (1 - alpha) * gradient[$0] }
        let h = x.indices.map { beta * accumulator[$0] + (1 - beta) * gradient[$0] * gradient[$0] }
        let tt = Double(t)
        let r = t > 0 ? 0.1 * (1 - Foundation.pow(beta, tt)).squareRoot() / (1 - Foundation.pow(alpha, tt)) : 0.1
        #expect(outputs.count == 3)
        #expect(close(outputs[0], x.indices.map { (1 - post) * (x[$0] - r * v[$0] / (h[$0].squareRoot() + epsilon)) }))
        #expect(close(outputs[1], v))
        #expect(close(outputs[2], h))
    }

    @Test(arguments: [("standard", 0), ("standard", 4), ("nesterov", 0), ("nesterov", 4)])
    func momentum(mode: String, t: Int) throws {
        let (alpha, beta, norm) = (0.9, 0.5, 0.01)
        let outputs = try runTraining("Momentum", [rate, count(t), floats([1, -2.5]), floats([-0.5, 3]), floats([0.25, 1.5])],
                                      ["alpha": .float(0.9), "beta": .float(0.5), "norm_coefficient": .float(0.01), "mode": .string(mode)],
                                      outputs: 2)
        let gradient = x.indices.map { norm * x[$0] + g[$0] }
        let v = x.indices.map { alpha * accumulator[$0] + (t > 0 ? beta : 1) * gradient[$0] }
        let expected = mode == "standard"
            ? x.indices.map { x[$0] - 0.1 * v[$0] }
            : x.indices.map { x[$0] - 0.1 * (gradient[$0] + alpha * v[$0]) }
        #expect(outputs.count == 2)
        #expect(close(outputs[0], expected))
        #expect(close(outputs[1], v))
    }

    @Test func severalTensorsComeOutGroupedByKind() throws {
        // Adam over two tensors: inputs X1 X2 G1 G2 V1 V2 H1 H2, outputs X1' X2' V1' V2' H1' H2'.
        let one = floats([1]), two = floats([2, 3])
        let outputs = try runTraining("Adam", [rate, count(1), one, two, floats([0.5]), floats([0.5, 0.5]), floats([0]), floats([0, 0]),
                                               floats([0]), floats([0, 0])], [:], outputs: 6)
        #expect(outputs.map(\.shape) == [[1], [2], [1], [2], [1], [2]])
        // v' = 0.1 · g for both tensors.
        #expect(close(outputs[2], [0.05]) && close(outputs[3], [0.05, 0.05]))
        let double = try runTraining("Momentum", [rate, count(0), Tensor([1.0, 2.0], shape: [2]), Tensor([0.5, 0.5], shape: [2]),
                                                  Tensor([0.0, 0.0], shape: [2])],
                                     ["alpha": .float(0.9), "beta": .float(0.5), "norm_coefficient": .float(0), "mode": .string("standard")],
                                     outputs: 2)
        // x' = x − r·g with r the float 0.1.
        let r = Double(Float(0.1))
        #expect(double[0].dataType == .double && double[0].scalars(as: Double.self) == [1 - r * 0.5, 2 - r * 0.5])
    }

    @Test func badNodesAreRefused() {
        let momentum: [String: AttributeValue] = ["alpha": .float(0.9), "beta": .float(0.5), "norm_coefficient": .float(0), "mode": .string("standard")]
        let inputs = [rate, count(1), floats([1]), floats([1]), floats([1])]
        // Inputs that do not split into X, G, V groups; outputs that do not match them.
        #expect(throws: EngineError.self) { try runTraining("Momentum", Array(inputs.prefix(4)), momentum, outputs: 2) }
        #expect(throws: EngineError.self) { try runTraining("Momentum", inputs, momentum, outputs: 3) }
        // An unknown mode, a missing required attribute.
        var sideways = momentum
        sideways["mode"] = .string("sideways")
        #expect(throws: EngineError.self) { try runTraining("Momentum", inputs, sideways, outputs: 2) }
        #expect(throws: EngineError.self) { try runTraining("Momentum", inputs, momentum.filter { $0.key != "alpha" }, outputs: 2) }
        // A gradient of another shape, a rate that is not a scalar, an int32 count.
        #expect(throws: OpError.self) { try runTraining("Momentum", [rate, count(1), floats([1]), floats([1, 2]), floats([1])], momentum, outputs: 2) }
        #expect(throws: OpError.self) { try runTraining("Momentum", [floats([1, 2]), count(1), floats([1]), floats([1]), floats([1])], momentum, outputs: 2) }
        #expect(throws: OpError.self) {
            try runTraining("Momentum", [rate, Tensor([Int32(1)], shape: []), floats([1]), floats([1]), floats([1])], momentum, outputs: 2)
        }
    }
}
