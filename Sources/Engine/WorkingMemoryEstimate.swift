import Kernels
import Tensors

/// The working memory one run needs, estimated before it runs from the shapes of its feeds.
///
/// It counts what the run takes from the session's buffer pool: intermediate values, outputs and
/// operator scratch (im2col columns, Winograd tiles, intermediate results), each buffer rounded up
/// to its pool size class, at the moment the most of them are held. The feeds (the caller's) and
/// the model's weights are not counted.
public struct WorkingMemoryEstimate: Sendable, Equatable, CustomStringConvertible {
    /// Most bytes the run is estimated to hold at once.
    public var peakBytes: Int
    /// Nodes whose output shapes could not be inferred before the run (a shape decided by values
    /// known only while running, such as NonZero's, or a shape rule the operator lacks). Their
    /// outputs count as nothing, so `peakBytes` is then a lower bound, and it is the run's
    /// allocation meter that keeps the run within its budget.
    public var unestimatedNodes: [String]

    /// True when every node's outputs were estimated.
    public var isComplete: Bool { unestimatedNodes.isEmpty }

    public var description: String {
        let megabytes = Double(peakBytes) / Double(1 << 20)
        let text = megabytes < 10 ? String(Double(Int(megabytes * 100)) / 100) : String(Int(megabytes.rounded()))
        return isComplete ? "\(text) MiB" : "at least \(text) MiB (\(unestimatedNodes.count) nodes not estimated)"
    }
}

extension ExecutionPlan {
    /// What is known about one value before the run: its type (dimensions concrete where known)
    /// and, for small values computed from shapes and constants, the value itself.
    struct PlannedValue {
        var type: TensorType?
        var value: Tensor?
    }

    /// Largest value the estimate computes for real (a shape, an index list): every input and
    /// output of such a step at most this many elements.
    static let plannedValueLimit = 1024

    /// Walks `schedule` with types instead of tensors: each step's output types come from its shape
    /// rule (fed the concrete input shapes and the small values known so far), or failing that from
    /// the types inferred at load with the feeds' symbolic sizes filled in. Memory is counted per
    /// buffer (views share their input's), held from the step that makes it to its last use, as
    /// `execute` does.
    func estimateWorkingMemory(_ schedule: Schedule, feeds: [Int: PlannedValue], symbols: [String: Int],
                               threads: Int) -> WorkingMemoryEstimate {
        var known = [PlannedValue?](repeating: nil, count: slotCount)
        for (slot, tensor) in constants { known[slot] = PlannedValue(type: TensorType(tensor.dataType, shape: tensor.shape), value: tensor) }
        for (slot, value) in feeds { known[slot] = value }
        // Buffers by number: bytes, and how many live slots refer to each.
        var bufferOfSlot = [Int?](repeating: nil, count: slotCount)
        var bufferBytes: [Int] = [], references: [Int] = []
        var live = 0, peak = 0
        var unestimated: [String] = []
        // Small steps run for real in a context of their own, which cannot take much memory.
        let evaluation = ExecutionContext(pool: BufferPool(retainLimit: 0), parallelism: .serial,
                                          meter: WorkingMemoryMeter(budget: 1 << 20))
        for (position, index) in schedule.steps.enumerated() {
            let step = steps[index]
            let inputs = step.inputs.map { slot in slot.flatMap { known[$0] } }
            let inputTypes = inputs.map { $0?.type }
            let inferred = (try? Self.outputTypes(of: step, inputTypes, values: inputs.map { $0?.value })) ?? []
            let outputTypes = step.outputs.indices.map { output in
                let planned = step.outputs[output].flatMap { slotTypes[$0] }.map { Self.substituting(symbols, in: $0) }
                return Self.bounded(Self.merged(output < inferred.count ? inferred[output] : nil, planned))
            }
            let values = Self.evaluate(step, inputs: inputs, outputTypes: outputTypes, in: evaluation)
            let profile = step.op as? any WorkingMemoryProfile
            let views = profile?.outputViews(inputTypes) ?? []
            var added = 0, dropped = 0, complete = true
            for (output, slot) in step.outputs.enumerated() {
                let view = output < views.count ? views[output].flatMap { step.inputs[$0] } : nil
                let bytes = view == nil ? outputTypes[output]?.bufferBytes : 0
                if bytes == nil { complete = false }
                guard let slot else {
                    dropped += bytes ?? 0  // made, and dropped as soon as the step returns
                    continue
                }
                known[slot] = PlannedValue(type: outputTypes[output], value: values?[output])
                if let view, let buffer = bufferOfSlot[view] {
                    bufferOfSlot[slot] = buffer
                    references[buffer] += 1
                } else if let bytes, view == nil {
                    bufferOfSlot[slot] = bufferBytes.count
                    bufferBytes.append(bytes)
                    references.append(1)
                    added += bytes
                }
            }
            if !complete { unestimated.append(step.label) }
            let scratch = profile?.scratchBytes(inputTypes, outputs: outputTypes, threads: threads) ?? 0
            peak = max(peak, live + added + dropped + scratch)
            live += added
            for slot in schedule.release[position] {
                guard let buffer = bufferOfSlot[slot] else { continue }
                bufferOfSlot[slot] = nil
                references[buffer] -= 1
                if references[buffer] == 0 { live -= bufferBytes[buffer] }
            }
        }
        return WorkingMemoryEstimate(peakBytes: peak, unestimatedNodes: unestimated)
    }

