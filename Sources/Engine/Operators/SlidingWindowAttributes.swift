import Kernels
import Tensors

/// The attributes every sliding-window operator shares (Conv, ConvTranspose and the pools):
/// kernel_shape, strides, dilations, pads and auto_pad, plus ceil_mode for pools.
struct SlidingWindowAttributes: Sendable {
    /// How the padding is chosen.
    enum AutoPad: Sendable {
        /// Explicit `pads` (default all zero).
        case notSet
        /// Output size ceil(input / stride); odd padding goes at the end.
        case sameUpper
        /// Output size ceil(input / stride); odd padding goes at the start.
        case sameLower
        /// No padding.
        case valid
    }

    /// `kernel_shape`, when the node gives it.
    let kernelShape: [Int]?
    let strides: [Int]?
    let dilations: [Int]?
    /// `pads` as [x1_begin, x2_begin, …, x1_end, x2_end, …].
    let pads: [Int]?
    let autoPad: AutoPad
    /// Pooling's ceil_mode: output sizes rounded up, so a last partial window counts.
    let ceilMode: Bool

    /// Reads the attributes from a node, checking the values the spec forbids.
    init(_ context: OperatorContext, requireKernelShape: Bool = false) throws {
        kernelShape = requireKernelShape ? try context.required("kernel_shape", context.ints) : try context.ints("kernel_shape")
        strides = try context.ints("strides")
        dilations = try context.ints("dilations")
        pads = try context.ints("pads")
        ceilMode = try context.int("ceil_mode", default: 0) != 0
        switch try context.string("auto_pad", default: "NOTSET") {
        case "NOTSET", "": autoPad = .notSet
        case "SAME_UPPER": autoPad = .sameUpper
        case "SAME_LOWER": autoPad = .sameLower
        case "VALID": autoPad = .valid
        case let other: throw OpError("auto_pad '\(other)' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
        }
        if let kernelShape, kernelShape.contains(where: { $0 < 1 }) { throw OpError("kernel_shape \(kernelShape) must be positive") }
        if let strides, strides.contains(where: { $0 < 1 }) { throw OpError("strides \(strides) must be positive") }
        if let dilations, dilations.contains(where: { $0 < 1 }) { throw OpError("dilations \(dilations) must be positive") }
        if let pads, pads.contains(where: { $0 < 0 }) { throw OpError("pads \(pads) must not be negative") }
    }

    /// The spatial rank the attributes describe, if any of them says.
    var rank: Int? { kernelShape?.count ?? strides?.count ?? dilations?.count ?? pads.map { $0.count / 2 } }

    /// Checks the attribute lengths against `rank` spatial axes and the kernel (when the
    /// kernel comes from weights, `kernel_shape` must agree with it).
    func check(rank: Int, kernel: [Int]) throws {
        guard (1...3).contains(rank) else { throw OpError.invalidArgument("\(rank) spatial axes are not supported (1 to 3 are)") }
        guard kernel.count == rank, kernel.allSatisfy({ $0 >= 1 }) else { throw OpError.invalidArgument("kernel \(kernel) must have \(rank) positive sizes") }
        if let kernelShape, kernelShape != kernel { throw OpError.invalidArgument("kernel_shape \(kernelShape) does not match the weights' \(kernel)") }
        if let strides, strides.count != rank { throw OpError.invalidArgument("strides \(strides) needs \(rank) values") }
        if let dilations, dilations.count != rank { throw OpError.invalidArgument("dilations \(dilations) needs \(rank) values") }
        if autoPad == .notSet, let pads, pads.count != 2 * rank { throw OpError.invalidArgument("pads \(pads) needs \(2 * rank) values") }
    }

    /// The window over input spatial sizes `input` with kernel `kernel`, and the padding after the
    /// input on each axis. Throws when the window does not fit (output size below 1).
    func window(input: [Int], kernel: [Int]) throws -> (window: SpatialWindow, padsEnd: [Int]) {
        let rank = input.count
        try check(rank: rank, kernel: kernel)
        let axes = input.indices.map { axis($0, rank: rank, input: input[$0], kernel: kernel[$0]) }
        if axes.contains(where: { $0.output < 1 }) {
            throw OpError.invalidArgument("the window (kernel \(kernel), dilations \(dilations ?? [])) does not fit input size \(input) with pads \(axes.map { $0.begin } + axes.map { $0.end })")
        }
        let window = SpatialWindow(inputSize: input, outputSize: axes.map { $0.output }, kernel: kernel,
                                   strides: strides ?? Array(repeating: 1, count: rank),
                                   dilations: dilations ?? Array(repeating: 1, count: rank), padsBegin: axes.map { $0.begin })
        return (window, axes.map { $0.end })
    }

    /// Output spatial dimensions for type inference: computed where the input size is known.
    func outputDims(input: [Dim], kernel: [Int]) throws -> [Dim] {
        try check(rank: input.count, kernel: kernel)
        return input.indices.map { index in
            guard let size = input[index].value else { return .unknown }
            return .fixed(Swift.max(0, axis(index, rank: input.count, input: size, kernel: kernel[index]).output))
        }
    }

    /// Leading and trailing padding and output size along one axis.
    private func axis(_ axis: Int, rank: Int, input: Int, kernel: Int) -> (begin: Int, end: Int, output: Int) {
        let stride = strides?[axis] ?? 1
        let span = (kernel - 1) * (dilations?[axis] ?? 1) + 1
        switch autoPad {
        case .notSet, .valid:
            let begin = autoPad == .notSet ? pads?[axis] ?? 0 : 0
            let end = autoPad == .notSet ? pads?[rank + axis] ?? 0 : 0
            let padded = input + begin + end
            if padded < span { return (begin, end, 0) }
            if !ceilMode { return (begin, end, (padded - span) / stride + 1) }
            // Ceil mode: the last window must still start inside the input or its leading
            // padding (as in ONNX Runtime and the ONNX reference).
            let size = (padded - span + stride - 1) / stride + 1
            return (begin, end, (size - 1) * stride >= input + begin ? size - 1 : size)
        case .sameUpper, .sameLower:
            let output = (input + stride - 1) / stride
            let needed = Swift.max(0, (output - 1) * stride + span - input)
            let begin = autoPad == .sameUpper ? needed / 2 : (needed + 1) / 2
            return (begin, needed - begin, output)
        }
    }
}
