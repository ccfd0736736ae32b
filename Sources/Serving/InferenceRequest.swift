public import Tensors

/// One request for a model: its inputs, what it wants back, and until when it may wait.
public struct InferenceRequest: Sendable {
    /// Input tensors by name (already converted from the wire format).
    public var inputs: [String: Tensor]
    /// Outputs wanted (nil: all).
    public var outputs: [String]?
    /// Latest time the request may start running; nil uses the model's default deadline.
    public var deadline: ContinuousClock.Instant?

    public init(inputs: [String: Tensor], outputs: [String]? = nil, deadline: ContinuousClock.Instant? = nil) {
        self.inputs = inputs
        self.outputs = outputs
        self.deadline = deadline
    }
}

/// The answer to one request.
public struct InferenceResponse: Sendable {
    /// Output tensors by name.
    public var outputs: [String: Tensor]
    /// Output names in the model's order (those returned).
    public var outputOrder: [String]
    /// Time spent waiting for the engine.
    public var queueDuration: Duration
    /// Time the engine spent on the run (the whole batch) that produced this answer.
    public var engineDuration: Duration
    /// Rows in that batch (this request's and others').
    public var batchRows: Int

    public init(outputs: [String: Tensor], outputOrder: [String], queueDuration: Duration, engineDuration: Duration, batchRows: Int) {
        self.outputs = outputs
        self.outputOrder = outputOrder
        self.queueDuration = queueDuration
        self.engineDuration = engineDuration
        self.batchRows = batchRows
    }
}

/// Receives the outcome of a request, once, on some thread.
public typealias InferenceCompletion = @Sendable (Result<InferenceResponse, ServingError>) -> Void
