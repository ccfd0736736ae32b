import Kernels
import Tensors

/// MaxRoiPool (1, 22), Fast R-CNN's region pooling: each region [batch_index, x1, y1, x2, y2] of
/// `rois` is scaled by `spatial_scale` and rounded to whole pixels (half away from zero), made at
/// least one pixel wide and tall, and cut into `pooled_shape` bins (⌊i·size/bins⌋ to
/// ⌈(i+1)·size/bins⌉, clipped to the map); each output is its bin's largest value, 0 for a bin
/// that lies outside the map. ONNX Runtime computes the same bins but starts each maximum at the
/// smallest positive float instead of −∞, so it answers ≈1e-38 where a whole bin is negative;
/// we return the bin's maximum.
struct MaxRoiPool: Operator {
    let pooledHeight: Int, pooledWidth: Int
    let spatialScale: Float

    init(_ context: OperatorContext) throws {
        let shape = try context.required("pooled_shape", context.ints)
        guard shape.count == 2, shape.allSatisfy({ (1...(1 << 16)).contains($0) }) else {
            throw OpError("pooled_shape \(shape) must be two sizes in 1...65536")
        }
        (pooledHeight, pooledWidth) = (shape[0], shape[1])
        spatialScale = try context.float("spatial_scale", default: 1)
        guard spatialScale.isFinite, spatialScale > 0 else { throw OpError("spatial_scale \(spatialScale) must be positive and finite") }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        let regions = inputs.type(1)?.dims?.first ?? .unknown
        return [TensorType(x.dataType, [regions, x.dims?[1] ?? .unknown, .fixed(pooledHeight), .fixed(pooledWidth)])]
    }

    /// A region's corner, in pixels: rounded half away from zero, as an Int within ±2^30 (farther
    /// than any map, and no trap on a hostile coordinate).
    private static func pixel(_ value: Float, _ scale: Float, roi: Int) throws -> Int {
        let scaled = (value * scale).rounded(.toNearestOrAwayFromZero)
        guard scaled.isFinite, abs(scaled) <= Float(1 << 30) else {
            throw OpError.invalidArgument("roi \(roi) has a coordinate (\(value)) that is not finite or is beyond 2^30 pixels")
        }
        return Int(scaled)
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0), roisTensor = try inputs.required(1)
        guard x.shape.rank == 4 else { throw OpError.invalidArgument("X must be [N, C, H, W], got \(x.shape)") }
        guard roisTensor.shape.rank == 2, roisTensor.shape[1] == 5 else {
            throw OpError.invalidArgument("rois must be [R, 5] (batch index, x1, y1, x2, y2), got \(roisTensor.shape)")
        }
        let count = roisTensor.shape[0]
        let batch = x.shape[0], channels = x.shape[1], height = x.shape[2], width = x.shape[3]
        let outputShape = try Layout.checkedShape([count, channels, pooledHeight, pooledWidth])
        let rois = try convert(roisTensor, to: .float, context)
        let image = try convert(x, to: .float, context)
        let y = try context.allocate(.float, outputShape)
        let plane = height * width, bins = pooledHeight * pooledWidth
        try withExtendedLifetime((rois, image)) {
            let box = rois.pointer(as: Float.self), source = image.pointer(as: Float.self), target = y.mutablePointer(as: Float.self)
            for r in 0..<count {
                let roi = box + 5 * r
                guard roi[0].isFinite, roi[0] >= 0, roi[0] < Float(batch) else {
                    throw OpError.invalidArgument("roi \(r)'s batch index \(roi[0]) is out of range for \(batch) images")
                }
                let image = Int(roi[0])
                let startW = try Self.pixel(roi[1], spatialScale, roi: r), startH = try Self.pixel(roi[2], spatialScale, roi: r)
                let endW = try Self.pixel(roi[3], spatialScale, roi: r), endH = try Self.pixel(roi[4], spatialScale, roi: r)
                let binHeight = Float(max(endH - startH + 1, 1)) / Float(pooledHeight)
                let binWidth = Float(max(endW - startW + 1, 1)) / Float(pooledWidth)
                // Bin edges, in pixels of the map, clipped to it.
                func edges(_ bin: Int, _ size: Float, _ start: Int, _ limit: Int) -> Range<Int> {
                    let low = Int((Float(bin) * size).rounded(.down)) + start, high = Int((Float(bin + 1) * size).rounded(.up)) + start
                    let lower = min(max(low, 0), limit), upper = min(max(high, 0), limit)
                    return lower..<max(upper, lower)
                }
                let rows = (0..<pooledHeight).map { edges($0, binHeight, startH, height) }
                let columns = (0..<pooledWidth).map { edges($0, binWidth, startW, width) }
                for c in 0..<channels {
                    let pixels = source + (image * channels + c) * plane
                    let output = target + (r * channels + c) * bins
                    for ph in 0..<pooledHeight {
                        for pw in 0..<pooledWidth {
                            let (binRows, binColumns) = (rows[ph], columns[pw])
                            guard !binRows.isEmpty, !binColumns.isEmpty else { output[ph * pooledWidth + pw] = 0; continue }
                            var largest = -Float.infinity
                            for h in binRows {
                                for w in binColumns { largest = max(largest, pixels[h * width + w]) }
                            }
                            output[ph * pooledWidth + pw] = largest
                        }
                    }
                }
            }
        }
        return [try convert(y, to: x.dataType, context)]
    }
}
