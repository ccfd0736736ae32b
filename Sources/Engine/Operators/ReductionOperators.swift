import Kernels
import Tensors

/// Reductions over a set of axes (Reduce*) and index reductions along one axis (ArgMax, ArgMin).
enum ReductionOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("ReduceSum", versions: [1, 11, 13], contracts: reduce(.sum, axesInputSince: 13)) {
            try Reduce(.sum, $0, axesInputSince: 13)
        },
        OperatorDefinition("ReduceMean", versions: [1, 11, 13, 18], contracts: reduce(.mean)) { try Reduce(.mean, $0) },
        OperatorDefinition("ReduceMax", versions: [1, 11, 12, 13, 18, 20], contracts: reduce(.maximum)) { try Reduce(.maximum, $0) },
        OperatorDefinition("ReduceMin", versions: [1, 11, 12, 13, 18, 20], contracts: reduce(.minimum)) { try Reduce(.minimum, $0) },
        OperatorDefinition("ReduceProd", versions: [1, 11, 13, 18], contracts: reduce(.product)) { try Reduce(.product, $0) },
        OperatorDefinition("ReduceL1", versions: [1, 11, 13, 18], contracts: reduce(.l1)) { try Reduce(.l1, $0) },
        OperatorDefinition("ReduceL2", versions: [1, 11, 13, 18], contracts: reduce(.l2)) { try Reduce(.l2, $0) },
        OperatorDefinition("ReduceLogSum", versions: [1, 11, 13, 18, 28], contracts: reduce(.logSum)) { try Reduce(.logSum, $0) },
        OperatorDefinition("ReduceLogSumExp", versions: [1, 11, 13, 18, 28], contracts: reduce(.logSumExp)) {
            try Reduce(.logSumExp, $0)
        },
        OperatorDefinition("ReduceSumSquare", versions: [1, 11, 13, 18], contracts: reduce(.sumSquare)) { try Reduce(.sumSquare, $0) },
        OperatorDefinition("ArgMax", versions: [1, 11, 12, 13], contract: argExtremum) { try ArgExtremum(largest: true, $0) },
        OperatorDefinition("ArgMin", versions: [1, 11, 12, 13], contract: argExtremum) { try ArgExtremum(largest: false, $0) },
    ]

    /// `data` of T reduced to `reduced` of T, over the axes of an attribute or, from
    /// `axesInputSince`, of the optional int64 input `axes`. T: the ONNX types the function takes
    /// that we compute with (float16 in float; bfloat16 widened before).
    static func reduce(_ function: Reduce.Function, axesInputSince: Int = 18) -> @Sendable (Int) -> OperatorContract {
        let wideIntegers: Set<DataType> = [.int32, .int64, .uint32, .uint64]
        let allowed = switch function {
        case .l2, .logSum, .logSumExp: ElementTypes.floatingPoint
        case .maximum, .minimum: ElementTypes.floatingPoint.union(wideIntegers).union([.int8, .uint8, .bool])
        case .sum, .mean, .product, .l1, .sumSquare: ElementTypes.floatingPoint.union(wideIntegers)
        }
        let output: [OperatorContract.Parameter] = [.init("reduced", "T")]
        let attribute = OperatorContract(inputs: [.init("data", "T")], outputs: output, types: ["T": allowed])
        let input = OperatorContract(inputs: [.init("data", "T"), .init("axes", .int64, .optional)], outputs: output, types: ["T": allowed])
        return { version in version >= axesInputSince ? input : attribute }
    }

    /// ArgMax and ArgMin: `data` of any numeric type to int64 indices.
    static let argExtremum = OperatorContract(inputs: [.init("data", "T")], outputs: [.init("reduced", .int64)],
                                              types: ["T": ElementTypes.numeric])
}

/// Reduce* over the axes from the `axes` attribute (older opsets) or the optional second input.
struct Reduce: Operator {
    enum Function { case sum, mean, maximum, minimum, product, l1, l2, logSum, logSumExp, sumSquare }
    let function: Function
    let keepDims: Bool
    /// With no axes: leave every element unreduced instead of reducing all of them.
    let noopWithEmptyAxes: Bool
    /// The axes when known at load (attribute, or constant input); nil means "from the input".
    var knownAxes: [Int]?
    let axesFromInput: Bool

    init(_ function: Function, _ context: OperatorContext, axesInputSince: Int = 18) throws {
        self.function = function
        keepDims = try context.int("keepdims", default: 1) != 0
        noopWithEmptyAxes = try context.int("noop_with_empty_axes", default: 0) != 0
        axesFromInput = context.version >= axesInputSince
        if axesFromInput {
            knownAxes = context.hasInput(1) ? Layout.knownIntegers(context.constant(1)) : []
        } else {
            knownAxes = try context.ints("axes") ?? []
        }
    }