    /// The operator's output types for these inputs, from its value-aware rule when it has one.
    static func outputTypes(of step: Step, _ inputs: [TensorType?], values: [Tensor?]) throws -> [TensorType?] {
        if let rule = step.op as? any ValueDependentShapeRule { return try rule.outputTypes(inputs, values: values) }
        return try OperatorContract.outputTypes(of: step.op, contract: step.contract, inputs,
                                                present: step.inputs.map { $0 != nil })
    }

    /// `type` with the symbolic dimensions the feeds decided replaced by their sizes.
    static func substituting(_ symbols: [String: Int], in type: TensorType) -> TensorType {
        guard let dims = type.dims, !symbols.isEmpty else { return type }
        return TensorType(type.dataType, dims.map { dim in
            if case .symbolic(let name) = dim, let size = symbols[name] { return .fixed(size) }
            return dim
        })
    }

    /// The type a step's rule inferred, with dimensions it left unknown filled from the load-time type.
    static func merged(_ inferred: TensorType?, _ planned: TensorType?) -> TensorType? {
        guard let inferred else { return planned }
        guard let planned else { return inferred }
        return PlanBuilder.refine(declared: planned, inferred: inferred)
    }

    /// `type`, with its dimensions forgotten when they are negative or beyond the engine's limits:
    /// the step then fails at run time, and no later rule computes with such sizes.
    static func bounded(_ type: TensorType?) -> TensorType? {
        guard let type, let shape = type.shape,
              shape.boundedElementCount(limit: ExecutionContext.maximumElementCount) == nil else { return type }
        return TensorType(type.dataType, nil)
    }

    /// The step's outputs computed for real, when they follow from small known values (or from
    /// the input types alone, for Shape and Size); nil otherwise.
    static func evaluate(_ step: Step, inputs: [PlannedValue?], outputTypes: [TensorType?],
                         in context: ExecutionContext) -> [Tensor?]? {
        if let op = step.op as? any TypeDeterminedOutputs { return op.outputValues(inputs.map { $0?.type }) }
        var values: [Tensor?] = []
        for (input, slot) in zip(inputs, step.inputs) {
            guard slot != nil else {
                values.append(nil)
                continue
            }
            guard let value = input?.value, value.elementCount <= plannedValueLimit else { return nil }
            values.append(value)
        }
        guard !outputTypes.isEmpty, outputTypes.allSatisfy({ type in
            type?.shape?.boundedElementCount(limit: plannedValueLimit).map { $0 <= plannedValueLimit } ?? false
        }) else { return nil }
        guard (try? step.checkInputs(values)) != nil, let results = try? step.op.run(values, context),
              results.count == outputTypes.count else { return nil }
        return results
    }
}
