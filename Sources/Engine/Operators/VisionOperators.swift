import Kernels
import Tensors

/// Image-shaped operators: crops and pads, folding columns back into images, sampling grids,
/// regions of interest, deformable convolution, decoding encoded images (JPEG, PNG, WebP, BMP, PNM, TIFF, JPEG 2000).
enum VisionOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("CenterCropPad", versions: [18], contract: OperatorContract(
            inputs: [.init("input_data", "T"), .init("shape", "Tind")], outputs: [.init("output_data", "T")],
            types: ["T": ElementTypes.allOfOpset13, "Tind": [.int32, .int64]])) { try CenterCropPad($0) },
        // Numbers only (ONNX lists every type).
        OperatorDefinition("Col2Im", versions: [18], contract: OperatorContract(
            inputs: [.init("input", "T"), .init("image_shape", .int64), .init("block_shape", .int64)], outputs: [.init("output", "T")],
            types: ["T": ElementTypes.numeric])) { try Col2Im($0) },
        // Numbers only (ONNX lists every type).
        OperatorDefinition("GridSample", versions: [16, 20, 22], contract: OperatorContract(
            inputs: [.init("X", "T1"), .init("grid", "T2")], outputs: [.init("Y", "T1")],
            types: ["T1": ElementTypes.numeric, "T2": ElementTypes.floatingPoint])) { try GridSample($0) },
        OperatorDefinition("AffineGrid", versions: [20], contract: OperatorContract(
            inputs: [.init("theta", "T1"), .init("size", "T2")], outputs: [.init("grid", "T1")],
            types: ["T1": ElementTypes.floatingPoint, "T2": [.int64]])) { try AffineGrid($0) },
        OperatorDefinition("RoiAlign", versions: [10, 16, 22], contract: OperatorContract(
            inputs: [.init("X", "T1"), .init("rois", "T1"), .init("batch_indices", "T2")], outputs: [.init("Y", "T1")],
            types: ["T1": ElementTypes.floatingPoint, "T2": [.int64]])) { try RoiAlign($0) },
        OperatorDefinition("DeformConv", versions: [19, 22], contract: OperatorContract(
            inputs: [.init("X", "T"), .init("W", "T"), .init("offset", "T"), .init("B", "T", .optional), .init("mask", "T", .optional)],
            outputs: [.init("Y", "T")], types: ["T": ElementTypes.floatingPoint])) { try DeformConv($0) },
        OperatorDefinition("MaxRoiPool", versions: [1, 22], contract: OperatorContract(
            inputs: [.init("X", "T"), .init("rois", "T")], outputs: [.init("Y", "T")],
            types: ["T": ElementTypes.floatingPoint])) { try MaxRoiPool($0) },
        OperatorDefinition("ImageDecoder", versions: [20], contract: OperatorContract(
            inputs: [.init("encoded_stream", "T1")], outputs: [.init("image", "T2")], types: ["T1": [.uint8], "T2": [.uint8]])) {
            try ImageDecoder($0)
        },
    ]
}

/// CenterCropPad: each of `axes` (default all) cropped or zero-padded to the size `shape` gives it,
/// centred (an odd difference puts the extra element at the end).
struct CenterCropPad: Operator {
    let axes: [Int]?

