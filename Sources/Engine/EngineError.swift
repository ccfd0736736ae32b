/// Everything that can go wrong in the engine, each a one-line message naming the problem.
public enum EngineError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The graph is malformed: dangling input, cycle, duplicate output, bad attribute, type mismatch.
    case invalidGraph(String)
    /// An operator (type, domain, effective opset version) that we cannot run, in the named node.
    case unsupportedOperator(opType: String, domain: String, version: Int, node: String)
    /// The model imports an operator set we do not know.
    case unsupportedOpset(String)
    /// Feeds that do not fit the model: missing, unknown, wrong type or shape; or values and shapes
    /// an operator cannot work with at run time (a token id past the vocabulary, a sequence longer
    /// than the model's positions), named with the node: the caller's mistake.
    case invalidInput(String)
    /// The run would need more working memory than the session's budget
    /// (`InferenceSession.Options.workingMemoryBudget`), by the estimate made before it starts or,
    /// failing that, by what it had allocated when it was stopped.
    case resourceExhausted(String)
    /// A node failed at run time for a reason that is not the feeds' fault (a model the checks at
    /// load let through, an engine limitation).
    case runtime(node: String, message: String)

    public var description: String {
        switch self {
        case .invalidGraph(let message): "invalid model: \(message)"
        case .unsupportedOperator(let opType, let domain, let version, let node):
            "unsupported operator \(domain.isEmpty ? "" : domain + ".")\(opType) (opset \(version)) in node \(node)"
        case .unsupportedOpset(let message): "unsupported opset: \(message)"
        case .invalidInput(let message): "invalid input: \(message)"
        case .resourceExhausted(let message): "too large: \(message)"
        case .runtime(let node, let message): "\(node): \(message)"
        }
    }
}

extension EngineError {
    /// What a run reports when the operator of `node` fails with `error`, by who is to blame.
    init(_ error: OpError, running node: String) {
        switch error.kind {
        case .failure: self = .runtime(node: node, message: error.message)
        case .invalidArgument: self = .invalidInput("\(node): \(error.message)")
        case .resourceExhausted: self = .resourceExhausted("\(node): \(error.message)")
        }
    }
}

/// An error an operator raises while building or running; the engine adds the node's name.
public struct OpError: Error, Sendable, CustomStringConvertible {
    /// Who is to blame, which decides the `EngineError` a failed run reports.
    public enum Kind: Sendable, Equatable {
        /// Nothing says the inputs are: a model the load-time checks let through, a type the
        /// operator does not run, a missing input. A run reports `EngineError.runtime`.
        case failure
        /// The operator cannot work with the values or shapes it was given: an index out of range,
        /// shapes that do not broadcast or fit, a size too large. At run time those come from the
        /// feeds, so a run reports `EngineError.invalidInput`.
        case invalidArgument
        /// The run's working-memory budget would be exceeded. A run reports `EngineError.resourceExhausted`.
        case resourceExhausted
    }

    /// What went wrong.
    public var message: String
    /// Who is to blame.
    public var kind: Kind

    public init(_ message: String, kind: Kind = .failure) {
        self.message = message
        self.kind = kind
    }

    /// An error caused by the values or shapes the operator was given (see `Kind.invalidArgument`).
    public static func invalidArgument(_ message: String) -> OpError { OpError(message, kind: .invalidArgument) }

    public var description: String { message }
}
