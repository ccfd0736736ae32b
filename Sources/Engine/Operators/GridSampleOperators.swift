import Kernels
import Tensors

/// GridSample (16: 4-D, bilinear/nearest/bicubic; 20, 22: N-D, linear/nearest/cubic): X
/// [N, C, D1...Dr] sampled at the points of grid [N, O1...Or, r] (normalised coordinates in
/// [-1, 1], the last one for the innermost axis), as onnx.reference and ONNX Runtime do:
/// coordinates outside the image are clamped (border) or reflected (reflection) before
/// interpolating, and taps outside it read zero, the nearest edge or the reflected pixel.
struct GridSample: Operator {
    enum Mode { case nearest, linear, cubic }
    enum Padding: String { case zeros, border, reflection }

    let mode: Mode, padding: Padding, alignCorners: Bool, version: Int

    init(_ context: OperatorContext) throws {
        version = context.version
        let names: [String: Mode] = version < 20 ? ["nearest": .nearest, "bilinear": .linear, "bicubic": .cubic]
                                                 : ["nearest": .nearest, "linear": .linear, "cubic": .cubic]
        let name = try context.string("mode", default: version < 20 ? "bilinear" : "linear")
        guard let mode = names[name] else { throw OpError("mode '\(name)' is not one of \(names.keys.sorted())") }
        self.mode = mode
        let paddingName = try context.string("padding_mode", default: "zeros")
        guard let padding = Padding(rawValue: paddingName) else { throw OpError("padding_mode '\(paddingName)' is not zeros, border or reflection") }
        self.padding = padding
        alignCorners = try context.int("align_corners", default: 0) != 0
    }

    /// Taps per axis of the interpolation.
    private var taps: Int { switch mode { case .nearest: 1; case .linear: 2; case .cubic: 4 } }

    /// Most taps one output element may combine (4096: cubic in 6 dimensions, linear in 12).
    static let maximumTaps = 4096

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(x.dataType, x.dims.map { $0.map { _ in Dim.unknown } })]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0), grid = try inputs.required(1)
        let rank = x.shape.rank, spatial = rank - 2
        guard rank >= 3, version >= 20 || rank == 4 else {
            throw OpError.invalidArgument("X must be [N, C, \(version >= 20 ? "D1, ..." : "H, W")], got \(x.shape)")
        }
        guard grid.shape.rank == rank, grid.shape[0] == x.shape[0], grid.shape[rank - 1] == spatial else {
            throw OpError.invalidArgument("grid \(grid.shape) must be [N, \(Array(repeating: "_", count: spatial).joined(separator: ", ")), \(spatial)] for X \(x.shape)")
        }
        var combinations = 1
        for _ in 0..<spatial {
            combinations *= taps
            guard combinations <= Self.maximumTaps else {
                throw OpError.invalidArgument("\(spatial)-D \(mode) sampling takes more than \(Self.maximumTaps) taps per element")
            }
        }
        let outputShape = try Layout.checkedShape([x.shape[0], x.shape[1]] + grid.shape.dims[1..<(rank - 1)])
        let points = grid.shape.dims[1..<(rank - 1)].reduce(1, *)
        let coordinates = try convert(grid, to: .double, context)
        let y = try context.allocate(x.dataType, outputShape)
        let kernel = Kernel(sampler: self, x: x, grid: coordinates, y: y, points: points, combinations: combinations)
        guard try x.dataType.visit(kernel) != nil else { throw OpError("GridSample does not take \(x.dataType) elements") }
        return [y]
    }

    /// The pixel index along an axis of `size` for tap index `i`, or nil when the tap reads zero.
    func resolve(_ i: Int, size: Int, low: Double, high: Double) -> Int? {
        switch padding {
        case .zeros: return i >= 0 && i < size ? i : nil
        case .border: return min(max(i, 0), size - 1)
        case .reflection: return min(max(Int(Self.reflect(Double(i), low, high)), 0), size - 1)
        }
    }

    /// `x` reflected by the nearer border until it lies within [low, high].
    static func reflect(_ x: Double, _ low: Double, _ high: Double) -> Double {
        let range = high - low
        guard range > 0 else { return low }
        if x < low {
            let distance = low - x, folds = (distance / range).rounded(.towardZero)
            let rest = distance - folds * range
            return folds.truncatingRemainder(dividingBy: 2) == 0 ? low + rest : high - rest
        }
        if x > high {
            let distance = x - high, folds = (distance / range).rounded(.towardZero)
            let rest = distance - folds * range
            return folds.truncatingRemainder(dividingBy: 2) == 0 ? high - rest : low + rest
        }
        return x
    }

    /// Keys' cubic convolution weights (a = -0.75) of the four taps around a point `t` ∈ [0, 1)
    /// past the second one.
    static func cubicWeights(_ t: Double) -> [Double] {
        let a = -0.75
        let w0 = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
        let w1 = ((a + 2) * t - (a + 3)) * t * t + 1
        let w2 = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1
        let w3 = ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a
        return [w0, w1, w2, w3]
    }

    /// The taps (pixel index or nil for zero, and weight) along an axis of `size` for the
    /// normalised coordinate `normalized`.
    func axisTaps(_ normalized: Double, size: Int) -> [(Int?, Double)] {
        let low = alignCorners ? 0 : -0.5, high = alignCorners ? Double(size - 1) : Double(size) - 0.5
        var x = alignCorners ? (normalized + 1) / 2 * Double(size - 1) : ((normalized + 1) * Double(size) - 1) / 2
        if mode == .nearest { x = x.rounded(.toNearestOrEven) }
        if x < low || x > high {
            switch padding {
            case .zeros: break
            case .border: x = min(max(x, 0), Double(size - 1))
            case .reflection: x = Self.reflect(x, low, high)
            }
        }
        // A coordinate far outside (or NaN, from a hostile grid) reads only taps outside the image.
        let bound = Double(size) + 8
        x = x.isNaN ? -bound : min(max(x, -bound), bound)
        let base = Int(x.rounded(.down)), t = x - Double(base)
        switch mode {
        case .nearest: return [(resolve(base, size: size, low: low, high: high), 1)]
        case .linear: return [(resolve(base, size: size, low: low, high: high), 1 - t), (resolve(base + 1, size: size, low: low, high: high), t)]
        case .cubic: return zip(-1...2, Self.cubicWeights(t)).map { (resolve(base + $0, size: size, low: low, high: high), $1) }
        }
    }

    private struct Kernel: ArithmeticVisitor {
        let sampler: GridSample, x: Tensor, grid: Tensor, y: Tensor, points: Int, combinations: Int

        func visit<T: ArithmeticElement>(_: T.Type) {
            let dims = Array(x.shape.dims[2...]), spatial = dims.count, strides = Shape(dims).strides
            let channels = x.shape[1], plane = dims.reduce(1, *)
            withExtendedLifetime((x, grid)) {
                let source = x.pointer(as: T.self), coordinates = grid.pointer(as: Double.self), target = y.mutablePointer(as: T.self)
                var offsets: [Int] = [], weights: [Double] = []
                offsets.reserveCapacity(combinations); weights.reserveCapacity(combinations)
                for n in 0..<x.shape[0] {
                    for p in 0..<points {
                        let point = coordinates + (n * points + p) * spatial
                        // The grid's last coordinate is the innermost axis.
                        let axes = (0..<spatial).map { sampler.axisTaps(point[spatial - 1 - $0], size: dims[$0]) }
                        offsets.removeAll(keepingCapacity: true); weights.removeAll(keepingCapacity: true)
                        var choice = [Int](repeating: 0, count: spatial)
                        for _ in 0..<combinations {
                            var offset = 0, weight = 1.0, inside = true
                            for d in 0..<spatial {
                                let (index, w) = axes[d][choice[d]]
                                guard let index else { inside = false; break }
                                offset += index * strides[d]; weight *= w
                            }
                            if inside { offsets.append(offset); weights.append(weight) }
                            var d = spatial - 1
                            while d >= 0 { choice[d] += 1; if choice[d] < axes[d].count { break }; choice[d] = 0; d -= 1 }
                        }
                        for c in 0..<channels {
                            let image = source + (n * channels + c) * plane
                            var sum = 0.0
                            for i in offsets.indices { sum += weights[i] * image[offsets[i]].doubleValue }
                            target[(n * channels + c) * points + p] = T(converting: sum)
                        }
                    }
                }
            }
        }
    }
}

