import Kernels
import Tensors

/// An operator that only moves elements (never computes with them), written once over byte sizes.
/// It runs on string tensors too: the strings are numbered, the numbers are moved instead, and the
/// moved numbers are turned back into strings.
protocol ElementMovingOperator: Operator {
    /// Whether input `position` holds elements to move (the other inputs are shapes, axes, indices).
    func movesElements(ofInput position: Int) -> Bool
    /// The operator on byte-sized elements (numeric and bool tensors, and string proxies).
    func move(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor]
}

extension ElementMovingOperator {
    func movesElements(ofInput position: Int) -> Bool { position == 0 }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        guard inputs.contains(where: { $0?.dataType == .string }) else { return try move(inputs, context) }
        var strings: [String] = []
        var proxies = inputs
        for (position, input) in inputs.enumerated() where movesElements(ofInput: position) {
            guard let input else { continue }
            guard input.dataType == .string else { throw OpError("cannot mix string and \(input.dataType) inputs") }
            proxies[position] = Tensor((strings.count..<(strings.count + input.elementCount)).map(Int64.init), shape: input.shape)
            strings += input.strings
        }
        return try move(proxies, context).map { moved in
            Tensor(strings: moved.scalars(as: Int64.self).map { strings[Int($0)] }, shape: moved.shape)
        }
    }
}

/// Shape arithmetic and checks shared by the layout operators.
enum Layout {
    /// Most elements an operator may produce from sizes it reads from its inputs; beyond this a
    /// request is treated as bad input rather than allowed to exhaust memory.
    static var maximumElementCount: Int { ExecutionContext.maximumElementCount }

    /// `axis` normalised into `0..<rank` (negative counts from the end), or an error naming `what`.
    static func axis(_ axis: Int, rank: Int, _ what: String = "axis") throws -> Int {
        guard let normalized = Shape.normalize(axis: axis, rank: rank) else {
            throw OpError.invalidArgument("\(what) \(axis) is out of range for rank \(rank)")
        }
        return normalized
    }

    /// Normalised, distinct axes.
    static func axes(_ axes: [Int], rank: Int, _ what: String = "axes") throws -> [Int] {
        let normalized = try axes.map { try axis($0, rank: rank, what) }
        guard Set(normalized).count == normalized.count else { throw OpError.invalidArgument("\(what) \(axes) repeat an axis") }
        return normalized
    }

    /// `a × b` for sizes read from input data, or an error when it overflows.
    static func multiplied(_ a: Int, _ b: Int, _ what: String = "output shape") throws -> Int {
        let (product, overflow) = a.multipliedReportingOverflow(by: b)
        guard !overflow else { throw OpError.invalidArgument("\(what) is too large (\(a) × \(b))") }
        return product
    }

    /// A shape built from sizes read from input data: every size non-negative and the total bounded
    /// (zero sizes counted as one, see `Shape.boundedElementCount`).
    static func checkedShape(_ dims: [Int], _ what: String = "output shape") throws -> Shape {
        guard dims.allSatisfy({ $0 >= 0 }) else { throw OpError.invalidArgument("\(what) \(dims) has a negative dimension") }
        let shape = Shape(dims)
        guard shape.boundedElementCount(limit: maximumElementCount) != nil else {
            throw OpError.invalidArgument("\(what) \(dims) is too large")
        }
        return shape
    }

    /// The values of an integer input (shape, axes, pads, indices), or an error naming it.
    static func integers(_ tensor: Tensor?, _ what: String) throws -> [Int] {
        guard let tensor else { throw OpError("missing input '\(what)'") }
        guard tensor.dataType.isInteger else { throw OpError("'\(what)' must be integers, not \(tensor.dataType)") }
        return tensor.integers()
    }

    /// The values of an integer input known at load (a constant), or nil when it is not known or
    /// not integers: then the operator reads it when it runs, and that check names the problem.
    static func knownIntegers(_ tensor: Tensor?) -> [Int]? {
        guard let tensor, tensor.dataType.isInteger else { return nil }
        return tensor.integers()
    }

