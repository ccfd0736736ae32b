import Kernels
import Tensors

/// Operators that copy elements into a new arrangement: transposes, joins and splits, slices,
/// padding, repetition. Each is a strided (or indexed) byte copy, so every element type works.
enum DataMovementOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("Transpose", versions: [1, 13, 21, 23, 24, 25], contract: contract("data", "transposed")) { try Transpose($0) },
        OperatorDefinition("Concat", versions: [1, 4, 11, 13], contract: OperatorContract(
            inputs: [.init("inputs", "T", .variadic(min: 1))], outputs: [.init("concat_result", "T")],
            types: ["T": ElementTypes.allOfOpset13])) { try Concat($0) },
        // Split 1 takes floating-point data only, and types its `split` input as that T.
        OperatorDefinition("Split", versions: [1, 2, 11, 13, 18], contracts: { version in
            let sizes: [OperatorContract.Parameter] = switch version {
            case 1: [.init("split", "T", .optional)]
            case ..<13: []
            default: [.init("split", .int64, .optional)]
            }
            // Split 1's schema names its outputs "outputs...".
            return OperatorContract(inputs: [.init("input", "T")] + sizes, outputs: [.init(version == 1 ? "outputs..." : "outputs", "T", .variadic(min: 1))],
                                    types: ["T": version == 1 ? oldestFloatTypes : ElementTypes.allOfOpset13])
        }) { try Split($0) },
        OperatorDefinition("Slice", versions: [1, 10, 11, 13], contracts: { version in
            contract("data", "output", types: ElementTypes.allOfOpset13, version < 10 ? [] : [
                .init("starts", "Tind"), .init("ends", "Tind"), .init("axes", "Tind", .optional), .init("steps", "Tind", .optional),
            ])
        }) { try Slice($0) },
        // Strings are not padded.
        OperatorDefinition("Pad", versions: [1, 2, 11, 13, 18, 19, 21, 23, 24, 25], contracts: { version in
            let inputs: [OperatorContract.Parameter] = switch version {
            case ..<11: []
            case ..<18: [.init("pads", .int64), .init("constant_value", "T", .optional)]
            default: [.init("pads", .int64), .init("constant_value", "T", .optional), .init("axes", "Tind", .optional)]
            }
            return contract("data", "output", types: ElementTypes.all.subtracting([.string]), inputs)
        }) { try Pad($0) },
        // Tile 1 takes floating-point data only, and types `tiles` and `axis` as that T.
        OperatorDefinition("Tile", versions: [1, 6, 13], contracts: { version in
            version == 1
                ? contract("input", "output", types: oldestFloatTypes, [.init("tiles", "T"), .init("axis", "T")])
                : contract("input", "output", types: ElementTypes.allOfOpset13, [.init("repeats", "T1")], indices: ("T1", [.int64]))
        }) { try Tile($0) },
        OperatorDefinition("Expand", versions: [8, 13], contract: contract("input", "output", types: ElementTypes.allOfOpset13,
                                                                             [.init("shape", .int64)])) { Expand($0) },
        OperatorDefinition("DepthToSpace", versions: [1, 11, 13, 28], contract: contract("input", "output", types: ElementTypes.allOfOpset13)) {
            try BlockRearrangement($0, toSpace: true)
        },
        OperatorDefinition("SpaceToDepth", versions: [1, 13, 28], contract: contract("input", "output", types: ElementTypes.allOfOpset13)) {
            try BlockRearrangement($0, toSpace: false)
        },
    ]

    /// The element types of Split 1 and Tile 1, whose sizes are the data's T.
    static let oldestFloatTypes: Set<DataType> = [.float16, .float, .double]

    /// `input` of element type T (with `rest`, the index inputs: of a fixed type, or of the
    /// variable `indices`, int32 or int64 "Tind" unless given) to `output` of T.
    static func contract(_ input: String, _ output: String, types: Set<DataType> = ElementTypes.all,
                         _ rest: [OperatorContract.Parameter] = [],
                         indices: (String, Set<DataType>) = ("Tind", [.int32, .int64])) -> OperatorContract {
        let usesIndices = rest.contains { $0.type == .variable(indices.0) }
        return OperatorContract(inputs: [.init(input, "T")] + rest, outputs: [.init(output, "T")],
                                types: ["T": types].merging(usesIndices ? [indices.0: indices.1] : [:]) { first, _ in first })
    }
}


