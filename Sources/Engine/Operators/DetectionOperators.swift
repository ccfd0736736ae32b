import Kernels
import Tensors

/// The post-processing of detectors: NonMaxSuppression.
enum DetectionOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("NonMaxSuppression", versions: [10, 11], contract: OperatorContract(
            inputs: [.init("boxes", .float), .init("scores", .float), .init("max_output_boxes_per_class", .int64, .optional),
                     .init("iou_threshold", .float, .optional), .init("score_threshold", .float, .optional)],
            outputs: [.init("selected_indices", .int64)], types: [:])) { try NonMaxSuppression($0) },
    ]
}

/// NonMaxSuppression: per batch item and class, boxes by descending score (ties: lower index
/// first) above `score_threshold`, each kept unless its IoU with a kept one exceeds
/// `iou_threshold`, at most `max_output_boxes_per_class`. Output [selected, 3] int64 rows of
/// (batch, class, box).
struct NonMaxSuppression: Operator {
    /// Boxes as [x_center, y_center, width, height] instead of two corners [y1, x1, y2, x2].
    let centerPoint: Bool

    init(_ context: OperatorContext) throws {
        let mode = try context.int("center_point_box", default: 0)
        guard mode == 0 || mode == 1 else { throw OpError("center_point_box must be 0 or 1, got \(mode)") }
        centerPoint = mode == 1
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        [TensorType(.int64, [.unknown, .fixed(3)])]
    }

    /// A box as (x min, x max, y min, y max).
    private func extent(_ box: UnsafePointer<Float>) -> (Float, Float, Float, Float) {
        if centerPoint {
            return (box[0] - box[2] / 2, box[0] + box[2] / 2, box[1] - box[3] / 2, box[1] + box[3] / 2)
        }
        return (min(box[1], box[3]), max(box[1], box[3]), min(box[0], box[2]), max(box[0], box[2]))
    }

    /// True when the boxes overlap by more than `threshold` (intersection over union).
    private func suppresses(_ a: (Float, Float, Float, Float), _ b: (Float, Float, Float, Float), threshold: Float) -> Bool {
        let width = min(a.1, b.1) - max(a.0, b.0), height = min(a.3, b.3) - max(a.2, b.2)
        guard width > 0, height > 0 else { return false }
        let intersection = width * height
        let areaA = (a.1 - a.0) * (a.3 - a.2), areaB = (b.1 - b.0) * (b.3 - b.2)
        let union = areaA + areaB - intersection
        guard areaA > 0, areaB > 0, union > 0 else { return false }
        return intersection / union > threshold
    }

    private func scalar(_ tensor: Tensor?, _ name: String) throws -> Double? {
        guard let tensor, tensor.elementCount > 0 else { return nil }
        guard tensor.elementCount == 1 else { throw OpError.invalidArgument("\(name) must hold one value, got shape \(tensor.shape)") }
        return tensor.doubles()[0]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let boxes = try inputs.required(0)
        let scores = try inputs.required(1)
        guard boxes.shape.rank == 3, boxes.shape[2] == 4, scores.shape.rank == 3, scores.shape[0] == boxes.shape[0],
              scores.shape[2] == boxes.shape[1] else {
            throw OpError.invalidArgument("boxes \(boxes.shape) and scores \(scores.shape) must be [B, N, 4] and [B, C, N]")
        }
        let limit = try scalar(inputs.optional(2), "max_output_boxes_per_class").map { max(0, min($0, Double(Int32.max))) } ?? 0
        let iouThreshold = Float(try scalar(inputs.optional(3), "iou_threshold") ?? 0)
        let scoreThreshold = try scalar(inputs.optional(4), "score_threshold").map(Float.init)
        let batch = boxes.shape[0], classes = scores.shape[1], count = boxes.shape[1]
        var selected: [Int64] = []
        withExtendedLifetime((boxes, scores)) {
            let boxValues = boxes.pointer(as: Float.self), scoreValues = scores.pointer(as: Float.self)
            for b in 0..<batch {
                let extents = (0..<count).map { extent(boxValues + (b * count + $0) * 4) }
                for c in 0..<classes {
                    let row = scoreValues + (b * classes + c) * count
                    var candidates = Array(0..<count)
                    if let scoreThreshold { candidates.removeAll { !(row[$0] > scoreThreshold) } }
                    candidates.sort { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
                    var kept: [Int] = []
                    for index in candidates {
                        if Double(kept.count) >= limit { break }
                        if kept.contains(where: { suppresses(extents[index], extents[$0], threshold: iouThreshold) }) { continue }
                        kept.append(index)
                        selected += [Int64(b), Int64(c), Int64(index)]
                    }
                }
            }
        }
        return [Tensor(selected, shape: [selected.count / 3, 3])]
    }
}
