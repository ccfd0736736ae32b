import Engine
import Kernels
import Tensors

/// Builds one operator from a node description and runs it, as the engine would.
enum TensorOpsHarness {
    /// Inputs for a node: a tensor, or `nil` for an omitted optional input.
    typealias Inputs = [Tensor?]

    static func node(_ opType: String, inputs: Int, outputs: Int, _ attributes: [String: AttributeValue]) -> Node {
        Node(name: "test", opType: opType, inputs: (0..<inputs).map { "in\($0)" }, outputs: (0..<outputs).map { "out\($0)" },
             attributes: attributes)
    }

    /// Builds the operator (`constant` inputs are also given to it at build time) and runs it.
    static func run(_ opType: String, opset: Int = 21, _ inputs: Inputs, _ attributes: [String: AttributeValue] = [:],
                    outputs: Int = 1, constant: Set<Int> = [], threads: Int = 2) throws -> [Tensor] {
        var node = node(opType, inputs: inputs.count, outputs: outputs, attributes)
        node.inputs = inputs.enumerated().map { $0.element == nil ? "" : "in\($0.offset)" }
        let op = try OperatorRegistry.compile(node, opsets: ["": opset],
                                           constants: inputs.enumerated().map { constant.contains($0.offset) ? $0.element : nil })
        return try op.run(inputs, ExecutionContext(pool: BufferPool(), parallelism: Parallelism(threads: threads)))
    }

    /// The single output of `run`.
    static func one(_ opType: String, opset: Int = 21, _ inputs: Inputs, _ attributes: [String: AttributeValue] = [:],
                    constant: Set<Int> = []) throws -> Tensor {
        try run(opType, opset: opset, inputs, attributes, constant: constant)[0]
    }

    /// Output types the operator infers at load.
    static func types(_ opType: String, opset: Int = 21, _ inputs: [TensorType?], _ attributes: [String: AttributeValue] = [:],
                      outputs: Int = 1, constants: [Int: Tensor] = [:]) throws -> [TensorType?] {
        let node = node(opType, inputs: inputs.count, outputs: outputs, attributes)
        let op = try OperatorRegistry.compile(node, opsets: ["": opset], constants: inputs.indices.map { constants[$0] })
        return try op.outputTypes(inputs)
    }

    /// How `body` failed (nil when it did not throw).
    static func error(_ body: () throws -> Any) -> OperatorFailure? { failure(body) }
}

extension TensorOpsHarness {
    /// An int64 1-D tensor.
    static func int64s(_ values: [Int]) -> Tensor { Tensor(values.map(Int64.init), shape: [values.count]) }

    /// A float tensor holding 0, 1, 2, ... in `shape`.
    static func iota(_ shape: Shape) -> Tensor { Tensor((0..<shape.elementCount).map(Float.init), shape: shape) }

    /// True when two float lists agree within ONNX Runtime's test tolerances.
    static func close(_ a: [Float], _ b: [Float], rtol: Float = 1e-3, atol: Float = 1e-5) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= atol + rtol * abs($1) }
    }
}
