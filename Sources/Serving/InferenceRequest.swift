public import Tensors

/// One request for a model: its inputs, what it wants back, and until when it may wait.
public struct InferenceRequest: Sendable {
    /// Input tensors by name (already converted from the wire format).
    public var inputs: [String: Tensor]
    /// Map inputs by name (a model's map input, e.g. a DictVectorizer pipeline's), one map each.
    public var maps: [String: TensorMap] = [:]
    /// Outputs wanted (nil: all).
    public var outputs: [String]?
    /// Latest time the request may start running; nil uses the model's default deadline.
    public var deadline: ContinuousClock.Instant?

    public init(inputs: [String: Tensor], maps: [String: TensorMap] = [:], outputs: [String]? = nil,
                deadline: ContinuousClock.Instant? = nil) {
        self.inputs = inputs
        self.maps = maps
        self.outputs = outputs
        self.deadline = deadline
    }
}

/// The answer to one request.
public struct InferenceResponse: Sendable {
    /// Output tensors by name.
    public var outputs: [String: Tensor]
    /// Outputs that are sequences or optionals, by name (the wire formats spell them out; see
    /// the README). Empty for a model whose outputs are all tensors.
    public var otherOutputs: [String: Value] = [:]
    /// Output names in the model's order (those returned, from both dictionaries).
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

    /// An answer made of `values`: tensors go to `outputs`, sequences and optionals to `otherOutputs`.
    public init(values: [String: Value], outputOrder: [String], queueDuration: Duration, engineDuration: Duration, batchRows: Int) {
        var tensors: [String: Tensor] = [:]
        var others: [String: Value] = [:]
        for (name, value) in values {
            if case .tensor(let tensor) = value { tensors[name] = tensor } else { others[name] = value }
        }
        self.init(outputs: tensors, outputOrder: outputOrder, queueDuration: queueDuration, engineDuration: engineDuration,
                  batchRows: batchRows)
        otherOutputs = others
    }
}

/// Receives the outcome of a request, once, on some thread.
public typealias InferenceCompletion = @Sendable (Result<InferenceResponse, ServingError>) -> Void
