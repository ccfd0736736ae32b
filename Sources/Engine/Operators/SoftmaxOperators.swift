import Kernels
import Tensors

/// Softmax, LogSoftmax and Hardmax. Before opset 13 the input is coerced to 2-D at `axis`
/// (default 1) and the function runs over each row; from 13 it runs along `axis` (default -1).
enum SoftmaxOperators {
    static let definitions: [OperatorDefinition] = [
        // Softmax reads bfloat16 itself (see `LowPrecisionWidening.bfloat16Native`); the other two
        // get it widened to float.
        OperatorDefinition("Softmax", versions: [1, 11, 13], contract: contract(ElementTypes.floatingPoint.union([.bfloat16]))) {
            try SoftmaxOperator(.softmax, $0)
        },
        OperatorDefinition("LogSoftmax", versions: [1, 11, 13], contract: contract(ElementTypes.floatingPoint)) {
            try SoftmaxOperator(.logSoftmax, $0)
        },
        OperatorDefinition("Hardmax", versions: [1, 11, 13], contract: contract(ElementTypes.floatingPoint)) {
            try SoftmaxOperator(.hardmax, $0)
        },
    ]

    /// `input` to `output` of one type T; the shape rule (which checks the axis) is the operator's.
    static func contract(_ allowed: Set<DataType>) -> OperatorContract {
        OperatorContract(inputs: [.init("input", "T")], outputs: [.init("output", "T")], types: ["T": allowed])
    }
}

struct SoftmaxOperator: Operator {
    enum Function { case softmax, logSoftmax, hardmax }
    let function: Function
    let axis: Int
    /// Opset < 13: everything from `axis` on is one row.
    let coercedTo2D: Bool

    init(_ function: Function, _ context: OperatorContext) throws {
        self.function = function
        coercedTo2D = context.version < 13
        axis = try context.int("axis", default: coercedTo2D ? 1 : -1)
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        if let rank = x.rank { _ = try layout(Shape([Int](repeating: 1, count: rank))) }
        return [x]
    }

    /// `[outer, length, inner]`: the function runs along `length`.
    private func layout(_ shape: Shape) throws -> (outer: Int, length: Int, inner: Int) {
        // Opset < 13 accepts axis == rank (a single row of everything after nothing: length 1).
        let rank = shape.rank
        guard let axis = Shape.normalize(axis: axis, rank: coercedTo2D ? rank + 1 : rank) else {
            throw OpError.invalidArgument("axis \(self.axis) is out of range for rank \(rank)")
        }
        let outer = shape.dims[..<axis].reduce(1, *)
        if coercedTo2D { return (outer, shape.dims[axis...].reduce(1, *), 1) }
        return (outer, shape[axis], shape.dims[(axis + 1)...].reduce(1, *))
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let original = try inputs.required(0)
        let (outer, length, inner) = try layout(original.shape)
        if original.dataType == .bfloat16 {
            // As ONNX's reference rounds it (ONNX Runtime has no bfloat16 Softmax on CPU).
            let x = try convert(original, to: .float, context), y = try context.allocate(.float, x.shape)
            withExtendedLifetime(x) {
                BFloat16Rounding.softmax(x.pointer(as: Float.self), into: y.mutablePointer(as: Float.self),
                                         outer: outer, length: length, inner: inner, parallelism: context.parallelism)
            }
            return [try convert(y, to: .bfloat16, context)]
        }
        // Float16 computes in float, as ONNX Runtime does: its sum would round at every step.
        let x = try convert(original, to: original.dataType == .float16 ? .float : original.dataType, context)
        let y = try context.allocate(x.dataType, x.shape)
        _ = try x.dataType.visit(Kernel(function: function, x: x, y: y, outer: outer, length: length, inner: inner,
                                        parallelism: context.parallelism))
        return [try convert(y, to: original.dataType, context)]
    }

    private struct Kernel: RealVisitor {
        let function: Function, x: Tensor, y: Tensor, outer: Int, length: Int, inner: Int, parallelism: Parallelism
        func visit<T: RealElement>(_: T.Type) {
            withExtendedLifetime(x) {
                let source = x.pointer(as: T.self), target = y.mutablePointer(as: T.self)
                switch function {
                case .softmax, .logSoftmax:
                    Softmax.softmax(source, into: target, outer: outer, length: length, inner: inner,
                                    logarithm: function == .logSoftmax, parallelism: parallelism)
                case .hardmax:
                    target.initialize(repeating: 0, count: x.elementCount)
                    if x.elementCount == 0 { return }
                    // One-hot at the first maximum of each row.
                    var indices = [Int64](repeating: 0, count: outer * inner)
                    indices.withUnsafeMutableBufferPointer { indices in
                        Reduction.argExtremum(source, into: indices.baseAddress!, outer: outer, length: length, inner: inner,
                                              largest: true, selectLast: false, parallelism: parallelism)
                        for o in 0..<outer {
                            for i in 0..<inner { target[(o * length + Int(indices[o * inner + i])) * inner + i] = 1 }
                        }
                    }
                }
            }
        }
    }
}