// MARK: Transpose

/// Transpose: axes permuted by `perm` (default: reversed).
struct Transpose: ElementMovingOperator {
    let perm: [Int]?

    init(_ context: OperatorContext) throws { perm = try context.ints("perm") }

    func permutation(rank: Int) throws -> [Int] {
        guard let perm else { return Array((0..<rank).reversed()) }
        guard perm.count == rank, Set(perm) == Set(0..<rank) else {
            throw OpError.invalidArgument("perm \(perm) is not a permutation of \(rank) axes")
        }
        return perm
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let data = inputs.first ?? nil else { return [] }
        guard let dims = data.dims else { return [TensorType(data.dataType, perm.map { Layout.unknownDims($0.count) })] }
        return [TensorType(data.dataType, try permutation(rank: dims.count).map { dims[$0] })]
    }

    func move(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "data")
        return [try Self.permute(data, viewedAs: data.shape.dims, perm: try permutation(rank: data.shape.rank), context)]
    }

    /// `tensor` viewed with `dims` (same element count), its axes reordered by `perm`. A permutation
    /// that keeps the order of every axis larger than 1 is a reshape and copies nothing.
    static func permute(_ tensor: Tensor, viewedAs dims: [Int], perm: [Int], _ context: ExecutionContext) throws -> Tensor {
        let outputDims = perm.map { dims[$0] }
        let moved = perm.filter { dims[$0] != 1 }
        if moved == moved.sorted() { return tensor.reshaped(Shape(outputDims)) }
        let strides = Layout.strides(dims)
        let result = try context.allocate(tensor.dataType, Shape(outputDims))
        Layout.copy(tensor, sourceStrides: perm.map { strides[$0] }, shape: outputDims,
                    into: result, targetStrides: Layout.strides(outputDims), context)
        return result
    }
}

// MARK: Concat and Split

/// Concat: inputs joined along `axis` (negative from 11; default 1 in version 1).
struct Concat: ElementMovingOperator {
    let axis: Int

    init(_ context: OperatorContext) throws {
        axis = context.version < 4 ? try context.int("axis", default: 1) : try context.required("axis", context.int)
    }

    /// Concat along `axis` (ConcatFromSequence's join).
    init(axis: Int) { self.axis = axis }

    func movesElements(ofInput position: Int) -> Bool { true }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let first = inputs.compactMap({ $0 }).first else { return [] }
        let ranked = inputs.compactMap { $0?.dims }
        guard inputs.allSatisfy({ $0?.dims != nil }), let rank = ranked.first?.count else {
            return [TensorType(first.dataType, ranked.first.map { Layout.unknownDims($0.count) })]
        }
        guard ranked.allSatisfy({ $0.count == rank }) else { throw OpError("inputs have different ranks") }
        let axis = try Layout.axis(self.axis, rank: rank)
        var dims = (0..<rank).map { position in ranked.lazy.map { $0[position] }.first { $0.value != nil } ?? ranked[0][position] }
        dims[axis] = ranked.reduce(Dim.fixed(0)) { sum, input in
            guard let total = sum.value, let size = input[axis].value else { return .unknown }
            return .fixed(total + size)
        }
        return [TensorType(first.dataType, dims)]
    }

    func move(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let parts = inputs.compactMap { $0 }
        guard let first = parts.first else { throw OpError("Concat needs at least one input") }
        let rank = first.shape.rank
        guard rank > 0 else { throw OpError.invalidArgument("cannot concatenate scalars") }
        let axis = try Layout.axis(self.axis, rank: rank)
        var dims = first.shape.dims
        dims[axis] = 0
        for part in parts {
            guard part.shape.rank == rank, (0..<rank).allSatisfy({ $0 == axis || part.shape[$0] == first.shape[$0] }) else {
                throw OpError.invalidArgument("cannot concatenate \(part.shape) with \(first.shape) on axis \(axis)")
            }
            dims[axis] += part.shape[axis]
        }
        if parts.count == 1 { return [first] }
        let result = try context.allocate(first.dataType, Shape(dims))
        // Each part is a [outer, rows] block written into a column band of the output.
        let outer = dims[..<axis].reduce(1, *), inner = dims[(axis + 1)...].reduce(1, *)
        let outputRow = dims[axis] * inner
        var offset = 0
        for part in parts {
            let partRow = part.shape[axis] * inner
            Layout.copy(part, sourceStrides: [partRow, 1], shape: [outer, partRow],
                        into: result, targetOffset: offset, targetStrides: [outputRow, 1], context)
            offset += partRow
        }
        return [result]
    }
}

