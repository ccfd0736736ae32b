import Kernels
import Tensors

/// Determinants and vector norms along an axis.
enum LinearAlgebraOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("Det", versions: [11, 22], contract: OperatorContract(
            inputs: [.init("X", "T")], outputs: [.init("Y", "T")], types: ["T": ElementTypes.floatingPoint])) { _ in Determinant() },
        OperatorDefinition("LpNormalization", versions: [1, 22],
                           contract: .unary(ElementTypes.floatingPoint, input: "input", output: "output")) { try LpNormalization($0) },
    ]
}

/// Det (11, 22): the determinants of X [..., M, M] (LU with partial pivoting, in double).
struct Determinant: Operator {
    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(x.dataType, x.dims.map { Array($0.dropLast(2)) })]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let rank = x.shape.rank
        guard rank >= 2, x.shape[rank - 1] == x.shape[rank - 2] else {
            throw OpError.invalidArgument("input must be [..., M, M], got \(x.shape)")
        }
        let m = x.shape[rank - 1], values = x.doubles()
        let count = m == 0 ? x.elementCount : x.elementCount / (m * m)
        var results: [Double] = []
        results.reserveCapacity(count)
        for matrix in 0..<count {
            var a = Array(values[(matrix * m * m)..<((matrix + 1) * m * m)])
            var determinant = 1.0
            for column in 0..<m {
                var pivot = column
                for row in (column + 1)..<m where abs(a[row * m + column]) > abs(a[pivot * m + column]) { pivot = row }
                if a[pivot * m + column] == 0 { determinant = 0; break }
                if pivot != column {
                    for k in 0..<m { a.swapAt(pivot * m + k, column * m + k) }
                    determinant = -determinant
                }
                let diagonal = a[column * m + column]
                determinant *= diagonal
                for row in (column + 1)..<m {
                    let factor = a[row * m + column] / diagonal
                    for k in column..<m { a[row * m + k] -= factor * a[column * m + k] }
                }
            }
            results.append(determinant)
        }
        return [try convert(Tensor(results, shape: Shape(Array(x.shape.dims.dropLast(2)))), to: x.dataType, context)]
    }
}

/// LpNormalization (1, 22): x divided by its L1 or L2 norm along `axis` (a zero norm gives 0).
struct LpNormalization: Operator {
    let axis: Int
    let p: Int

    init(_ context: OperatorContext) throws {
        axis = try context.int("axis", default: -1)
        p = try context.int("p", default: 2)
        guard p == 1 || p == 2 else { throw OpError("p must be 1 or 2, got \(p)") }
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let axis = try Layout.axis(axis, rank: max(x.shape.rank, 1))
        let dims = x.shape.rank == 0 ? [1] : x.shape.dims
        let size = dims[axis], inner = dims[(axis + 1)...].reduce(1, *), outer = dims[..<axis].reduce(1, *)
        var values = x.doubles()
        for o in 0..<outer {
            for i in 0..<inner {
                let start = o * size * inner + i
                var norm = 0.0
                for k in 0..<size {
                    let value = values[start + k * inner]
                    norm += p == 1 ? abs(value) : value * value
                }
                if p == 2 { norm = norm.squareRoot() }
                for k in 0..<size { values[start + k * inner] = norm == 0 ? 0 : values[start + k * inner] / norm }
            }
        }
        return [try convert(Tensor(values, shape: x.shape), to: x.dataType, context)]
    }
}
