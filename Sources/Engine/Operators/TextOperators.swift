import Foundation
import Kernels
import Tensors

/// Operators over string tensors, and TfIdfVectorizer (n-gram counts of strings or integers).
enum TextOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("StringNormalizer", versions: [10], contract: OperatorContract(
            inputs: [.init("X", .string)], outputs: [.init("Y", .string)], types: [:])) { try StringNormalizer($0) },
        OperatorDefinition("StringSplit", versions: [20], contract: OperatorContract(
            inputs: [.init("X", "T1")], outputs: [.init("Y", .string), .init("Z", .int64)], types: ["T1": [.string]])) {
            try StringSplit($0)
        },
        OperatorDefinition("StringConcat", versions: [20], contract: OperatorContract(
            inputs: [.init("X", "T"), .init("Y", "T")], outputs: [.init("Z", "T")], types: ["T": [.string]])) { _ in StringConcat() },
        OperatorDefinition("RegexFullMatch", versions: [20], contract: OperatorContract(
            inputs: [.init("X", "T1")], outputs: [.init("Y", .bool)], types: ["T1": [.string]])) { try RegexFullMatch($0) },
        OperatorDefinition("TfIdfVectorizer", versions: [9], contract: OperatorContract(
            inputs: [.init("X", "T")], outputs: [.init("Y", .float)], types: ["T": [.string, .int32, .int64]])) { try TfIdfVectorizer($0) },
    ]
}


/// StringNormalizer (10): drops the stop words (elements equal to one, with or without case), then
/// changes case. X [C] or [1, C]; when nothing is left the output is one empty string.
struct StringNormalizer: Operator {
    enum CaseChange { case lower, upper, none }
    let caseChange: CaseChange
    let caseSensitive: Bool
    let stopwords: Set<String>

    init(_ context: OperatorContext) throws {
        switch try context.string("case_change_action", default: "NONE") {
        case "LOWER": caseChange = .lower
        case "UPPER": caseChange = .upper
        case "NONE": caseChange = .none
        case let other: throw OpError("unknown case_change_action '\(other)'")
        }
        caseSensitive = try context.int("is_case_sensitive", default: 0) != 0
        let words = try context.strings("stopwords") ?? []
        stopwords = Set(caseSensitive ? words : words.map { $0.lowercased() })
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(.string, x.dims.map { $0.count == 2 ? [.fixed(1), .unknown] : [.unknown] })]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let words = x.strings
        guard x.shape.rank == 1 || (x.shape.rank == 2 && x.shape[0] == 1) else {
            throw OpError.invalidArgument("input must be [C] or [1, C], got \(x.shape)")
        }
        var kept = words.filter { !stopwords.contains(caseSensitive ? $0 : $0.lowercased()) }
        switch caseChange {
        case .lower: kept = kept.map { $0.lowercased() }
        case .upper: kept = kept.map { $0.uppercased() }
        case .none: break
        }
        if kept.isEmpty { kept = [""] }
        return [Tensor(strings: kept, shape: x.shape.rank == 2 ? [1, kept.count] : [kept.count])]
    }
}

/// StringSplit (20): each string split at `delimiter` (none: runs of whitespace) at most
/// `maxsplit` times, as Python's `str.split`; Y = X.shape + [most parts] padded with "", Z the
/// number of parts.
struct StringSplit: Operator {
    let delimiter: String?
    let maxSplit: Int?

    init(_ context: OperatorContext) throws {
        let delimiter = try context.string("delimiter")
        self.delimiter = delimiter?.isEmpty == false ? delimiter : nil
        maxSplit = try context.int("maxsplit")
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(.string, x.dims.map { $0 + [.unknown] }), TensorType(.int64, x.dims)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let parts = x.strings.map(split)
        let width = parts.map(\.count).max() ?? 0
        var padded: [String] = []
        padded.reserveCapacity(parts.count * width)
        for row in parts { padded += row + Array(repeating: "", count: width - row.count) }
        return [Tensor(strings: padded, shape: Shape(x.shape.dims + [width])), Tensor(parts.map { Int64($0.count) }, shape: x.shape)]
    }