    /// A reduction over fixed axes, for operators composed from reductions.
    init(_ function: Function, axes: [Int], keepDims: Bool) {
        self.function = function
        self.keepDims = keepDims
        noopWithEmptyAxes = false
        knownAxes = axes
        axesFromInput = false
    }

    /// The kernel for the first pass over the data, and for every later pass (over data the first
    /// already mapped: squares and absolute values are summed plainly).
    private var kinds: (first: Reduction.Kind?, rest: Reduction.Kind?) {
        switch function {
        case .sum, .mean, .logSum: (.sum, .sum)
        case .sumSquare, .l2: (.sumOfSquares, .sum)
        case .l1: (.sumOfAbsolutes, .sum)
        case .product: (.product, .product)
        case .maximum: (.maximum, .maximum)
        case .minimum: (.minimum, .minimum)
        case .logSumExp: (nil, nil)
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        guard let dims = x.dims else { return [TensorType(x.dataType, nil)] }
        guard let axes = knownAxes else {
            // Axes known only at run time: with keepdims the rank still is the input's.
            return [TensorType(x.dataType, keepDims ? dims.map { _ in .unknown } : nil)]
        }
        let reduced = try normalizedAxes(axes, rank: dims.count)
        return [TensorType(x.dataType, reducedDims(dims, reduced, fixed: .fixed(1)))]
    }

    /// Sorted, distinct, non-negative axes; every axis when `axes` is empty (unless a no-op).
    private func normalizedAxes(_ axes: [Int], rank: Int) throws -> Set<Int> {
        if axes.isEmpty { return noopWithEmptyAxes ? [] : Set(0..<rank) }
        return Set(try axes.map { axis in
            guard let normalized = Shape.normalize(axis: axis, rank: rank) else {
                throw OpError.invalidArgument("axis \(axis) is out of range for rank \(rank)")
            }
            return normalized
        })
    }

    private func reducedDims<D>(_ dims: [D], _ axes: Set<Int>, fixed one: D) -> [D] {
        dims.indices.compactMap { axes.contains($0) ? (keepDims ? one : nil) : dims[$0] }
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let axesTensor = axesFromInput ? inputs.optional(1) : nil
        let axes = try normalizedAxes(Layout.optionalIntegers(axesTensor, "axes") ?? knownAxes ?? [], rank: x.shape.rank)
        let outputShape = Shape(reducedDims(x.shape.dims, axes, fixed: 1))
        if x.dataType == .bool {
            // Max and min of bools are "any" and "all": reduce the 0/1 bytes, then normalise.
            let bytes = try reduce(Tensor(dataType: .uint8, shape: x.shape, storage: x.storage), axes, context)
            let flags = try context.allocate(.bool, outputShape)
            mapElements(bytes, into: flags, context.parallelism, Elementwise.IsNonzero<UInt8>())
            return [flags]
        }
        if x.dataType == .float16 {
            // Computed in float, as ONNX Runtime does: float16 sums would round at every step.
            let reduced = try reduce(convert(x, to: .float, context), axes, context)
            return [try convert(reduced, to: .float16, context).reshaped(outputShape)]
        }
        return [try reduce(x, axes, context).reshaped(outputShape)]
    }

    /// Reduces `axes` of `x`, keeping them as dimensions of size 1.
    private func reduce(_ x: Tensor, _ axes: Set<Int>, _ context: ExecutionContext) throws -> Tensor {
        // Runs of consecutive axes reduce in one pass each, innermost run first.
        var runs: [ClosedRange<Int>] = []
        for axis in axes.sorted() {
            if let last = runs.last, last.upperBound == axis - 1 {
                runs[runs.count - 1] = last.lowerBound...axis
            } else {
                runs.append(axis...axis)
            }
        }
        var dims = x.shape.dims
        var result = x
        let (first, rest) = kinds
        if runs.isEmpty {
            // No reduction, but each element still goes through the function (ReduceSumSquare squares).
            result = try pass(first, result, outer: x.elementCount, length: 1, inner: 1, context)
        }
        for (index, run) in runs.reversed().enumerated() {
            let outer = dims[..<run.lowerBound].reduce(1, *)
            let length = dims[run].reduce(1, *)
            let inner = dims[(run.upperBound + 1)...].reduce(1, *)
            result = try pass(index == 0 ? first : rest, result, outer: outer, length: length, inner: inner, context)
            for axis in run { dims[axis] = 1 }
        }
        let count = axes.reduce(1) { $0 * x.shape[$1] }
        return try finish(result.reshaped(Shape(dims)), count: count, context)
    }

    /// One reduction of the middle axis of `[outer, length, inner]` (log-sum-exp when `kind` is nil).
    private func pass(_ kind: Reduction.Kind?, _ x: Tensor, outer: Int, length: Int, inner: Int,
                      _ context: ExecutionContext) throws -> Tensor {
        let y = try context.allocate(x.dataType, Shape([outer, inner]))
        if let kind {
            _ = try x.dataType.visit(ReduceKernel(kind: kind, x: x, y: y, outer: outer, length: length, inner: inner,
                                                  parallelism: context.parallelism))
        } else {
            _ = try x.dataType.visit(LogSumExpKernel(x: x, y: y, outer: outer, length: length, inner: inner,
                                                     parallelism: context.parallelism))
        }
        return y
    }

    /// The final step of functions that are more than a plain reduction.
    private func finish(_ x: Tensor, count: Int, _ context: ExecutionContext) throws -> Tensor {
        switch function {
        case .mean:
            let y = try context.allocate(x.dataType, x.shape)
            _ = try x.dataType.visit(MeanKernel(x: x, y: y, count: count, parallelism: context.parallelism))
            return y
        case .l2: return try RealUnary(function: .sqrt).run([x], context)[0]
        case .logSum: return try RealUnary(function: .log).run([x], context)[0]
        case .sum, .maximum, .minimum, .product, .l1, .logSumExp, .sumSquare: return x
        }
    }

    private struct ReduceKernel: ArithmeticVisitor {
        let kind: Reduction.Kind, x: Tensor, y: Tensor, outer: Int, length: Int, inner: Int, parallelism: Parallelism
        func visit<T: ArithmeticElement>(_: T.Type) {
            withExtendedLifetime(x) {
                Reduction.reduce(kind, x.pointer(as: T.self), into: y.mutablePointer(as: T.self), outer: outer,
                                 length: length, inner: inner, parallelism: parallelism)
            }
        }
    }

    private struct LogSumExpKernel: RealVisitor {
        let x: Tensor, y: Tensor, outer: Int, length: Int, inner: Int, parallelism: Parallelism
        func visit<T: RealElement>(_: T.Type) {
            withExtendedLifetime(x) {
                Reduction.logSumExp(x.pointer(as: T.self), into: y.mutablePointer(as: T.self), outer: outer,
                                    length: length, inner: inner, parallelism: parallelism)
            }
        }
    }

    /// Sum divided by the count (integer types divide truncating, like ONNX Runtime).
    private struct MeanKernel: ArithmeticVisitor {
        let x: Tensor, y: Tensor, count: Int, parallelism: Parallelism
        func visit<T: ArithmeticElement>(_: T.Type) {
            let divisor = T(casting: .signed(Int64(count)))
            mapElements(x, into: y, parallelism, Elementwise.DivideBy(divisor: divisor))
        }
    }
}

/// ArgMax and ArgMin: int64 indices of the extreme values along one axis.
struct ArgExtremum: Operator {
    let largest: Bool
    let axis: Int
    let keepDims: Bool
    let selectLast: Bool