/// Split: one input cut into consecutive parts along `axis`. Sizes come from the `split` attribute
/// (before 13), the `split` input (1 and 13+), or equal parts, the last one smaller with
/// `num_outputs` (18+).
struct Split: ElementMovingOperator {
    let axis: Int
    let attributeSizes: [Int]?
    /// Sizes known at load (attribute or constant input); nil for equal parts or sizes known only at run.
    var knownSizes: [Int]?
    let sizesFromInput: Bool
    let version: Int
    let outputCount: Int
    let numOutputs: Int?

    init(_ context: OperatorContext) throws {
        axis = try context.int("axis", default: 0)
        attributeSizes = context.version < 13 ? try context.ints("split") : nil
        sizesFromInput = attributeSizes == nil && context.hasInput(1)
        version = context.version
        if let attributeSizes {
            knownSizes = attributeSizes
        } else if sizesFromInput {
            knownSizes = context.version == 1 ? try context.constant(1).map { try Layout.wholeNumbers($0, "split") }
                                              : Layout.knownIntegers(context.constant(1))
        }
        outputCount = context.node.outputs.count
        numOutputs = context.version >= 18 ? try context.int("num_outputs") : nil
        if let numOutputs, numOutputs != outputCount {
            throw OpError("num_outputs \(numOutputs) but the node has \(outputCount) outputs")
        }
    }

    /// The part sizes along an axis of `size`.
    func sizes(axisSize size: Int, requested: [Int]?) throws -> [Int] {
        if let requested {
            guard requested.count == outputCount, requested.allSatisfy({ (0...size).contains($0) }), requested.reduce(0, +) == size else {
                throw OpError.invalidArgument("split \(requested) does not cut an axis of \(size) into \(outputCount) parts")
            }
            return requested
        }
        guard outputCount > 0 else { throw OpError("Split has no outputs") }
        if numOutputs == nil {
            guard size % outputCount == 0 else { throw OpError.invalidArgument("axis of \(size) does not split into \(outputCount) equal parts") }
            return Array(repeating: size / outputCount, count: outputCount)
        }
        let chunk = (size + outputCount - 1) / outputCount
        return (0..<outputCount).map { max(0, min(chunk, size - $0 * chunk)) }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let data = inputs.first ?? nil else { return [] }
        guard let dims = data.dims else { return Array(repeating: TensorType(data.dataType, nil), count: outputCount) }
        let axis = try Layout.axis(self.axis, rank: dims.count)
        guard let size = dims[axis].value else {
            return Array(repeating: TensorType(data.dataType, dims.enumerated().map { $0.offset == axis ? .unknown : $0.element }), count: outputCount)
        }
        // Sizes from a non-constant input are unknown at load.
        if sizesFromInput && knownSizes == nil { return [] }
        return try sizes(axisSize: size, requested: knownSizes).map { part in
            var partDims = dims
            partDims[axis] = .fixed(part)
            return TensorType(data.dataType, partDims)
        }
    }

