import Tensors

/// Operators that change only how a tensor's elements are viewed (its shape), or report the shape.
/// None copies elements: the output shares the input's storage. Every element type passes through.
enum ShapeOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("Reshape", versions: [1, 5, 13, 14, 19, 21, 23, 24, 25], contracts: { version in
            contract("data", "reshaped", version < 5 ? [] : [.init("shape", .int64)])
        }) { try Reshape($0) },
        OperatorDefinition("Flatten", versions: [1, 9, 11, 13, 21, 23, 24, 25], contract: contract("input", "output")) { try Flatten($0) },
        OperatorDefinition("Squeeze", versions: [1, 11, 13, 21, 23, 24, 25], contracts: { version in
            contract("data", "squeezed", version < 13 ? [] : [.init("axes", .int64, .optional)])
        }) { try Squeeze($0) },
        OperatorDefinition("Unsqueeze", versions: [1, 11, 13, 21, 23, 24, 25], contracts: { version in
            contract("data", "expanded", version < 13 ? [] : [.init("axes", .int64)])
        }) { try Unsqueeze($0) },
        // Sequences from 14, optionals from 16; and, beyond ONNX's list, maps (a map-in, map-out
        // graph passes its map through).
        OperatorDefinition("Identity", versions: [1, 13, 14, 16, 19, 21, 23, 24, 25], contracts: { version in
            guard version >= 14 else { return contract("input", "output", types: ElementTypes.allOfOpset13) }
            let kinds: [ValueKind] = version < 16 ? [.sequence] : [.sequence, .optional(.tensor), .optional(.sequence)]
            return OperatorContract(inputs: [.init("input", "V")], outputs: [.init("output", "V")], types: [:],
                                    valueTypes: ["V": OperatorContract.ValueType.all([.tensor], ElementTypes.all)
                                        .union(OperatorContract.ValueType.all(kinds, SequenceOperators.elements))
                                        .union(OperatorContract.ValueType.all([.map(key: .int64), .map(key: .string)], ElementTypes.allOfOpset13))])
        }) { _ in Identity() },
        OperatorDefinition("Dropout", versions: [1, 6, 7, 10, 12, 13, 22], traits: .random, contracts: { Dropout.contract($0) }) { try Dropout($0) },
        OperatorDefinition("Shape", versions: [1, 13, 15, 19, 21, 23, 24, 25], contract: OperatorContract(
            inputs: [.init("data", "T")], outputs: [.init("shape", "T1")], types: ["T": ElementTypes.all, "T1": [.int64]])) { try ShapeOf($0) },
        OperatorDefinition("Size", versions: [1, 13, 19, 21, 23, 24, 25], contract: OperatorContract(
            inputs: [.init("data", "T")], outputs: [.init("size", "T1")], types: ["T": ElementTypes.all, "T1": [.int64]])) { _ in SizeOf() },
    ]

    /// `input` of any element type T (with `rest`, the index inputs) to `output` of T.
    static func contract(_ input: String, _ output: String, _ rest: [OperatorContract.Parameter] = [],
                         variable: String = "T", types: Set<DataType> = ElementTypes.all) -> OperatorContract {
        OperatorContract(inputs: [.init(input, variable)] + rest, outputs: [.init(output, variable)], types: [variable: types])
    }
}


// MARK: Reshape

/// Reshape: `shape` attribute (version 1) or input (5+); 0 copies the input's size (a literal 0 with
/// `allowzero`, 14+), -1 is inferred.
struct Reshape: Operator {
    let allowZero: Bool
    /// The target shape when it is known at load (attribute, or constant input).
    var knownTarget: [Int]?
    let version: Int

