public import Tensors
internal import Synchronization

extension InferenceSession {
    /// The working memory a run with inputs of these shapes would take (see
    /// `WorkingMemoryEstimate`), estimated without running anything. Element types are the
    /// declared ones. `outputs` names the outputs the run would compute (all when nil).
    ///
    /// Throws `EngineError.invalidInput` for shapes that do not fit the declared inputs, as `run`
    /// would. Estimates are cached by shape, so asking again (and running) costs a lookup.
    public func estimatedWorkingMemory(for shapes: [String: Shape], outputs: [String]? = nil)
        throws(EngineError) -> WorkingMemoryEstimate
    {
        let symbols = try validate(names: shapes.keys) { shapes[$0].map { (type: DataType?.none, shape: $0) } }
        let names = try outputNames(outputs)
        return estimate(symbols: symbols, outputs: outputs == nil ? nil : names, schedule: schedule(for: names)) {
            shapes[$0].map { (type: DataType?.none, shape: $0, value: Tensor?.none) }
        }
    }

    /// Throws `EngineError.resourceExhausted` when a run on `feeds` would pass the session's
    /// working-memory budget by the estimate (as `run` checks first), and `invalidInput` for feeds
    /// that do not fit the model. Callers use it to refuse a request before queueing it.
    public func checkWorkingMemory(_ feeds: [String: Tensor], outputs wanted: [String]? = nil) throws(EngineError) {
        guard let budget = options.workingMemoryBudget else { return }
        let symbols = try validate(names: feeds.keys) { feeds[$0].map { (type: Optional($0.dataType), shape: $0.shape) } }
        let names = try outputNames(wanted)
        try checkWorkingMemory(feeds, symbols: symbols, outputs: wanted == nil ? nil : names, schedule: schedule(for: names), budget: budget)
    }

    /// Throws `EngineError.resourceExhausted` when the estimate for these feeds is above `budget`.
    func checkWorkingMemory(_ feeds: [String: Tensor], symbols: [String: (size: Int, input: String)], outputs: [String]?,
                            schedule: ExecutionPlan.Schedule, budget: Int) throws(EngineError) {
        let estimate = estimate(symbols: symbols, outputs: outputs, schedule: schedule) { name in
            feeds[name].map { tensor in
                // Small integer feeds may be shapes or indices that decide other shapes.
                let small = tensor.dataType.isInteger && tensor.elementCount <= WorkingMemoryEstimate.Key.valueLimit
                return (type: Optional(tensor.dataType), shape: tensor.shape, value: small ? tensor : nil)
            }
        }
        guard estimate.peakBytes <= budget else {
            throw .resourceExhausted("the run needs an estimated \(estimate) of working memory for inputs "
                                     + feeds.keys.sorted().map { "\($0) \(feeds[$0]!.shape)" }.joined(separator: ", ")
                                     + "; the budget is \(WorkingMemoryEstimate(peakBytes: budget, unestimatedNodes: []))")
        }
    }

    /// The estimate for feeds known through `feed` by element type (nil: the declared one), shape
    /// and small value, from the cache when it was made before. `outputs` nil means all of them.
    private func estimate(symbols: [String: (size: Int, input: String)], outputs: [String]?, schedule: ExecutionPlan.Schedule,
                          _ feed: (String) -> (type: DataType?, shape: Shape, value: Tensor?)?) -> WorkingMemoryEstimate {
        let key = WorkingMemoryEstimate.Key(inputs: inputs, outputs: outputs, feed)
        if let cached = estimates.withLock({ $0[key] }) { return cached }
        let estimate: WorkingMemoryEstimate
        if let parts = batchParts({ name in feed(name).map { (type: $0.type, shape: $0.shape) } }) {
            estimate = splitEstimate(parts: parts, symbols: symbols, outputs: outputs, schedule: schedule, feed)
        } else {
            estimate = plan.estimateWorkingMemory(schedule, feeds: plannedFeeds(feed), symbols: symbols.mapValues(\.size),
                                                  threads: options.intraOpThreads)
        }
        estimates.withLock { cache in
            // Shapes vary with every batch and sequence length: keep the cache bounded.
            if cache.count >= WorkingMemoryEstimate.Key.cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[key] = estimate
        }
        return estimate
    }