    func move(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "input")
        guard data.shape.rank > 0 else { throw OpError.invalidArgument("cannot split a scalar") }
        let axis = try Layout.axis(self.axis, rank: data.shape.rank)
        let sizesInput = inputs.count > 1 ? inputs[1] : nil
        // Split 1's sizes are the data's floating-point T (the contract checked which).
        let requested = try attributeSizes ?? (version == 1 ? sizesInput.map { try Layout.wholeNumbers($0, "split") }
                                                            : Layout.optionalIntegers(sizesInput, "split"))
        return try Layout.split(data, axis: axis, sizes: sizes(axisSize: data.shape[axis], requested: requested), context)
    }
}

// MARK: Slice

/// Slice: per-axis `starts`/`ends`/`steps` (attributes before 10, inputs from 10; negative values count
/// from the end, out-of-range values clamp, `axes` default to the first ones).
struct Slice: ElementMovingOperator {
    /// Attribute parameters (version 1), or the constant inputs known at load.
    var known: Parameters?
    /// The constant `axes` input when `known` is nil (ends computed at run time): the other axes
    /// keep their sizes, which shape inference can then say.
    var knownAxes: [Int]?
    let version: Int

    struct Parameters {
        var starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?
    }

    /// One axis of the result: first index, step and count.
    struct AxisRange {
        var start: Int, step: Int, count: Int
    }

    init(_ context: OperatorContext) throws {
        version = context.version
        if context.version < 10 {
            known = Parameters(starts: try context.required("starts", context.ints), ends: try context.required("ends", context.ints),
                               axes: try context.ints("axes"), steps: nil)
        } else if let starts = Layout.knownIntegers(context.constant(1)), let ends = Layout.knownIntegers(context.constant(2)),
                  !context.hasInput(3) || Layout.knownIntegers(context.constant(3)) != nil,
                  !context.hasInput(4) || Layout.knownIntegers(context.constant(4)) != nil {
            known = Parameters(starts: starts, ends: ends,
                               axes: Layout.knownIntegers(context.constant(3)), steps: Layout.knownIntegers(context.constant(4)))
        } else {
            known = nil
            knownAxes = Layout.knownIntegers(context.constant(3))
        }
    }

    func parameters(_ inputs: [Tensor?]) throws -> Parameters {
        if let known { return known }
        func optional(_ position: Int, _ name: String) throws -> [Int]? {
            try Layout.optionalIntegers(position < inputs.count ? inputs[position] : nil, name)
        }
        return Parameters(starts: try Layout.integers(Layout.input(inputs, 1, "starts"), "starts"),
                          ends: try Layout.integers(Layout.input(inputs, 2, "ends"), "ends"),
                          axes: try optional(3, "axes"), steps: try optional(4, "steps"))
    }

    /// The range of each sliced axis (by axis), for an input of `dims` (nil sizes unknown).
    static func ranges(_ parameters: Parameters, dims: [Int?]) throws -> [Int: AxisRange?] {
        let count = parameters.starts.count
        let axes = try Layout.axes(parameters.axes ?? Array(0..<count), rank: dims.count)
        let steps = parameters.steps ?? Array(repeating: 1, count: count)
        guard parameters.ends.count == count, axes.count == count, steps.count == count else {
            throw OpError.invalidArgument("starts, ends, axes and steps have different lengths")
        }
        var ranges: [Int: AxisRange?] = [:]
        for index in 0..<count {
            let step = steps[index]
            guard step != 0 else { throw OpError.invalidArgument("slice step is 0") }
            guard let size = dims[axes[index]] else {
                ranges[axes[index]] = .some(nil)
                continue
            }
            func clamp(_ value: Int, _ low: Int, _ high: Int) -> Int {
                let value = value < 0 ? value &+ size : value
                return min(max(value, low), high)
            }
            let start: Int, end: Int, elements: Int
            // An INT_MAX end means "to the end" in the step's direction (as ONNX Runtime reads it).
            let endsOpen = parameters.ends[index] == Int.max || parameters.ends[index] == Int(Int32.max)
            if step > 0 {
                start = clamp(parameters.starts[index], 0, size)
                end = endsOpen ? size : clamp(parameters.ends[index], 0, size)
                elements = end > start ? (end - start - 1) / step + 1 : 0
            } else {
                start = clamp(parameters.starts[index], 0, size - 1)
                end = endsOpen ? -1 : clamp(parameters.ends[index], -1, size - 1)
                elements = start > end ? (start - end - 1) / (step == Int.min ? Int.max : -step) + 1 : 0
            }
            ranges[axes[index]] = AxisRange(start: start, step: step, count: elements)
        }
        return ranges
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let data = inputs.first ?? nil else { return [] }
        guard let dims = data.dims else { return [TensorType(data.dataType, nil)] }
        guard let known else {
            guard let knownAxes, let axes = try? Layout.axes(knownAxes, rank: dims.count) else {
                return [TensorType(data.dataType, Layout.unknownDims(dims.count))]
            }
            return [TensorType(data.dataType, dims.enumerated().map { axes.contains($0.offset) ? .unknown : $0.element })]
        }
        let ranges = try Self.ranges(known, dims: dims.map(\.value))
        return [TensorType(data.dataType, dims.enumerated().map { axis, dim in
            guard let range = ranges[axis] else { return dim }
            return range.map { .fixed($0.count) } ?? .unknown
        })]
    }

