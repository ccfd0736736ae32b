import Foundation
import Kernels
import Tensors

/// Spectral operators: DFT, STFT, MelWeightMatrix. Signals are real ([..., 1]) or complex
/// ([..., 2], real and imaginary parts); transforms compute in double and return the input's type.
enum SignalOperators {
    static let definitions: [OperatorDefinition] = [
        // The axis became an input at opset 20.
        OperatorDefinition("DFT", versions: [17, 20], contracts: { version in
            OperatorContract(inputs: [.init("input", "T1"), .init("dft_length", "T2", .optional)]
                                 + (version >= 20 ? [.init("axis", .int64, .optional)] : []),
                             outputs: [.init("output", "T1")], types: ["T1": ElementTypes.floatingPoint, "T2": [.int32, .int64]])
        }) { try DFT($0) },
        OperatorDefinition("STFT", versions: [17], contract: OperatorContract(
            inputs: [.init("signal", "T1"), .init("frame_step", "T2"), .init("window", "T1", .optional),
                     .init("frame_length", "T2", .optional)],
            outputs: [.init("output", "T1")], types: ["T1": ElementTypes.floatingPoint, "T2": [.int32, .int64]])) { try STFT($0) },
        OperatorDefinition("MelWeightMatrix", versions: [17], contract: OperatorContract(
            inputs: [.init("num_mel_bins", "T1"), .init("dft_length", "T1"), .init("sample_rate", "T1"),
                     .init("lower_edge_hertz", "T2"), .init("upper_edge_hertz", "T2")],
            outputs: [.init("output", "T3")],
            types: ["T1": [.int32, .int64], "T2": ElementTypes.floatingPoint, "T3": ElementTypes.numeric])) { try MelWeightMatrix($0) },
    ]
}

/// Transforms of `length` points along the middle axis of a [outer, axis, inner, components]
/// signal, through one `FourierTransform` plan whose workspace comes from the run's allocator.
struct SpectralLines {
    let transform: FourierTransform
    let real: UnsafeMutablePointer<Double>, imaginary: UnsafeMutablePointer<Double>
    /// Keeps the workspace alive.
    let workspace: Tensor

    init(length: Int, _ context: ExecutionContext) throws {
        let count = FourierTransform.workspaceCount(length: length)
        let (total, overflow) = count.addingReportingOverflow(2 * length)
        guard !overflow else { throw OpError.invalidArgument("a DFT of \(length) points is too large") }
        workspace = try context.allocate(.double, [total])
        let base = workspace.mutablePointer(as: Double.self)
        real = base
        imaginary = base + length
        transform = FourierTransform(length: length, workspace: base + 2 * length)
    }
}

/// DFT (17: `axis` attribute, default 1; 20: `axis` input, default -2): the discrete Fourier
/// transform of `dft_length` points (the signal cut or zero-padded to it) along `axis`. `onesided`
/// keeps the first n/2 + 1 frequencies of a forward transform; an inverse one scales by 1/n, and
/// with `onesided` reads n/2 + 1 frequencies of a Hermitian spectrum and returns a real signal.
struct DFT: Operator {
    let version: Int
    let axisAttribute: Int
    let inverse: Bool, onesided: Bool

