import Foundation
import Kernels
import Tensors

/// The loss operators that evaluation graphs end in (opset 12 on): NegativeLogLikelihoodLoss and
/// SoftmaxCrossEntropyLoss, computed in double and returned in the input's type.
enum LossOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("NegativeLogLikelihoodLoss", versions: [12, 13, 22], contract: OperatorContract(
            inputs: [.init("input", "T"), .init("target", "Tind"), .init("weight", "T", .optional)], outputs: [.init("loss", "T")],
            types: types)) { try ClassLoss($0, softmax: false) },
        OperatorDefinition("SoftmaxCrossEntropyLoss", versions: [12, 13], contract: OperatorContract(
            inputs: [.init("scores", "T"), .init("labels", "Tind"), .init("weights", "T", .optional)],
            outputs: [.init("output", "T"), .init("log_prob", "T", .optional)], types: types)) { try ClassLoss($0, softmax: true) },
    ]

    /// Floating-point scores and weights, int32 or int64 class indices.
    static let types: [String: Set<DataType>] = ["T": ElementTypes.floatingPoint, "Tind": [.int32, .int64]]
}

/// NegativeLogLikelihoodLoss (input: log-probabilities) and SoftmaxCrossEntropyLoss (input: scores,
/// log-softmaxed over axis 1 first, and optionally returned as `log_prob`). For input [N, C, d…]
/// and target [N, d…] (class indices), the loss of each element is `−weight[t] · input[n, t, d…]`
/// with `t = target[n, d…]`, or 0 where `t == ignore_index`. `reduction` "none" returns them
/// (target's shape); "sum" adds them; "mean" divides the sum by the sum of the weights taken
/// (by their count without `weights`), which is NaN when every element is ignored, as ONNX's
/// reference computes.
struct ClassLoss: Operator {
    enum Reduction { case none, sum, mean }
    let softmax: Bool
    let reduction: Reduction
    let ignoreIndex: Int?
    let outputCount: Int

    init(_ context: OperatorContext, softmax: Bool) throws {
        self.softmax = softmax
        switch try context.string("reduction", default: "mean") {
        case "none": reduction = .none
        case "sum": reduction = .sum
        case "mean": reduction = .mean
        case let other: throw OpError("reduction '\(other)' is not one of none, sum, mean")
        }
        ignoreIndex = try context.int("ignore_index")
        outputCount = context.outputCount
        if !softmax && outputCount > 1 { throw OpError("NegativeLogLikelihoodLoss has one output") }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        let loss = TensorType(x.dataType, reduction == .none ? inputs.type(1)?.dims : [])
        return softmax ? [loss, x] : [loss]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0), target = try inputs.required(1), weight = inputs.optional(2)
        guard x.shape.rank >= 2 else { throw OpError.invalidArgument("input must be [N, C, ...], got \(x.shape)") }
        let batch = x.shape[0], classes = x.shape[1]
        let expected = [batch] + Array(x.shape.dims.dropFirst(2))
        guard target.shape.dims == expected else {
            throw OpError.invalidArgument("target shape \(target.shape) must be \(Shape(expected)) for input \(x.shape)")
        }
        var weights: [Double]?
        if let weight {
            guard weight.shape.dims == [classes] else { throw OpError.invalidArgument("weight shape \(weight.shape) must be [\(classes)]") }
            weights = weight.doubles()
        }
        // Elements per (n, class): the product of the trailing dimensions (checked: with a zero
        // size elsewhere the others are not bounded by the element count).
        let inner = try x.shape.dims.dropFirst(2).reduce(1) { try Layout.multiplied($0, $1, "input shape") }
        var values = x.doubles()
        if softmax { Self.logSoftmax(&values, batch: batch, classes: classes, inner: inner) }
        let labels = target.integers()
        var losses = [Double](repeating: 0, count: labels.count)
        var weightSum = 0.0
        for n in 0..<batch {
            for d in 0..<inner {
                let position = n * inner + d, label = labels[position]
                if let ignoreIndex, label == ignoreIndex { continue }
                guard label >= 0 && label < classes else {
                    throw OpError.invalidArgument("target value \(label) is not a class index in 0..<\(classes)")
                }
                let w = weights?[label] ?? 1
                losses[position] = -w * values[(n * classes + label) * inner + d]
                weightSum += w
            }
        }
        let loss: Tensor
        switch reduction {
        case .none: loss = Tensor(losses, shape: target.shape)
        case .sum: loss = Tensor([losses.reduce(0, +)], shape: [])
        case .mean:
            // Without weights or ignore_index ONNX divides by the element count (N·d…); with either,
            // by the sum of the weights taken (each 1 without weights): the same unless ignored.
            let total = losses.reduce(0, +)
            loss = Tensor([weights == nil && ignoreIndex == nil ? total / Double(labels.count) : total / weightSum], shape: [])
        }
        var outputs = [try convert(loss, to: x.dataType, context)]
        if softmax && outputCount > 1 { outputs.append(try convert(Tensor(values, shape: x.shape), to: x.dataType, context)) }
        return outputs
    }

    /// log(softmax) over the class axis of [N, C, inner] values, in place.
    static func logSoftmax(_ values: inout [Double], batch: Int, classes: Int, inner: Int) {
        for n in 0..<batch {
            for d in 0..<inner {
                let base = n * classes * inner + d
                var largest = -Double.infinity
                for c in 0..<classes { largest = Swift.max(largest, values[base + c * inner]) }
                var sum = 0.0
                for c in 0..<classes { sum += Foundation.exp(values[base + c * inner] - largest) }
                let offset = largest + Foundation.log(sum)
                for c in 0..<classes { values[base + c * inner] -= offset }
            }
        }
    }
}
