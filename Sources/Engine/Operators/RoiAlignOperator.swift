import Kernels
import Tensors

/// RoiAlign (10, 16, 22): for each region of interest [x1, y1, x2, y2] (scaled by `spatial_scale`)
/// of image `batch_indices[r]` of X [N, C, H, W], an output_height × output_width map per channel,
/// each bin the average (or, `mode` max, the largest weighted corner) of a grid of bilinear
/// samples (`sampling_ratio` per axis, or adaptive: ⌈bin size⌉). `coordinate_transformation_mode`
/// half_pixel (16's default) shifts coordinates by half a pixel; output_half_pixel (10's only
/// behaviour) does not, and makes regions at least one pixel wide, as onnx.reference and ONNX
/// Runtime do.
struct RoiAlign: Operator {
    let average: Bool, halfPixel: Bool
    let outputHeight: Int, outputWidth: Int, samplingRatio: Int
    let spatialScale: Double

    init(_ context: OperatorContext) throws {
        let mode = try context.string("mode", default: "avg")
        guard mode == "avg" || mode == "max" else { throw OpError("mode '\(mode)' is not avg or max") }
        average = mode == "avg"
        let transformation = try context.string("coordinate_transformation_mode", default: context.version >= 16 ? "half_pixel" : "output_half_pixel")
        guard transformation == "half_pixel" || transformation == "output_half_pixel" else {
            throw OpError("coordinate_transformation_mode '\(transformation)' is not half_pixel or output_half_pixel")
        }
        halfPixel = transformation == "half_pixel"
        outputHeight = try context.int("output_height", default: 1)
        outputWidth = try context.int("output_width", default: 1)
        samplingRatio = try context.int("sampling_ratio", default: 0)
        spatialScale = Double(try context.float("spatial_scale", default: 1))
        guard outputHeight >= 1, outputWidth >= 1, samplingRatio >= 0, samplingRatio <= 1 << 16, spatialScale.isFinite else {
            throw OpError("output_height \(outputHeight), output_width \(outputWidth) must be positive, sampling_ratio"
                          + " \(samplingRatio) in 0...65536 and spatial_scale finite")
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(x.dataType, [.unknown, x.dims?[1] ?? .unknown, .fixed(outputHeight), .fixed(outputWidth)])]
    }

    /// One bilinear sample along an axis: the two pixel indices and their weights (both zero when
    /// the sample falls more than a pixel outside the image).
    struct AxisSample { var low = 0, high = 0, lowWeight = 0.0, highWeight = 0.0 }