    init(_ context: OperatorContext) throws {
        version = context.version
        axisAttribute = try context.int("axis", default: 1)
        inverse = try context.int("inverse", default: 0) != 0
        onesided = try context.int("onesided", default: 0) != 0
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(x.dataType, x.dims.map { $0.map { _ in Dim.unknown } })]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let rank = x.shape.rank
        guard rank >= 2, x.shape[rank - 1] == 1 || x.shape[rank - 1] == 2 else {
            throw OpError.invalidArgument("input must be [..., signal, 1 or 2], got \(x.shape)")
        }
        let axisValue = version >= 20 ? try inputs.optional(2).map { try Layout.scalar($0, "axis") } ?? -2 : axisAttribute
        let axis = try Layout.axis(axisValue, rank: rank)
        guard axis < rank - 1 else { throw OpError.invalidArgument("axis \(axisValue) is the real/imaginary axis") }
        let length = x.shape[axis]
        let n = try inputs.optional(1).map { try Layout.scalar($0, "dft_length") } ?? (inverse && onesided ? 2 * (length - 1) : length)
        guard n >= 1 && n <= Layout.maximumElementCount else { throw OpError.invalidArgument("dft_length \(n) is out of range") }
        var dims = x.shape.dims
        dims[axis] = !inverse && onesided ? n / 2 + 1 : n
        dims[rank - 1] = inverse && onesided ? 1 : 2
        let outputShape = try Layout.checkedShape(dims)
        let signal = try convert(x, to: .double, context)
        let y = try context.allocate(.double, outputShape)
        let lines = try SpectralLines(length: n, context)
        let outer = x.shape.dims[..<axis].reduce(1, *), inner = x.shape.dims[(axis + 1)..<(rank - 1)].reduce(1, *)
        let components = x.shape[rank - 1], outputLength = dims[axis], outputComponents = dims[rank - 1]
        let scale = inverse ? 1 / Double(n) : 1
        withExtendedLifetime((signal, lines)) {
            let source = signal.pointer(as: Double.self), target = y.mutablePointer(as: Double.self)
            let re = lines.real, im = lines.imaginary
            for o in 0..<outer {
                for i in 0..<inner {
                    let element = { (k: Int) in ((o * length + k) * inner + i) * components }
                    if inverse && onesided {
                        // The full spectrum from its first half: X[n - k] = conj(X[k]); the
                        // imaginary parts of X[0] and X[n/2] do not count (numpy's irfft).
                        let half = n / 2 + 1
                        for k in 0..<min(n, half) {
                            re[k] = k < length ? source[element(k)] : 0
                            im[k] = k < length && components == 2 ? source[element(k) + 1] : 0
                        }
                        for k in half..<max(half, n) { re[k] = re[n - k]; im[k] = -im[n - k] }
                        im[0] = 0
                        if n % 2 == 0 { im[n / 2] = 0 }
                    } else {
                        for k in 0..<n {
                            re[k] = k < length ? source[element(k)] : 0
                            im[k] = k < length && components == 2 ? source[element(k) + 1] : 0
                        }
                    }
                    lines.transform.transform(real: re, imaginary: im, inverse: inverse)
                    for k in 0..<outputLength {
                        let out = ((o * outputLength + k) * inner + i) * outputComponents
                        target[out] = re[k] * scale
                        if outputComponents == 2 { target[out + 1] = im[k] * scale }
                    }
                }
            }
        }
        return [try convert(y, to: x.dataType, context)]
    }
}

/// STFT (17): signal [batch, length, 1 or 2] cut into frames of the window's length (or
/// `frame_length`) every `frame_step` samples, each multiplied by `window` (default ones) and
/// transformed over `frame_length` points. Output [batch, frames, bins, 2], frames =
/// 1 + (length − frame_length) / frame_step, bins = frame_length/2 + 1 when `onesided` (default).
struct STFT: Operator {
    let onesided: Bool

    init(_ context: OperatorContext) throws { onesided = try context.int("onesided", default: 1) != 0 }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(x.dataType, [.unknown, .unknown, .unknown, .fixed(2)])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        guard x.shape.rank == 3, x.shape[2] == 1 || x.shape[2] == 2 else {
            throw OpError.invalidArgument("signal must be [batch, length, 1 or 2], got \(x.shape)")
        }
        let batch = x.shape[0], length = x.shape[1], components = x.shape[2]
        let step = try Layout.scalar(inputs.optional(1), "frame_step")
        let windowTensor = inputs.optional(2)
        if let windowTensor { guard windowTensor.shape.rank == 1 else { throw OpError.invalidArgument("window must be 1-D, got \(windowTensor.shape)") } }
        let frameLength = try inputs.optional(3).map { try Layout.scalar($0, "frame_length") } ?? windowTensor?.shape[0] ?? length
        let windowLength = windowTensor?.shape[0] ?? frameLength
        guard step >= 1 else { throw OpError.invalidArgument("frame_step \(step) must be positive") }
        guard frameLength >= 1 && frameLength <= length else {
            throw OpError.invalidArgument("frame_length \(frameLength) must be in 1...\(length) (the signal's length)")
        }
        let frames = 1 + (length - frameLength) / step, bins = onesided ? frameLength / 2 + 1 : frameLength
        let outputShape = try Layout.checkedShape([batch, frames, bins, 2])
        let signal = try convert(x, to: .double, context)
        let window = try windowTensor.map { try convert($0, to: .double, context) }
        let y = try context.allocate(.double, outputShape)
        let lines = try SpectralLines(length: frameLength, context)
        withExtendedLifetime((signal, window, lines)) {
            let source = signal.pointer(as: Double.self), target = y.mutablePointer(as: Double.self)
            let weights = window?.pointer(as: Double.self)
            let re = lines.real, im = lines.imaginary
            for b in 0..<batch {
                for f in 0..<frames {
                    let start = f * step
                    for k in 0..<frameLength {
                        // Samples past the window (a window shorter than the frame) or past the
                        // signal's end are zeros.
                        let sample = start + k
                        guard k < windowLength, sample < length else { re[k] = 0; im[k] = 0; continue }
                        let weight = weights?[k] ?? 1, at = (b * length + sample) * components
                        re[k] = source[at] * weight
                        im[k] = components == 2 ? source[at + 1] * weight : 0
                    }
                    lines.transform.transform(real: re, imaginary: im, inverse: false)
                    let out = target + ((b * frames + f) * bins) * 2
                    for k in 0..<bins { out[2 * k] = re[k]; out[2 * k + 1] = im[k] }
                }
            }
        }
        return [try convert(y, to: x.dataType, context)]
    }
}

