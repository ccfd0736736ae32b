public import Kernels
public import Tensors

/// An ONNX node compiled for execution: built once at load, then run by many threads at once.
///
/// Implementations hold only immutable state (parsed attributes, pre-transformed weights).
public protocol Operator: Sendable {
    /// Output types given the input types (nil = unknown), for load-time checks and `inspect`.
    /// Throw `OpError` for inputs this operator can never accept (a type mismatch, say).
    /// Return fewer entries than outputs (or none) for outputs whose type is unknown.
    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?]

    /// Computes the outputs. `inputs[i]` is nil for an omitted optional input. Returns the
    /// outputs in order; trailing optional outputs nobody asked for may be left out.
    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor]
}

extension Operator {
    public func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] { [] }
}

/// An operator that takes or makes sequences or optionals (the Sequence* and Optional* operators,
/// Identity, If, Loop): the executor calls `run(values:_:)`, and the plan checks value kinds at load
/// with `outputKinds`. Every other operator sees tensors only.
public protocol ValueOperator: Operator {
    /// The kinds of the outputs given the kinds of the inputs (nil where unknown). Throws `OpError`
    /// for kinds the operator never accepts (a tensor where a sequence is needed).
    func outputKinds(_ inputs: [ValueKind?]) throws -> [ValueKind?]

    /// Computes the outputs from the inputs (nil for an omitted optional input).
    func run(values inputs: [Value?], _ context: ExecutionContext) throws -> [Value]
}

extension ValueOperator {
    /// Tensors in, tensors out (constant folding calls this): refused when an output is not a tensor.
    public func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        try run(values: inputs.map { $0.map(Value.tensor) }, context).map { value in
            guard let tensor = value.tensor else { throw OpError("produces a \(value.kind), not a tensor") }
            return tensor
        }
    }
}

/// What an operator may use while it runs.
public struct ExecutionContext: Sendable {
    /// Where output buffers come from; they return to it when released.
    public let pool: BufferPool
    /// Threads this run may use.
    public let parallelism: Parallelism
    /// Counts the bytes `allocate` hands out against the run's working-memory budget (nil: no limit).
    public let meter: WorkingMemoryMeter?
    /// Bit i set: input i is handed over to this operator. Nothing else holds its buffer or reads
    /// it after this step (it was the value's last use, and not a graph input, output or constant),
    /// so the operator may overwrite the elements, for instance to produce its output in place.
    public var handedOverInputs: UInt64 = 0

    public init(pool: BufferPool, parallelism: Parallelism, meter: WorkingMemoryMeter? = nil) {
        self.pool = pool
        self.parallelism = parallelism
        self.meter = meter
    }

    /// True when input `index` is handed over to the operator (see `handedOverInputs`).
    public func isHandedOver(_ index: Int) -> Bool { index < 64 && handedOverInputs & (1 << UInt64(index)) != 0 }

    /// Most elements one tensor of a run may have, counting zero sizes as one (see
    /// `Shape.boundedElementCount`): 2^32, 16 GiB of floats. Beyond it a shape made from a request's
    /// values or sizes is refused as bad input instead of overflowing an index computation.
    public static let maximumElementCount = 1 << 32

    /// A new output (or scratch) tensor from the run's pool. Throws `OpError.invalidArgument` for a
    /// shape beyond `maximumElementCount`, and an error of kind `.resourceExhausted` when the
    /// buffer would take the run past its working-memory budget (see `meter`).
    public func allocate(_ dataType: DataType, _ shape: Shape) throws -> Tensor {
        guard let count = shape.boundedElementCount(limit: Self.maximumElementCount),
              let bytes = dataType.checkedByteCount(elements: count) else {
            throw OpError.invalidArgument("a \(dataType) tensor of shape \(shape) is too large")
        }
        guard let meter, dataType != .string else { return Tensor(uninitialized: dataType, shape: shape, pool: pool) }
        guard let buffer = pool.take(byteCount: bytes, meter: meter) else {
            throw OpError("a \(dataType)\(shape) tensor (\(bytes) bytes) on top of the \(meter.heldBytes) bytes the run holds"
                          + " exceeds its working-memory budget of \(meter.budget) bytes", kind: .resourceExhausted)
        }
        return Tensor(dataType: dataType, shape: shape, storage: .bytes(buffer))
    }
}

extension ExecutionContext {
    /// Runs `body` with `bytes` of memory that a C library allocates on its own (not from the
    /// pool) counted against the run's working-memory budget while it runs, so that a small
    /// request cannot make a decoder take far more than the budget. Throws an error of kind
    /// `.resourceExhausted` instead of running `body` when the budget has no room for them.
    public func withExternalMemory<Result>(_ bytes: Int, for what: String, _ body: () throws -> Result) throws -> Result {
        guard let meter else { return try body() }
        guard let result = try meter.withReservation(bytes, body) else {
            throw OpError("\(what) needs about \(bytes) bytes of its own on top of the \(meter.heldBytes) bytes the run holds,"
                          + " beyond its working-memory budget of \(meter.budget) bytes", kind: .resourceExhausted)
        }
        return result
    }
}

