import Foundation
import Kernels
import Tensors

/// Einsum (12): Einstein summation over labelled axes (`...` for broadcast axes), computed
/// directly over every combination of label values: a plain loop, not a matrix multiply.
struct Einsum: Operator {
    let inputTerms: [String]
    let outputTerm: String?

    static let definition = OperatorDefinition("Einsum", versions: [12, 28], contract: OperatorContract(
        inputs: [.init("Inputs", "T", .variadic(min: 1))], outputs: [.init("Output", "T")], types: ["T": ElementTypes.numeric])) {
        try Einsum($0)
    }

    init(_ context: OperatorContext) throws {
        let equation = try context.required("equation", context.string).filter { $0 != " " }
        let sides = equation.components(separatedBy: "->")
        guard sides.count <= 2 else { throw OpError("equation '\(equation)' has more than one '->'") }
        inputTerms = sides[0].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        outputTerm = sides.count == 2 ? sides[1] : nil
        for term in inputTerms + (outputTerm.map { [$0] } ?? []) {
            let letters = term.replacingOccurrences(of: "...", with: "")
            guard letters.allSatisfy({ $0.isLetter && $0.isASCII }) else { throw OpError("equation term '\(term)' has a character that is not a letter") }
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(x.dataType, nil)]
    }

    /// A term's labels for an input of `rank` axes; the ellipsis becomes labels "0", "1", ...
    /// aligned from the right (the broadcast axes).
    private static func labels(_ term: String, rank: Int, ellipsisRank: inout Int) throws -> [String] {
        let parts = term.components(separatedBy: "...")
        guard parts.count <= 2 else { throw OpError("term '\(term)' has more than one '...'") }
        let explicit = parts.joined().map(String.init)
        guard parts.count == 2 else {
            guard explicit.count == rank else { throw OpError.invalidArgument("term '\(term)' has \(explicit.count) labels for an input of rank \(rank)") }
            return explicit
        }
        let broadcast = rank - explicit.count
        guard broadcast >= 0 else { throw OpError.invalidArgument("term '\(term)' has more labels than the input's rank \(rank)") }
        ellipsisRank = max(ellipsisRank, broadcast)
        let dots = (0..<broadcast).map { "\($0 + 1000 - broadcast)" }
        return parts[0].map(String.init) + dots + parts[1].map(String.init)
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        guard inputs.count == inputTerms.count else { throw OpError("the equation has \(inputTerms.count) inputs; the node has \(inputs.count)") }
        let tensors = try inputs.indices.map { try inputs.required($0) }
        let type = tensors[0].dataType
        var ellipsisRank = 0
        let termLabels = try zip(inputTerms, tensors).map { try Self.labels($0, rank: $1.shape.rank, ellipsisRank: &ellipsisRank) }
        var sizes: [String: Int] = [:]
        for (labels, tensor) in zip(termLabels, tensors) {
            for (axis, label) in labels.enumerated() {
                let size = tensor.shape[axis]
                if let known = sizes[label], known != size {
                    // Broadcast axes may be 1 on one side.
                    if Int(label) != nil && (known == 1 || size == 1) { sizes[label] = max(known, size); continue }
                    throw OpError.invalidArgument("label '\(label)' is \(known) in one input and \(size) in another")
                }
                sizes[label] = size
            }
        }
        let dots = (0..<ellipsisRank).map { "\($0 + 1000 - ellipsisRank)" }
        let outputLabels: [String]
        if let outputTerm {
            let parts = outputTerm.components(separatedBy: "...")
            outputLabels = parts.count == 2 ? parts[0].map(String.init) + dots + parts[1].map(String.init) : parts[0].map(String.init)
            for label in outputLabels where sizes[label] == nil { throw OpError("output label '\(label)' is in no input") }
        } else {
            var counts: [String: Int] = [:]
            for labels in termLabels { for label in labels where Int(label) == nil { counts[label, default: 0] += 1 } }
            outputLabels = dots + counts.filter { $0.value == 1 }.keys.sorted()
        }
        let summed = Array(Set(sizes.keys).subtracting(outputLabels)).sorted()
        let all = outputLabels + summed
        let extents = all.map { sizes[$0] ?? 1 }
        guard let work = Shape(extents).boundedElementCount(limit: ExecutionContext.maximumElementCount) else {
            throw OpError.invalidArgument("the equation needs more than \(ExecutionContext.maximumElementCount) products")
        }
        let outputShape = Shape(outputLabels.map { sizes[$0] ?? 1 })
        // For each input, the stride of each label (0 for labels it lacks or broadcasts).
        let position = Dictionary(uniqueKeysWithValues: all.enumerated().map { ($1, $0) })
        let strides: [[Int]] = zip(termLabels, tensors).map { labels, tensor in
            var result = [Int](repeating: 0, count: all.count)
            let tensorStrides = tensor.shape.strides
            for (axis, label) in labels.enumerated() where tensor.shape[axis] != 1 || sizes[label] == 1 {
                if let index = position[label] { result[index] += tensorStrides[axis] }
            }
            return result
        }
        let values = tensors.map { $0.doubles() }
        var output = [Double](repeating: 0, count: outputShape.elementCount)
        let outputCount = outputShape.elementCount
        let innerCount = outputCount == 0 ? 0 : work / outputCount
        var coordinate = [Int](repeating: 0, count: all.count)
        if outputCount > 0 && innerCount > 0 {
            for element in 0..<work {
                var product = 1.0
                for (input, stride) in strides.enumerated() {
                    var offset = 0
                    for axis in 0..<all.count { offset += coordinate[axis] * stride[axis] }
                    product *= values[input][offset]
                }
                output[element / innerCount] += product
                var axis = all.count - 1
                while axis >= 0 {
                    coordinate[axis] += 1
                    if coordinate[axis] < extents[axis] { break }
                    coordinate[axis] = 0
                    axis -= 1
                }
            }
        }
        return [try convert(Tensor(output, shape: outputShape), to: type, context)]
    }
}
