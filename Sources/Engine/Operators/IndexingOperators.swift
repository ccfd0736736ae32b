import Kernels
import Tensors

/// Operators driven by index or mask tensors: gathers, scatters, selections, and the along-one-axis
/// computations TopK and CumSum. Gathers are indexed byte copies (every element type works);
/// indices are checked and negative ones counted from the end.
enum IndexingOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("Gather", versions: [1, 11, 13], contract: contract(["data", "indices:Tind"], "output")) { try Gather($0) },
        OperatorDefinition("GatherElements", versions: [11, 13], contract: contract(["data", "indices:Tind"], "output")) { try GatherElements($0) },
        OperatorDefinition("GatherND", versions: [11, 12, 13], contract: contract(["data", "indices:int64"], "output")) { try GatherND($0) },
        // 11 is deprecated (ScatterElements), with 9's formals.
        OperatorDefinition("Scatter", versions: [9, 11], contract: contract(["data", "indices:Tind", "updates"], "output",
                                                                            types: ElementTypes.allOfOpset13.subtracting([.bfloat16]))) {
            try Scatter($0, elements: true)
        },
        OperatorDefinition("ScatterElements", versions: [11, 13, 16, 18], contract: contract(["data", "indices:Tind", "updates"], "output")) {
            try Scatter($0, elements: true)
        },
        OperatorDefinition("ScatterND", versions: [11, 13, 16, 18], contract: contract(["data", "indices:int64", "updates"], "output")) {
            try Scatter($0, elements: false)
        },
        OperatorDefinition("Compress", versions: [9, 11, 28], contract: contract(["input", "condition:bool"], "output")) { try Compress($0) },
        OperatorDefinition("ReverseSequence", versions: [10, 28], contract: contract(["input", "sequence_lens:int64"], "Y")) {
            try ReverseSequence($0)
        },
        OperatorDefinition("NonZero", versions: [9, 13], contract: OperatorContract(
            inputs: [.init("X", "T")], outputs: [.init("Y", .int64)], types: ["T": ElementTypes.allOfOpset13])) { _ in NonZero() },
        OperatorDefinition("TopK", versions: [1, 10, 11, 24], contracts: { version in
            OperatorContract(inputs: [.init("X", "T")] + (version < 10 ? [] : [.init("K", .int64)]),
                             outputs: [.init("Values", "T"), .init("Indices", "I")], types: ["T": ElementTypes.numeric, "I": [.int64]])
        }) { try TopK($0) },
        OperatorDefinition("CumSum", versions: [11, 14], contract: runningContract) { try CumSum($0) },
        OperatorDefinition("CumProd", versions: [26], contract: runningContract) { try CumSum($0, product: true) },
    ]

    /// Inputs written "name" (of the element type T), "name:Tind" (int32 or int64) or "name:int64"
    /// / "name:bool" (fixed), to `output` of T.
    static func contract(_ inputs: [String], _ output: String, types: Set<DataType> = ElementTypes.allOfOpset13) -> OperatorContract {
        var variables: [String: Set<DataType>] = ["T": types]
        let parameters = inputs.map { input -> OperatorContract.Parameter in
            let parts = input.split(separator: ":").map(String.init)
            switch parts.count > 1 ? parts[1] : "T" {
            case "Tind":
                variables["Tind"] = [.int32, .int64]
                return .init(parts[0], "Tind")
            case "int64": return .init(parts[0], .int64)
            case "bool": return .init(parts[0], .bool)
            default: return .init(parts[0], "T")
            }
        }
        return OperatorContract(inputs: parameters, outputs: [.init(output, "T")], types: variables)
    }

    /// CumSum and CumProd: x of the numeric T with a sum and product, an int32 or int64 axis.
    static let runningContract = OperatorContract(
        inputs: [.init("x", "T"), .init("axis", "T2")], outputs: [.init("y", "T")],
        types: ["T": [.float, .double, .float16, .int32, .int64, .uint32, .uint64], "T2": [.int32, .int64]])
}


extension Layout {
    /// An index into an axis of `size`, negative counting from the end, or an error.
    static func index(_ index: Int, size: Int, _ what: String = "index") throws -> Int {
        let normalized = index < 0 ? index + size : index
        guard normalized >= 0 && normalized < size else { throw OpError.invalidArgument("\(what) \(index) is out of range for a dimension of \(size)") }
        return normalized
    }