    func move(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "data")
        let dims = data.shape.dims, strides = data.shape.strides
        let ranges = try Self.ranges(parameters(inputs), dims: dims)
        var offset = 0, outputDims = dims, sourceStrides = strides
        for (axis, range) in ranges {
            guard let range else { continue }
            offset += range.start * strides[axis]
            outputDims[axis] = range.count
            // A step only matters when it is taken (and is then at most the axis size).
            sourceStrides[axis] = range.count > 1 ? strides[axis] * range.step : 0
        }
        let shape = Shape(outputDims)
        if shape.elementCount > 0 && isContiguous(outputDims, of: dims, ranges: ranges) {
            return [Layout.sharedElements(of: data, offset: offset, shape: shape)]
        }
        let result = try context.allocate(data.dataType, shape)
        Layout.copy(data, sourceOffset: offset, sourceStrides: sourceStrides, shape: outputDims, into: result, targetStrides: shape.strides, context)
        return [result]
    }

    /// True when the slice is one contiguous run of the input: unit steps, and every axis inside the
    /// outermost one taking more than one index is whole.
    private func isContiguous(_ outputDims: [Int], of dims: [Int], ranges: [Int: AxisRange?]) -> Bool {
        guard ranges.values.allSatisfy({ $0?.step == 1 || $0?.count ?? 0 <= 1 }) else { return false }
        guard let outermost = outputDims.firstIndex(where: { $0 > 1 }) else { return true }
        return ((outermost + 1)..<dims.count).allSatisfy { outputDims[$0] == dims[$0] }
    }
}

// MARK: Pad

/// Pad: `pads` (begin values for each axis, then end values; negative ones crop) from an attribute
/// (`paddings` in 1, `pads` in 2) or input (11+, optionally for the listed `axes` from 18); modes
/// constant, reflect, edge and wrap.
struct Pad: Operator {
    enum Mode: String { case constant, reflect, edge, wrap }

    let mode: Mode
    let attributePads: [Int]?
    /// Pads for every axis known at load (attribute, or constant input without `axes`).
    var knownPads: [Int]?
    let attributeValue: Float

    init(_ context: OperatorContext) throws {
        let name = try context.string("mode", default: "constant")
        guard let mode = Mode(rawValue: name) else { throw OpError("unknown pad mode '\(name)'") }
        self.mode = mode
        attributePads = context.version < 11 ? try context.required(context.version < 2 ? "paddings" : "pads", context.ints) : nil
        knownPads = attributePads ?? (context.hasInput(3) ? nil : Layout.knownIntegers(context.constant(1)))
        attributeValue = try context.float("value", default: 0)
    }