    private func split(_ text: String) -> [String] {
        let limit = maxSplit.map { $0 < 0 ? Int.max : $0 } ?? Int.max
        guard let delimiter else {
            // Whitespace runs; leading and trailing whitespace gives no empty parts.
            var parts: [String] = []
            var rest = Substring(text)
            while true {
                rest = rest.drop { $0.isWhitespace }
                if rest.isEmpty { break }
                if parts.count == limit {
                    parts.append(String(rest))
                    break
                }
                let word = rest.prefix { !$0.isWhitespace }
                parts.append(String(word))
                rest = rest.dropFirst(word.count)
            }
            return parts
        }
        var parts: [String] = []
        var rest = Substring(text)
        while parts.count < limit, let range = rest.range(of: delimiter) {
            parts.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        parts.append(String(rest))
        return parts
    }
}

/// StringConcat (20): X + Y elementwise, with broadcasting.
struct StringConcat: Operator {
    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] { [TensorType(.string, nil)] }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0), y = try inputs.required(1)
        let left = x.strings, right = y.strings
        guard let shape = Shape.broadcast(x.shape, y.shape) else {
            throw OpError.invalidArgument("shapes \(x.shape) and \(y.shape) do not broadcast")
        }
        let count = shape.elementCount
        let xIndex = Self.indices(from: x.shape, to: shape), yIndex = Self.indices(from: y.shape, to: shape)
        return [Tensor(strings: (0..<count).map { left[xIndex[$0]] + right[yIndex[$0]] }, shape: shape)]
    }

    /// For each element of `target`, the element of `source` (broadcast to it) it reads.
    static func indices(from source: Shape, to target: Shape) -> [Int] {
        let rank = target.rank, offset = rank - source.rank
        let strides = source.strides
        var result = [Int](repeating: 0, count: target.elementCount)
        var coordinate = [Int](repeating: 0, count: rank)
        for element in 0..<result.count {
            var index = 0
            for axis in 0..<source.rank where source[axis] != 1 { index += coordinate[axis + offset] * strides[axis] }
            result[element] = index
            var axis = rank - 1
            while axis >= 0 {
                coordinate[axis] += 1
                if coordinate[axis] < target[axis] { break }
                coordinate[axis] = 0
                axis -= 1
            }
        }
        return result
    }
}

/// RegexFullMatch (20): true where the whole string matches `pattern`.
struct RegexFullMatch: Operator {
    let expression: NSRegularExpression

    init(_ context: OperatorContext) throws {
        let pattern = try context.required("pattern", context.string)
        do {
            expression = try NSRegularExpression(pattern: pattern)
        } catch {
            throw OpError("'pattern' is not a valid regular expression: \(pattern)")
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(.bool, x.dims)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let matches = x.strings.map { text -> Bool in
            let whole = NSRange(text.startIndex..<text.endIndex, in: text)
            return expression.firstMatch(in: text, options: [.anchored], range: whole).map { $0.range == whole } ?? false
        }
        return [Tensor(matches, shape: x.shape)]
    }
}

/// TfIdfVectorizer (9): counts the pool's n-grams (of `min_gram_length`...`max_gram_length`
/// items, items up to `max_skip_count` apart) in each row of X [C] or [N, C], weighted by mode.
struct TfIdfVectorizer: Operator {
    enum Mode { case tf, idf, tfidf }
    let mode: Mode
    let minLength: Int
    let maxLength: Int
    let maxSkip: Int
    /// Pool n-grams (within the length range) → output column.
    let columns: [[EncodingKey]: Int]
    /// Every prefix of those n-grams, to stop extending early.
    let prefixes: Set<[EncodingKey]>
    let weights: [Float]
    let outputSize: Int

