import Kernels
public import Tensors
internal import Synchronization

/// A loaded model ready to run, like ONNX Runtime's `InferenceSession`.
///
/// Building a session checks the graph, optimises it, compiles every node and infers types.
/// `run` may be called from many threads at once.
public final class InferenceSession: Sendable {
    /// Settings for building and running a session.
    public struct Options: Sendable {
        /// Threads one run may use (our loops and the matrix multiplies they contain).
        public var intraOpThreads: Int
        /// Run the optimisation passes (constant folding, fusions) at load.
        public var optimizations: Bool
        /// Free bytes the session keeps for reuse between runs.
        public var bufferRetainLimit: Int
        /// Flush denormal floats to zero while running (like ONNX Runtime's
        /// `session.set_denormal_as_zero`): much faster on models whose weights or activations
        /// underflow, at the cost of values below ~1e-38 becoming 0.
        public var flushDenormals: Bool

        public init(intraOpThreads: Int? = nil, optimizations: Bool = true, bufferRetainLimit: Int = 1 << 30,
                    flushDenormals: Bool = false) {
            self.intraOpThreads = max(1, intraOpThreads ?? Parallelism.availableCores)
            self.optimizations = optimizations
            self.bufferRetainLimit = bufferRetainLimit
            self.flushDenormals = flushDenormals
        }
    }

    /// The model as loaded (before optimisation).
    public let model: Model
    /// Settings in use.
    public let options: Options
    /// Time spent in the optimisation passes and in compiling the plan (operators, weight
    /// transforms, type inference) when the session was built.
    public let buildTimes: (optimize: Duration, compile: Duration)
    /// Inputs the caller must feed, with declared types (symbolic dimensions kept).
    public let inputs: [ValueInfo]
    /// Outputs, with declared or inferred types.
    public let outputs: [ValueInfo]

    let plan: ExecutionPlan
    let pool: BufferPool

    /// The pool run buffers come from; callers may allocate batch inputs from it too.
    public var bufferPool: BufferPool { pool }
    private let schedules = Mutex<[[String]: ExecutionPlan.Schedule]>([:])

    /// Builds a session for `model`.
    public init(model: Model, options: Options = Options()) throws(EngineError) {
        try Self.checkOpsets(model.opsets)
        var graph = model.graph
        _ = try GraphOrder.sorted(graph)
        let start = ContinuousClock.now
        if options.optimizations {
            graph = try GraphOptimizer.optimize(graph, opsets: model.opsets)
        }
        let optimized = ContinuousClock.now
        let plan = try PlanBuilder.build(graph, opsets: model.opsets)
        buildTimes = (optimized - start, ContinuousClock.now - optimized)
        self.plan = plan
        self.model = model
        self.options = options
        self.pool = BufferPool(retainLimit: options.bufferRetainLimit)
        inputs = model.graph.inputs
        outputs = model.graph.outputs.map { output in
            let inferred = plan.outputSlots[output.name].flatMap { plan.slotTypes[$0] }
            return ValueInfo(name: output.name, type: inferred.map { PlanBuilder.refine(declared: output.type, inferred: $0) } ?? output.type)
        }
    }

    private static func checkOpsets(_ opsets: [String: Int]) throws(EngineError) {
        for (domain, version) in opsets.sorted(by: { $0.key < $1.key }) {
            guard OperatorRegistry.knownDomains.contains(domain) else {
                throw .unsupportedOpset("unknown operator domain '\(domain)' (version \(version))")
            }
            if domain.isEmpty || domain == "ai.onnx", version > OperatorRegistry.latestOpset {
                throw .unsupportedOpset("the model needs ONNX opset \(version); the newest this build knows is \(OperatorRegistry.latestOpset)")
            }
        }
    }

    /// Types inferred at load for every named value (unknown ones left out).
    public var inferredTypes: [String: TensorType] {
        var types: [String: TensorType] = [:]
        for (slot, name) in plan.slotNames.enumerated() {
            if let type = plan.slotTypes[slot] { types[name] = type }
        }
        return types
    }