    /// The values of an index tensor (int32 or int64).
    static func indices(_ tensor: Tensor?, _ what: String = "indices") throws -> [Int] {
        guard let tensor else { throw OpError("missing input '\(what)'") }
        guard tensor.dataType == .int64 || tensor.dataType == .int32 else {
            throw OpError("'\(what)' must be int32 or int64, not \(tensor.dataType)")
        }
        return tensor.integers()
    }

    /// The type of a result with `data`'s element type and the given dimensions (nil rank unknown).
    static func typed(_ data: TensorType, _ dims: [Dim]?) -> [TensorType?] { [TensorType(data.dataType, dims)] }
}

// MARK: Gathers

/// Gather: slices of `data` along `axis` picked by `indices`; output is
/// `data.shape[..<axis] + indices.shape + data.shape[(axis+1)...]`.
struct Gather: ElementMovingOperator {
    let axis: Int

    init(_ context: OperatorContext) throws { axis = try context.int("axis", default: 0) }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let data = inputs.first ?? nil else { return [] }
        let indices = inputs.count > 1 ? inputs[1] : nil
        guard let dims = data.dims, let indexDims = indices?.dims else { return [TensorType(data.dataType, nil)] }
        let axis = try Layout.axis(self.axis, rank: dims.count)
        return Layout.typed(data, Array(dims[..<axis]) + indexDims + dims[(axis + 1)...])
    }

    func move(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "data"), indexTensor = try Layout.input(inputs, 1, "indices")
        let dims = data.shape.dims
        guard !dims.isEmpty else { throw OpError.invalidArgument("cannot gather from a scalar") }
        let axis = try Layout.axis(self.axis, rank: dims.count), size = dims[axis]
        let indices = try Layout.indices(indexTensor).map { try Layout.index($0, size: size) }
        let outer = dims[..<axis].reduce(1, *), inner = Array(dims[(axis + 1)...])
        let shape = Shape(Array(dims[..<axis]) + indexTensor.shape.dims + inner)
        let innerCount = inner.reduce(1, *)
        if outer == 1 && indices.count == 1 {
            return [Layout.sharedElements(of: data, offset: indices[0] * innerCount, shape: shape)]
        }
        let gathered = try Layout.gather(data, indexShape: [outer, indices.count],
                                     elementOffsets: [(0..<outer).map { $0 * size * innerCount }, indices.map { $0 * innerCount }],
                                     itemShape: inner, context)
        return [gathered.reshaped(shape)]
    }
}

/// GatherElements: `output[i] = data[i with axis replaced by indices[i]]`; output has the indices' shape.
struct GatherElements: ElementMovingOperator {
    let axis: Int

    init(_ context: OperatorContext) throws { axis = try context.int("axis", default: 0) }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let data = inputs.first ?? nil else { return [] }
        let indices = inputs.count > 1 ? inputs[1] : nil
        return Layout.typed(data, indices?.dims)
    }

    func move(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "data"), indexTensor = try Layout.input(inputs, 1, "indices")
        let offsets = try Layout.elementOffsets(data: data.shape, indices: indexTensor, axis: axis)
        return [try Layout.gather(data, indexShape: [offsets.count], elementOffsets: [offsets], context).reshaped(indexTensor.shape)]
    }
}

extension Layout {
    /// For GatherElements and ScatterElements: the element offset in `data` that each entry of
    /// `indices` names (its own position, with `axis` replaced by its value).
    static func elementOffsets(data: Shape, indices indexTensor: Tensor, axis: Int) throws -> [Int] {
        let rank = data.rank, indexShape = indexTensor.shape
        guard rank > 0, indexShape.rank == rank else {
            throw OpError.invalidArgument("indices of rank \(indexShape.rank) do not match data of rank \(rank)")
        }
        let axis = try Layout.axis(axis, rank: rank)
        for dim in 0..<rank where dim != axis && indexShape[dim] > data[dim] {
            throw OpError.invalidArgument("indices shape \(indexShape) exceeds data shape \(data) on axis \(dim)")
        }
        let indices = try Layout.indices(indexTensor), strides = data.strides, indexStrides = indexShape.strides
        return try indices.indices.map { flat in
            var offset = 0, rest = flat
            for dim in 0..<rank {
                let position = rest / indexStrides[dim]
                rest %= indexStrides[dim]
                offset += (dim == axis ? try Layout.index(indices[flat], size: data[axis]) : position) * strides[dim]
            }
            return offset
        }
    }