    /// Begin and end pads for every axis.
    func pads(_ inputs: [Tensor?], rank: Int) throws -> (begin: [Int], end: [Int]) {
        let pads = try attributePads ?? Layout.integers(Layout.input(inputs, 1, "pads"), "pads")
        let limit = Layout.maximumElementCount
        guard pads.allSatisfy({ (-limit...limit).contains($0) }) else { throw OpError.invalidArgument("pads \(pads) are too large") }
        let axes = try Layout.axes(Layout.optionalIntegers(inputs.count > 3 ? inputs[3] : nil, "axes") ?? Array(0..<rank), rank: rank)
        guard pads.count == 2 * axes.count else { throw OpError.invalidArgument("\(pads.count) pads for \(axes.count) axes") }
        var begin = [Int](repeating: 0, count: rank), end = begin
        for (index, axis) in axes.enumerated() {
            begin[axis] = pads[index]
            end[axis] = pads[axes.count + index]
        }
        return (begin, end)
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let data = inputs.first ?? nil else { return [] }
        guard let dims = data.dims else { return [TensorType(data.dataType, nil)] }
        guard let knownPads, knownPads.count == 2 * dims.count else { return [TensorType(data.dataType, Layout.unknownDims(dims.count))] }
        return [TensorType(data.dataType, try dims.enumerated().map { axis, dim in
            guard let size = dim.value else { return .unknown }
            let padded = size &+ knownPads[axis] &+ knownPads[dims.count + axis]
            guard padded >= 0 else { throw OpError.invalidArgument("pads \(knownPads) crop axis \(axis) of size \(size) below zero") }
            return .fixed(padded)
        })]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "data")
        let dims = data.shape.dims, rank = dims.count
        let (begin, end) = try pads(inputs, rank: rank)
        let shape = try Layout.checkedShape((0..<rank).map { dims[$0] + begin[$0] + end[$0] })
        // Negative pads crop first; the kept input region is `first[a] ..< first[a] + kept[a]`.
        let first = (0..<rank).map { max(0, -begin[$0]) }
        let kept = (0..<rank).map { max(0, dims[$0] - first[$0] - max(0, -end[$0])) }
        let inputStrides = data.shape.strides
        if mode == .constant {
            let value: Tensor
            if inputs.count > 2, let given = inputs[2] {
                guard given.elementCount == 1 else {
                    throw OpError.invalidArgument("constant_value must be one \(data.dataType) element")
                }
                value = given
            } else {
                value = try Layout.element(Double(attributeValue), as: data.dataType)
            }
            let result = try context.allocate(data.dataType, shape)
            Layout.fill(result, count: shape.elementCount, with: value)
            let offset = zip(first, inputStrides).reduce(0) { $0 + $1.0 * $1.1 }
            let targetOffset = zip((0..<rank).map { max(0, begin[$0]) }, shape.strides).reduce(0) { $0 + $1.0 * $1.1 }
            if !kept.contains(0) {
                Layout.copy(data, sourceOffset: offset, sourceStrides: inputStrides, shape: kept, into: result, targetOffset: targetOffset,
                            targetStrides: shape.strides, context)
            }
            return [result]
        }
        let result = try context.allocate(data.dataType, shape)
        if shape.elementCount == 0 { return [result] }
        guard !kept.contains(0) else { throw OpError.invalidArgument("\(mode.rawValue) padding needs a non-empty input") }
        let offsets = (0..<rank).map { axis in
            (0..<shape[axis]).map { index in
                (first[axis] + Self.wrapped(index - max(0, begin[axis]), size: kept[axis], mode: mode)) * inputStrides[axis]
            }
        }
        return [try Layout.gather(data, indexShape: shape.dims, elementOffsets: offsets, into: result, context)]
    }

    /// Where position `index` (relative to the first kept element; may be outside) reads from.
    static func wrapped(_ index: Int, size: Int, mode: Mode) -> Int {
        if (0..<size).contains(index) { return index }
        switch mode {
        case .edge, .constant: return min(max(index, 0), size - 1)
        case .wrap: return ((index % size) + size) % size
        case .reflect:
            guard size > 1 else { return 0 }
            let period = 2 * (size - 1)
            let folded = ((index % period) + period) % period
            return folded < size ? folded : period - folded
        }
    }
}

// MARK: Tile and Expand