    /// The samples along an axis of `size` pixels: `bins` × `grid` of them from `start`, `binSize` apart per bin.
    static func axisSamples(start: Double, binSize: Double, bins: Int, grid: Int, size: Int) -> [AxisSample] {
        var samples: [AxisSample] = []
        samples.reserveCapacity(bins * grid)
        for bin in 0..<bins {
            for i in 0..<grid {
                var y = start + Double(bin) * binSize + (Double(i) + 0.5) * binSize / Double(grid)
                guard y >= -1, y <= Double(size) else { samples.append(AxisSample()); continue }
                y = max(y, 0)
                var low = Int(y), high = low + 1
                if low >= size - 1 { low = size - 1; high = low; y = Double(low) }
                let fraction = y - Double(low)
                samples.append(AxisSample(low: low, high: high, lowWeight: 1 - fraction, highWeight: fraction))
            }
        }
        return samples
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0), roisTensor = try inputs.required(1), indices = try inputs.required(2)
        guard x.shape.rank == 4 else { throw OpError.invalidArgument("X must be [N, C, H, W], got \(x.shape)") }
        let count = roisTensor.shape.first ?? 0
        guard roisTensor.shape.rank == 2, roisTensor.shape[1] == 4, indices.shape.rank == 1, indices.shape[0] == count else {
            throw OpError.invalidArgument("rois \(roisTensor.shape) and batch_indices \(indices.shape) must be [R, 4] and [R]")
        }
        let batch = x.shape[0], channels = x.shape[1], height = x.shape[2], width = x.shape[3]
        let images = try Layout.integers(indices, "batch_indices")
        if let bad = images.firstIndex(where: { $0 < 0 || $0 >= batch }) {
            throw OpError.invalidArgument("batch_indices[\(bad)] = \(images[bad]) is out of range for \(batch) images")
        }
        let outputShape = try Layout.checkedShape([count, channels, outputHeight, outputWidth])
        let rois = roisTensor.doubles()
        let image = try convert(x, to: .double, context)
        let y = try context.allocate(.double, outputShape)
        let bins = outputHeight * outputWidth, plane = height * width
        let offset = halfPixel ? 0.5 : 0
        try withExtendedLifetime(image) {
            let source = image.pointer(as: Double.self), target = y.mutablePointer(as: Double.self)
            for r in 0..<count {
                let box = rois[(4 * r)..<(4 * r + 4)].map { $0 * spatialScale - offset }
                guard box.allSatisfy(\.isFinite) else { throw OpError.invalidArgument("roi \(r) has a coordinate that is not finite") }
                var roiWidth = box[2] - box[0], roiHeight = box[3] - box[1]
                if !halfPixel { roiWidth = max(roiWidth, 1); roiHeight = max(roiHeight, 1) }
                let binHeight = roiHeight / Double(outputHeight), binWidth = roiWidth / Double(outputWidth)
                let gridHeight = try grid(binHeight, size: height, roi: r), gridWidth = try grid(binWidth, size: width, roi: r)
                let rows = Self.axisSamples(start: box[1], binSize: binHeight, bins: outputHeight, grid: gridHeight, size: height)
                let columns = Self.axisSamples(start: box[0], binSize: binWidth, bins: outputWidth, grid: gridWidth, size: width)
                let samples = Double(max(gridHeight * gridWidth, 1))
                for c in 0..<channels {
                    let pixels = source + (images[r] * channels + c) * plane
                    let output = target + (r * channels + c) * bins
                    for ph in 0..<outputHeight {
                        for pw in 0..<outputWidth {
                            var sum = 0.0, largest = -Double.infinity
                            for iy in 0..<gridHeight {
                                let row = rows[ph * gridHeight + iy]
                                for ix in 0..<gridWidth {
                                    let column = columns[pw * gridWidth + ix]
                                    let corners = (row.lowWeight * column.lowWeight * pixels[row.low * width + column.low],
                                                   row.lowWeight * column.highWeight * pixels[row.low * width + column.high],
                                                   row.highWeight * column.lowWeight * pixels[row.high * width + column.low],
                                                   row.highWeight * column.highWeight * pixels[row.high * width + column.high])
                                    if average {
                                        sum += corners.0 + corners.1 + corners.2 + corners.3
                                    } else {
                                        largest = max(largest, corners.0, corners.1, corners.2, corners.3)
                                    }
                                }
                            }
                            output[ph * outputWidth + pw] = average ? sum / samples : (gridHeight * gridWidth > 0 ? largest : 0)
                        }
                    }
                }
            }
        }
        return [try convert(y, to: x.dataType, context)]
    }

    /// Samples per bin along an axis: `sampling_ratio`, or ⌈bin size⌉, at most 4 × (size + 1) (a
    /// bin four times the image is refused rather than sampled at a cost the request chooses).
    private func grid(_ binSize: Double, size: Int, roi: Int) throws -> Int {
        if samplingRatio > 0 { return samplingRatio }
        let limit = 4 * (size + 1)
        let adaptive = binSize.rounded(.up)
        guard adaptive <= Double(limit) else {
            throw OpError.invalidArgument("roi \(roi)'s bins are \(binSize) pixels, more than four times the \(size)-pixel feature map")
        }
        return max(Int(adaptive), 0)
    }
}
