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
              constants: [Tensor?]) throws -> CompiledOperator {
    let node = Node(name: "node", opType: opType, inputs: (0..<inputCount).map { "x\($0)" },
                    outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes)
    return try OperatorRegistry.compile(node, opsets: ["": opset], constants: constants)
}

/// How a call to an operator failed.
enum OperatorFailure: CustomStringConvertible {
    /// The node could not be built (`EngineError.invalidGraph`, with its message).
    case invalidNode(String)
    /// The shape rule or the run threw this `OpError`.
    case error(OpError)
    /// Anything else (a bug in the operator or the test).
    case unexpected(any Error)

    /// True for an `OpError.invalidArgument` (bad values, shapes, or element types a contract
    /// refuses at run time: the caller's fault) whose message contains `fragment`.
    func isInvalidArgument(_ fragment: String) -> Bool {
        guard case .error(let error) = self else { return false }
        return error.kind == .invalidArgument && error.message.contains(fragment)
    }

    /// True for an `OpError` of kind `.failure` (not blamed on the values: at load, an element type
    /// the operator's contract refuses; at run time, one an operator without a contract does not
    /// take) whose message contains `fragment`.
    func isFailure(_ fragment: String) -> Bool {
        guard case .error(let error) = self else { return false }
        return error.kind == .failure && error.message.contains(fragment)
    }

    /// True when building the node failed with a message containing `fragment`.
    func isInvalidNode(_ fragment: String) -> Bool {
        guard case .invalidNode(let message) = self else { return false }
        return message.contains(fragment)
    }

    var description: String {
        switch self {
        case .invalidNode(let message): "invalid node: \(message)"
        case .error(let error): "\(error.kind): \(error.message)"
        case .unexpected(let error): "unexpected \(error)"
        }
    }
}

/// How `body` failed, or nil when it did not throw.
func failure(_ body: () throws -> Any) -> OperatorFailure? {
    do {
        _ = try body()
        return nil
    } catch let error as OpError {
        return .error(error)
    } catch EngineError.invalidGraph(let message) {
        return .invalidNode(message)
    } catch {
        return .unexpected(error)
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