    init(_ context: OperatorContext) throws {
        version = context.version
        allowZero = try context.int("allowzero", default: 0) != 0
        if context.version < 5 {
            knownTarget = try context.required("shape", context.ints)
        } else {
            knownTarget = Layout.knownIntegers(context.constant(1))
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let data = inputs.first ?? nil else { return [] }
        guard let knownTarget else {
            let shapeDims = inputs.count > 1 ? inputs[1]?.dims : nil
            guard let shapeDims, shapeDims.count == 1, let rank = shapeDims[0].value else { return [TensorType(data.dataType, nil)] }
            return [TensorType(data.dataType, Layout.unknownDims(rank))]
        }
        return [TensorType(data.dataType, try resolve(knownTarget, input: data.dims))]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "data")
        let target = try knownTarget ?? Layout.integers(Layout.input(inputs, 1, "shape"), "shape")
        let dims = try resolve(target, input: data.shape.dims.map { .fixed($0) }) ?? []
        let shape = try Layout.checkedShape(dims.map { $0.value ?? -1 }, "shape")
        guard shape.elementCount == data.elementCount else { throw OpError.invalidArgument("cannot reshape \(data.shape) to \(target)") }
        return [data.reshaped(shape)]
    }

    /// The output dimensions for a target shape; nil when the input's rank is unknown and needed.
    /// Throws for malformed targets and element-count mismatches that are already visible.
    func resolve(_ target: [Int], input: [Dim]?) throws -> [Dim]? {
        guard target.allSatisfy({ $0 >= -1 }) else { throw OpError.invalidArgument("shape \(target) has a dimension below -1") }
        let inferred = target.indices.filter { target[$0] == -1 }
        guard inferred.count <= 1 else { throw OpError.invalidArgument("shape \(target) has more than one -1") }
        if allowZero && !inferred.isEmpty && target.contains(0) {
            throw OpError.invalidArgument("shape \(target) has both -1 and 0 with allowzero")
        }
        var dims: [Dim] = []
        for (position, size) in target.enumerated() {
            if size == 0 && !allowZero {
                guard let input else { return nil }
                guard position < input.count else { throw OpError.invalidArgument("shape \(target) copies dimension \(position) of a rank-\(input.count) input") }
                dims.append(input[position])
            } else {
                dims.append(.fixed(size))
            }
        }
        let total = input.map { Layout.product($0) } ?? .unknown
        if let position = inferred.first {
            // Copied dimensions sit on both sides and cancel, so -1 is found even when they are symbolic.
            let copied = Set(target.indices.filter { target[$0] == 0 && !allowZero })
            let inputRest = input.map { dims in Layout.product(dims.indices.filter { !copied.contains($0) }.map { dims[$0] }) } ?? .unknown
            let outputRest = Layout.product(dims.indices.filter { $0 != position && !copied.contains($0) }.map { dims[$0] })
            guard let inputCount = inputRest.value, let outputCount = outputRest.value else {
                dims[position] = .unknown
                return dims
            }
            guard outputCount != 0, inputCount % outputCount == 0 else {
                throw OpError.invalidArgument("cannot reshape \(input.map(describe) ?? "?") to \(target)")
            }
            dims[position] = .fixed(inputCount / outputCount)
        } else if let totalCount = total.value, let count = Layout.product(dims).value, count != totalCount {
            throw OpError.invalidArgument("cannot reshape \(input.map(describe) ?? "?") (\(totalCount) elements) to \(target)")
        }
        return dims
    }

    private func describe(_ dims: [Dim]) -> String { "[" + dims.map(\.description).joined(separator: ", ") + "]" }
}

// MARK: Flatten

/// Flatten: a 2-D view, the dimensions before `axis` times the rest (negative axis from 11).
struct Flatten: Operator {
    let axis: Int

    init(_ context: OperatorContext) throws { axis = try context.int("axis", default: 1) }

