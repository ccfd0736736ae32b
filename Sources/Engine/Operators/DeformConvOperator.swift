import Kernels
import Tensors

/// DeformConv (19, 22), 2-D: a convolution whose kernel taps read X at their regular position
/// moved by `offset` (bilinear, zero outside the image), each sample optionally scaled by `mask`.
/// Inputs: X [N, C, H, W], W [M, C/group, kH, kW], offset [N, offset_group × 2 × kH × kW, oH, oW]
/// (for each offset group and tap, the row offset then the column offset), B [M] (optional),
/// mask [N, offset_group × kH × kW, oH, oW] (optional). Output [N, M, oH, oW]. Float runs a
/// deformable im2col and sgemm (`DeformableConvolution.forward`); double the reference kernel
/// (float16 and bfloat16 are computed in float, see `LowPrecisionWidening`).
struct DeformConv: Operator {
    let kernelShape: [Int]?, strides: [Int], dilations: [Int], pads: [Int]
    let groups: Int, offsetGroups: Int

    init(_ context: OperatorContext) throws {
        kernelShape = try context.ints("kernel_shape")
        strides = try context.ints("strides") ?? [1, 1]
        dilations = try context.ints("dilations") ?? [1, 1]
        pads = try context.ints("pads") ?? [0, 0, 0, 0]
        groups = try context.int("group", default: 1)
        offsetGroups = try context.int("offset_group", default: 1)
        guard groups >= 1, offsetGroups >= 1 else {
            throw OpError("group \(groups) and offset_group \(offsetGroups) must be positive")
        }
        guard (kernelShape?.count ?? 2) == 2, strides.count == 2, dilations.count == 2, pads.count == 4 else {
            throw OpError("only 2-D deformable convolutions are supported: kernel_shape \(kernelShape ?? []), strides"
                          + " \(strides), dilations \(dilations) and pads \(pads) must have 2, 2, 2 and 4 values")
        }
        guard kernelShape?.allSatisfy({ $0 >= 1 }) ?? true, strides.allSatisfy({ $0 >= 1 }),
              dilations.allSatisfy({ $0 >= 1 }), pads.allSatisfy({ $0 >= 0 }) else {
            throw OpError("kernel_shape \(kernelShape ?? []), strides \(strides) and dilations \(dilations) must be positive"
                          + " and pads \(pads) not negative")
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let type = (0..<5).lazy.compactMap({ inputs.type($0)?.dataType }).first else { return [] }
        let x = inputs.type(0)?.dims, w = inputs.type(1)?.dims, offset = inputs.type(2)?.dims
        for (dims, name) in [(x, "X"), (w, "W"), (offset, "offset")] {
            if let dims, dims.count != 4 { throw OpError("\(name) must have rank 4 (2-D deformable convolution), not \(dims.count)") }
        }
        return [TensorType(type, [x?[0] ?? .unknown, w?[0] ?? .unknown, offset?[2] ?? .unknown, offset?[3] ?? .unknown])]
    }

    /// The layout of a deformable convolution of inputs of these shapes; throws when they do not fit.
    func layout(x: Shape, w: Shape, offset: Shape, bias: Shape?, mask: Shape?) throws -> DeformableConvolutionLayout {
        guard x.rank == 4, w.rank == 4 else {
            throw OpError.invalidArgument("X \(x) and W \(w) must be [N, C, H, W] and [M, C/group, kH, kW]")
        }
        let channels = x[1], outputs = w[0]
        guard try Layout.multiplied(w[1], groups, "W's channels × group") == channels, outputs % groups == 0 else {
            throw OpError.invalidArgument("X \(x) and W \(w) do not fit group \(groups)")
        }
        guard channels % offsetGroups == 0 else {
            throw OpError.invalidArgument("X's \(channels) channels are not divisible by offset_group \(offsetGroups)")
        }
        let kernel = [w[2], w[3]]
        guard kernel.allSatisfy({ $0 >= 1 }) else { throw OpError.invalidArgument("W \(w) has an empty kernel") }
        if let kernelShape, kernelShape != kernel {
            throw OpError.invalidArgument("kernel_shape \(kernelShape) does not match W's kernel \(kernel)")
        }
        var output: [Int] = []
        for axis in 0..<2 {
            let span = try Layout.multiplied(kernel[axis] - 1, dilations[axis], "dilated kernel")
            let (padded, overflow) = x[axis + 2].addingReportingOverflow(pads[axis])
            let (total, overflow2) = padded.addingReportingOverflow(pads[axis + 2])
            guard !overflow, !overflow2, total > span else {
                throw OpError.invalidArgument("kernel \(kernel) dilated by \(dilations) does not fit X \(x) padded by \(pads)")
            }
            output.append((total - 1 - span) / strides[axis] + 1)
        }
        let taps = try Layout.multiplied(kernel[0], kernel[1], "kernel taps")
        _ = try Layout.multiplied(w[1], taps, "W's row length")
        _ = try Layout.multiplied(output[0], output[1], "output pixels")
        let fields = try Layout.multiplied(offsetGroups, taps, "offset_group × kernel taps")
        let expectedOffset = [x[0], try Layout.multiplied(fields, 2, "offset channels"), output[0], output[1]]
        guard offset.dims == expectedOffset else {
            throw OpError.invalidArgument("offset must be \(Shape(expectedOffset)) for X \(x), W \(w), offset_group"
                                          + " \(offsetGroups), strides \(strides), pads \(pads), dilations \(dilations); got \(offset)")
        }
        if let mask, mask.dims != [x[0], fields, output[0], output[1]] {
            throw OpError.invalidArgument("mask must be \(Shape([x[0], fields, output[0], output[1]])), not \(mask)")
        }
        if let bias, bias.dims != [outputs] { throw OpError.invalidArgument("B must be [\(outputs)], not \(bias)") }
        return DeformableConvolutionLayout(
            batch: x[0], inputChannels: channels, outputChannels: outputs, groups: groups, offsetGroups: offsetGroups,
            input: (x[2], x[3]), output: (output[0], output[1]), kernel: (kernel[0], kernel[1]),
            strides: (strides[0], strides[1]), dilations: (dilations[0], dilations[1]), padsBegin: (pads[0], pads[1]))
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0), w = try inputs.required(1), offset = try inputs.required(2)
        let bias = inputs.optional(3), mask = inputs.optional(4)
        let layout = try layout(x: x.shape, w: w.shape, offset: offset.shape, bias: bias?.shape, mask: mask?.shape)
        let y = try context.allocate(x.dataType, try Layout.checkedShape(
            [layout.batch, layout.outputChannels, layout.outputHeight, layout.outputWidth]))
        guard x.dataType == .float else {
            struct Reference: FloatingVisitor {
                let x: Tensor, w: Tensor, offset: Tensor, bias: Tensor?, mask: Tensor?, y: Tensor
                let layout: DeformableConvolutionLayout
                func visit<T: FloatingElement>(_ type: T.Type) {
                    DeformableConvolution.reference(input: x.pointer(as: T.self), weights: w.pointer(as: T.self),
                                                    offsets: offset.pointer(as: T.self), mask: mask?.pointer(as: T.self),
                                                    bias: bias?.pointer(as: T.self), output: y.mutablePointer(as: T.self),
                                                    layout: layout)
                }
            }
            _ = try x.dataType.visit(Reference(x: x, w: w, offset: offset, bias: bias, mask: mask, y: y, layout: layout))
            return [y]
        }
        guard let count = DeformableConvolution.scratchCount(layout, parallelism: context.parallelism) else {
            throw OpError.invalidArgument("the column buffer for W \(w.shape) is too large")
        }
        let scratch = try context.allocate(.float, [Swift.max(1, count)])
        withExtendedLifetime((x, w, offset, bias, mask, scratch)) {
            DeformableConvolution.forward(input: x.pointer(as: Float.self), weights: w.pointer(as: Float.self),
                                          offsets: offset.pointer(as: Float.self), mask: mask?.pointer(as: Float.self),
                                          bias: bias?.pointer(as: Float.self), output: y.mutablePointer(as: Float.self),
                                          layout: layout, scratch: scratch.mutablePointer(as: Float.self),
                                          parallelism: context.parallelism)
        }
        return [y]
    }
}
