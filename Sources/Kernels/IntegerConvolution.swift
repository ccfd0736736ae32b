public import Tensors

/// Exact integer convolution through im2col and sgemm over depth chunks (`IntegerGemm`): the
/// quantized convolutions (QLinearConv, ConvInteger) whose partial sums could pass 2^24, or whose
/// float layout would be Winograd (its transforms take fractions of the values, so its sums are
/// not exact integers). Input and weights are integers held in float (8-bit values minus their
/// zero points); padding reads as 0, which is the zero point once centred.
public enum IntegerConvolution {
    /// Most floats of one column panel (16 MB): wider outputs expand a range of pixels at a time.
    static let columnPanelFloats = 1 << 22

    // Shapes: weights [outputChannels × depth] (ONNX [M, C/group, *kernel] flattened).
    /// Depth chunks of each group's weights for an input of magnitude at most `inputMagnitude`:
    /// `chunks[g]` cuts group g's depth so that every output's partial sums stay below 2^24.
    public static func depthChunks(weights: UnsafePointer<Float>, outputChannels: Int, groups: Int, depth: Int,
                                   inputMagnitude: Float) -> [[Range<Int>]] {
        let rows = outputChannels / Swift.max(groups, 1)
        return (0..<groups).map { group in
            IntegerGemm.depthChunks(a: weights + group * rows * depth, m: rows, k: depth, lda: depth, rightMagnitude: inputMagnitude)
        }
    }

    /// `depthChunks` for a layout's weights.
    public static func depthChunks(weights: UnsafePointer<Float>, layout: ConvolutionLayout, inputMagnitude: Float) -> [[Range<Int>]] {
        depthChunks(weights: weights, outputChannels: layout.outputChannels, groups: layout.groups, depth: layout.depth,
                    inputMagnitude: inputMagnitude)
    }

    /// Floats of scratch memory `forward` needs: one column panel and one product block.
    public static func scratchCount(_ layout: ConvolutionLayout) -> Int {
        columnPanel(layout) * layout.depth + layout.outputChannelsPerGroup * layout.window.outputCount
    }

    /// Output pixels expanded at a time (at least one).
    static func columnPanel(_ layout: ConvolutionLayout) -> Int {
        Swift.max(1, Swift.min(layout.window.outputCount, columnPanelFloats / Swift.max(layout.depth, 1)))
    }

    // Shapes: input [N, C, *in]; weights [M, C/group, *kernel] (ONNX layout); output [N, M, *out];
    //         scratch [scratchCount(layout)].
    /// `output = conv(input, weights)` exactly, in int32 (chunk sums added wrapping, as ONNX
    /// Runtime's accumulator wraps), for `chunks` from `depthChunks` with the input's magnitude.
    public static func forward(input: UnsafePointer<Float>, weights: UnsafePointer<Float>, output: UnsafeMutablePointer<Int32>,
                               layout: ConvolutionLayout, chunks: [[Range<Int>]], scratch: UnsafeMutablePointer<Float>,
                               parallelism: Parallelism) {
        let pixels = layout.window.outputCount, inputCount = layout.window.inputCount, depth = layout.depth
        let groupInputs = layout.inputChannelsPerGroup, groupOutputs = layout.outputChannelsPerGroup
        if layout.batch == 0 || layout.outputChannels == 0 || pixels == 0 { return }
        let panel = columnPanel(layout)
        let columns = scratch, product = scratch + panel * depth
        let pointwise = layout.window.isIdentity
        for image in 0..<layout.batch {
            for group in 0..<layout.groups {
                let source = input + (image * layout.inputChannels + group * groupInputs) * inputCount
                let target = output + (image * layout.outputChannels + group * groupOutputs) * pixels
                let groupWeights = weights + group * groupOutputs * depth
                var start = 0
                while start < pixels {
                    let range = start..<Swift.min(pixels, start + panel)
                    let b: UnsafePointer<Float>, ldb: Int
                    if pointwise {
                        (b, ldb) = (source + range.lowerBound, pixels)
                    } else {
                        parallelism.forEachChunk(groupInputs, minimumChunk: 4) { channels in
                            Im2Col.expand(source + channels.lowerBound * inputCount, channels: channels.count, window: layout.window,
                                          pixels: range, into: columns + channels.lowerBound * layout.window.kernelCount * range.count)
                        }
                        (b, ldb) = (UnsafePointer(columns), range.count)
                    }
                    IntegerGemm.multiply(m: groupOutputs, n: range.count, k: depth, a: groupWeights, lda: depth, b: b, ldb: ldb,
                                         c: target + range.lowerBound, ldc: pixels, scratch: product + range.lowerBound,
                                         chunks: { _ in chunks[group] }, parallelism: parallelism)
                    start = range.upperBound
                }
            }
        }
    }
}
