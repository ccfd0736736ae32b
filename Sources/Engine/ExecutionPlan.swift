import Tensors

/// A graph compiled for execution: operators in dependency order over numbered value slots.
/// Immutable and shared by every thread that runs the model; per-run state lives in `run`.
final class ExecutionPlan: Sendable {
    struct Step: Sendable {
        let op: any Operator
        let label: String
        /// The node's op type (as the optimiser left it).
        let opType: String
        /// Slot of each input; nil for an omitted optional input.
        let inputs: [Int?]
        /// Slot of each output; nil for an output nobody uses.
        let outputs: [Int?]
    }

    /// Which steps to run for a set of requested outputs, and when each slot is last needed.
    struct Schedule: Sendable {
        let steps: [Int]
        /// `release[i]`: slots to drop after the i-th scheduled step.
        let release: [[Int]]
    }

    let steps: [Step]
    let slotCount: Int
    let slotNames: [String]
    let constants: [(slot: Int, tensor: Tensor)]
    let inputSlots: [String: Int]
    let outputSlots: [String: Int]
    let outputOrder: [String]
    /// Inferred type of every slot (nil where unknown).
    let slotTypes: [TensorType?]
    /// The schedule for all outputs.
    let fullSchedule: Schedule

    init(steps: [Step], slotNames: [String], constants: [(slot: Int, tensor: Tensor)], inputSlots: [String: Int],
         outputOrder: [String], outputSlots: [String: Int], slotTypes: [TensorType?]) {
        self.steps = steps
        self.slotCount = slotNames.count
        self.slotNames = slotNames
        self.constants = constants
        self.inputSlots = inputSlots
        self.outputOrder = outputOrder
        self.outputSlots = outputSlots
        self.slotTypes = slotTypes
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

    /// Runs the scheduled steps over `values` (inputs and constants already in place).
    func execute(_ schedule: Schedule, values: inout [Tensor?], context: ExecutionContext,
                 profiler: NodeProfiler? = nil) throws(EngineError) {
        for (position, index) in schedule.steps.enumerated() {
            let step = steps[index]
            let inputs = step.inputs.map { slot in slot.flatMap { values[$0] } }
            let results: [Tensor]
            do {
                if let profiler {
                    let start = ContinuousClock.now
                    results = try step.op.run(inputs, context)
                    profiler.record(step: index, node: step.label, opType: step.opType, outputShape: results.first?.shape,
                                    duration: ContinuousClock.now - start)
                } else {
                    results = try step.op.run(inputs, context)
                }
            } catch let error as OpError {
                throw .runtime(node: step.label, message: error.message)
            } catch let error as EngineError {
                throw error
            } catch {
                throw .runtime(node: step.label, message: "\(error)")
            }
            for (outputIndex, slot) in step.outputs.enumerated() {
                guard let slot else { continue }
                guard outputIndex < results.count else {
                    throw .runtime(node: step.label, message: "produced \(results.count) outputs, output \(outputIndex) is needed")
                }
                values[slot] = results[outputIndex]
            }
            for slot in schedule.release[position] { values[slot] = nil }
        }
    }
}