/// Tile: each axis repeated `repeats[a]` times (version 1: one axis, `tiles` times, both inputs).
struct Tile: ElementMovingOperator {
    let version: Int
    var knownRepeats: [Int]?

    init(_ context: OperatorContext) throws {
        version = context.version
        knownRepeats = context.version >= 6 ? Layout.knownIntegers(context.constant(1)) : nil
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let data = inputs.first ?? nil else { return [] }
        guard let dims = data.dims else { return [TensorType(data.dataType, nil)] }
        guard let knownRepeats, knownRepeats.count == dims.count else { return [TensorType(data.dataType, Layout.unknownDims(dims.count))] }
        guard knownRepeats.allSatisfy({ $0 >= 0 }) else { throw OpError("repeats \(knownRepeats) must not be negative") }
        return [TensorType(data.dataType, try zip(dims, knownRepeats).map { dim, count in
            guard let size = dim.value else { return .unknown }
            return .fixed(try Layout.multiplied(size, count))
        })]
    }

    func move(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "input")
        let dims = data.shape.dims
        var repeats: [Int]
        if version < 6 {
            repeats = Array(repeating: 1, count: dims.count)
            repeats[try Layout.axis(Layout.wholeScalar(Layout.input(inputs, 2, "axis"), "axis"), rank: dims.count)] =
                try Layout.wholeScalar(Layout.input(inputs, 1, "tiles"), "tiles")
        } else {
            repeats = try Layout.integers(Layout.input(inputs, 1, "repeats"), "repeats")
        }
        guard repeats.count == dims.count, repeats.allSatisfy({ $0 >= 0 }) else {
            throw OpError.invalidArgument("repeats \(repeats) do not fit an input of rank \(dims.count)")
        }
        let shape = try Layout.checkedShape(zip(dims, repeats).map { try Layout.multiplied($0, $1) })
        if repeats.allSatisfy({ $0 == 1 }) { return [data] }
        // The output viewed as [r0, d0, r1, d1, ...]: the repeat axes read with stride 0.
        let strides = data.shape.strides
        let view = zip(repeats, dims).flatMap { [$0, $1] }
        let result = try context.allocate(data.dataType, shape)
        Layout.copy(data, sourceStrides: strides.flatMap { [0, $0] }, shape: view, into: result, targetStrides: Layout.strides(view), context)
        return [result]
    }
}

/// Expand: the input broadcast (numpy rules, both ways) with `shape`.
struct Expand: ElementMovingOperator {
    var knownShape: [Int]?

    init(_ context: OperatorContext) { knownShape = Layout.knownIntegers(context.constant(1)) }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let data = inputs.first ?? nil else { return [] }
        guard let dims = data.dims, let knownShape else {
            let rank = (inputs.count > 1 ? inputs[1]?.dims?.first?.value : nil).flatMap { length in data.rank.map { max($0, length) } }
            return [TensorType(data.dataType, rank.map(Layout.unknownDims))]
        }
        return [TensorType(data.dataType, try Layout.broadcast(dims, knownShape.map { .fixed($0) }))]
    }

    func move(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "input")
        let requested = try Layout.integers(Layout.input(inputs, 1, "shape"), "shape")
        guard let broadcast = Shape.broadcast(data.shape, try Layout.checkedShape(requested, "shape")) else {
            throw OpError.invalidArgument("cannot expand \(data.shape) to \(requested)")
        }
        let shape = try Layout.checkedShape(broadcast.dims)
        if shape == data.shape { return [data] }
        let result = try context.allocate(data.dataType, shape)
        Layout.copy(data, sourceStrides: Layout.broadcastStrides(of: data.shape, to: shape), shape: shape.dims,
                    into: result, targetStrides: shape.strides, context)
        return [result]
    }
}

// MARK: DepthToSpace and SpaceToDepth

/// DepthToSpace and SpaceToDepth: NCHW blocks of `blocksize`² channels moved to or from space, in
/// DCR (depth-column-row, the default) or CRD order. Both are a reshape, a transpose and a reshape.
struct BlockRearrangement: ElementMovingOperator {
    let toSpace: Bool
    let blockSize: Int
    let columnRowDepth: Bool

