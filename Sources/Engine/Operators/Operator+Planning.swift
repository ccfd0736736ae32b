import Kernels
import Tensors

// Shape rules that read input values, outputs known from types, views and scratch: what the
// working-memory estimate needs from each operator beyond `outputTypes` (see OperatorPlanning.swift).
// Value-aware rules fill in the value the operator would otherwise know only from a constant at
// load, then use the operator's own rule.

// MARK: Value-dependent shapes

extension Reshape: ValueDependentShapeRule {
    func outputTypes(_ inputs: [TensorType?], values: [Tensor?]) throws -> [TensorType?] {
        var rule = self
        if rule.knownTarget == nil { rule.knownTarget = Layout.knownIntegers(values.optional(1)) }
        return try rule.outputTypes(inputs)
    }
}

extension Expand: ValueDependentShapeRule {
    func outputTypes(_ inputs: [TensorType?], values: [Tensor?]) throws -> [TensorType?] {
        var rule = self
        if rule.knownShape == nil { rule.knownShape = Layout.knownIntegers(values.optional(1)) }
        return try rule.outputTypes(inputs)
    }
}

extension ConstantOfShape: ValueDependentShapeRule {
    func outputTypes(_ inputs: [TensorType?], values: [Tensor?]) throws -> [TensorType?] {
        var rule = self
        if rule.knownShape == nil { rule.knownShape = Layout.knownIntegers(values.optional(0)) }
        return try rule.outputTypes(inputs)
    }
}

extension Tile: ValueDependentShapeRule {
    func outputTypes(_ inputs: [TensorType?], values: [Tensor?]) throws -> [TensorType?] {
        var rule = self
        if rule.knownRepeats == nil && version >= 6 { rule.knownRepeats = Layout.knownIntegers(values.optional(1)) }
        return try rule.outputTypes(inputs)
    }
}

extension Slice: ValueDependentShapeRule {
    func outputTypes(_ inputs: [TensorType?], values: [Tensor?]) throws -> [TensorType?] {
        var rule = self
        if rule.known == nil, let starts = Layout.knownIntegers(values.optional(1)), let ends = Layout.knownIntegers(values.optional(2)) {
            // Omitted axes and steps take their defaults; given but unknown ones leave the shape unknown.
            let axes = Layout.knownIntegers(values.optional(3)), steps = Layout.knownIntegers(values.optional(4))
            let axesKnown = axes != nil || !(inputs.count > 3 && inputs[3] != nil)
            let stepsKnown = steps != nil || !(inputs.count > 4 && inputs[4] != nil)
            if axesKnown && stepsKnown { rule.known = Parameters(starts: starts, ends: ends, axes: axes, steps: steps) }
        }
        return try rule.outputTypes(inputs)
    }
}

extension Split: ValueDependentShapeRule {
    func outputTypes(_ inputs: [TensorType?], values: [Tensor?]) throws -> [TensorType?] {
        var rule = self
        if rule.knownSizes == nil && sizesFromInput { rule.knownSizes = Layout.knownIntegers(values.optional(1)) }
        return try rule.outputTypes(inputs)
    }
}

extension Squeeze: ValueDependentShapeRule {
    func outputTypes(_ inputs: [TensorType?], values: [Tensor?]) throws -> [TensorType?] {
        var rule = self
        if rule.knownAxes == nil && axesGiven { rule.knownAxes = Layout.knownIntegers(values.optional(1)) }
        return try rule.outputTypes(inputs)
    }
}

extension Unsqueeze: ValueDependentShapeRule {
    func outputTypes(_ inputs: [TensorType?], values: [Tensor?]) throws -> [TensorType?] {
        var rule = self
        if rule.knownAxes == nil { rule.knownAxes = Layout.knownIntegers(values.optional(1)) }
        return try rule.outputTypes(inputs)
    }
}

extension Pad: ValueDependentShapeRule {
    func outputTypes(_ inputs: [TensorType?], values: [Tensor?]) throws -> [TensorType?] {
        var rule = self
        let axesGiven = inputs.count > 3 && inputs[3] != nil
        if rule.knownPads == nil, Layout.knownIntegers(values.optional(1)) != nil, !axesGiven || Layout.knownIntegers(values.optional(3)) != nil,
           let rank = inputs.type(0)?.rank {
            let (begin, end) = try pads(values, rank: rank)
            rule.knownPads = begin + end
        }
        return try rule.outputTypes(inputs)
    }
}

extension TopK: ValueDependentShapeRule {
    func outputTypes(_ inputs: [TensorType?], values: [Tensor?]) throws -> [TensorType?] {
        var rule = self
        if rule.knownK == nil, let k = Layout.knownIntegers(values.optional(1)), k.count == 1 { rule.knownK = k[0] }
        return try rule.outputTypes(inputs)
    }
}