/// What an operator sees while it is built from a node: attributes, versions, constant inputs.
public struct OperatorContext: Sendable {
    /// The node being compiled.
    public let node: Node
    /// The operator's schema version in effect (the newest version not above the model's opset).
    public let version: Int
    /// Inputs known at load time (initializers and folded constants), by input position.
    public let constants: [Tensor?]

    /// Operator-set versions the model imports, by domain (for the nodes of subgraphs).
    public let opsets: [String: Int]

    public init(node: Node, version: Int, constants: [Tensor?], opsets: [String: Int] = [:]) {
        self.node = node
        self.version = version
        self.constants = constants
        self.opsets = opsets
    }

    /// Number of input slots (including omitted ones).
    public var inputCount: Int { node.inputs.count }

    /// Number of outputs the graph uses (trailing omitted ones not counted).
    public var outputCount: Int {
        var count = node.outputs.count
        while count > 0 && node.outputs[count - 1].isEmpty { count -= 1 }
        return count
    }

    /// True when input `index` exists and is not omitted.
    public func hasInput(_ index: Int) -> Bool { index < node.inputs.count && !node.inputs[index].isEmpty }

    /// True when output `index` exists and is used.
    public func hasOutput(_ index: Int) -> Bool { index < node.outputs.count && !node.outputs[index].isEmpty }

    /// The constant value of input `index`, if it is known at load time.
    public func constant(_ index: Int) -> Tensor? { index < constants.count ? constants[index] : nil }

    // MARK: Attributes

    /// The raw attribute.
    public func attribute(_ name: String) -> AttributeValue? { node.attributes[name] }

    /// True when the node sets the attribute.
    public func has(_ name: String) -> Bool { node.attributes[name] != nil }

    private func mismatch(_ name: String, _ expected: String) -> OpError {
        OpError("attribute '\(name)' must be \(expected)")
    }

    /// Integer attribute, or nil when absent.
    public func int(_ name: String) throws -> Int? {
        guard let value = node.attributes[name] else { return nil }
        guard case .int(let int) = value else { throw mismatch(name, "an int") }
        return int
    }

    /// Integer attribute with the spec's default.
    public func int(_ name: String, default defaultValue: Int) throws -> Int { try int(name) ?? defaultValue }

    /// Float attribute, or nil when absent (an int is accepted and converted).
    public func float(_ name: String) throws -> Float? {
        switch node.attributes[name] {
        case nil: return nil
        case .float(let value): return value
        case .int(let value): return Float(value)
        default: throw mismatch(name, "a float")
        }
    }

    /// Float attribute with the spec's default.
    public func float(_ name: String, default defaultValue: Float) throws -> Float { try float(name) ?? defaultValue }

    /// String attribute, or nil when absent.
    public func string(_ name: String) throws -> String? {
        guard let value = node.attributes[name] else { return nil }
        guard case .string(let string) = value else { throw mismatch(name, "a string") }
        return string
    }

    /// String attribute with the spec's default.
    public func string(_ name: String, default defaultValue: String) throws -> String { try string(name) ?? defaultValue }

    /// Integer-list attribute, or nil when absent.
    public func ints(_ name: String) throws -> [Int]? {
        switch node.attributes[name] {
        case nil: return nil
        case .ints(let values): return values
        case .int(let value): return [value]
        default: throw mismatch(name, "a list of ints")
        }
    }

    /// Float-list attribute, or nil when absent.
    public func floats(_ name: String) throws -> [Float]? {
        switch node.attributes[name] {
        case nil: return nil
        case .floats(let values): return values
        case .float(let value): return [value]
        case .ints(let values): return values.map(Float.init)
        default: throw mismatch(name, "a list of floats")
        }
    }

    /// String-list attribute, or nil when absent.
    public func strings(_ name: String) throws -> [String]? {
        switch node.attributes[name] {
        case nil: return nil
        case .strings(let values): return values
        case .string(let value): return [value]
        default: throw mismatch(name, "a list of strings")
        }
    }

    /// Tensor attribute, or nil when absent.
    public func tensor(_ name: String) throws -> Tensor? {
        guard let value = node.attributes[name] else { return nil }
        guard case .tensor(let tensor) = value else { throw mismatch(name, "a tensor") }
        return tensor
    }

    /// An attribute the spec requires.
    public func required<T>(_ name: String, _ get: (String) throws -> T?) throws -> T {
        guard let value = try get(name) else { throw OpError("missing required attribute '\(name)'") }
        return value
    }
}
