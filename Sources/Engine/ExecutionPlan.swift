package import Tensors

/// A graph compiled for execution: operators in dependency order over numbered value slots.
/// Immutable and shared by every thread that runs the model; per-run state lives in `run`.
/// (Package-visible so that tests can build and run plans of their own.)
package final class ExecutionPlan: Sendable {
    package struct Step: Sendable {
        let op: any Operator
        /// The operator again when it takes or makes sequences or optionals (it then runs through
        /// `ValueOperator.run(values:_:)`); nil for the tensor operators, nearly all of them.
        let valueOp: (any ValueOperator)?
        let label: String
        /// The node's op type (as the optimiser left it).
        let opType: String
        /// Slot of each input; nil for an omitted optional input.
        let inputs: [Int?]
        /// Slot of each output; nil for an output nobody uses.
        let outputs: [Int?]
        /// The type rules of the operator's definition (nil: the operator checks its inputs itself).
        let contract: OperatorContract?
        /// The contract is checked before each run: some input's element type was not known at load.
        let checksAtRun: Bool

        package init(op: any Operator, label: String, opType: String, inputs: [Int?], outputs: [Int?],
                     contract: OperatorContract? = nil, checksAtRun: Bool = true) {
            self.op = op
            self.valueOp = op as? any ValueOperator
            self.label = label
            self.opType = opType
            self.inputs = inputs
            self.outputs = outputs
            self.contract = contract
            self.checksAtRun = contract != nil && checksAtRun
        }

        /// Checks the contract on the step's inputs when the load could not (see `checksAtRun`).
        func checkInputs(_ inputs: [Tensor?]) throws(OpError) {
            if checksAtRun, let contract { try contract.check(inputs) }
        }

        /// The same for a `ValueOperator`'s values.
        func checkInputs(values inputs: [Value?]) throws(OpError) {
            if checksAtRun, let contract { try contract.check(values: inputs) }
        }
    }

    /// Which steps to run for a set of requested outputs, and when each slot is last needed.
    package struct Schedule: Sendable {
        let steps: [Int]
        /// `release[i]`: slots to drop after the i-th scheduled step.
        let release: [[Int]]
    }

    let steps: [Step]
    let slotCount: Int
    let slotNames: [String]
    package let constants: [(slot: Int, tensor: Tensor)]
    let inputSlots: [String: Int]
    let outputSlots: [String: Int]
    let outputOrder: [String]
    /// Inferred type of every slot (nil where unknown).
    let slotTypes: [TensorType?]
    /// Kind of every slot (tensor, sequence, optional; nil where unknown).
    let slotKinds: [ValueKind?]
    /// The schedule for all outputs.
    package let fullSchedule: Schedule
    /// Most inputs a step has.
    let maximumInputCount: Int

    package init(steps: [Step], slotNames: [String], constants: [(slot: Int, tensor: Tensor)], inputSlots: [String: Int],
         outputOrder: [String], outputSlots: [String: Int], slotTypes: [TensorType?], slotKinds: [ValueKind?]? = nil) {
        self.steps = steps
        self.slotCount = slotNames.count
        self.slotNames = slotNames
        self.constants = constants
        self.inputSlots = inputSlots
        self.outputOrder = outputOrder
        self.outputSlots = outputSlots
        self.slotTypes = slotTypes
        self.slotKinds = slotKinds ?? Array(repeating: .tensor, count: slotNames.count)
        self.maximumInputCount = steps.map(\.inputs.count).max() ?? 0
        self.fullSchedule = Self.schedule(steps: steps, slotCount: slotNames.count, keep: Set(outputSlots.values),
                                          constants: Set(constants.map(\.slot)))
    }

    /// Schedule that computes only what `keep` needs and drops every other slot after its last use.
    static func schedule(steps: [Step], slotCount: Int, keep: Set<Int>, constants: Set<Int>) -> Schedule {
        var producer = [Int?](repeating: nil, count: slotCount)
        for (index, step) in steps.enumerated() {
            for case let slot? in step.outputs { producer[slot] = index }
        }
        var needed = [Bool](repeating: false, count: steps.count)
        var stack = keep.compactMap { producer[$0] }
        while let index = stack.popLast() {
            if needed[index] { continue }
            needed[index] = true
            for case let slot? in steps[index].inputs {
                if let source = producer[slot], !needed[source] { stack.append(source) }
            }
        }
        let order = (0..<steps.count).filter { needed[$0] }
        var lastUse = [Int?](repeating: nil, count: slotCount)
        for (position, index) in order.enumerated() {
            for case let slot? in steps[index].inputs { lastUse[slot] = position }
            // An output nobody reads is dropped right after it is made.
            for case let slot? in steps[index].outputs where lastUse[slot] == nil { lastUse[slot] = position }
        }
        var release = [[Int]](repeating: [], count: order.count)
        for slot in 0..<slotCount where !keep.contains(slot) && !constants.contains(slot) {
            if let position = lastUse[slot] { release[position].append(slot) }
        }
        return Schedule(steps: order, release: release)
    }

    /// Drops from `values` the slots this step reads for the last time (`releasing`), before the
    /// step runs, and returns the bits of the inputs whose buffer the step then holds alone (see
    /// `ExecutionContext.handedOverInputs`). A slot the step reads twice is not handed over; graph
    /// inputs, outputs and constants never are (they are not released, or are held elsewhere).
    static func handOver(_ inputs: inout [Tensor?], of step: Step, releasing: [Int], from values: inout [Value?]) -> UInt64 {
        if releasing.isEmpty { return 0 }
        var handedOver: UInt64 = 0
        for (index, slot) in step.inputs.enumerated().prefix(64) {
            guard let slot, releasing.contains(slot), step.inputs.lazy.filter({ $0 == slot }).count == 1 else { continue }
            values[slot] = nil
            if inputs[index]?.ownsBufferAlone() == true { handedOver |= 1 << UInt64(index) }
        }
        return handedOver
    }

    /// Puts in `inputs` (emptied first) the tensors a tensor operator's step reads; a sequence or
    /// optional in one of its slots (which the load-time kind check lets through only where a kind
    /// was unknown) is an error.
    private func tensorInputs(of step: Step, _ values: [Value?], into inputs: inout [Tensor?]) throws(EngineError) {
        inputs.removeAll(keepingCapacity: true)
        for slot in step.inputs {
            guard let slot, let value = values[slot] else {
                inputs.append(nil)
                continue
            }
            guard case .tensor(let tensor) = value else {
                throw .runtime(node: step.label, message: "input '\(slotNames[slot])' is a \(value.kind); the operator takes tensors only")
            }
            inputs.append(tensor)
        }
    }

    /// Runs the scheduled steps over `values` (inputs and constants already in place).
    package func execute(_ schedule: Schedule, values: inout [Value?], context: ExecutionContext,
                 profiler: NodeProfiler? = nil) throws(EngineError) {
        // One array for every step's inputs, emptied after each step (so that a tensor is released
        // when it was before): a fresh one per step was one allocation per node and run.
        var inputs: [Tensor?] = []
        inputs.reserveCapacity(maximumInputCount)
        for (position, index) in schedule.steps.enumerated() {
            let step = steps[index]
            if let valueOp = step.valueOp {
                let inputs = step.inputs.map { slot in slot.flatMap { values[$0] } }
                let results = try perform(step, index: index, profiler: profiler, shape: { $0.first?.tensor?.shape }) {
                    try step.checkInputs(values: inputs)
                    return try valueOp.run(values: inputs, context)
                }
                try store(results, of: step, in: &values) { $0 }
            } else {
                try tensorInputs(of: step, values, into: &inputs)
                var stepContext = context
                stepContext.handedOverInputs = Self.handOver(&inputs, of: step, releasing: schedule.release[position], from: &values)
                let results = try perform(step, index: index, profiler: profiler, shape: { $0.first?.shape }) { [inputs] in
                    try step.checkInputs(inputs)
                    return try step.op.run(inputs, stepContext)
                }
                inputs.removeAll(keepingCapacity: true)
                try store(results, of: step, in: &values, Value.tensor)
            }
            for slot in schedule.release[position] { values[slot] = nil }
        }
    }

    /// Runs one step's operator (timed when there is a profiler), turning its errors into `EngineError`s.
    private func perform<Results>(_ step: Step, index: Int, profiler: NodeProfiler?, shape: (Results) -> Shape?,
                                  _ body: () throws -> Results) throws(EngineError) -> Results {
        do {
            guard let profiler else { return try body() }
            let start = ContinuousClock.now
            let results = try body()
            profiler.record(step: index, node: step.label, opType: step.opType, outputShape: shape(results),
                            duration: ContinuousClock.now - start)
            return results
        } catch let error as OpError {
            throw EngineError(error, running: step.label)
        } catch let error as EngineError {
            throw error
        } catch {
            throw .runtime(node: step.label, message: "\(error)")
        }
    }

    /// Puts a step's results in their slots.
    private func store<Result>(_ results: [Result], of step: Step, in values: inout [Value?],
                               _ wrap: (Result) -> Value) throws(EngineError) {
        for (outputIndex, slot) in step.outputs.enumerated() {
            guard let slot else { continue }
            guard outputIndex < results.count else {
                throw .runtime(node: step.label, message: "produced \(results.count) outputs, output \(outputIndex) is needed")
            }
            values[slot] = wrap(results[outputIndex])
        }
    }
}