/// MelWeightMatrix (17): [dft_length/2 + 1, num_mel_bins] triangular filters, equally spaced in mel
/// between `lower_edge_hertz` and `upper_edge_hertz`, mapping a onesided spectrum to mel bins.
struct MelWeightMatrix: Operator {
    let outputType: DataType

    init(_ context: OperatorContext) throws {
        let code = try context.int("output_datatype", default: Int(DataType.float.rawValue))
        guard let type = Int32(exactly: code).flatMap(DataType.init(rawValue:)), type.isNumeric else {
            throw OpError("output_datatype \(code) is not a numeric type onnx-serve supports")
        }
        outputType = type
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] { [TensorType(outputType, [.unknown, .unknown])] }

    private func real(_ tensor: Tensor?, _ what: String) throws -> Double {
        guard let tensor else { throw OpError("missing input '\(what)'") }
        guard tensor.elementCount == 1 else { throw OpError.invalidArgument("'\(what)' must hold one value, not \(tensor.elementCount)") }
        return tensor.doubles()[0]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let melBins = try Layout.scalar(inputs.optional(0), "num_mel_bins")
        let dftLength = try Layout.scalar(inputs.optional(1), "dft_length")
        let sampleRate = try Layout.scalar(inputs.optional(2), "sample_rate")
        let lower = try real(inputs.optional(3), "lower_edge_hertz"), upper = try real(inputs.optional(4), "upper_edge_hertz")
        guard melBins >= 1, dftLength >= 1, sampleRate >= 1 else {
            throw OpError.invalidArgument("num_mel_bins \(melBins), dft_length \(dftLength) and sample_rate \(sampleRate) must be positive")
        }
        guard lower.isFinite, upper.isFinite, lower >= 0, lower <= upper else {
            throw OpError.invalidArgument("the edges \(lower) Hz and \(upper) Hz must be finite with 0 ≤ lower ≤ upper")
        }
        let spectrumBins = dftLength / 2 + 1
        let shape = try Layout.checkedShape([spectrumBins, melBins])
        let y = try context.allocate(.double, shape)
        // Mel points of the filters' edges, as onnx.reference computes them (num_mel_bins + 2 points
        // dividing the mel range in num_mel_bins + 2 steps), converted to spectrum bins.
        let lowMel = 2595 * Foundation.log10(1 + lower / 700), highMel = 2595 * Foundation.log10(1 + upper / 700)
        let melStep = (highMel - lowMel) / Double(melBins + 2)
        var edges: [Int] = []
        edges.reserveCapacity(melBins + 2)
        for i in 0..<(melBins + 2) {
            let hertz = 700 * (Foundation.pow(10, (Double(i) * melStep + lowMel) / 2595) - 1)
            let bin = ((Double(dftLength) + 1) * hertz / Double(sampleRate)).rounded(.down)
            guard bin >= 0 && bin < Double(spectrumBins) else {
                throw OpError.invalidArgument("the filter edge at \(hertz) Hz falls outside the \(spectrumBins) spectrum bins"
                                              + " (upper_edge_hertz \(upper) past sample_rate / 2?)")
            }
            edges.append(Int(bin))
        }
        let values = y.mutablePointer(as: Double.self)
        values.initialize(repeating: 0, count: spectrumBins * melBins)
        for i in 0..<melBins {
            let low = edges[i], center = edges[i + 1], high = edges[i + 2]
            if center == low {
                values[center * melBins + i] = 1
            } else {
                for j in low...center { values[j * melBins + i] = Double(j - low) / Double(center - low) }
            }
            if high > center {
                for j in center..<high { values[j * melBins + i] = Double(high - j) / Double(high - center) }
            }
        }
        return [try convert(y, to: outputType, context)]
    }
}
