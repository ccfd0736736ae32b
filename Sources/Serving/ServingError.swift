/// What can go wrong serving a request or a model, classified the way clients see it
/// (the API module maps each kind to an HTTP status, in one place).
public struct ServingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The class of failure (mirrors the gRPC/absl status codes TF Serving and Triton use).
    public enum Kind: String, Sendable {
        case invalidArgument = "INVALID_ARGUMENT"
        case notFound = "NOT_FOUND"
        case unavailable = "UNAVAILABLE"
        case resourceExhausted = "RESOURCE_EXHAUSTED"
        case deadlineExceeded = "DEADLINE_EXCEEDED"
        case cancelled = "CANCELLED"
        case failedPrecondition = "FAILED_PRECONDITION"
        case permissionDenied = "PERMISSION_DENIED"
        /// The request is larger than the server will process (a run's working memory).
        case tooLarge = "TOO_LARGE"
        case unimplemented = "UNIMPLEMENTED"
        case `internal` = "INTERNAL"
    }

    /// The class.
    public var kind: Kind
    /// One line for the client.
    public var message: String
    /// Seconds after which a retry may succeed (for queue-full rejections).
    public var retryAfterSeconds: Int?

    public init(_ kind: Kind, _ message: String, retryAfterSeconds: Int? = nil) {
        self.kind = kind
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var description: String { message }

    public static func invalidArgument(_ message: String) -> ServingError { ServingError(.invalidArgument, message) }
    public static func notFound(_ message: String) -> ServingError { ServingError(.notFound, message) }
    public static func unavailable(_ message: String) -> ServingError { ServingError(.unavailable, message) }
    public static func `internal`(_ message: String) -> ServingError { ServingError(.internal, message) }
    public static func failedPrecondition(_ message: String) -> ServingError { ServingError(.failedPrecondition, message) }
    public static func permissionDenied(_ message: String) -> ServingError { ServingError(.permissionDenied, message) }
}
