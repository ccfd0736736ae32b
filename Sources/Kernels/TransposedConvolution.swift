public import Tensors

/// Float transposed convolution (ONNX ConvTranspose): the adjoint of `Convolution.forward` for the
/// same layout and weights. Its input has the convolution's output shape and its output the
/// convolution's input shape; computed as gemm (weightsᵀ · input → columns) then col2im.
public enum TransposedConvolution {
    /// Columns of one task's panel of input pixels are at most this many floats (512 KB).
    static let panelFloats = 1 << 17

    /// How the output channels of one (image, group) are split among threads, and the pixel panel.
    struct Plan {
        let channelsPerPart: Int
        let pixelPanel: Int
        let tasks: Int
        let workers: Int
    }

    static func plan(_ layout: ConvolutionLayout, _ parallelism: Parallelism) -> Plan {
        // Output channels of a group = the convolution's input channels per group.
        let channels = layout.inputChannelsPerGroup, taps = layout.window.kernelCount
        let items = layout.batch * layout.groups
        let parts = items >= parallelism.threads ? 1 : Swift.min(channels, (parallelism.threads + items - 1) / items)
        let perPart = (channels + parts - 1) / Swift.max(parts, 1)
        let pixels = layout.window.outputCount
        let panel = Swift.min(Swift.max(pixels, 1), Swift.max(16, panelFloats / Swift.max(perPart * taps, 1)))
        let tasks = items * ((channels + perPart - 1) / Swift.max(perPart, 1))
        return Plan(channelsPerPart: perPart, pixelPanel: panel, tasks: tasks,
                    workers: Swift.min(parallelism.threads, tasks))
    }

    /// Floats of scratch memory `forward` needs.
    public static func scratchCount(_ layout: ConvolutionLayout, parallelism: Parallelism) -> Int {
        let plan = plan(layout, parallelism)
        return plan.workers * plan.channelsPerPart * layout.window.kernelCount * plan.pixelPanel
    }

    // Shapes (`layout` is that of the convolution being transposed):
    //   input [N, layout.outputChannels, *window.outputSize];
    //   weights [layout.outputChannels, layout.inputChannelsPerGroup, *kernel] (ONNX ConvTranspose layout);
    //   bias [layout.inputChannels]; output [N, layout.inputChannels, *window.inputSize];
    //   scratch [scratchCount(layout, parallelism)].
    /// `output = bias + convᵀ(input, weights)`, spread over `parallelism`'s threads by output channels.
    public static func forward(input: UnsafePointer<Float>, weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               output: UnsafeMutablePointer<Float>, layout: ConvolutionLayout,
                               scratch: UnsafeMutablePointer<Float>, parallelism: Parallelism) {
        let plan = plan(layout, parallelism)
        let window = layout.window, taps = window.kernelCount
        let pixels = window.outputCount, outputCount = window.inputCount
        let groupOutputs = layout.inputChannelsPerGroup, groupInputs = layout.outputChannelsPerGroup
        let partsPerItem = (groupOutputs + plan.channelsPerPart - 1) / plan.channelsPerPart
        parallelism.forEach(plan.workers) { worker in
            let buffer = scratch + worker * plan.channelsPerPart * taps * plan.pixelPanel
            for task in Parallelism.chunk(worker, of: plan.workers, total: plan.tasks) {
                let item = task / partsPerItem, part = task % partsPerItem
                let image = item / layout.groups, group = item % layout.groups
                let first = part * plan.channelsPerPart
                let channels = Swift.min(groupOutputs, first + plan.channelsPerPart) - first
                let outputChannel = group * groupOutputs + first
                let target = output + (image * layout.inputChannels + outputChannel) * outputCount
                for channel in 0..<channels {
                    (target + channel * outputCount).update(repeating: bias?[outputChannel + channel] ?? 0, count: outputCount)
                }
                let source = input + (image * layout.outputChannels + group * groupInputs) * pixels
                let groupWeights = weights + group * groupInputs * groupOutputs * taps
                var start = 0
                while start < pixels {
                    let panel = start..<Swift.min(pixels, start + plan.pixelPanel)
                    // columns [channels·taps × panel] = weightsᵀ[rows of these channels] · input[:, panel]
                    BLAS.sgemm(transposeA: true, transposeB: false, m: channels * taps, n: panel.count, k: groupInputs,
                               alpha: 1, a: groupWeights + first * taps, lda: groupOutputs * taps,
                               b: source + panel.lowerBound, ldb: pixels,
                               beta: 0, c: buffer, ldc: panel.count)
                    Im2Col.accumulate(buffer, channels: channels, window: window, pixels: panel, into: target)
                    start = panel.upperBound
                }
            }
        }
    }

    // Shapes: as `forward`.
    /// Naive twin of `forward`, and the transposed convolution for element types other than Float:
    /// every input pixel scattered through every tap, accumulated in Double.
    public static func reference<T: FloatingElement>(input: UnsafePointer<T>, weights: UnsafePointer<T>,
                                                     bias: UnsafePointer<T>?, output: UnsafeMutablePointer<T>,
                                                     layout: ConvolutionLayout) {
        let window = layout.window, taps = window.kernelCount, pixels = window.outputCount
        let groupOutputs = layout.inputChannelsPerGroup, groupInputs = layout.outputChannelsPerGroup
        var sums = [Double](repeating: 0, count: layout.batch * layout.inputChannels * window.inputCount)
        for image in 0..<layout.batch {
            for inputChannel in 0..<layout.outputChannels {
                let group = inputChannel / groupInputs
                for pixel in 0..<pixels {
                    let x = Double(input[(image * layout.outputChannels + inputChannel) * pixels + pixel])
                    for channel in 0..<groupOutputs {
                        let plane = (image * layout.inputChannels + group * groupOutputs + channel) * window.inputCount
                        for tap in 0..<taps {
                            guard let index = window.referenceInputIndex(pixel: pixel, tap: tap) else { continue }
                            sums[plane + index] += x * Double(weights[(inputChannel * groupOutputs + channel) * taps + tap])
                        }
                    }
                }
            }
        }
        for (at, sum) in sums.enumerated() {
            let channel = (at / window.inputCount) % layout.inputChannels
            output[at] = T(sum + (bias.map { Double($0[channel]) } ?? 0))
        }
    }
}
