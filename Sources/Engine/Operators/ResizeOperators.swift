import Kernels
import Tensors

/// Resize and its predecessor Upsample. Nearest mode is an indexed byte copy (any element type);
/// linear and cubic run one separable `Resample.axis` pass per resized axis in float.
enum ResizeOperators {
    static let definitions: [OperatorDefinition] = [
        // Strings are not resized (nor bools but by nearest, a rule of the mode).
        OperatorDefinition("Resize", versions: [10, 11, 13, 18, 19], contracts: { version in
            let parameters: Set<DataType> = ElementTypes.allOfOpset13.subtracting([.string])
            if version == 10 {
                return OperatorContract(inputs: [.init("X", "T"), .init("scales", .float)], outputs: [.init("Y", "T")],
                                        types: ["T": parameters.subtracting([.bfloat16])])
            }
            let optional: OperatorContract.Arity = version < 13 ? .required : .optional
            return OperatorContract(inputs: [.init("X", "T1"), .init("roi", "T2", optional), .init("scales", .float, optional),
                                             .init("sizes", .int64, .optional)],
                                    outputs: [.init("Y", "T1")], types: ["T1": parameters, "T2": ElementTypes.floatingPoint])
        }) { try Resize($0) },
        OperatorDefinition("Upsample", versions: [1, 7, 9], contracts: { version in
            OperatorContract(inputs: [.init("X", "T")] + (version < 9 ? [] : [.init("scales", .float)]), outputs: [.init("Y", "T")],
                             types: ["T": ElementTypes.allOfOpset13.subtracting([.string, .bfloat16])])
        }) { try Resize($0) },
    ]
}

/// Resize (10: scales input, asymmetric coordinates; 11+: roi, scales or sizes, coordinate and
/// nearest modes, cubic; 18+: antialias, axes, keep_aspect_ratio_policy; 19: half_pixel_symmetric)
/// and Upsample (7: scales attribute; 9: scales input), which behaves as Resize 10.
struct Resize: Operator {
    enum Mode: String { case nearest, linear, cubic }

    enum CoordinateMode: String {
        case halfPixel = "half_pixel", halfPixelSymmetric = "half_pixel_symmetric"
        case pytorchHalfPixel = "pytorch_half_pixel", alignCorners = "align_corners"
        case asymmetric, tfCropAndResize = "tf_crop_and_resize", tfHalfPixelForNN = "tf_half_pixel_for_nn"
    }

    enum NearestMode: String {
        case roundPreferFloor = "round_prefer_floor", roundPreferCeil = "round_prefer_ceil", floor, ceil
        /// Resize 10 and Upsample: truncate when upsampling an axis, round up when downsampling (as ONNX Runtime).
        case legacy
    }

    enum AspectPolicy: String {
        case stretch
        case notLarger = "not_larger", notSmaller = "not_smaller"
    }

    let mode: Mode
    let coordinateMode: CoordinateMode
    let nearestMode: NearestMode
    let cubicCoefficient: Double
    let excludeOutside: Bool
    let extrapolationValue: Double
    let antialias: Bool
    let axes: [Int]?
    let aspectPolicy: AspectPolicy
    /// Upsample 7's `scales` attribute.
    let attributeScales: [Double]?
    /// Input positions of roi, scales and sizes (nil where the version has no such input).
    let roiInput: Int?, scalesInput: Int?, sizesInput: Int?
    let isUpsample: Bool
    /// The inputs when roi, scales and sizes are all known at load (for output shapes); nil otherwise.
    var knownInputs: [Tensor?]?