/// AffineGrid (20): the sampling grid of `theta` [N, 2, 3] (or [N, 3, 4]) for an output of `size`
/// [N, C, H, W] (or [N, C, D, H, W]): [N, H, W, 2] (or [N, D, H, W, 3]) points θ·(x, y[, z], 1) over
/// a regular grid of normalised coordinates (pixel centres, or corners with `align_corners`).
struct AffineGrid: Operator {
    let alignCorners: Bool

    init(_ context: OperatorContext) throws { alignCorners = try context.int("align_corners", default: 0) != 0 }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let theta = inputs.type(0) else { return [] }
        return [TensorType(theta.dataType, nil)]
    }

    /// The normalised coordinate of index `i` along an axis of `size`.
    private func coordinate(_ i: Int, _ size: Int) -> Double {
        if alignCorners { return size > 1 ? -1 + 2 * Double(i) / Double(size - 1) : -1 }
        return -1 + (2 * Double(i) + 1) / Double(size)
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let theta = try inputs.required(0)
        let size = try Layout.integers(inputs.optional(1), "size")
        guard size.count == 4 || size.count == 5 else { throw OpError.invalidArgument("size must be [N, C, H, W] or [N, C, D, H, W], got \(size)") }
        let spatial = size.count - 2
        guard theta.shape.rank == 3, theta.shape[0] == size[0], theta.shape[1] == spatial, theta.shape[2] == spatial + 1 else {
            throw OpError.invalidArgument("theta must be [N, \(spatial), \(spatial + 1)] for size \(size), got \(theta.shape)")
        }
        let dims = Array(size[2...])
        let outputShape = try Layout.checkedShape([size[0]] + dims + [spatial])
        let matrices = try convert(theta, to: .double, context)
        let y = try context.allocate(.double, outputShape)
        let points = dims.reduce(1, *)
        withExtendedLifetime(matrices) {
            let m = matrices.pointer(as: Double.self), target = y.mutablePointer(as: Double.self)
            var index = [Int](repeating: 0, count: spatial)
            for p in 0..<points {
                // Homogeneous point: the innermost axis first (x, y[, z]), then 1.
                let base = (0..<spatial).map { coordinate(index[spatial - 1 - $0], dims[spatial - 1 - $0]) } + [1]
                for n in 0..<size[0] {
                    for row in 0..<spatial {
                        var sum = 0.0
                        for column in 0...spatial { sum += m[(n * spatial + row) * (spatial + 1) + column] * base[column] }
                        target[(n * points + p) * spatial + row] = sum
                    }
                }
                var d = spatial - 1
                while d >= 0 { index[d] += 1; if index[d] < dims[d] { break }; index[d] = 0; d -= 1 }
            }
        }
        return [try convert(y, to: theta.dataType, context)]
    }
}