    init(_ context: OperatorContext, toSpace: Bool) throws {
        self.toSpace = toSpace
        blockSize = try context.required("blocksize", context.int)
        guard blockSize > 0, blockSize <= 1 << 16 else { throw OpError("blocksize \(blockSize) is out of range") }
        let mode = try context.string("mode", default: "DCR")
        guard mode == "DCR" || mode == "CRD" else { throw OpError("unknown mode '\(mode)'") }
        columnRowDepth = mode == "CRD"
    }

    func outputDims<D>(_ dims: [D], size: (D) -> Int?, make: (Int) -> D, unknown: D) throws -> [D] {
        guard dims.count == 4 else { throw OpError.invalidArgument("input must be 4-D (NCHW), not rank \(dims.count)") }
        let square = blockSize * blockSize
        func scaled(_ dim: D, by factor: Int, dividing: Bool) throws -> D {
            guard let value = size(dim) else { return unknown }
            if dividing {
                guard value % factor == 0 else { throw OpError.invalidArgument("dimension \(value) is not a multiple of \(factor)") }
                return make(value / factor)
            }
            return make(try Layout.multiplied(value, factor))
        }
        return [dims[0], try scaled(dims[1], by: square, dividing: toSpace),
                try scaled(dims[2], by: blockSize, dividing: !toSpace), try scaled(dims[3], by: blockSize, dividing: !toSpace)]
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let data = inputs.first ?? nil else { return [] }
        guard let dims = data.dims else { return [TensorType(data.dataType, Layout.unknownDims(4))] }
        return [TensorType(data.dataType, try outputDims(dims, size: \.value, make: Dim.fixed, unknown: .unknown))]
    }

    func move(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "input")
        let output = try outputDims(data.shape.dims, size: { $0 }, make: { $0 }, unknown: 0)
        let (n, c, h, w) = (data.shape[0], data.shape[1], data.shape[2], data.shape[3]), b = blockSize
        let view: [Int], perm: [Int]
        switch (toSpace, columnRowDepth) {
        case (true, false): (view, perm) = ([n, b, b, c / (b * b), h, w], [0, 3, 4, 1, 5, 2])
        case (true, true): (view, perm) = ([n, c / (b * b), b, b, h, w], [0, 1, 4, 2, 5, 3])
        case (false, false): (view, perm) = ([n, c, h / b, b, w / b, b], [0, 3, 5, 1, 2, 4])
        case (false, true): (view, perm) = ([n, c, h / b, b, w / b, b], [0, 1, 3, 5, 2, 4])
        }
        return [try Transpose.permute(data, viewedAs: view, perm: perm, context).reshaped(Shape(output))]
    }
}

// MARK: Broadcasting

extension Layout {
    /// Element strides that read `shape` as if it had `target`'s (broadcast) shape: 0 along every
    /// axis that is repeated.
    static func broadcastStrides(of shape: Shape, to target: Shape) -> [Int] {
        let strides = shape.strides, lead = target.rank - shape.rank
        return (0..<target.rank).map { axis in
            axis < lead || shape[axis - lead] == 1 ? 0 : strides[axis - lead]
        }
    }

    /// Numpy broadcast of two declared shapes; unknown sizes stay unknown unless the other side decides.
    static func broadcast(_ a: [Dim], _ b: [Dim]) throws -> [Dim] {
        let rank = max(a.count, b.count)
        return try (0..<rank).map { axis in
            let x = axis < rank - a.count ? Dim.fixed(1) : a[axis - (rank - a.count)]
            let y = axis < rank - b.count ? Dim.fixed(1) : b[axis - (rank - b.count)]
            switch (x.value, y.value) {
            case (1?, _): return y
            case (_, 1?): return x
            case let (p?, q?):
                guard p == q else { throw OpError.invalidArgument("dimensions \(p) and \(q) do not broadcast") }
                return x
            case (_?, nil): return x
            case (nil, _?): return y
            case (nil, nil): return x == y ? x : .unknown
            }
        }
    }
}