    /// The feeds known through `feed` as the plan's planned values; with `rows`, every feed's axis 0
    /// is that size instead (and its value unknown).
    private func plannedFeeds(rows: Int? = nil, _ feed: (String) -> (type: DataType?, shape: Shape, value: Tensor?)?)
        -> [Int: ExecutionPlan.PlannedValue]
    {
        var planned: [Int: ExecutionPlan.PlannedValue] = [:]
        for input in inputs {
            guard let (type, given, known) = feed(input.name), let slot = plan.inputSlots[input.name] else { continue }
            var shape = given, value = known
            if let rows, shape.rank >= 1 {
                var dims = shape.dims
                dims[0] = rows
                shape = Shape(dims)
                value = nil
            }
            let dataType = type ?? input.type?.dataType
            planned[slot] = ExecutionPlan.PlannedValue(type: dataType.map { TensorType($0, shape: shape) }, value: value)
        }
        return planned
    }

    /// A split run holds every part's working memory at once (each part estimated as the largest,
    /// with one thread), and the joined outputs.
    private func splitEstimate(parts: [Range<Int>], symbols: [String: (size: Int, input: String)], outputs: [String]?,
                               schedule: ExecutionPlan.Schedule,
                               _ feed: (String) -> (type: DataType?, shape: Shape, value: Tensor?)?) -> WorkingMemoryEstimate {
        let rows = parts.map(\.count).max() ?? 0
        var partSymbols = symbols.mapValues(\.size)
        for input in inputs {
            if case .symbolic(let name)? = input.type?.dims?.first { partSymbols[name] = rows }
        }
        var estimate = plan.estimateWorkingMemory(schedule, feeds: plannedFeeds(rows: rows, feed), symbols: partSymbols, threads: 1)
        var bytes = estimate.peakBytes.multipliedReportingOverflow(by: parts.count)
        for name in outputs ?? plan.outputOrder {
            guard let slot = plan.outputSlots[name], let type = plan.slotTypes[slot],
                  let joined = ExecutionPlan.substituting(symbols.mapValues(\.size), in: type).bufferBytes else { continue }
            let sum = bytes.partialValue.addingReportingOverflow(joined)
            bytes = (sum.partialValue, bytes.overflow || sum.overflow)
        }
        estimate.peakBytes = bytes.overflow ? .max : bytes.partialValue
        return estimate
    }
}

extension WorkingMemoryEstimate {
    /// What an estimate depends on: the feeds' element types, shapes and small integer values
    /// (in input order), and the outputs wanted.
    struct Key: Hashable {
        /// Integer feeds with at most this many elements are part of the key (and of the estimate).
        static let valueLimit = 64
        /// Most estimates a session keeps.
        static let cacheLimit = 256

        var numbers: [Int] = []
        /// The outputs wanted; nil for all of them.
        var outputs: [String]?

        init(inputs: [ValueInfo], outputs: [String]?, _ feed: (String) -> (type: DataType?, shape: Shape, value: Tensor?)?) {
            self.outputs = outputs
            // Type, rank, dimensions and the value marker of a feed of rank 4 or less: one allocation per key.
            numbers.reserveCapacity(8 * inputs.count)
            for input in inputs {
                guard let (type, shape, value) = feed(input.name) else {
                    numbers.append(-1)
                    continue
                }
                numbers.append(Int(type?.rawValue ?? 0))
                numbers.append(shape.rank)
                numbers += shape.dims
                guard let value else {
                    numbers.append(-1)
                    continue
                }
                let values = value.integers()
                numbers.append(values.count)
                numbers += values
            }
        }
    }
}
