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
        // From 16 tiles up (a 7×7 image with F(2, 3), 13×13 with F(4, 3)) Winograd measured faster
        // than im2col on two threads: 512 channels at 7×7 1.66 → 1.14–1.24 ms, 128 at 14×14
        // 0.43 → 0.26 ms (`kernel-bench`).
        return tiles >= 16
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

    /// Rows of tiles transformed per pass, so the transformed input and products stay within about 32 MB.
    static func tileRowsPerPass(_ layout: ConvolutionLayout, tile: Tile) -> Int {
        let window = layout.window, m = tile.rawValue
        let tileRows = (window.outputSize[0] + m - 1) / m, tileColumns = (window.outputSize[1] + m - 1) / m
        let perRow = tile.alpha * tile.alpha * tileColumns * (layout.inputChannels + layout.outputChannels)
        return Swift.max(1, Swift.min(tileRows, (8 << 20) / perRow))
    }

    /// Floats of scratch memory `forward` needs.
    static func scratchCount(_ layout: ConvolutionLayout) -> Int {
        let tile = tile(inputChannels: layout.inputChannels, outputChannels: layout.outputChannels)
        let tileColumns = (layout.window.outputSize[1] + tile.rawValue - 1) / tile.rawValue
        return tile.alpha * tile.alpha * tileRowsPerPass(layout, tile: tile) * tileColumns
            * (layout.inputChannels + layout.outputChannels)
    }

    // Shapes: input [N, C, H, W]; weights U [α², M, C] from `transformWeights`; output [N, M, oH, oW];
    //         scratch [scratchCount(layout)].
    /// The convolution, one image and one pass of tile rows at a time: transform the input tiles
    /// (threads split channels), α² products (threads split panels), then transform back and run
    /// the epilogue a tile row at a time (threads split channels).
    static func forward(input: UnsafePointer<Float>, weights: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        layout: ConvolutionLayout, epilogue: Epilogue, scratch: UnsafeMutablePointer<Float>,
                        parallelism: Parallelism) {
        let tile = tile(inputChannels: layout.inputChannels, outputChannels: layout.outputChannels)
        let m = tile.rawValue, alpha = tile.alpha, points = alpha * alpha
        let window = layout.window
        let (height, width) = (window.inputSize[0], window.inputSize[1])
        let (outputHeight, outputWidth) = (window.outputSize[0], window.outputSize[1])
        let tileRows = (outputHeight + m - 1) / m, tileColumns = (outputWidth + m - 1) / m
        let rowsPerPass = tileRowsPerPass(layout, tile: tile)
        let channels = layout.inputChannels, outputs = layout.outputChannels
        let inputCount = height * width, outputCount = outputHeight * outputWidth
        // Input rows one tile row reads, from the first tile's left edge to the last one's right edge.
        let span = tileColumns * m + 2
        let transformedInput = scratch, products = scratch + points * rowsPerPass * tileColumns * channels
        for image in 0..<layout.batch {
            let source = input + image * channels * inputCount
            let outputOffset = image * outputs * outputCount
            var firstRow = 0
            while firstRow < tileRows {
                let passRows = Swift.min(rowsPerPass, tileRows - firstRow), count = passRows * tileColumns
                // V[ξ][c][t]: the transformed input tile t of channel c.
                parallelism.forEachChunk(channels * passRows, minimumChunk: Swift.max(1, 64 / tileColumns)) { chunk in
                    // α rows for the column-transformed patch, then one row of zeros (the rows above and below the image).
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: (alpha + 1) * span) { buffer in
                        let zeros = buffer.baseAddress! + alpha * span
                        zeros.update(repeating: 0, count: span)
                        for job in chunk {
                            let channel = job / passRows, tileRow = job % passRows
                            tile.transformInputRow(source + channel * inputCount, height: height, width: width,
                                                   top: (firstRow + tileRow) * m - window.padsBegin[0], left: -window.padsBegin[1],
                                                   tiles: tileColumns, zeros: zeros, rows: buffer.baseAddress!,
                                                   into: transformedInput + channel * count + tileRow * tileColumns,
                                                   pointStride: channels * count)
                        }
                    }
                }
                // M[ξ] = U[ξ] · V[ξ] for the α² points.
                Gemm.multiply(m: outputs, n: count, k: channels, a: weights, lda: channels, b: transformedInput, ldb: count,
                              c: products, ldc: count, batch: points,
                              batchOffsets: { ($0 * outputs * channels, $0 * channels * count, $0 * outputs * count) },
                              parallelism: parallelism)
                // Back to m×m output tiles, and the epilogue on each finished band of m rows.
                parallelism.forEachChunk(outputs * passRows, minimumChunk: Swift.max(1, 64 / tileColumns)) { chunk in
                    // The column-transformed tiles of one job (m × α × tiles), then one tile's last patch (α).
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: m * alpha * tileColumns + alpha) { patch in
                        for job in chunk {
                            let channel = job / passRows, tileRow = job % passRows
                            let top = (firstRow + tileRow) * m, rows = Swift.min(m, outputHeight - top)
                            tile.transformOutputRow(products + channel * count + tileRow * tileColumns, pointStride: outputs * count,
                                                    tiles: tileColumns, patch: patch.baseAddress!,
                                                    into: output + outputOffset + channel * outputCount + top * outputWidth,
                                                    rows: rows, width: outputWidth)
                            epilogue.apply(output, offset: outputOffset + top * outputWidth, ld: outputCount,
                                           rows: channel..<(channel + 1), columns: 0..<(rows * outputWidth))
                        }
                    }
                }
                firstRow += passRows
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

    /// Transforms the tiles of one tile row of one channel: `V = Bᵀ d B` for each α×α patch `d`.
    /// The α input rows (zero outside the image) are transformed down their columns all at once,
    /// read straight from the image into `rows` (α rows of `span`; `zeros` is `span` zeros), then
    /// each tile along its row; point ξ = i·α + j of tile `t` goes to `into[ξ · pointStride + t]`.
    @inline(__always)
    func transformInputRow(_ plane: UnsafePointer<Float>, height: Int, width: Int, top: Int, left: Int, tiles: Int,
                           zeros: UnsafePointer<Float>, rows: UnsafeMutablePointer<Float>,
                           into destination: UnsafeMutablePointer<Float>, pointStride: Int) {
        let alpha = self.alpha, m = rawValue, span = tiles * m + 2
        // Columns [first, end) of the patch are inside the image; the others are padding.
        let first = Swift.min(span, Swift.max(0, -left)), end = Swift.max(first, Swift.min(span, width - left))
        // Patch row i read at column c: image row top + i at column left + c, or zeros.
        func source(_ i: Int) -> UnsafePointer<Float> {
            let y = top + i
            return i < alpha && y >= 0 && y < height ? plane + y * width + left : zeros
        }
        let (s0, s1, s2, s3, s4, s5) = (source(0), source(1), source(2), source(3), source(4), source(5))
        // One loop per tile size, so that the point formulas fold into straight vector code.
        @inline(__always)
        func transformColumns(_ tile: Self) {
            for c in first..<end {
                tile.inputPoints({ i in (i == 0 ? s0 : i == 1 ? s1 : i == 2 ? s2 : i == 3 ? s3 : i == 4 ? s4 : s5)[c] },
                                 { rows[$0 * span + c] = $1 })
            }
        }
        switch self {
        case .two: transformColumns(.two)
        case .four: transformColumns(.four)
        }
        for i in 0..<alpha {
            let row = rows + i * span
            for column in 0..<first { row[column] = 0 }
            for column in end..<span { row[column] = 0 }
        }
        for i in 0..<alpha {
            let line = rows + i * span, target = destination + i * alpha * pointStride
            // Four tiles at a time, one lane each, stored as four consecutive tiles of each point.
            var t = 0
            while t + 4 <= tiles {
                let x = line + t * m, y = target + t
                inputPoints({ SIMD4(x[$0], x[m + $0], x[2 * m + $0], x[3 * m + $0]) },
                            { UnsafeMutableRawPointer(y + $0 * pointStride).storeBytes(of: $1, as: SIMD4<Float>.self) })
                t += 4
            }
            for t in t..<tiles {
                let x = line + t * m, y = target + t
                inputPoints({ x[$0] }, { y[$0 * pointStride] = $1 })
            }
        }
    }

    /// Transforms one tile row of one output channel back: `Y = Aᵀ M A` per tile, where point ξ of
    /// tile `t` is at `products[ξ · pointStride + t]`, into `rows` output rows of width `width`
    /// starting at `output`. `patch` holds m·α·tiles + α floats of scratch.
    @inline(__always)
    func transformOutputRow(_ products: UnsafePointer<Float>, pointStride: Int, tiles: Int,
                            patch: UnsafeMutablePointer<Float>, into output: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        let alpha = self.alpha, m = rawValue
        // Aᵀ down the columns of every tile at once, into `patch`: result r of column j of tile t
        // at patch[(r · α + j) · tiles + t].
        let pointRow = alpha * pointStride
        for j in 0..<alpha {
            let column = products + j * pointStride, target = patch + j * tiles
            for t in 0..<tiles {
                let x = column + t
                outputPoints({ x[$0 * pointRow] }, { target[$0 * alpha * tiles + t] = $1 })
            }
        }
        let last = patch + m * alpha * tiles
        for r in 0..<rows {
            let line = output + r * width, source = patch + r * alpha * tiles
            let whole = Swift.min(tiles, width / m)
            // Four tiles at a time (one lane each), then one at a time.
            var t = 0
            while t + 4 <= whole {
                let x = source + t, y = line + t * m
                outputPoints({ UnsafeRawPointer(x + $0 * tiles).loadUnaligned(as: SIMD4<Float>.self) },
                             { s, value in for lane in 0..<4 { y[lane * m + s] = value[lane] } })
                t += 4
            }
            for t in t..<whole {
                let x = source + t, y = line + t * m
                outputPoints({ x[$0 * tiles] }, { y[$0] = $1 })
            }
            // The last tile, when it sticks out of the image.
            for t in whole..<tiles {
                let x = source + t
                outputPoints({ x[$0 * tiles] }, { last[$0] = $1 })
                for s in 0..<(width - t * m) { line[t * m + s] = last[s] }
            }
        }
    }

    /// Bᵀ applied to the α values `x(0)…x(α−1)`, results passed to `y(j, value)`. Lanes are one
    /// tile (Float) or four (SIMD4).
    @inline(__always)
    private func inputPoints<Lane: WinogradLane>(_ x: (Int) -> Lane, _ y: (Int, Lane) -> Void) {
        switch self {
        case .two:
            let (x0, x1, x2, x3) = (x(0), x(1), x(2), x(3))
            y(0, x0 - x2)
            y(1, x1 + x2)
            y(2, x2 - x1)
            y(3, x1 - x3)
        case .four:
            let (x0, x1, x2, x3, x4, x5) = (x(0), x(1), x(2), x(3), x(4), x(5))
            y(0, 4 * x0 - 5 * x2 + x4)
            y(1, x3 + x4 - 4 * (x1 + x2))
            y(2, 4 * (x1 - x2) - x3 + x4)
            y(3, 2 * (x3 - x1) - x2 + x4)
            y(4, 2 * (x1 - x3) - x2 + x4)
            y(5, 4 * x1 - 5 * x3 + x5)
        }
    }

    /// Aᵀ applied to the α values `x(0)…x(α−1)`; the m results passed to `y(s, value)`.
    @inline(__always)
    private func outputPoints<Lane: WinogradLane>(_ x: (Int) -> Lane, _ y: (Int, Lane) -> Void) {
        switch self {
        case .two:
            let (x0, x1, x2, x3) = (x(0), x(1), x(2), x(3))
            y(0, x0 + x1 + x2)
            y(1, x1 - x2 - x3)
        case .four:
            let (x0, x1, x2, x3, x4, x5) = (x(0), x(1), x(2), x(3), x(4), x(5))
            let (sum12, difference12, sum34, difference34) = (x1 + x2, x1 - x2, x3 + x4, x3 - x4)
            y(0, x0 + sum12 + sum34)
            y(1, difference12 + 2 * difference34)
            y(2, sum12 + 4 * sum34)
            y(3, difference12 + 8 * difference34 + x5)
        }
    }
}

/// The arithmetic of the point transforms: Float for one tile, SIMD4<Float> for four at once.
protocol WinogradLane {
    static func + (lhs: Self, rhs: Self) -> Self
    static func - (lhs: Self, rhs: Self) -> Self
    static func * (lhs: Float, rhs: Self) -> Self
}

extension Float: WinogradLane {}
extension SIMD4: WinogradLane where Scalar == Float {}
