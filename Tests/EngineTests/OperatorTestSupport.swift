import Engine
import Kernels
import Tensors
import Testing

/// Builds the operator for a one-node graph (inputs named x0, x1, ...) and runs it.
func runNode(_ opType: String, _ inputs: [Tensor?], attributes: [String: AttributeValue] = [:], opset: Int = 21,
             outputs: Int = 1, threads: Int = 1) throws -> [Tensor] {
    let op = try makeNode(opType, inputCount: inputs.count, attributes: attributes, opset: opset, outputs: outputs,
                          constants: inputs.map { _ in nil })
    return try op.run(inputs, ExecutionContext(pool: BufferPool(), parallelism: Parallelism(threads: threads)))
}

/// The operator's load-time output types for these input types.
func inferTypes(_ opType: String, _ types: [TensorType?], attributes: [String: AttributeValue] = [:], opset: Int = 21,
                constants: [Tensor?]? = nil) throws -> [TensorType?] {
    let op = try makeNode(opType, inputCount: types.count, attributes: attributes, opset: opset, outputs: 1,
                          constants: constants ?? types.map { _ in nil })
    return try op.outputTypes(types)
}

func makeNode(_ opType: String, inputCount: Int, attributes: [String: AttributeValue], opset: Int, outputs: Int,
              constants: [Tensor?]) throws -> any Operator {
    let node = Node(name: "node", opType: opType, inputs: (0..<inputCount).map { "x\($0)" },
                    outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes)
    return try OperatorRegistry.make(node, opsets: ["": opset], constants: constants)
}

/// The message of the error `body` throws, or nil when it does not throw.
func errorMessage(_ body: () throws -> Any) -> String? {
    do {
        _ = try body()
        return nil
    } catch {
        return "\(error)"
    }
}

/// True when every pair is within rtol 1e-4 / atol 1e-5 (or both are NaN).
func isClose(_ a: [Float], _ b: [Float], relative: Float = 1e-4, absolute: Float = 1e-5) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { x, y in
        x == y || (x.isNaN && y.isNaN) || abs(x - y) <= absolute + relative * abs(y)
    }
}

extension Tensor {
    /// The float elements (for float tensors).
    var floats: [Float] { scalars(as: Float.self) }
}