    init(_ context: OperatorContext) throws {
        switch try context.required("mode", context.string) {
        case "TF": mode = .tf
        case "IDF": mode = .idf
        case "TFIDF": mode = .tfidf
        case let other: throw OpError("unknown mode '\(other)'")
        }
        minLength = try context.required("min_gram_length", context.int)
        maxLength = try context.required("max_gram_length", context.int)
        maxSkip = try context.required("max_skip_count", context.int)
        guard minLength >= 1, maxLength >= minLength, maxLength <= 1 << 10, maxSkip >= 0, maxSkip <= 1 << 20 else {
            throw OpError("need 1 ≤ min_gram_length ≤ max_gram_length ≤ 1024 and 0 ≤ max_skip_count, got \(minLength), \(maxLength), \(maxSkip)")
        }
        let counts = try context.required("ngram_counts", context.ints)
        let indexes = try context.required("ngram_indexes", context.ints)
        let pool: [EncodingKey]
        if let strings = try context.strings("pool_strings") {
            pool = strings.map { .text($0) }
        } else {
            pool = (try context.ints("pool_int64s") ?? []).map { .integer(Int64($0)) }
        }
        weights = try context.floats("weights") ?? []
        guard indexes.allSatisfy({ $0 >= 0 && $0 < 1 << 24 }) else { throw OpError("'ngram_indexes' must be between 0 and 2^24") }
        outputSize = (indexes.max() ?? -1) + 1
        guard weights.isEmpty || weights.count >= outputSize else { throw OpError("\(weights.count) weights for \(outputSize) outputs") }
        var columns: [[EncodingKey]: Int] = [:], prefixes = Set<[EncodingKey]>()
        var ngram = 0
        for (section, start) in counts.enumerated() {
            let length = section + 1
            let end = section + 1 < counts.count ? counts[section + 1] : pool.count
            guard start >= 0, start <= end, end <= pool.count else { throw OpError("'ngram_counts' \(counts) do not fit a pool of \(pool.count)") }
            for first in stride(from: start, to: end - length + 1, by: length) {
                defer { ngram += 1 }
                guard length >= minLength && length <= maxLength else { continue }
                guard ngram < indexes.count else { throw OpError("n-gram \(ngram) has no entry in 'ngram_indexes'") }
                let gram = Array(pool[first..<(first + length)])
                if columns[gram] == nil { columns[gram] = indexes[ngram] }
                for prefix in 1...length { prefixes.insert(Array(gram.prefix(prefix))) }
            }
        }
        self.columns = columns
        self.prefixes = prefixes
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        guard let dims = x.dims else { return [TensorType(.float, nil)] }
        return [TensorType(.float, dims.count == 2 ? [dims[0], .fixed(outputSize)] : [.fixed(outputSize)])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        guard x.shape.rank <= 2 else { throw OpError.invalidArgument("input must be [C] or [N, C], got \(x.shape)") }
        let rows = x.shape.rank == 2 ? x.shape[0] : 1
        let width = x.shape.rank == 0 ? 1 : x.shape[x.shape.rank - 1]
        let items = EncodingKey.keys(of: x)
        // Counts go straight into the output, allocated first: its size comes from the request.
        let shape: Shape = x.shape.rank == 2 ? [rows, outputSize] : [outputSize]
        let y = try context.allocate(.float, shape)
        let counts = y.mutablePointer(as: Float.self)
        counts.initialize(repeating: 0, count: y.elementCount)
        for row in 0..<rows {
            let base = row * width
            var startLength = minLength
            for distance in 1...(maxSkip + 1) {
                for start in 0..<width where start + distance * (startLength - 1) < width {
                    var gram: [EncodingKey] = []
                    var item = start
                    while gram.count < maxLength && item < width {
                        gram.append(items[base + item])
                        guard prefixes.contains(gram) else { break }
                        if gram.count >= startLength, let column = columns[gram] { counts[row * outputSize + column] += 1 }
                        item += distance
                    }
                }
                // Unigrams do not depend on the distance: count them once.
                if startLength == 1 {
                    startLength = 2
                    if startLength > maxLength { break }
                }
            }
        }
        for index in 0..<y.elementCount {
            let weight = weights.isEmpty ? 1 : weights[index % max(outputSize, 1)]
            switch mode {
            case .tf: break
            case .idf: counts[index] = counts[index] > 0 ? weight : 0
            case .tfidf: counts[index] *= weight
            }
        }
        return [y]
    }
}