    init(_ context: OperatorContext) throws { axes = try context.ints("axes") }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(x.dataType, x.dims.map { $0.map { _ in Dim.unknown } })]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let sizes = try Layout.integers(inputs.optional(1), "shape")
        let rank = x.shape.rank
        let axes = try Layout.axes(self.axes ?? Array(0..<rank), rank: rank)
        guard sizes.count == axes.count else {
            throw OpError.invalidArgument("shape has \(sizes.count) values for \(axes.count) axes")
        }
        var dims = x.shape.dims, sourceStart = Array(repeating: 0, count: rank), targetStart = sourceStart
        for (axis, size) in zip(axes, sizes) {
            guard size >= 0 else { throw OpError.invalidArgument("shape \(sizes) has a negative size") }
            if size < dims[axis] { sourceStart[axis] = (dims[axis] - size) / 2 } else { targetStart[axis] = (size - dims[axis]) / 2 }
            dims[axis] = size
        }
        let shape = try Layout.checkedShape(dims)
        let extent = zip(x.shape.dims, dims).map { min($0, $1) }
        if x.dataType == .string {
            // Strings move as their numbers plus one; the padding's zeros become empty strings.
            let strings = x.strings
            let numbers = Tensor((0..<strings.count).map { Int64($0 + 1) }, shape: x.shape)
            let moved = try place(numbers, shape, extent, sourceStart, targetStart, context)
            return [Tensor(strings: moved.scalars(as: Int64.self).map { $0 == 0 ? "" : strings[Int($0) - 1] }, shape: shape)]
        }
        return [try place(x, shape, extent, sourceStart, targetStart, context)]
    }

    /// A zero tensor of `shape` holding the `extent` block of `x` from `sourceStart` at `targetStart`.
    private func place(_ x: Tensor, _ shape: Shape, _ extent: [Int], _ sourceStart: [Int], _ targetStart: [Int],
                       _ context: ExecutionContext) throws -> Tensor {
        let y = try context.allocate(x.dataType, shape)
        y.rawPointer.initializeMemory(as: UInt8.self, repeating: 0, count: y.byteCount)
        let sourceStrides = x.shape.strides, targetStrides = shape.strides
        let offset = { (start: [Int], strides: [Int]) in zip(start, strides).reduce(0) { $0 + $1.0 * $1.1 } }
        Layout.copy(x, sourceOffset: offset(sourceStart, sourceStrides), sourceStrides: sourceStrides, shape: extent,
                    into: y, targetOffset: offset(targetStart, targetStrides), targetStrides: targetStrides, context)
        return y
    }
}

/// Col2Im: the inverse of im2col. Input [N, C × ∏block, L] holds, for each of the L block positions
/// of a sliding window over an image of `image_shape` (with `pads`, `strides`, `dilations`), the C
/// blocks' elements; each is added into its image position. Output [N, C, image...].
struct Col2Im: Operator {
    let dilations: [Int]?, pads: [Int]?, strides: [Int]?

