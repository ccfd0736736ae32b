/// Winograd convolution F(m×m, 3×3) for 3×3, stride 1, dilation 1, ungrouped 2-D convolutions:
/// each m×m output tile comes from an (m+2)×(m+2) input tile through α² = (m+2)² independent
/// products, so the multiplies drop from 9m² to (m+2)² per tile and channel pair (4× for m = 4,
/// 2.25× for m = 2). The α² products over all tiles are matrix products run by `Gemm`:
/// `M[ξ] [outputs × tiles] = U[ξ] [outputs × inputs] · V[ξ] [inputs × tiles]`, where U holds the
/// transformed weights (made once at load) and V the transformed input tiles.
///
/// F(4, 3) rounds about 10× more than a direct sum (errors near 1e-6 of the output scale at 128
/// channels), so it is used only up to 128 channels; wider layers use F(2, 3), as accurate as direct.
/// Its naive twin is `Convolution.reference`.
public enum Winograd {
    /// Output tile size m.
    public enum Tile: Int, Sendable {
        case two = 2
        case four = 4

        /// Input tile size α = m + 2.
        var alpha: Int { rawValue + 2 }
    }

    /// The tile used for a layer with these channel counts.
    public static func tile(inputChannels: Int, outputChannels: Int) -> Tile {
        Swift.max(inputChannels, outputChannels) <= 128 ? .four : .two
    }

    /// True when `layout` is a convolution Winograd computes, and faster than im2col for: 3×3,
    /// stride 1, dilation 1, one group, 2-D, with enough channels and tiles to feed the products.
    public static func applies(to layout: ConvolutionLayout) -> Bool {
        let window = layout.window
        guard layout.groups == 1, window.rank == 2, window.kernel == [3, 3], window.strides == [1, 1],
              window.dilations == [1, 1], layout.inputChannels >= 16, layout.outputChannels >= 16 else { return false }
        let m = tile(inputChannels: layout.inputChannels, outputChannels: layout.outputChannels).rawValue
        let tiles = ((window.outputSize[0] + m - 1) / m) * ((window.outputSize[1] + m - 1) / m)
        return tiles >= 48
    }

    // Shapes: weights [M, C, 3, 3] (ONNX layout) → U [α², M, C].
    /// The transformed weights `U[ξ] = (G g Gᵀ)[ξ]` for every output/input channel pair. Call once at load.
    public static func transformWeights(_ weights: UnsafePointer<Float>, outputChannels: Int, inputChannels: Int) -> [Float] {
        let tile = tile(inputChannels: inputChannels, outputChannels: outputChannels)
        let alpha = tile.alpha, g = tile.filterMatrix
        let pairs = outputChannels * inputChannels
        var transformed = [Float](repeating: 0, count: alpha * alpha * pairs)
        var left = [Double](repeating: 0, count: alpha * 3)
        for pair in 0..<pairs {
            let kernel = weights + pair * 9
            // G g, then (G g) Gᵀ, in Double so the transform adds no error of its own.
            for i in 0..<alpha {
                for q in 0..<3 { left[i * 3 + q] = (0..<3).reduce(0.0) { $0 + g[i * 3 + $1] * Double(kernel[$1 * 3 + q]) } }
            }
            for i in 0..<alpha {
                for j in 0..<alpha {
                    let sum = left[i * 3] * g[j * 3] + left[i * 3 + 1] * g[j * 3 + 1] + left[i * 3 + 2] * g[j * 3 + 2]
                    transformed[(i * alpha + j) * pairs + pair] = Float(sum)
                }
            }
        }
        return transformed
    }

    /// Tiles transformed per pass, so the transformed input and products stay within about 32 MB.
    static func tilesPerPass(_ layout: ConvolutionLayout, tile: Tile) -> Int {
        let window = layout.window, m = tile.rawValue
        let tiles = ((window.outputSize[0] + m - 1) / m) * ((window.outputSize[1] + m - 1) / m)
        let perTile = tile.alpha * tile.alpha * (layout.inputChannels + layout.outputChannels)
        return Swift.max(1, Swift.min(tiles, (8 << 20) / perTile))
    }