    /// The axis in `0...rank` (negative ones count from the end of the input's axes).
    func split(rank: Int) throws -> Int {
        let split = axis < 0 ? axis + rank : axis
        guard (0...rank).contains(split) else { throw OpError.invalidArgument("axis \(axis) is out of range for rank \(rank)") }
        return split
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let input = inputs.first ?? nil else { return [] }
        guard let dims = input.dims else { return [TensorType(input.dataType, Layout.unknownDims(2))] }
        let split = try split(rank: dims.count)
        return [TensorType(input.dataType, [Layout.product(dims[..<split]), Layout.product(dims[split...])])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let input = try Layout.input(inputs, 0, "input")
        let split = try split(rank: input.shape.rank)
        let dims = input.shape.dims
        return [input.reshaped([dims[..<split].reduce(1, *), dims[split...].reduce(1, *)])]
    }
}

// MARK: Squeeze and Unsqueeze

/// Axes from an attribute (before version 13) or from input 1 (13+).
private func axesSource(_ context: OperatorContext) throws -> (attribute: [Int]?, known: [Int]?) {
    if context.version < 13 {
        let axes = try context.ints("axes")
        return (axes, axes)
    }
    return (nil, context.hasInput(1) ? Layout.knownIntegers(context.constant(1)) : nil)
}

/// Squeeze: removes the given size-1 axes, or every size-1 axis when none are given.
struct Squeeze: Operator {
    let attributeAxes: [Int]?
    /// Axes known at load; nil means "all size-1 axes" when `axesGiven` is false.
    var knownAxes: [Int]?
    let axesGiven: Bool

    init(_ context: OperatorContext) throws {
        (attributeAxes, knownAxes) = try axesSource(context)
        axesGiven = context.version < 13 ? attributeAxes != nil : context.hasInput(1)
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let data = inputs.first ?? nil else { return [] }
        guard let dims = data.dims else { return [TensorType(data.dataType, nil)] }
        guard axesGiven else {
            // Every size-1 axis goes; an unknown size might be 1, so the rank is unknown then.
            if dims.contains(where: { $0.value == nil }) { return [TensorType(data.dataType, nil)] }
            return [TensorType(data.dataType, dims.filter { $0.value != 1 })]
        }
        guard let knownAxes else { return [TensorType(data.dataType, nil)] }
        let axes = try Layout.axes(knownAxes, rank: dims.count)
        for axis in axes where dims[axis].value.map({ $0 != 1 }) ?? false {
            throw OpError.invalidArgument("cannot squeeze axis \(axis) of size \(dims[axis])")
        }
        return [TensorType(data.dataType, dims.indices.filter { !axes.contains($0) }.map { dims[$0] })]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "data")
        let dims = data.shape.dims
        let requested = try attributeAxes ?? Layout.optionalIntegers(inputs.count > 1 ? inputs[1] : nil, "axes")
        guard let requested else { return [data.reshaped(Shape(dims.filter { $0 != 1 }))] }
        let axes = try Layout.axes(requested, rank: dims.count)
        for axis in axes where dims[axis] != 1 { throw OpError.invalidArgument("cannot squeeze axis \(axis) of size \(dims[axis])") }
        return [data.reshaped(Shape(dims.indices.filter { !axes.contains($0) }.map { dims[$0] }))]
    }
}

/// Unsqueeze: inserts size-1 axes at the given positions of the output.
struct Unsqueeze: Operator {
    let attributeAxes: [Int]?
    var knownAxes: [Int]?

    init(_ context: OperatorContext) throws {
        (attributeAxes, knownAxes) = try axesSource(context)
        if context.version < 13 && attributeAxes == nil { throw OpError("missing required attribute 'axes'") }
    }

    /// `dims` with size-1 axes inserted at `axes` (positions in the output).
    private func inserting<D>(_ axes: [Int], into dims: [D], one: D) throws -> [D] {
        let rank = dims.count + axes.count
        let positions = Set(try Layout.axes(axes, rank: rank))
        var source = dims.makeIterator()
        return (0..<rank).map { positions.contains($0) ? one : source.next()! }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let data = inputs.first ?? nil else { return [] }
        guard let dims = data.dims, let knownAxes else { return [TensorType(data.dataType, nil)] }
        return [TensorType(data.dataType, try inserting(knownAxes, into: dims, one: .fixed(1)))]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "data")
        let axes = try attributeAxes ?? Layout.integers(Layout.input(inputs, 1, "axes"), "axes")
        return [data.reshaped(Shape(try inserting(axes, into: data.shape.dims, one: 1)))]
    }
}