    init(_ context: OperatorContext) throws {
        dilations = try context.ints("dilations")
        pads = try context.ints("pads")
        strides = try context.ints("strides")
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(x.dataType, nil)]
    }

    /// Where each (kernel offset, block position) element of one channel lands in the image (flat
    /// index, or -1 when it falls in the padding), row-major over [∏block, L]; and C.
    struct Geometry {
        let channels: Int, kernelElements: Int, blocks: Int, imageElements: Int
        let targets: [Int]
        let outputShape: Shape
    }

    static func geometry(input: Shape, image: [Int], block: [Int], dilations: [Int]?, pads: [Int]?, strides: [Int]?) throws -> Geometry {
        let n = image.count
        guard n >= 1, block.count == n else {
            throw OpError.invalidArgument("image_shape \(image) and block_shape \(block) must have one size per spatial axis")
        }
        guard input.rank == 3 else { throw OpError.invalidArgument("input must be [N, C × ∏block_shape, L], got \(input)") }
        let dilations = dilations ?? Array(repeating: 1, count: n), strides = strides ?? Array(repeating: 1, count: n)
        let pads = pads ?? Array(repeating: 0, count: 2 * n)
        guard dilations.count == n, strides.count == n, pads.count == 2 * n else {
            throw OpError.invalidArgument("dilations \(dilations), strides \(strides) and pads \(pads) do not fit \(n) spatial axes")
        }
        guard image.allSatisfy({ $0 >= 1 }), block.allSatisfy({ $0 >= 1 }), dilations.allSatisfy({ $0 >= 1 }),
              strides.allSatisfy({ $0 >= 1 }), pads.allSatisfy({ $0 >= 0 }) else {
            throw OpError.invalidArgument("image_shape \(image), block_shape \(block), dilations, strides must be positive and pads not negative")
        }
        var kernelElements = 1
        for size in block { kernelElements = try Layout.multiplied(kernelElements, size, "block_shape") }
        guard input[1] % kernelElements == 0 else {
            throw OpError.invalidArgument("input's dimension 1 (\(input[1])) is not a multiple of ∏block_shape (\(kernelElements))")
        }
        var counts: [Int] = []
        for d in 0..<n {
            // (image + pads - dilation × (block - 1) - 1) / stride + 1 block positions, checked.
            let span = try Layout.multiplied(dilations[d], block[d] - 1, "dilated block")
            let (padded, overflow1) = image[d].addingReportingOverflow(pads[d])
            let (total, overflow2) = padded.addingReportingOverflow(pads[d + n])
            guard !overflow1, !overflow2, total - 1 >= span else {
                throw OpError.invalidArgument("block \(block) dilated by \(dilations) does not fit image \(image) padded by \(pads)")
            }
            counts.append((total - 1 - span) / strides[d] + 1)
        }
        var blocks = 1
        for count in counts { blocks = try Layout.multiplied(blocks, count, "block count") }
        guard blocks == input[2] else {
            throw OpError.invalidArgument("input has \(input[2]) block positions, the sliding window gives \(blocks) (\(counts))")
        }
        let outputShape = try Layout.checkedShape([input[0], input[1] / kernelElements] + image)
        let imageElements = image.reduce(1, *)
        // kernelElements × blocks ≤ the input's elements per channel group, so the table is bounded.
        var targets = [Int](repeating: -1, count: kernelElements * blocks)
        var offset = [Int](repeating: 0, count: n)
        for k in 0..<kernelElements {
            var position = [Int](repeating: 0, count: n)
            for b in 0..<blocks {
                var flat = 0, inside = true
                for d in 0..<n {
                    let coordinate = position[d] * strides[d] - pads[d] + offset[d] * dilations[d]
                    if coordinate < 0 || coordinate >= image[d] { inside = false; break }
                    flat = flat * image[d] + coordinate
                }
                if inside { targets[k * blocks + b] = flat }
                var d = n - 1
                while d >= 0 { position[d] += 1; if position[d] < counts[d] { break }; position[d] = 0; d -= 1 }
            }
            var d = n - 1
            while d >= 0 { offset[d] += 1; if offset[d] < block[d] { break }; offset[d] = 0; d -= 1 }
        }
        return Geometry(channels: input[1] / kernelElements, kernelElements: kernelElements, blocks: blocks,
                        imageElements: imageElements, targets: targets, outputShape: outputShape)
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let geometry = try Self.geometry(input: x.shape, image: try Layout.integers(inputs.optional(1), "image_shape"),
                                         block: try Layout.integers(inputs.optional(2), "block_shape"),
                                         dilations: dilations, pads: pads, strides: strides)
        let y = try context.allocate(x.dataType, geometry.outputShape)
        guard try x.dataType.visit(Accumulate(x: x, y: y, geometry: geometry)) != nil else {
            throw OpError("Col2Im does not take \(x.dataType) elements")
        }
        return [y]
    }

    private struct Accumulate: ArithmeticVisitor {
        let x: Tensor, y: Tensor, geometry: Geometry
        func visit<T: ArithmeticElement>(_: T.Type) {
            withExtendedLifetime(x) {
                let source = x.pointer(as: T.self), target = y.mutablePointer(as: T.self)
                let planes = x.shape[0] * geometry.channels, perPlane = geometry.kernelElements * geometry.blocks
                target.initialize(repeating: .zero, count: planes * geometry.imageElements)
                geometry.targets.withUnsafeBufferPointer { targets in
                    for plane in 0..<planes {
                        let columns = source + plane * perPlane, image = target + plane * geometry.imageElements
                        for i in 0..<perPlane where targets[i] >= 0 {
                            image[targets[i]] = T.add(image[targets[i]], columns[i])
                        }
                    }
                }
            }
        }
    }
}