extension Reduce: ValueDependentShapeRule {
    func outputTypes(_ inputs: [TensorType?], values: [Tensor?]) throws -> [TensorType?] {
        var rule = self
        if rule.knownAxes == nil && axesFromInput { rule.knownAxes = Layout.knownIntegers(values.optional(1)) }
        return try rule.outputTypes(inputs)
    }
}

extension RangeOperator: ValueDependentShapeRule {
    func outputTypes(_ inputs: [TensorType?], values: [Tensor?]) throws -> [TensorType?] {
        var rule = self
        let bounds = (0..<3).compactMap { values.optional($0)?.doubles().first }
        if rule.knownCount == nil && bounds.count == 3 { rule.knownCount = try Self.count(bounds) }
        return try rule.outputTypes(inputs)
    }
}

extension Resize: ValueDependentShapeRule {
    func outputTypes(_ inputs: [TensorType?], values: [Tensor?]) throws -> [TensorType?] {
        var rule = self
        let parameters = [roiInput, scalesInput, sizesInput].compactMap { $0 }
        if rule.knownInputs == nil,
           parameters.allSatisfy({ !(inputs.count > $0 && inputs[$0] != nil) || values.optional($0) != nil }) {
            rule.knownInputs = values
        }
        return try rule.outputTypes(inputs)
    }
}

extension OneHot: ValueDependentShapeRule {
    func outputTypes(_ inputs: [TensorType?], values: [Tensor?]) throws -> [TensorType?] {
        var types = try outputTypes(inputs)
        guard let depth = values.optional(1)?.doubles(), depth.count == 1, depth[0] >= 1,
              depth[0] < Double(Layout.maximumElementCount), let type = types.first ?? nil, var dims = type.dims else { return types }
        dims[try Layout.axis(axis, rank: dims.count)] = .fixed(Int(depth[0]))
        types[0] = TensorType(type.dataType, dims)
        return types
    }
}

// MARK: Outputs known from types

extension ShapeOf: TypeDeterminedOutputs {
    func outputValues(_ inputs: [TensorType?]) -> [Tensor]? {
        guard let shape = inputs.type(0)?.shape else { return nil }
        let dims = shape.dims[range(rank: shape.rank)].map(Int64.init)
        return [Tensor(dims, shape: [dims.count])]
    }
}

extension SizeOf: TypeDeterminedOutputs {
    func outputValues(_ inputs: [TensorType?]) -> [Tensor]? {
        guard let count = inputs.type(0)?.shape?.boundedElementCount(limit: Layout.maximumElementCount) else { return nil }
        return [Tensor(scalar: Int64(count))]
    }
}

// MARK: Views

/// Operators whose first output is always a view of their first input.
private protocol FirstInputView: WorkingMemoryProfile {}

extension FirstInputView {
    func outputViews(_ inputs: [TensorType?]) -> [Int?] { [0] }
}

extension Reshape: FirstInputView {}
extension Flatten: FirstInputView {}
extension Squeeze: FirstInputView {}
extension Unsqueeze: FirstInputView {}
extension Identity: FirstInputView {}
extension Dropout: FirstInputView {}

extension Transpose: WorkingMemoryProfile {
    func outputViews(_ inputs: [TensorType?]) -> [Int?] {
        // `permute` copies nothing when every axis larger than 1 keeps its order.
        guard let dims = inputs.type(0)?.shape?.dims, let perm = try? permutation(rank: dims.count) else { return [] }
        let moved = perm.filter { dims[$0] != 1 }
        return moved == moved.sorted() ? [0] : []
    }
}

// MARK: Scratch

extension TensorType {
    /// `bufferBytes`, or 0 when unknown.
    fileprivate var knownBufferBytes: Int { bufferBytes ?? 0 }

    /// The same shape with another element type.
    fileprivate func with(_ dataType: DataType) -> TensorType { TensorType(dataType, dims) }
}