    /// The values of a sizes input that the oldest schemas type as the data's floating-point T
    /// (Split 1, Tile 1), or of an integer input: each value finite, whole and within `Int`.
    static func wholeNumbers(_ tensor: Tensor?, _ what: String) throws -> [Int] {
        guard let tensor else { throw OpError("missing input '\(what)'") }
        if tensor.dataType.isInteger { return tensor.integers() }
        guard tensor.dataType.isFloatingPoint else { throw OpError("'\(what)' must be numbers, not \(tensor.dataType)") }
        return try tensor.doubles().map { value in
            guard let whole = Int(exactly: value) else {
                throw OpError.invalidArgument("'\(what)' holds \(value), not a whole number")
            }
            return whole
        }
    }

    /// The values of an optional 1-D integer input; nil when it is omitted.
    static func optionalIntegers(_ tensor: Tensor?, _ what: String) throws -> [Int]? {
        guard let tensor else { return nil }
        return try integers(tensor, what)
    }

    /// The single value of a scalar (or one-element) input.
    static func scalar(_ tensor: Tensor?, _ what: String) throws -> Int {
        let values = try integers(tensor, what)
        guard values.count == 1 else { throw OpError.invalidArgument("'\(what)' must hold one value, not \(values.count)") }
        return values[0]
    }

    /// The single value of a one-element `wholeNumbers` input (Tile 1's `tiles` and `axis`).
    static func wholeScalar(_ tensor: Tensor?, _ what: String) throws -> Int {
        let values = try wholeNumbers(tensor, what)
        guard values.count == 1 else { throw OpError.invalidArgument("'\(what)' must hold one value, not \(values.count)") }
        return values[0]
    }

    /// `data` cut along `axis` into consecutive parts of `sizes` (which sum to the axis, checked by
    /// the caller): views of its elements when nothing precedes the axis, copies otherwise.
    static func split(_ data: Tensor, axis: Int, sizes: [Int], _ context: ExecutionContext) throws -> [Tensor] {
        let dims = data.shape.dims
        let outer = dims[..<axis].reduce(1, *), inner = dims[(axis + 1)...].reduce(1, *)
        var offset = 0
        return try sizes.map { size in
            var partDims = dims
            partDims[axis] = size
            defer { offset += size }
            if outer == 1 { return sharedElements(of: data, offset: offset * inner, shape: Shape(partDims)) }
            let part = try context.allocate(data.dataType, Shape(partDims))
            copy(data, sourceOffset: offset * inner, sourceStrides: [dims[axis] * inner, 1], shape: [outer, size * inner],
                 into: part, targetStrides: [size * inner, 1], context)
            return part
        }
    }

    /// The input at `position`, which must be present.
    static func input(_ inputs: [Tensor?], _ position: Int, _ what: String) throws -> Tensor {
        guard position < inputs.count, let tensor = inputs[position] else { throw OpError("missing input '\(what)'") }
        return tensor
    }

    /// A tensor over `shape.elementCount` elements of `tensor` starting at element `offset`, sharing its
    /// bytes (contiguous slices and splits need no copy).
    static func sharedElements(of tensor: Tensor, offset: Int, shape: Shape) -> Tensor {
        if offset == 0 && shape.elementCount == tensor.elementCount { return tensor.reshaped(shape) }
        switch tensor.storage {
        case .strings(let strings):
            return Tensor(strings: Array(strings[offset..<(offset + shape.elementCount)]), shape: shape)
        case .bytes(let buffer):
            let size = tensor.dataType.byteSize
            let view = TensorBuffer.borrowing(buffer.baseAddress + offset * size, byteCount: shape.elementCount * size, owner: buffer)
            return Tensor(dataType: tensor.dataType, shape: shape, storage: .bytes(view))
        }
    }

    /// Copies the view of `source` (starting at element `sourceOffset`, `sourceStrides` per axis of `shape`)
    /// into `target` (from element `targetOffset`, `targetStrides`). Strides are in elements.
    static func copy(_ source: Tensor, sourceOffset: Int = 0, sourceStrides: [Int], shape: [Int],
                     into target: Tensor, targetOffset: Int = 0, targetStrides: [Int],
                     _ context: ExecutionContext) {
        let size = source.dataType.byteSize
        withExtendedLifetime(source) {
            TensorCopy.strided(shape: shape, elementSize: size,
                               source: source.rawPointer + sourceOffset * size, sourceStrides: sourceStrides,
                               target: target.rawPointer + targetOffset * size, targetStrides: targetStrides,
                               parallelism: context.parallelism)
        }
    }