    /// For GatherND and ScatterND: the element offset in `data` of the slice each index tuple names,
    /// the shape of one slice, and the shape of the tuple grid (`indices.shape` without its last axis).
    static func sliceOffsets(data: Shape, indices indexTensor: Tensor, batchDims: Int) throws
        -> (offsets: [Int], sliceShape: [Int], gridShape: [Int])
    {
        let indexShape = indexTensor.shape
        guard indexTensor.dataType == .int64 || indexTensor.dataType == .int32 else {
            throw OpError("indices must be int64, not \(indexTensor.dataType)")
        }
        guard batchDims >= 0, indexShape.rank > batchDims, data.rank > batchDims,
              let depth = indexShape.dims.last, depth >= 1, batchDims + depth <= data.rank,
              Array(indexShape.dims[..<batchDims]) == Array(data.dims[..<batchDims]) else {
            throw OpError.invalidArgument("indices \(indexShape) do not index data \(data) with batch_dims \(batchDims)")
        }
        let indices = indexTensor.integers(), strides = data.strides
        let gridShape = Array(indexShape.dims.dropLast())
        let tuples = gridShape.reduce(1, *), perBatch = gridShape[batchDims...].reduce(1, *)
        let batchStride = batchDims == 0 ? 0 : strides[batchDims - 1]
        let offsets = try (0..<tuples).map { tuple in
            var offset = (tuple / max(perBatch, 1)) * batchStride
            for j in 0..<depth {
                offset += try Layout.index(indices[tuple * depth + j], size: data[batchDims + j]) * strides[batchDims + j]
            }
            return offset
        }
        return (offsets, Array(data.dims[(batchDims + depth)...]), gridShape)
    }
}

/// GatherND: slices of `data` named by index tuples (the last axis of `indices`), after `batch_dims`
/// leading axes shared by both (12+).
struct GatherND: ElementMovingOperator {
    let batchDims: Int

    init(_ context: OperatorContext) throws { batchDims = try context.int("batch_dims", default: 0) }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let data = inputs.first ?? nil else { return [] }
        let indices = inputs.count > 1 ? inputs[1] : nil
        guard let dims = data.dims, let indexDims = indices?.dims, let depth = indexDims.last?.value,
              batchDims + depth <= dims.count else { return [TensorType(data.dataType, nil)] }
        return Layout.typed(data, indexDims.dropLast() + dims[(batchDims + depth)...])
    }

    func move(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "data"), indexTensor = try Layout.input(inputs, 1, "indices")
        let (offsets, sliceShape, gridShape) = try Layout.sliceOffsets(data: data.shape, indices: indexTensor, batchDims: batchDims)
        return [try Layout.gather(data, indexShape: [offsets.count], elementOffsets: [offsets], itemShape: sliceShape, context)
            .reshaped(Shape(gridShape + sliceShape))]
    }
}

// MARK: Scatters

/// ScatterElements (and the older Scatter) and ScatterND: a copy of `data` with `updates` written at
/// the places `indices` name, replacing or combined by `reduction` (add and mul from 16, max and
/// min from 18).
struct Scatter: Operator {
    enum Reduction: String { case none, add, mul, max, min }

    let elements: Bool
    let axis: Int
    let reduction: Reduction