    init(_ context: OperatorContext) throws {
        isUpsample = context.node.opType == "Upsample"
        let legacy = isUpsample || context.version < 11
        func parse<T: RawRepresentable<String>>(_ name: String, _ fallback: String) throws -> T {
            let text = try context.string(name, default: fallback)
            guard let value = T(rawValue: text) else { throw OpError("unknown \(name) '\(text)'") }
            return value
        }
        // Upsample 1 calls linear interpolation "bilinear".
        let modeName = try context.string("mode", default: "nearest")
        if isUpsample && context.version < 7 && modeName == "bilinear" {
            mode = .linear
        } else {
            mode = try parse("mode", "nearest")
        }
        if legacy && mode == .cubic { throw OpError("cubic mode needs Resize 11 or later") }
        coordinateMode = legacy ? .asymmetric : try parse("coordinate_transformation_mode", "half_pixel")
        nearestMode = legacy ? .legacy : try parse("nearest_mode", "round_prefer_floor")
        cubicCoefficient = Double(try context.float("cubic_coeff_a", default: -0.75))
        excludeOutside = try context.int("exclude_outside", default: 0) != 0
        extrapolationValue = Double(try context.float("extrapolation_value", default: 0))
        antialias = try context.int("antialias", default: 0) != 0
        if antialias && mode == .nearest { throw OpError("antialias needs linear or cubic mode") }
        axes = try context.ints("axes")
        aspectPolicy = try parse("keep_aspect_ratio_policy", "stretch")
        if isUpsample && context.version < 7 {
            // Upsample 1: a 4-D input scaled on its last two axes.
            let height = try context.required("height_scale", context.float), width = try context.required("width_scale", context.float)
            attributeScales = [1, 1, Double(height), Double(width)]
        } else {
            attributeScales = isUpsample && context.version < 9 ? try context.required("scales", context.floats).map(Double.init) : nil
        }
        if legacy {
            (roiInput, scalesInput, sizesInput) = (nil, attributeScales == nil ? 1 : nil, nil)
        } else {
            (roiInput, scalesInput, sizesInput) = (1, 2, 3)
        }
        let parameters = [roiInput, scalesInput, sizesInput].compactMap { $0 }
        knownInputs = parameters.allSatisfy({ !context.hasInput($0) || context.constant($0) != nil }) ? context.constants : nil
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let data = inputs.first ?? nil else { return [] }
        if mode != .nearest && data.dataType == .bool {
            throw OpError("\(mode.rawValue) resize does not take \(data.dataType)")
        }
        guard let knownInputs, let shape = data.shape else { return [TensorType(data.dataType, data.rank.map(Layout.unknownDims))] }
        return [TensorType(data.dataType, shape: Shape(try plan(knownInputs, dims: shape.dims).outputDims))]
    }

    /// Output sizes and the scale used for coordinates, per axis.
    struct Plan {
        var outputDims: [Int]
        var scales: [Double]
        var roi: [(start: Double, end: Double)]
        /// Axes that change (in ascending order).
        var resized: [Int]
    }