    /// Runs the model. `outputs` names the outputs wanted (all when nil); the result maps each to
    /// its tensor. Throws `EngineError.invalidInput` for feeds that do not fit the model.
    /// With a `profiler`, the time of every node is added to it.
    public func run(_ feeds: [String: Tensor], outputs wanted: [String]? = nil,
                    profiler: NodeProfiler? = nil) throws(EngineError) -> [String: Tensor] {
        try validate(feeds)
        let names = wanted ?? plan.outputOrder
        for name in names where plan.outputSlots[name] == nil {
            throw .invalidInput("unknown output '\(name)'; the model's outputs are: \(plan.outputOrder.joined(separator: ", "))")
        }
        let schedule = self.schedule(for: names)
        var values = [Tensor?](repeating: nil, count: plan.slotCount)
        for (slot, tensor) in plan.constants { values[slot] = tensor }
        for (name, tensor) in feeds { values[plan.inputSlots[name]!] = tensor }
        let parallelism = Parallelism(threads: options.intraOpThreads, flushesDenormals: options.flushDenormals)
        try parallelism.withFloatingPointMode { () throws(EngineError) in
            try plan.execute(schedule, values: &values, context: ExecutionContext(pool: pool, parallelism: parallelism),
                             profiler: profiler)
        }
        var results: [String: Tensor] = [:]
        for name in names {
            guard let tensor = values[plan.outputSlots[name]!] else {
                throw .runtime(node: "graph", message: "output '\(name)' was not produced")
            }
            results[name] = tensor
        }
        return results
    }

    private func schedule(for names: [String]) -> ExecutionPlan.Schedule {
        if names == plan.outputOrder { return plan.fullSchedule }
        let key = names.sorted()
        if let cached = schedules.withLock({ $0[key] }) { return cached }
        let schedule = ExecutionPlan.schedule(steps: plan.steps, slotCount: plan.slotCount,
                                              keep: Set(key.compactMap { plan.outputSlots[$0] }),
                                              constants: Set(plan.constants.map(\.slot)))
        schedules.withLock { cache in
            if cache.count < 64 { cache[key] = schedule }
        }
        return schedule
    }

    /// Checks feeds against the declared inputs: names, element types, ranks, fixed dimensions,
    /// sizes within the engine's limits, and that a symbolic dimension has one value across all
    /// inputs.
    public func validate(_ feeds: [String: Tensor]) throws(EngineError) {
        let expected = inputs.map(\.name)
        for name in feeds.keys.sorted() where plan.inputSlots[name] == nil {
            throw .invalidInput("unknown input '\(name)'; the model's inputs are: \(expected.joined(separator: ", "))")
        }
        var symbols: [String: (Int, String)] = [:]
        for input in inputs {
            guard let tensor = feeds[input.name] else {
                throw .invalidInput("missing input '\(input.name)'")
            }
            // Every size product an operator computes from this shape then fits an Int.
            guard tensor.shape.boundedElementCount(limit: ExecutionContext.maximumElementCount) != nil else {
                throw .invalidInput("input '\(input.name)' has shape \(tensor.shape), beyond the engine's limit of \(ExecutionContext.maximumElementCount) elements")
            }
            guard let type = input.type else { continue }
            if tensor.dataType != type.dataType {
                throw .invalidInput("input '\(input.name)' has element type \(tensor.dataType); the model expects \(type.dataType)")
            }
            guard let dims = type.dims else { continue }
            if tensor.shape.rank != dims.count {
                throw .invalidInput("input '\(input.name)' has shape \(tensor.shape); the model expects \(type)")
            }
            for (axis, dim) in dims.enumerated() {
                let size = tensor.shape[axis]
                switch dim {
                case .fixed(let value) where value != size:
                    throw .invalidInput("input '\(input.name)' has shape \(tensor.shape); dimension \(axis) must be \(value) (model expects \(type))")
                case .symbolic(let name):
                    if let (seen, where_) = symbols[name], seen != size {
                        throw .invalidInput("dimension '\(name)' is \(seen) in input '\(where_)' but \(size) in input '\(input.name)'")
                    }
                    symbols[name] = (size, input.name)
                default:
                    break
                }
            }
        }
    }

    /// Bytes the session holds for reuse between runs, and the most it ever had allocated.
    public var memoryStatistics: (retained: Int, peak: Int) { (pool.retainedBytes, pool.peakAllocatedBytes) }
}