    init(_ context: OperatorContext, elements: Bool) throws {
        self.elements = elements
        axis = try context.int("axis", default: 0)
        let name = try context.string("reduction", default: "none")
        guard let reduction = Reduction(rawValue: name) else { throw OpError("unknown reduction '\(name)'") }
        self.reduction = reduction
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let data = inputs.first ?? nil else { return [] }
        return [data]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "data"), indexTensor = try Layout.input(inputs, 1, "indices")
        let updates = try Layout.input(inputs, 2, "updates")
        let offsets: [Int], rowLength: Int
        if elements {
            guard updates.shape == indexTensor.shape else { throw OpError.invalidArgument("updates \(updates.shape) and indices \(indexTensor.shape) differ") }
            offsets = try Layout.elementOffsets(data: data.shape, indices: indexTensor, axis: axis)
            rowLength = 1
        } else {
            let (sliceOffsets, sliceShape, gridShape) = try Layout.sliceOffsets(data: data.shape, indices: indexTensor, batchDims: 0)
            guard updates.shape.dims == gridShape + sliceShape else {
                throw OpError.invalidArgument("updates \(updates.shape) do not match \(Shape(gridShape + sliceShape))")
            }
            offsets = sliceOffsets
            rowLength = sliceShape.reduce(1, *)
        }
        if data.dataType == .string {
            guard reduction == .none else { throw OpError("reduction '\(reduction.rawValue)' needs numbers") }
            var strings = data.strings
            let values = updates.strings
            for (row, offset) in offsets.enumerated() {
                strings.replaceSubrange(offset..<(offset + rowLength), with: values[(row * rowLength)..<((row + 1) * rowLength)])
            }
            return [Tensor(strings: strings, shape: data.shape)]
        }
        let result = try context.allocate(data.dataType, data.shape)
        Layout.copy(data, sourceStrides: [1], shape: [data.elementCount], into: result, targetStrides: [1], context)
        if reduction == .none {
            let size = data.dataType.byteSize * rowLength
            withExtendedLifetime(updates) {
                for (row, offset) in offsets.enumerated() {
                    (result.rawPointer + offset * data.dataType.byteSize).copyMemory(from: updates.rawPointer + row * size, byteCount: size)
                }
            }
        } else {
            let combine = Combine(result: result, updates: updates, offsets: offsets, rowLength: rowLength, reduction: reduction)
            guard try data.dataType.visit(combine) != nil else {
                throw OpError("reduction '\(reduction.rawValue)' needs numbers, not \(data.dataType)")
            }
        }
        return [result]
    }

    /// Integers wrap on overflow (as `ArithmeticElement` arithmetic does), never trap.
    private struct Combine: ArithmeticVisitor {
        let result: Tensor, updates: Tensor, offsets: [Int], rowLength: Int, reduction: Reduction

        func visit<T: ArithmeticElement>(_ type: T.Type) {
            let target = result.mutablePointer(as: T.self), source = updates.pointer(as: T.self)
            withExtendedLifetime(updates) {
                for (row, offset) in offsets.enumerated() {
                    for j in 0..<rowLength {
                        let value = source[row * rowLength + j], slot = target + offset + j
                        switch reduction {
                        case .add: slot.pointee = T.add(slot.pointee, value)
                        case .mul: slot.pointee = T.multiply(slot.pointee, value)
                        case .max: slot.pointee = Swift.max(slot.pointee, value)
                        case .min: slot.pointee = Swift.min(slot.pointee, value)
                        case .none: slot.pointee = value
                        }
                    }
                }
            }
        }
    }
}

// MARK: Selections

/// Compress: the slices along `axis` (or elements of the flattened input) whose `condition` is true.
struct Compress: ElementMovingOperator {
    let axis: Int?

    init(_ context: OperatorContext) throws { axis = try context.int("axis") }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let data = inputs.first ?? nil else { return [] }
        guard let axis, let dims = data.dims else { return [TensorType(data.dataType, axis == nil ? [.unknown] : nil)] }
        let normalized = try Layout.axis(axis, rank: dims.count)
        return Layout.typed(data, dims.enumerated().map { $0.offset == normalized ? .unknown : $0.element })
    }

    func move(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        var data = try Layout.input(inputs, 0, "input")
        let condition = try Layout.input(inputs, 1, "condition")
        guard condition.shape.rank == 1 else {
            throw OpError.invalidArgument("condition must be a 1-D bool tensor, not \(condition.dataType)\(condition.shape)")
        }
        if axis == nil { data = data.reshaped([data.elementCount]) }
        let dims = data.shape.dims
        let axis = try Layout.axis(self.axis ?? 0, rank: dims.count), size = dims[axis]
        let flags = condition.doubles().map { $0 != 0 }
        if let beyond = flags.indices.first(where: { $0 >= size && flags[$0] }) {
            throw OpError.invalidArgument("condition selects index \(beyond) of a dimension of \(size)")
        }
        let selected = flags.indices.filter { flags[$0] }
        let outer = dims[..<axis].reduce(1, *), inner = Array(dims[(axis + 1)...]), innerCount = inner.reduce(1, *)
        var shape = dims
        shape[axis] = selected.count
        let gathered = try Layout.gather(data, indexShape: [outer, selected.count],
                                     elementOffsets: [(0..<outer).map { $0 * size * innerCount }, selected.map { $0 * innerCount }],
                                     itemShape: inner, context)
        return [gathered.reshaped(Shape(shape))]
    }
}