extension Conv: WorkingMemoryProfile {
    func scratchBytes(_ inputs: [TensorType?], outputs: [TensorType?], threads: Int) -> Int {
        guard var x = inputs.type(0) else { return 0 }
        var bytes = 0
        if let scale = inputs.type(4) {
            // X times the scale (FusedConv's input 4): the product, or the scaled weights (never
            // more floats than one image of it).
            guard let dims = try? TensorType.broadcast([x.dims, scale.dims]) else { return 0 }
            x = TensorType(x.dataType, dims)
            bytes += x.knownBufferBytes
        }
        guard x.dataType == .float, let xShape = x.shape, let wShape = inputs.type(1)?.shape,
              let layout = try? layout(x: xShape, w: wShape), layout.depth > 0 else { return bytes }
        // A residual made in place after a step before it (a QDQ rounding) needs room for the products.
        let count = Convolution.scratchCount(layout, parallelism: Parallelism(threads: threads),
                                             productApart: beforeResidual != nil && inputs.type(3) != nil)
        bytes += count > 0 ? TensorType(.float, shape: [count]).knownBufferBytes : 0
        // A residual of another shape is first broadcast into a buffer of the output's shape.
        if let residual = inputs.type(3), let output = outputs.first ?? nil, residual.shape != output.shape {
            bytes += 2 * output.knownBufferBytes
        }
        return bytes
    }
}

extension DeformConv: WorkingMemoryProfile {
    func scratchBytes(_ inputs: [TensorType?], outputs: [TensorType?], threads: Int) -> Int {
        // The column panels of float runs (one per thread).
        guard let x = inputs.type(0), x.dataType == .float, let xShape = x.shape, let wShape = inputs.type(1)?.shape,
              let offsetShape = inputs.type(2)?.shape,
              let layout = try? layout(x: xShape, w: wShape, offset: offsetShape, bias: nil, mask: nil),
              let count = DeformableConvolution.scratchCount(layout, parallelism: Parallelism(threads: threads)) else { return 0 }
        return TensorType(.float, shape: [Swift.max(1, count)]).knownBufferBytes
    }
}

extension GemmOperator: WorkingMemoryProfile {
    func scratchBytes(_ inputs: [TensorType?], outputs: [TensorType?], threads: Int) -> Int {
        // C as a bias: a scaled copy, at most one per row or column.
        guard inputs.type(2) != nil, let output = outputs.first ?? nil, let dims = output.shape?.dims, let n = dims.last else { return 0 }
        return TensorType(.float, shape: [max(n, dims.dropLast().reduce(1, *))]).knownBufferBytes
    }
}

extension RowNormalization: WorkingMemoryProfile {
    func scratchBytes(_ inputs: [TensorType?], outputs: [TensorType?], threads: Int) -> Int {
        // Float16 is computed in float: the input and the result converted.
        guard let x = inputs.type(0), x.dataType == .float16 else { return 0 }
        return 2 * x.with(.float).knownBufferBytes
    }
}

extension SoftmaxOperator: WorkingMemoryProfile {
    func scratchBytes(_ inputs: [TensorType?], outputs: [TensorType?], threads: Int) -> Int {
        guard let x = inputs.type(0), x.dataType == .float16 else { return 0 }
        return 2 * x.with(.float).knownBufferBytes
    }
}

extension Reduce: WorkingMemoryProfile {
    func scratchBytes(_ inputs: [TensorType?], outputs: [TensorType?], threads: Int) -> Int {
        // A pass result the final step (mean, L2, log-sum) replaces; with several reduced axes,
        // earlier passes (at most half the input each); float16 converted to float.
        guard let x = inputs.type(0), let output = outputs.first ?? nil else { return 0 }
        let working = x.dataType == .float16 ? x.with(.float) : x
        var bytes = output.with(working.dataType).knownBufferBytes
        if x.dataType == .float16 { bytes += working.knownBufferBytes }
        if (knownAxes?.count ?? 2) != 1 { bytes += working.knownBufferBytes / 2 }
        return bytes
    }
}

extension Variadic: WorkingMemoryProfile {
    func scratchBytes(_ inputs: [TensorType?], outputs: [TensorType?], threads: Int) -> Int {
        // Inputs fold pairwise: one intermediate result at a time beside the next.
        inputs.count > 2 || (function == .mean && inputs.count > 1) ? (outputs.first ?? nil)?.knownBufferBytes ?? 0 : 0
    }
}

extension MeanVarianceNormalization: WorkingMemoryProfile {
    func scratchBytes(_ inputs: [TensorType?], outputs: [TensorType?], threads: Int) -> Int {
        // The centred input and its squares, beside small statistics.
        2 * (inputs.type(0)?.knownBufferBytes ?? 0)
    }
}

extension Resize: WorkingMemoryProfile {
    func scratchBytes(_ inputs: [TensorType?], outputs: [TensorType?], threads: Int) -> Int {
        // Interpolation runs in float, one pass per resized axis, each into a new buffer.
        guard mode != .nearest, let x = inputs.type(0), let output = outputs.first ?? nil else { return 0 }
        return x.with(.float).knownBufferBytes + 2 * output.with(.float).knownBufferBytes
    }
}
