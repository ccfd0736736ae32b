import Tensors

extension InferenceSession {
    /// True when every input and output is a tensor (the serving front ends take only such feeds).
    public var hasOnlyTensorInputs: Bool { inputs.allSatisfy { $0.kind == .tensor } }

    /// Checks the feeds of inputs declared as sequences, maps or optionals: present, of the declared
    /// kind, and (for sequences) every tensor of the declared element type and within the
    /// engine's size limit, (for maps) keys and values of the declared types. A tensor input fed something else than a tensor is refused here too;
    /// `validate` checks the tensors.
    func validateKinds(_ feeds: [String: Value]) throws(EngineError) {
        for input in inputs {
            guard let value = feeds[input.name] else {
                if input.kind != .tensor { throw .invalidInput("missing input '\(input.name)'") }
                continue
            }
            guard let kind = input.kind else { continue }
            try Self.check(value, against: kind, elementType: input.type?.dataType, what: "input '\(input.name)'")
        }
    }

    /// Checks that `value` is of `kind`, with tensors of `elementType` (when known).
    private static func check(_ value: Value, against kind: ValueKind, elementType: DataType?, what: String) throws(EngineError) {
        switch (kind, value) {
        case (.tensor, .tensor(let tensor)):
            if let elementType, tensor.dataType != elementType {
                throw .invalidInput("\(what) has element type \(tensor.dataType); the model expects \(elementType)")
            }
        case (.sequence, .sequence(let sequence)):
            if let elementType, sequence.elementType != elementType {
                throw .invalidInput("\(what) is a sequence of \(sequence.elementType); the model expects \(elementType)")
            }
            for (index, tensor) in sequence.tensors.enumerated() {
                guard tensor.dataType == sequence.elementType else {
                    throw .invalidInput("\(what): tensor \(index) of the sequence is \(tensor.dataType), not \(sequence.elementType)")
                }
                guard tensor.shape.boundedElementCount(limit: ExecutionContext.maximumElementCount) != nil else {
                    throw .invalidInput("\(what): tensor \(index) of the sequence has shape \(tensor.shape), beyond the engine's limit")
                }
            }
        case (.map(let key), .map(let map)):
            guard map.keys.dataType == key else {
                throw .invalidInput("\(what) is a map with \(map.keys.dataType) keys; the model expects \(key) keys")
            }
            if let elementType, map.values.dataType != elementType {
                throw .invalidInput("\(what) is a map of \(map.values.dataType) values; the model expects \(elementType)")
            }
        case (.optional(let element), .optional(let inner, _)):
            guard let inner else { return }
            try check(inner, against: element, elementType: elementType, what: what)
        default:
            throw .invalidInput("\(what) is a \(value.kind); the model expects a \(kind)")
        }
    }
}