/// ReverseSequence: along `time_axis`, the first `sequence_lens[b]` steps of each batch entry reversed.
struct ReverseSequence: ElementMovingOperator {
    let timeAxis: Int
    let batchAxis: Int

    init(_ context: OperatorContext) throws {
        timeAxis = try context.int("time_axis", default: 0)
        batchAxis = try context.int("batch_axis", default: 1)
        guard Set([timeAxis, batchAxis]) == [0, 1] else {
            throw OpError("time_axis \(timeAxis) and batch_axis \(batchAxis) must be 0 and 1")
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] { [inputs.first ?? nil] }

    func move(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "input")
        let lengths = try Layout.indices(Layout.input(inputs, 1, "sequence_lens"), "sequence_lens")
        let dims = data.shape.dims
        guard dims.count >= 2, lengths.count == dims[batchAxis] else {
            throw OpError.invalidArgument("sequence_lens has \(lengths.count) entries for input \(data.shape) with batch_axis \(batchAxis)")
        }
        let steps = dims[timeAxis]
        if let bad = lengths.first(where: { $0 < 0 || $0 > steps }) {
            throw OpError.invalidArgument("sequence length \(bad) is out of range for \(steps) steps")
        }
        let inner = Array(dims[2...]), innerCount = inner.reduce(1, *)
        let offsets = (0..<(dims[0] * dims[1])).map { flat in
            let (first, second) = (flat / dims[1], flat % dims[1])
            let (time, batch) = timeAxis == 0 ? (first, second) : (second, first)
            let source = time < lengths[batch] ? lengths[batch] - 1 - time : time
            return (timeAxis == 0 ? source * dims[1] + batch : batch * dims[1] + source) * innerCount
        }
        return [try Layout.gather(data, indexShape: [offsets.count], elementOffsets: [offsets], itemShape: inner, context)
            .reshaped(data.shape)]
    }
}

/// NonZero: the coordinates of every non-zero element, as int64 `[rank, count]` in row-major order.
struct NonZero: Operator {
    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        [TensorType(.int64, [(inputs.first ?? nil)?.rank.map { .fixed($0) } ?? .unknown, .unknown])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "X")
        let flags: [Bool]
        switch data.dataType {
        case .bool: flags = data.scalars(as: Bool.self)
        case .string: flags = data.strings.map { !$0.isEmpty }
        default: flags = data.doubles().map { $0 != 0 }
        }
        let positions = flags.indices.filter { flags[$0] }
        let rank = data.shape.rank, strides = data.shape.strides
        var coordinates = [Int64](repeating: 0, count: rank * positions.count)
        for (column, position) in positions.enumerated() {
            var rest = position
            for axis in 0..<rank {
                coordinates[axis * positions.count + column] = Int64(rest / strides[axis])
                rest %= strides[axis]
            }
        }
        return [Tensor(coordinates, shape: [rank, positions.count])]
    }
}

// MARK: Along one axis

/// Walks the `[outer, axis, inner]` view of a shape: one call per (outer, inner) lane, with the
/// element offset of the lane's first entry and the stride between entries.
private func forEachLane(_ dims: [Int], axis: Int, _ body: (_ start: Int, _ stride: Int) -> Void) {
    let outer = dims[..<axis].reduce(1, *), size = dims[axis], inner = dims[(axis + 1)...].reduce(1, *)
    for o in 0..<outer {
        for i in 0..<inner { body(o * size * inner + i, inner) }
    }
}

/// TopK: the `k` largest (or smallest, 11+) entries along `axis` and their int64 indices, sorted;
/// equal values keep the lower index first. `k` is an attribute in version 1, an input from 10.
struct TopK: Operator {
    let axis: Int
    let largest: Bool
    let attributeK: Int?
    var knownK: Int?

