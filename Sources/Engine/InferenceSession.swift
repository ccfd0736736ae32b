import Kernels
public import Tensors
internal import Synchronization

/// A loaded model ready to run, like ONNX Runtime's `InferenceSession`.
///
/// Building a session checks the graph, optimises it, compiles every node and infers types.
/// `run` may be called from many threads at once. It keeps the optimised graph's constants, not
/// the `Model` it was built from: weights a pass replaced (folded, fused) are freed once the
/// caller lets go of the model.
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
        /// Most bytes of working memory one run may take (see `WorkingMemoryEstimate`); nil for no
        /// limit. A run whose estimate is larger throws `EngineError.resourceExhausted` without
        /// running, and so does a run whose allocations would pass it (when the estimate was low).
        public var workingMemoryBudget: Int?
        /// Run a batch of a model whose images never mix as sub-batches, one per thread (see
        /// `InferenceSession.batchParts`), instead of splitting every op between the threads.
        public var batchSplitting: Bool
        /// Split a batch even when its parts would be of unequal sizes (3 rows on two threads), which
        /// is slower than running it whole; for tests of the split on odd batches.
        package var splitsUnevenBatches = false

        /// The budget when none is given: a quarter of the machine's memory (no limit when the
        /// system does not say how much it has).
        public static var defaultWorkingMemoryBudget: Int? {
            SystemMemory.physicalBytes > 0 ? SystemMemory.physicalBytes / 4 : nil
        }

        public init(intraOpThreads: Int? = nil, optimizations: Bool = true, bufferRetainLimit: Int = 1 << 30,
                    flushDenormals: Bool = false, workingMemoryBudget: Int? = Options.defaultWorkingMemoryBudget,
                    batchSplitting: Bool = true) {
            self.intraOpThreads = max(1, intraOpThreads ?? Parallelism.availableCores)
            self.optimizations = optimizations
            self.bufferRetainLimit = bufferRetainLimit
            self.flushDenormals = flushDenormals
            self.workingMemoryBudget = workingMemoryBudget
            self.batchSplitting = batchSplitting
        }
    }

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
    /// Whether a batch may run as sub-batches, decided at load (see `BatchSplit`).
    package let batchSeparability: BatchSplit.Verdict

    /// The pool run buffers come from; callers may allocate batch inputs from it too.
    public var bufferPool: BufferPool { pool }
    private let schedules = Mutex<[[String]: ExecutionPlan.Schedule]>([:])
    /// Working-memory estimates by the shapes (and small values) they were made for.
    let estimates = Mutex<[WorkingMemoryEstimate.Key: WorkingMemoryEstimate]>([:])

    /// Builds a session for `model`.
    public init(model: Model, options: Options = Options()) throws(EngineError) {
        try Self.checkOpsets(model.opsets)
        let start = ContinuousClock.now
        var graph = try SubgraphBinding.bind(model.graph, opsets: model.opsets, optimize: options.optimizations)
        _ = try GraphOrder.sorted(graph)
        if options.optimizations {
            graph = try GraphOptimizer.optimize(graph, opsets: model.opsets)
        }
        let optimized = ContinuousClock.now
        let plan = try PlanBuilder.build(graph, opsets: model.opsets, inputsChecked: true)
        buildTimes = (optimized - start, ContinuousClock.now - optimized)
        self.plan = plan
        var types: [String: TensorType] = [:]
        for (name, type) in zip(plan.slotNames, plan.slotTypes) { types[name] = type }
        batchSeparability = BatchSplit.analyse(graph, types: types, opsets: model.opsets)
        self.options = options
        self.pool = BufferPool(retainLimit: options.bufferRetainLimit)
        inputs = model.graph.inputs
        let mapKeys = try Self.mapOutputKeys(model.graph)
        outputs = model.graph.outputs.map { output in
            let inferred = plan.outputSlots[output.name].flatMap { plan.slotTypes[$0] }
            let kind = plan.outputSlots[output.name].flatMap { plan.slotKinds[$0] } ?? output.kind
            return ValueInfo(name: output.name, type: inferred.map { PlanBuilder.refine(declared: output.type, inferred: $0) } ?? output.type,
                             kind: kind, mapKeys: mapKeys[output.name])
        }
    }

    /// Imports of other domains are declarations (ONNX Runtime's quantizer imports
    /// `ai.onnx.preview` into every model it writes); only a node of an operator we lack fails.
    private static func checkOpsets(_ opsets: [String: Int]) throws(EngineError) {
        for domain in ["", "ai.onnx"] {
            if let version = opsets[domain], version > OperatorRegistry.latestOpset {
                throw .unsupportedOpset("the model needs ONNX opset \(version); the newest this build knows is \(OperatorRegistry.latestOpset)")
            }
        }
    }

    /// The nodes whose operator contract is checked before each run (an input's element type was
    /// not certain at load); the contracts of all the others were checked once, at load.
    package var nodesCheckedAtRun: [String] { plan.steps.filter(\.checksAtRun).map(\.label) }

    /// Types inferred at load for every named value (unknown ones left out).
    public var inferredTypes: [String: TensorType] {
        var types: [String: TensorType] = [:]
        for (slot, name) in plan.slotNames.enumerated() {
            if let type = plan.slotTypes[slot] { types[name] = type }
        }
        return types
    }

    /// Runs the model. `outputs` names the outputs wanted (all when nil); the result maps each to
    /// its tensor. Throws `EngineError.invalidInput` for feeds that do not fit the model, and for
    /// a model with sequence or optional inputs or outputs wanted (see `runValues`).
    /// With a `profiler`, the time of every node is added to it.
    /// Throws `EngineError.resourceExhausted` when the run's working memory would pass
    /// `Options.workingMemoryBudget` (by the estimate, before anything runs).
    public func run(_ feeds: [String: Tensor], outputs wanted: [String]? = nil,
                    profiler: NodeProfiler? = nil) throws(EngineError) -> [String: Tensor] {
        try run(feeds, outputs: wanted, profiler: profiler, meter: WorkingMemoryMeter(budget: options.workingMemoryBudget ?? .max))
    }

    /// `run`, with the run's buffers counted by `meter`, whose budget is the one held while running.
    package func run(_ feeds: [String: Tensor], outputs wanted: [String]? = nil, profiler: NodeProfiler? = nil,
                     meter: WorkingMemoryMeter) throws(EngineError) -> [String: Tensor] {
        let results = try runValues(feeds.mapValues(Value.tensor), outputs: wanted, profiler: profiler, meter: meter)
        var tensors: [String: Tensor] = [:]
        for (name, value) in results {
            guard let tensor = value.tensor else {
                throw .invalidInput("output '\(name)' is a \(value.kind), not a tensor")
            }
            tensors[name] = tensor
        }
        return tensors
    }

    /// Runs the model on feeds that may be sequences or optionals (for the inputs declared so),
    /// and returns every output wanted as the value it is. A batch of a model whose images never
    /// mix runs as one sub-batch per thread (see `batchParts`), except with a profiler.
    public func runValues(_ feeds: [String: Value], outputs wanted: [String]? = nil,
                          profiler: NodeProfiler? = nil) throws(EngineError) -> [String: Value] {
        try runValues(feeds, outputs: wanted, profiler: profiler, meter: WorkingMemoryMeter(budget: options.workingMemoryBudget ?? .max))
    }

    /// `runValues`, with the run's buffers counted by `meter`.
    package func runValues(_ feeds: [String: Value], outputs wanted: [String]? = nil, profiler: NodeProfiler? = nil,
                           meter: WorkingMemoryMeter) throws(EngineError) -> [String: Value] {
        try validateKinds(feeds)
        let symbols = try validate(names: feeds.keys) { feeds[$0]?.tensor.map { (type: Optional($0.dataType), shape: $0.shape) } }
        let names = try outputNames(wanted)
        let schedule = self.schedule(for: names)
        if let budget = options.workingMemoryBudget {
            try checkWorkingMemory(feeds.compactMapValues(\.tensor), symbols: symbols, outputs: wanted == nil ? nil : names,
                                   schedule: schedule, budget: budget)
        }
        if profiler == nil, let parts = batchParts({ feeds[$0]?.tensor.map { (type: Optional($0.dataType), shape: $0.shape) } }) {
            return try runSplit(feeds, outputs: names, schedule: schedule, parts: parts, meter: meter)
        }
        var values = [Value?](repeating: nil, count: plan.slotCount)
        for (slot, tensor) in plan.constants { values[slot] = .tensor(tensor) }
        for (name, value) in feeds { values[plan.inputSlots[name]!] = value }
        let parallelism = Parallelism(threads: options.intraOpThreads, flushesDenormals: options.flushDenormals)
        pool.beginRun()
        defer { pool.endRun() }
        try parallelism.withFloatingPointMode { () throws(EngineError) in
            try plan.execute(schedule, values: &values, context: ExecutionContext(pool: pool, parallelism: parallelism, meter: meter),
                             profiler: profiler)
        }
        var results: [String: Value] = [:]
        for name in names {
            guard let value = values[plan.outputSlots[name]!] else {
                throw .runtime(node: "graph", message: "output '\(name)' was not produced")
            }
            results[name] = value
        }
        return results
    }

    /// The outputs to compute: `wanted`, all of them when nil.
    func outputNames(_ wanted: [String]?) throws(EngineError) -> [String] {
        let names = wanted ?? plan.outputOrder
        for name in names where plan.outputSlots[name] == nil {
            throw .invalidInput("unknown output '\(name)'; the model's outputs are: \(plan.outputOrder.joined(separator: ", "))")
        }
        return names
    }

    func schedule(for names: [String]) -> ExecutionPlan.Schedule {
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
        _ = try validate(names: feeds.keys) { feeds[$0].map { (type: Optional($0.dataType), shape: $0.shape) } }
    }

    /// `validate` for the feeds named `names`, known by element type (nil: the declared one) and
    /// shape through `feed`. Returns the size of each symbolic dimension (and the input it came from).
    func validate(names: some Collection<String>, _ feed: (String) -> (type: DataType?, shape: Shape)?)
        throws(EngineError) -> [String: (size: Int, input: String)]
    {
        if names.contains(where: { plan.inputSlots[$0] == nil }) {
            let unknown = names.filter { plan.inputSlots[$0] == nil }.sorted()[0]
            throw .invalidInput("unknown input '\(unknown)'; the model's inputs are: \(inputs.map(\.name).joined(separator: ", "))")
        }
        var symbols: [String: (size: Int, input: String)] = [:]
        // Sequences and optionals are checked by `validateKinds`.
        for input in inputs where input.kind == .tensor || input.kind == nil {
            guard let (dataType, shape) = feed(input.name) else {
                throw .invalidInput("missing input '\(input.name)'")
            }
            // Every size product an operator computes from this shape then fits an Int.
            guard shape.boundedElementCount(limit: ExecutionContext.maximumElementCount) != nil else {
                throw .invalidInput("input '\(input.name)' has shape \(shape), beyond the engine's limit of \(ExecutionContext.maximumElementCount) elements")
            }
            guard let type = input.type else { continue }
            if let dataType, dataType != type.dataType {
                throw .invalidInput("input '\(input.name)' has element type \(dataType); the model expects \(type.dataType)")
            }
            guard let dims = type.dims else { continue }
            if shape.rank != dims.count {
                throw .invalidInput("input '\(input.name)' has shape \(shape); the model expects \(type)")
            }
            for (axis, dim) in dims.enumerated() {
                let size = shape[axis]
                switch dim {
                case .fixed(let value) where value != size:
                    throw .invalidInput("input '\(input.name)' has shape \(shape); dimension \(axis) must be \(value) (model expects \(type))")
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
        return symbols
    }

    /// Bytes the session holds for reuse between runs, and the most it ever had allocated.
    public var memoryStatistics: (retained: Int, peak: Int) { (pool.retainedBytes, pool.peakAllocatedBytes) }
}
