/// Everything that can go wrong in the engine, each a one-line message naming the problem.
public enum EngineError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The graph is malformed: dangling input, cycle, duplicate output, bad attribute, type mismatch.
    case invalidGraph(String)
    /// An operator (type, domain, effective opset version) that we cannot run, in the named node.
    case unsupportedOperator(opType: String, domain: String, version: Int, node: String)
    /// The model imports an operator set we do not know.
    case unsupportedOpset(String)
    /// Feeds that do not fit the model: missing, unknown, wrong type or shape.
    case invalidInput(String)
    /// A node failed at run time (shapes that do not broadcast, an index out of range, ...).
    case runtime(node: String, message: String)

    public var description: String {
        switch self {
        case .invalidGraph(let message): "invalid model: \(message)"
        case .unsupportedOperator(let opType, let domain, let version, let node):
            "unsupported operator \(domain.isEmpty ? "" : domain + ".")\(opType) (opset \(version)) in node \(node)"
        case .unsupportedOpset(let message): "unsupported opset: \(message)"
        case .invalidInput(let message): "invalid input: \(message)"
        case .runtime(let node, let message): "\(node): \(message)"
        }
    }
}

/// An error an operator raises while building or running; the engine adds the node's name.
public struct OpError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