    init(_ context: OperatorContext) throws {
        axis = try context.int("axis", default: -1)
        largest = try context.int("largest", default: 1) != 0
        attributeK = context.version < 10 ? try context.required("k", context.int) : nil
        knownK = attributeK ?? Layout.knownIntegers(context.constant(1))?.first
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let data = inputs.first ?? nil else { return [] }
        guard var dims = data.dims else { return [TensorType(data.dataType, nil), TensorType(.int64, nil)] }
        dims[try Layout.axis(axis, rank: dims.count)] = knownK.map { .fixed($0) } ?? .unknown
        return [TensorType(data.dataType, dims), TensorType(.int64, dims)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "X")
        let k = try attributeK ?? Layout.scalar(Layout.input(inputs, 1, "K"), "K")
        let axis = try Layout.axis(self.axis, rank: data.shape.rank)
        guard (0...data.shape[axis]).contains(k) else { throw OpError.invalidArgument("k \(k) is out of range for a dimension of \(data.shape[axis])") }
        var dims = data.shape.dims
        dims[axis] = k
        let values = try context.allocate(data.dataType, Shape(dims)), indices = try context.allocate(.int64, Shape(dims))
        guard try data.dataType.visit(Selection(data: data, axis: axis, k: k, largest: largest, values: values, indices: indices)) != nil else {
            throw OpError("TopK needs numbers, not \(data.dataType)")
        }
        return [values, indices]
    }

    private struct Selection: NumericVisitor {
        let data: Tensor, axis: Int, k: Int, largest: Bool, values: Tensor, indices: Tensor

        func visit<T: NumericElement>(_ type: T.Type) {
            let source = data.pointer(as: T.self), size = data.shape[axis]
            let targetValues = values.mutablePointer(as: T.self), targetIndices = indices.mutablePointer(as: Int64.self)
            var order = [Int](repeating: 0, count: size)
            var lane = 0
            let inner = data.shape.dims[(axis + 1)...].reduce(1, *)
            withExtendedLifetime(data) {
                forEachLane(data.shape.dims, axis: axis) { start, stride in
                    for index in 0..<size { order[index] = index }
                    order.sort { a, b in
                        let x = source[start + a * stride], y = source[start + b * stride]
                        if x == y { return a < b }
                        return largest ? x > y : x < y
                    }
                    // Output lanes follow the same outer/inner walk with `k` entries.
                    let outputStart = (lane / inner) * k * inner + lane % inner
                    for rank in 0..<k {
                        targetValues[outputStart + rank * stride] = source[start + order[rank] * stride]
                        targetIndices[outputStart + rank * stride] = Int64(order[rank])
                    }
                    lane += 1
                }
            }
        }
    }
}

/// CumSum: running sums along the `axis` input, optionally `exclusive` and/or in `reverse`.
struct CumSum: Operator {
    let exclusive: Bool
    let reverse: Bool
    /// CumProd: running products instead of sums.
    let product: Bool

    init(_ context: OperatorContext, product: Bool = false) throws {
        self.product = product
        exclusive = try context.int("exclusive", default: 0) != 0
        reverse = try context.int("reverse", default: 0) != 0
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.first ?? nil else { return [] }
        return [x]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try Layout.input(inputs, 0, "x")
        guard x.shape.rank > 0 else { throw OpError.invalidArgument("CumSum needs a tensor of rank 1 or more") }
        let axis = try Layout.axis(Layout.scalar(Layout.input(inputs, 1, "axis"), "axis"), rank: x.shape.rank)
        let result = try context.allocate(x.dataType, x.shape)
        guard try x.dataType.visit(RunningSum(x: x, axis: axis, exclusive: exclusive, reverse: reverse, product: product, result: result)) != nil else {
            throw OpError("CumSum needs numbers, not \(x.dataType)")
        }
        return [result]
    }

    /// Integer sums and products wrap on overflow, never trap.
    private struct RunningSum: ArithmeticVisitor {
        let x: Tensor, axis: Int, exclusive: Bool, reverse: Bool, product: Bool, result: Tensor

        func visit<T: ArithmeticElement>(_ type: T.Type) {
            let source = x.pointer(as: T.self), target = result.mutablePointer(as: T.self), size = x.shape[axis]
            let start = product ? T(casting: .signed(1)) : T.zero
            withExtendedLifetime(x) {
                forEachLane(x.shape.dims, axis: axis) { first, stride in
                    var sum = start
                    for step in 0..<size {
                        let offset = first + (reverse ? size - 1 - step : step) * stride
                        if exclusive {
                            target[offset] = sum
                            sum = product ? T.multiply(sum, source[offset]) : T.add(sum, source[offset])
                        } else {
                            sum = product ? T.multiply(sum, source[offset]) : T.add(sum, source[offset])
                            target[offset] = sum
                        }
                    }
                }
            }
        }
    }
}