// MARK: Identity and Dropout

/// Identity: the input, unchanged (a tensor; since opset 14 a sequence, since 16 an optional).
struct Identity: ValueOperator {
    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] { [inputs.first ?? nil] }

    func outputKinds(_ inputs: [ValueKind?]) throws -> [ValueKind?] { [inputs.first ?? nil] }

    func run(values inputs: [Value?], _ context: ExecutionContext) throws -> [Value] {
        guard let input = inputs.first, let input else { throw OpError("missing required input 0 (input)") }
        return [input]
    }
}

/// Dropout at inference: the input passes through and the optional mask keeps everything (true from
/// version 10, ones of the input's type before). Training mode (12+) runs only with ratio 0.
/// Versions 1 and 6 have an `is_test` attribute; as ONNX's version converter does (6 to 7), it is
/// ignored and the node is the inference one.
struct Dropout: Operator {
    let version: Int

    init(_ context: OperatorContext) throws { version = context.version }

    private var maskIsBool: Bool { version >= 10 }

    /// Floating-point data T to an output of T and a mask: of T before version 10, of bool (T1)
    /// in 10, of bool (T2) from 12, where the optional ratio (T1) and training_mode (T2) came.
    static func contract(_ version: Int) -> OperatorContract {
        let data = OperatorContract.Parameter("data", "T"), output = OperatorContract.Parameter("output", "T")
        switch version {
        case ..<10:
            return OperatorContract(inputs: [data], outputs: [output, .init("mask", "T", .optional)], types: ["T": ElementTypes.floatingPoint])
        case 10:
            return OperatorContract(inputs: [data], outputs: [output, .init("mask", "T1", .optional)],
                                    types: ["T": ElementTypes.floatingPoint, "T1": [.bool]])
        default:
            return OperatorContract(inputs: [data, .init("ratio", "T1", .optional), .init("training_mode", "T2", .optional)],
                                    outputs: [output, .init("mask", "T2", .optional)],
                                    types: ["T": ElementTypes.floatingPoint, "T1": ElementTypes.floatingPoint, "T2": [.bool]])
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let data = inputs.first ?? nil else { return [] }
        return [data, TensorType(maskIsBool ? .bool : data.dataType, data.dims)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "data")
        if version >= 12, inputs.count > 2, let training = inputs[2], training.doubles().first == 1 {
            let ratio = inputs[1].map { $0.doubles().first ?? 0.5 } ?? 0.5
            guard ratio == 0 else { throw OpError("training mode with ratio \(ratio) is not supported at inference") }
        }
        let mask = try context.allocate(maskIsBool ? .bool : data.dataType, data.shape)
        Layout.fill(mask, count: mask.elementCount, with: try Layout.element(1, as: mask.dataType))
        return [data, mask]
    }
}

// MARK: Shape and Size

/// Shape: the input's dimensions as int64, optionally a `start`..<`end` range of them (15+).
struct ShapeOf: Operator {
    let start: Int
    let end: Int?

    init(_ context: OperatorContext) throws {
        start = try context.int("start", default: 0)
        end = try context.int("end")
    }

    /// The dimensions reported, with negative and out-of-range bounds clamped as the spec says.
    func range(rank: Int) -> Range<Int> {
        func clamp(_ bound: Int) -> Int { min(max(bound < 0 ? bound + rank : bound, 0), rank) }
        let lower = clamp(start), upper = clamp(end ?? rank)
        return lower..<max(lower, upper)
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let rank = (inputs.first ?? nil)?.rank else { return [TensorType(.int64, [.unknown])] }
        return [TensorType(.int64, [.fixed(range(rank: rank).count)])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "data")
        let dims = data.shape.dims[range(rank: data.shape.rank)].map(Int64.init)
        return [Tensor(dims, shape: [dims.count])]
    }
}

/// Size: the input's element count as an int64 scalar.
struct SizeOf: Operator {
    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] { [TensorType(.int64, [])] }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        [Tensor(scalar: Int64(try Layout.input(inputs, 0, "data").elementCount))]
    }
}