    func plan(_ inputs: [Tensor?], dims: [Int]) throws -> Plan {
        let rank = dims.count
        let axes = try Layout.axes(self.axes ?? Array(0..<rank), rank: rank)
        func values(_ position: Int?) -> Tensor? {
            guard let position, position < inputs.count, let tensor = inputs[position], tensor.elementCount > 0 else { return nil }
            return tensor
        }
        var outputDims = dims, scales = [Double](repeating: 1, count: rank)
        if let sizesTensor = values(sizesInput) {
            guard values(scalesInput) == nil else { throw OpError.invalidArgument("give scales or sizes, not both") }
            let sizes = try Layout.integers(sizesTensor, "sizes")
            guard sizes.count == axes.count, sizes.allSatisfy({ (0...Layout.maximumElementCount).contains($0) }) else {
                throw OpError.invalidArgument("sizes \(sizes) do not fit \(axes.count) axes")
            }
            for (index, axis) in axes.enumerated() {
                guard dims[axis] > 0 || sizes[index] == 0 else { throw OpError.invalidArgument("cannot resize an empty axis to \(sizes[index])") }
                scales[axis] = dims[axis] == 0 ? 1 : Double(Float(sizes[index]) / Float(dims[axis]))
                outputDims[axis] = sizes[index]
            }
            if aspectPolicy != .stretch {
                let chosen = axes.map { scales[$0] }
                let scale = (aspectPolicy == .notLarger ? chosen.min() : chosen.max()) ?? 1
                for axis in axes {
                    scales[axis] = scale
                    let size = (scale * Double(dims[axis]) + 0.5).rounded(.down)
                    guard size < Double(Layout.maximumElementCount) else { throw OpError.invalidArgument("sizes \(sizes) are too large") }
                    outputDims[axis] = Int(size)
                }
            }
        } else {
            let given: [Double]
            if let attributeScales {
                given = attributeScales
            } else if let scalesTensor = values(scalesInput) {
                given = scalesTensor.doubles()
            } else {
                throw OpError.invalidArgument("Resize needs scales or sizes")
            }
            guard given.count == axes.count, given.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw OpError.invalidArgument("scales \(given) do not fit \(axes.count) axes")
            }
            if isUpsample, let below = given.first(where: { $0 < 1 }) { throw OpError.invalidArgument("Upsample scale \(below) is below 1") }
            for (index, axis) in axes.enumerated() {
                scales[axis] = given[index]
                // Single precision, as ONNX Runtime sizes it (0.7 × 10 is 7 there, 6 in double).
                let size = (Float(given[index]) * Float(dims[axis])).rounded(.down)
                guard size < Float(Layout.maximumElementCount) else { throw OpError.invalidArgument("scale \(given[index]) is too large") }
                outputDims[axis] = Int(size)
            }
        }
        _ = try Layout.checkedShape(outputDims)
        var roi = [(start: Double, end: Double)](repeating: (0, 1), count: rank)
        if coordinateMode == .tfCropAndResize {
            guard let roiTensor = values(roiInput) else { throw OpError.invalidArgument("tf_crop_and_resize needs roi") }
            let bounds = roiTensor.doubles()
            guard bounds.allSatisfy(\.isFinite) else { throw OpError.invalidArgument("roi \(bounds) is not finite") }
            guard bounds.count == 2 * axes.count else { throw OpError.invalidArgument("roi has \(bounds.count) values for \(axes.count) axes") }
            for (index, axis) in axes.enumerated() { roi[axis] = (bounds[index], bounds[axes.count + index]) }
        }
        let resized = (0..<rank).filter { axis in
            outputDims[axis] != dims[axis] || scales[axis] != 1 || roi[axis] != (0, 1)
        }
        return Plan(outputDims: outputDims, scales: scales, roi: roi, resized: resized)
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let data = try Layout.input(inputs, 0, "X")
        let dims = data.shape.dims
        let plan = try plan(inputs, dims: dims)
        if plan.resized.isEmpty { return [data] }
        // Nothing to sample (and no filter to size for an axis scaled to nothing).
        if plan.outputDims.contains(0) { return [try context.allocate(data.dataType, Shape(plan.outputDims))] }
        if mode == .nearest { return [try nearest(data, plan, context)] }
        guard data.dataType != .bool else { throw OpError("\(mode.rawValue) resize does not take bool") }
        return [try interpolated(data, plan, context)]
    }

    // MARK: Coordinates

    /// Where output position `index` of an axis samples the input, in input coordinates. Computed in
    /// single precision as ONNX Runtime does, so that borderline nearest picks agree with it.
    func sourceCoordinate(_ index: Int, inputWidth: Int, outputWidth: Int, scale: Double, roi: (start: Double, end: Double)) -> Double {
        let x = Float(index), scale = Float(scale), input = Float(inputWidth), output = Float(outputWidth)
        let coordinate: Float
        switch coordinateMode {
        case .halfPixel: coordinate = (x + 0.5) / scale - 0.5
        case .halfPixelSymmetric:
            let adjustment = output / (scale * input)
            let offset = input / 2 * (1 - adjustment)
            coordinate = Float(Double(offset) + (Double(x) + 0.5) / Double(scale) - 0.5)
        case .pytorchHalfPixel: coordinate = outputWidth > 1 ? (x + 0.5) / scale - 0.5 : 0
        // The output's integer length, as ONNX Runtime and PyTorch; onnx.reference takes scale ·
        // input (fractional when downsampling by scales), so two of its node tests disagree with both.
        case .alignCorners: coordinate = outputWidth > 1 ? x * (input - 1) / (output - 1) : 0
        case .asymmetric: coordinate = x / scale
        case .tfHalfPixelForNN: coordinate = (x + 0.5) / scale
        case .tfCropAndResize:
            let (start, end) = (Float(roi.start), Float(roi.end))
            coordinate = outputWidth > 1 ? start * (input - 1) + x * (end - start) * (input - 1) / (output - 1)
                : 0.5 * (start + end) * (input - 1)
        }
        return Double(coordinate)
    }

    /// True when the coordinate lies outside the input and the output takes `extrapolation_value`.
    func isExtrapolated(_ coordinate: Double, inputWidth: Int) -> Bool {
        coordinateMode == .tfCropAndResize && (coordinate < 0 || coordinate > Double(inputWidth - 1))
    }

    // MARK: Nearest

    func nearestIndex(_ x: Double, inputWidth: Int, scale: Double) -> Int {
        let base = x.rounded(.down), fraction = x - base
        let index: Double
        switch nearestMode {
        case .legacy: index = scale < 1 ? x.rounded(.up) : x.rounded(.towardZero)
        case _ where fraction == 0: index = x
        case .roundPreferFloor: index = fraction <= 0.5 ? base : base + 1
        case .roundPreferCeil: index = fraction < 0.5 ? base : base + 1
        case .floor: index = base
        case .ceil: index = base + 1
        }
        return Int(min(max(index, 0), Double(inputWidth - 1)))
    }

    private func nearest(_ data: Tensor, _ plan: Plan, _ context: ExecutionContext) throws -> Tensor {
        let dims = data.shape.dims, strides = data.shape.strides
        let target = try context.allocate(data.dataType, Shape(plan.outputDims))
        var offsets: [[Int]] = [], extrapolated: [Int: [Int]] = [:]
        for axis in dims.indices {
            guard plan.resized.contains(axis) else {
                offsets.append((0..<dims[axis]).map { $0 * strides[axis] })
                continue
            }
            guard dims[axis] > 0 || plan.outputDims[axis] == 0 else { throw OpError.invalidArgument("cannot resize an empty axis") }
            var axisOffsets: [Int] = []
            for index in 0..<plan.outputDims[axis] {
                let x = sourceCoordinate(index, inputWidth: dims[axis], outputWidth: plan.outputDims[axis],
                                         scale: plan.scales[axis], roi: plan.roi[axis])
                if isExtrapolated(x, inputWidth: dims[axis]) { extrapolated[axis, default: []].append(index) }
                axisOffsets.append(nearestIndex(x, inputWidth: dims[axis], scale: plan.scales[axis]) * strides[axis])
            }
            offsets.append(axisOffsets)
        }
        let result = try Layout.gather(data, indexShape: plan.outputDims, elementOffsets: offsets, into: target, context)
        if !extrapolated.isEmpty {
            let value = try Layout.element(extrapolationValue, as: data.dataType)
            for (axis, positions) in extrapolated { Self.fill(result, axis: axis, positions: positions, with: value) }
        }
        return result
    }

    /// Sets every element whose index along `axis` is one of `positions` to `value`.
    static func fill(_ tensor: Tensor, axis: Int, positions: [Int], with value: Tensor) {
        let dims = tensor.shape.dims
        let outer = dims[..<axis].reduce(1, *), width = dims[axis], inner = dims[(axis + 1)...].reduce(1, *)
        for o in 0..<outer {
            for position in positions { Layout.fill(tensor, offset: (o * width + position) * inner, count: inner, with: value) }
        }
    }

    // MARK: Linear and cubic

    /// The input positions and weights mixed into each output position of one axis.
    struct Taps {
        var count: Int
        var indices: [Int]
        var weights: [Float]
        var extrapolated: [Int]
    }

    func taps(inputWidth: Int, outputWidth: Int, scale: Double, roi: (start: Double, end: Double)) -> Taps {
        // The filter is stretched by 1/scale when antialiasing a downscale.
        let support = antialias ? min(scale, 1) : 1
        let reach = mode == .linear ? 1.0 : 2.0
        let first = Int((-reach / support).rounded(.down)) + 1
        let count = 2 - 2 * first
        var taps = Taps(count: count, indices: [], weights: [], extrapolated: [])
        taps.indices.reserveCapacity(outputWidth * count)
        taps.weights.reserveCapacity(outputWidth * count)
        for index in 0..<outputWidth {
            var x = sourceCoordinate(index, inputWidth: inputWidth, outputWidth: outputWidth, scale: scale, roi: roi)
            if isExtrapolated(x, inputWidth: inputWidth) { taps.extrapolated.append(index) }
            // Far-off coordinates (a wild roi) only ever read the clamped edge; keep them in Int range.
            x = min(max(x, -Double(inputWidth) - 8), 2 * Double(inputWidth) + 8)
            // The left neighbour is preferred: an exact hit counts as ratio 1 from the one before.
            var base = x.rounded(.down), ratio = x - base
            if ratio == 0 {
                base -= 1
                ratio = 1
            }
            var weights = (0..<count).map { tap in
                filter(Double(first + tap) - ratio, support: support)
            }
            let positions = (0..<count).map { Int(base) + first + $0 }
            if excludeOutside {
                for tap in 0..<count where !(0..<inputWidth).contains(positions[tap]) { weights[tap] = 0 }
            }
            let sum = weights.reduce(0, +)
            if (antialias || excludeOutside) && sum != 0 { weights = weights.map { $0 / sum } }
            taps.indices += positions.map { min(max($0, 0), inputWidth - 1) }
            taps.weights += weights.map(Float.init)
        }
        return taps
    }

    /// The interpolation kernel at signed distance `distance` (in input samples), stretched by `support`.
    func filter(_ distance: Double, support: Double) -> Double {
        let x = abs(distance * support)
        if mode == .linear { return max(0, 1 - x) }
        let a = cubicCoefficient
        if x <= 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
        return 0
    }

    private func interpolated(_ data: Tensor, _ plan: Plan, _ context: ExecutionContext) throws -> Tensor {
        var current = try Self.floats(data, context)
        var dims = data.shape.dims
        // The passes commute; shrinking axes go first and growing ones last, innermost first among
        // equals, so the costlier gathering pass along the last axis sees the fewest rows.
        let order = plan.resized.sorted { a, b in
            let (growthA, growthB) = (Double(plan.outputDims[a]) / Double(max(dims[a], 1)), Double(plan.outputDims[b]) / Double(max(dims[b], 1)))
            return growthA != growthB ? growthA < growthB : a > b
        }
        for axis in order {
            guard dims[axis] > 0 || plan.outputDims[axis] == 0 else { throw OpError.invalidArgument("cannot resize an empty axis") }
            let taps = taps(inputWidth: dims[axis], outputWidth: plan.outputDims[axis], scale: plan.scales[axis], roi: plan.roi[axis])
            var outputDims = dims
            outputDims[axis] = plan.outputDims[axis]
            let next = try context.allocate(.float, Shape(outputDims))
            withExtendedLifetime(current) {
                Resample.axis(source: current.pointer(as: Float.self), target: next.mutablePointer(as: Float.self),
                              outer: dims[..<axis].reduce(1, *), inputWidth: dims[axis], outputWidth: outputDims[axis],
                              inner: dims[(axis + 1)...].reduce(1, *), taps: taps.count,
                              indices: taps.indices, weights: taps.weights, parallelism: context.parallelism)
            }
            if !taps.extrapolated.isEmpty {
                Self.fill(next, axis: axis, positions: taps.extrapolated, with: Tensor(scalar: Float(extrapolationValue)))
            }
            current = next
            dims = outputDims
        }
        return try Self.converted(current, to: data.dataType, context)
    }

    /// The tensor as float (itself when it already is).
    static func floats(_ tensor: Tensor, _ context: ExecutionContext) throws -> Tensor {
        if tensor.dataType == .float { return tensor }
        let values = tensor.doubles()
        let result = try context.allocate(.float, tensor.shape)
        let target = result.mutablePointer(as: Float.self)
        for (index, value) in values.enumerated() { target[index] = Float(value) }
        return result
    }

    /// Float results in `dataType`: integers rounded half to even and saturated.
    static func converted(_ tensor: Tensor, to dataType: DataType, _ context: ExecutionContext) throws -> Tensor {
        if dataType == .float { return tensor }
        guard let result = try dataType.visit(Conversion(source: tensor, context: context)) else {
            throw OpError("cannot resize \(dataType) by interpolation")
        }
        return result
    }

    private struct Conversion: NumericVisitor {
        let source: Tensor, context: ExecutionContext

        func visit<T: NumericElement>(_ type: T.Type) throws -> Tensor {
            let result = try context.allocate(T.dataType, source.shape)
            let target = result.mutablePointer(as: T.self), values = source.pointer(as: Float.self)
            let rounds = T.dataType.isInteger
            withExtendedLifetime(source) {
                for index in 0..<source.elementCount {
                    let value = Double(values[index])
                    target[index] = T(converting: rounds ? value.rounded(.toNearestOrEven) : value)
                }
            }
            return result
        }
    }
}