    /// A new tensor gathered from `source` through per-axis offset tables: the item at index `i` of
    /// `indexShape` is the block of `itemShape` elements at element `Σ elementOffsets[a][i[a]]` of
    /// `source` (see `TensorCopy.indexed`). The result's shape is `indexShape + itemShape`; it is
    /// written into `target` when given (allocated before the offset tables, which can be large,
    /// so that a result past the run's budget costs nothing).
    static func gather(_ source: Tensor, indexShape: [Int], elementOffsets: [[Int]], itemShape: [Int] = [],
                       into target: Tensor? = nil, _ context: ExecutionContext) throws -> Tensor {
        let size = source.dataType.byteSize, itemElements = itemShape.reduce(1, *)
        let result = try target ?? context.allocate(source.dataType, Shape(indexShape + itemShape))
        guard itemElements > 0 else { return result }
        withExtendedLifetime(source) {
            TensorCopy.indexed(shape: indexShape, elementSize: size * itemElements, source: source.rawPointer,
                               byteOffsets: elementOffsets.map { $0.map { $0 * size } },
                               target: result.rawPointer, parallelism: context.parallelism)
        }
        return result
    }

    /// Fills `count` elements of `target` from element `offset` with the single element of `value`.
    static func fill(_ target: Tensor, offset: Int = 0, count: Int, with value: Tensor) {
        let size = target.dataType.byteSize
        withExtendedLifetime(value) {
            TensorCopy.fill(target.rawPointer + offset * size, count: count, elementSize: size, value: value.rawPointer)
        }
    }

    /// Row-major strides of `dims`, in elements.
    static func strides(_ dims: [Int]) -> [Int] { Shape(dims).strides }
}

// MARK: Types

extension Layout {
    /// The one-element tensor of `dataType` holding `value` (0, 1, a pad value, an extrapolation value).
    static func element(_ value: Double, as dataType: DataType) throws -> Tensor {
        switch dataType {
        case .bool: return Tensor(scalar: value != 0)
        case .string: throw OpError("a string tensor cannot hold the number \(value)")
        default:
            guard let tensor = try dataType.visit(ElementMaker(value: value)) else { throw OpError("unsupported type \(dataType)") }
            return tensor
        }
    }

    private struct ElementMaker: NumericVisitor {
        let value: Double
        func visit<T: NumericElement>(_ type: T.Type) -> Tensor { Tensor(scalar: T(converting: value)) }
    }

    /// Checks that an input's element type is one of `allowed`.
    static func require(_ type: TensorType?, _ what: String, in allowed: (DataType) -> Bool, _ expected: String) throws {
        guard let type, !allowed(type.dataType) else { return }
        throw OpError("'\(what)' must be \(expected), not \(type.dataType)")
    }

    /// Checks that an input (shape, axes, indices) has an integer element type.
    static func requireIntegers(_ type: TensorType?, _ what: String) throws {
        try require(type, what, in: \.isInteger, "integers")
    }

    /// The dimensions of a type whose rank is known, with unknown sizes.
    static func unknownDims(_ rank: Int) -> [Dim] { Array(repeating: .unknown, count: rank) }

    /// The product of dimensions: fixed when all are known (and it fits in an Int); a lone symbolic
    /// dimension times ones keeps its name.
    static func product(_ dims: some Collection<Dim>) -> Dim {
        var product = 1
        var dynamic: Dim?
        for dim in dims {
            if let value = dim.value {
                let (next, overflow) = product.multipliedReportingOverflow(by: value)
                if overflow { return .unknown }
                product = next
            } else if dynamic == nil {
                dynamic = dim
            } else {
                dynamic = .unknown
            }
        }
        // One symbolic dimension times ones keeps its name ([N, 1, 1] flattens to N).
        guard let dynamic, product != 0 else { return .fixed(product) }
        return product == 1 ? dynamic : .unknown
    }
}
