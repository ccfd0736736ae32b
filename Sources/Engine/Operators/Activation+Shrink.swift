import Kernels
import Tensors

/// Shrink (9): x + bias below -lambd, x - bias above lambd, 0 between (soft and hard shrink).
struct Shrink: Operator {
    let lambda: Double
    let bias: Double

    init(_ context: OperatorContext) throws {
        lambda = Double(try context.float("lambd", default: 0.5))
        bias = Double(try context.float("bias", default: 0))
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let values = x.doubles().map { $0 < -lambda ? $0 + bias : $0 > lambda ? $0 - bias : 0 }
        return [try convert(Tensor(values, shape: x.shape), to: x.dataType, context)]
    }
}