    /// Floats of scratch memory `forward` needs.
    static func scratchCount(_ layout: ConvolutionLayout) -> Int {
        let tile = tile(inputChannels: layout.inputChannels, outputChannels: layout.outputChannels)
        return tile.alpha * tile.alpha * tilesPerPass(layout, tile: tile) * (layout.inputChannels + layout.outputChannels)
    }

    // Shapes: input [N, C, H, W]; weights U [α², M, C] from `transformWeights`; output [N, M, oH, oW];
    //         scratch [scratchCount(layout)].
    /// The convolution, one image and one pass of tiles at a time: transform input tiles (threads
    /// split channels), α² products (threads split panels), transform back and run the epilogue
    /// per output plane (threads split channels).
    static func forward(input: UnsafePointer<Float>, weights: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        layout: ConvolutionLayout, epilogue: Epilogue, scratch: UnsafeMutablePointer<Float>,
                        parallelism: Parallelism) {
        let tile = tile(inputChannels: layout.inputChannels, outputChannels: layout.outputChannels)
        let m = tile.rawValue, alpha = tile.alpha, points = alpha * alpha
        let window = layout.window
        let (height, width) = (window.inputSize[0], window.inputSize[1])
        let (outputHeight, outputWidth) = (window.outputSize[0], window.outputSize[1])
        let (padTop, padLeft) = (window.padsBegin[0], window.padsBegin[1])
        let tileColumns = (outputWidth + m - 1) / m
        let tiles = ((outputHeight + m - 1) / m) * tileColumns
        let perPass = tilesPerPass(layout, tile: tile)
        let channels = layout.inputChannels, outputs = layout.outputChannels
        let inputCount = height * width, outputCount = outputHeight * outputWidth
        let transformedInput = scratch, products = scratch + points * perPass * channels
        for image in 0..<layout.batch {
            let source = input + image * channels * inputCount
            let target = output + image * outputs * outputCount
            var first = 0
            while first < tiles {
                let count = Swift.min(perPass, tiles - first)
                // V[ξ][c][t]: the transformed input tile t of channel c.
                parallelism.forEachChunk(channels, minimumChunk: Swift.max(1, 4096 / count)) { chunk in
                    var patch = [Float](repeating: 0, count: points)
                    patch.withUnsafeMutableBufferPointer { patch in
                        for channel in chunk {
                            let plane = source + channel * inputCount
                            for t in 0..<count {
                                let index = first + t
                                let top = (index / tileColumns) * m - padTop, left = (index % tileColumns) * m - padLeft
                                gather(plane, height: height, width: width, top: top, left: left, alpha: alpha, into: patch.baseAddress!)
                                tile.transformInput(patch.baseAddress!)
                                let destination = transformedInput + channel * count + t
                                for point in 0..<points { destination[point * channels * count] = patch[point] }
                            }
                        }
                    }
                }
                // M[ξ] = U[ξ] · V[ξ] for the α² points.
                Gemm.multiply(m: outputs, n: count, k: channels, a: weights, lda: channels, b: transformedInput, ldb: count,
                              c: products, ldc: count, batch: points,
                              batchOffsets: { ($0 * outputs * channels, $0 * channels * count, $0 * outputs * count) },
                              parallelism: parallelism)
                // Back to m×m output tiles, then the epilogue once a plane is complete.
                let lastPass = first + count == tiles
                parallelism.forEachChunk(outputs, minimumChunk: Swift.max(1, 4096 / count)) { chunk in
                    var patch = [Float](repeating: 0, count: points)
                    patch.withUnsafeMutableBufferPointer { patch in
                        for channel in chunk {
                            let plane = target + channel * outputCount
                            for t in 0..<count {
                                let sourcePoint = products + channel * count + t
                                for point in 0..<points { patch[point] = sourcePoint[point * outputs * count] }
                                tile.transformOutput(patch.baseAddress!)
                                let index = first + t
                                let top = (index / tileColumns) * m, left = (index % tileColumns) * m
                                for r in 0..<Swift.min(m, outputHeight - top) {
                                    for s in 0..<Swift.min(m, outputWidth - left) {
                                        plane[(top + r) * outputWidth + left + s] = patch[r * alpha + s]
                                    }
                                }
                            }
                            if lastPass {
                                epilogue.apply(output, offset: image * outputs * outputCount, ld: outputCount,
                                               rows: channel..<(channel + 1), columns: 0..<outputCount)
                            }
                        }
                    }
                }
                first += count
            }
        }
    }

