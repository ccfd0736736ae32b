import Tensors

// What operators can tell about a run before it happens, beyond their load-time shape rule
// (`Operator.outputTypes`): used by the working-memory estimate (see `WorkingMemoryEstimate`).
// Each protocol is optional; an operator without it is estimated by its shape rule alone, as
// allocating one new buffer per output and nothing else.

/// An operator whose output shapes depend on the values of some inputs: a Reshape's target, a
/// Slice's ends, a ConstantOfShape's shape. Before a run those values are often known, computed
/// from the feeds' shapes (the Shape → Gather → Concat chains of exported models) or constant.
protocol ValueDependentShapeRule: Operator {
    /// Output types given the input types and the values of the inputs known before the run
    /// (nil where unknown). Falls back to `outputTypes(_:)` when the values it needs are unknown.
    func outputTypes(_ inputs: [TensorType?], values: [Tensor?]) throws -> [TensorType?]
}

/// An operator whose output values follow from its inputs' types alone (Shape, Size).
protocol TypeDeterminedOutputs: Operator {
    /// The outputs for inputs of these types; nil when a needed shape is not fully known.
    func outputValues(_ inputs: [TensorType?]) -> [Tensor]?
}

/// How an operator's memory use differs from "each output is a new buffer, nothing else".
protocol WorkingMemoryProfile: Operator {
    /// For each output, the input whose buffer it shares (a view such as Reshape's); nil for a new
    /// buffer. Inputs have concrete shapes where known.
    func outputViews(_ inputs: [TensorType?]) -> [Int?]
    /// Bytes the operator takes from the run's pool besides its outputs and gives back before it
    /// returns (im2col columns, intermediate results), for inputs and outputs of these types.
    func scratchBytes(_ inputs: [TensorType?], outputs: [TensorType?], threads: Int) -> Int
}

extension WorkingMemoryProfile {
    func outputViews(_ inputs: [TensorType?]) -> [Int?] { [] }
    func scratchBytes(_ inputs: [TensorType?], outputs: [TensorType?], threads: Int) -> Int { 0 }
}

extension TensorType {
    /// Bytes a pool buffer for a value of this type takes (its size class), when the shape is known
    /// and within the engine's limits. Strings count one `String` per element.
    var bufferBytes: Int? {
        guard let shape, let count = shape.boundedElementCount(limit: ExecutionContext.maximumElementCount) else { return nil }
        if dataType == .string { return count * MemoryLayout<String>.stride }
        guard let bytes = dataType.checkedByteCount(elements: count) else { return nil }
        return BufferPool.sizeClass(bytes)
    }
}
