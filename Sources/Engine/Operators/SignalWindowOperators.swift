import Foundation
import Kernels
import Tensors

/// Window functions of signal processing (opset 17): a generalized cosine window of `size` points.
enum SignalWindowOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("HannWindow", versions: [17], contract: contract) { try CosineWindow([0.5, 0.5], $0) },
        OperatorDefinition("HammingWindow", versions: [17], contract: contract) { try CosineWindow([25.0 / 46.0, 1 - 25.0 / 46.0], $0) },
        OperatorDefinition("BlackmanWindow", versions: [17], contract: contract) { try CosineWindow([0.42, 0.5, 0.08], $0) },
    ]

    /// An int32 or int64 size to an output of the numeric T2 `output_datatype` names.
    static let contract = OperatorContract(inputs: [.init("size", "T1")], outputs: [.init("output", "T2")],
                                           types: ["T1": [.int32, .int64], "T2": ElementTypes.numeric])
}

/// w[n] = Σ_k (-1)^k a_k cos(2πkn / D), D = size when `periodic` (the default), size - 1 otherwise.
struct CosineWindow: Operator {
    let coefficients: [Double]
    let periodic: Bool
    let outputType: DataType

    init(_ coefficients: [Double], _ context: OperatorContext) throws {
        self.coefficients = coefficients
        periodic = try context.int("periodic", default: 1) != 0
        let code = try context.int("output_datatype", default: Int(DataType.float.rawValue))
        guard let type = Int32(exactly: code).flatMap(DataType.init(rawValue:)), type.isNumeric else {
            throw OpError("output_datatype \(code) is not a numeric type onnx-serve supports")
        }
        outputType = type
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] { [TensorType(outputType, [.unknown])] }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let size = try Layout.scalar(Layout.input(inputs, 0, "size"), "size")
        guard size >= 0 && size <= ExecutionContext.maximumElementCount else { throw OpError.invalidArgument("size \(size) is out of range") }
        let denominator = Double(periodic ? size : size - 1)
        // Through the run's allocator: `size` comes from the request.
        let window = try context.allocate(.double, [size])
        let values = window.mutablePointer(as: Double.self)
        for n in 0..<size {
            var sum = 0.0
            for (k, a) in coefficients.enumerated() {
                let sign: Double = k % 2 == 0 ? 1 : -1
                let angle = 2 * Double.pi * Double(k) * Double(n) / denominator
                sum += sign * a * Foundation.cos(angle)
            }
            values[n] = sum
        }
        return [try convert(window, to: outputType, context)]
    }
}