    /// Copies the α×α input patch at (top, left) into `patch`, zeros outside the image.
    @inline(__always)
    private static func gather(_ plane: UnsafePointer<Float>, height: Int, width: Int, top: Int, left: Int, alpha: Int,
                               into patch: UnsafeMutablePointer<Float>) {
        if top >= 0 && left >= 0 && top + alpha <= height && left + alpha <= width {
            for i in 0..<alpha { (patch + i * alpha).update(from: plane + (top + i) * width + left, count: alpha) }
            return
        }
        for i in 0..<alpha {
            let y = top + i
            for j in 0..<alpha {
                let x = left + j
                patch[i * alpha + j] = y >= 0 && y < height && x >= 0 && x < width ? plane[y * width + x] : 0
            }
        }
    }
}

extension Winograd.Tile {
    /// G, the α×3 filter transform (row-major).
    var filterMatrix: [Double] {
        switch self {
        case .two: [1, 0, 0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0, 0, 1]
        case .four: [1.0 / 4, 0, 0, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6,
                     1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 24, -1.0 / 12, 1.0 / 6, 0, 0, 1]
        }
    }

    /// In place, `d ← Bᵀ d B` for an α×α patch: the 1-D transform down every column, then along every row.
    @inline(__always)
    func transformInput(_ d: UnsafeMutablePointer<Float>) {
        let alpha = self.alpha
        for j in 0..<alpha { inputPoints(d + j, stride: alpha) }
        for i in 0..<alpha { inputPoints(d + i * alpha, stride: 1) }
    }

    /// In place, `m ← Aᵀ m A` for an α×α product patch; the result is the top-left m×m block.
    @inline(__always)
    func transformOutput(_ p: UnsafeMutablePointer<Float>) {
        let alpha = self.alpha
        for j in 0..<alpha { outputPoints(p + j, stride: alpha) }
        for i in 0..<rawValue { outputPoints(p + i * alpha, stride: 1) }
    }

    /// Bᵀ applied to α values `x[0], x[stride], …`, in place.
    @inline(__always)
    private func inputPoints(_ x: UnsafeMutablePointer<Float>, stride s: Int) {
        switch self {
        case .two:
            let (x0, x1, x2, x3) = (x[0], x[s], x[2 * s], x[3 * s])
            x[0] = x0 - x2
            x[s] = x1 + x2
            x[2 * s] = x2 - x1
            x[3 * s] = x1 - x3
        case .four:
            let (x0, x1, x2, x3, x4, x5) = (x[0], x[s], x[2 * s], x[3 * s], x[4 * s], x[5 * s])
            x[0] = 4 * x0 - 5 * x2 + x4
            x[s] = -4 * (x1 + x2) + x3 + x4
            x[2 * s] = 4 * (x1 - x2) - x3 + x4
            x[3 * s] = 2 * (x3 - x1) - x2 + x4
            x[4 * s] = 2 * (x1 - x3) - x2 + x4
            x[5 * s] = 4 * x1 - 5 * x3 + x5
        }
    }

    /// Aᵀ applied to α values `x[0], x[stride], …`; writes the m results to the first m positions.
    @inline(__always)
    private func outputPoints(_ x: UnsafeMutablePointer<Float>, stride s: Int) {
        switch self {
        case .two:
            let (x0, x1, x2, x3) = (x[0], x[s], x[2 * s], x[3 * s])
            x[0] = x0 + x1 + x2
            x[s] = x1 - x2 - x3
        case .four:
            let (x0, x1, x2, x3, x4, x5) = (x[0], x[s], x[2 * s], x[3 * s], x[4 * s], x[5 * s])
            let (sum12, difference12, sum34, difference34) = (x1 + x2, x1 - x2, x3 + x4, x3 - x4)
            x[0] = x0 + sum12 + sum34
            x[s] = difference12 + 2 * difference34
            x[2 * s] = sum12 + 4 * sum34
            x[3 * s] = difference12 + 8 * difference34 + x5
        }
    }
}
