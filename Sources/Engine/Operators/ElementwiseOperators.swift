import Tensors

/// Elementwise operators (placeholder family: the elementwise work replaces it).
enum ElementwiseOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("Relu", versions: [6, 13, 14]) { _ in Relu() },
    ]
}

struct Relu: Operator {
    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] { [inputs.first ?? nil] }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        guard let x = inputs.first ?? nil, x.dataType == .float else { throw OpError("Relu needs a float input") }
        let y = context.allocate(.float, x.shape)
        let source = x.pointer(as: Float.self), target = y.mutablePointer(as: Float.self)
        for index in 0..<x.elementCount { target[index] = max(source[index], 0) }
        return [y]
    }
}