    init(largest: Bool, _ context: OperatorContext) throws {
        self.largest = largest
        axis = try context.int("axis", default: 0)
        keepDims = try context.int("keepdims", default: 1) != 0
        selectLast = try context.int("select_last_index", default: 0) != 0
    }

    private func normalizedAxis(rank: Int) throws -> Int {
        guard let axis = Shape.normalize(axis: axis, rank: rank) else {
            throw OpError.invalidArgument("axis \(axis) is out of range for rank \(rank)")
        }
        return axis
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        guard var dims = x.dims else { return [TensorType(.int64, nil)] }
        let axis = try normalizedAxis(rank: dims.count)
        if keepDims { dims[axis] = .fixed(1) } else { dims.remove(at: axis) }
        return [TensorType(.int64, dims)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let axis = try normalizedAxis(rank: x.shape.rank)
        guard x.shape[axis] > 0 else { throw OpError.invalidArgument("cannot take the extreme of an empty axis \(axis) in shape \(x.shape)") }
        var dims = x.shape.dims
        if keepDims { dims[axis] = 1 } else { dims.remove(at: axis) }
        let y = try context.allocate(.int64, Shape(dims))
        _ = try x.dataType.visit(Kernel(operator: self, x: x, y: y, axis: axis, parallelism: context.parallelism))
        return [y]
    }

    private struct Kernel: ArithmeticVisitor {
        let `operator`: ArgExtremum, x: Tensor, y: Tensor, axis: Int, parallelism: Parallelism
        func visit<T: ArithmeticElement>(_: T.Type) {
            let dims = x.shape.dims
            withExtendedLifetime(x) {
                Reduction.argExtremum(x.pointer(as: T.self), into: y.mutablePointer(as: Int64.self),
                                      outer: dims[..<axis].reduce(1, *), length: dims[axis],
                                      inner: dims[(axis + 1)...].reduce(1, *), largest: `operator`.largest,
                                      selectLast: `operator`.selectLast, parallelism: parallelism)
            }
        }
    }
}
