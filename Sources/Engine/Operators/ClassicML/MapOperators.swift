import Foundation
import Tensors

// MARK: CastMap

/// CastMap (ai.onnx.ml 1): a map from int64 keys to floats or strings → a [1, C] tensor of
/// floats, int64s or strings (`cast_to`). DENSE packs the values in ascending key order (C is
/// the map's size); SPARSE puts the value under key k at column k for k < `max_map` and a pad
/// elsewhere (ONNX Runtime's pads: 0, and "0.f" for strings), refusing negative keys.
/// Conversions follow ONNX Runtime: a float becomes the string `%f` writes, and an int64 by
/// truncation (INT64_MIN for NaN and out-of-range values, as x86 converts); a string must be a
/// whole number (for int64) or float, else the run fails (ONNX Runtime's `stof`/`stoll` would
/// take a numeric prefix).
struct CastMap: ValueOperator {
    enum Target: String { case float = "TO_FLOAT", string = "TO_STRING", int64 = "TO_INT64" }

    let target: Target
    let sparse: Bool
    let maximum: Int

    init(_ context: OperatorContext) throws {
        let castTo = try context.string("cast_to", default: "TO_FLOAT")
        guard let target = Target(rawValue: castTo) else {
            throw OpError("cast_to must be TO_FLOAT, TO_STRING or TO_INT64, not '\(castTo)'")
        }
        self.target = target
        let form = try context.string("map_form", default: "DENSE")
        guard form == "DENSE" || form == "SPARSE" else { throw OpError("map_form must be DENSE or SPARSE, not '\(form)'") }
        sparse = form == "SPARSE"
        maximum = try context.int("max_map", default: 1)
        if sparse {
            guard maximum > 0 else { throw OpError("max_map must be positive when map_form is SPARSE, not \(maximum)") }
            guard maximum <= ExecutionContext.maximumElementCount else {
                throw OpError("max_map \(maximum) is more than onnx-serve's limit of \(ExecutionContext.maximumElementCount) elements")
            }
        }
    }

    var outputType: DataType {
        switch target {
        case .float: .float
        case .string: .string
        case .int64: .int64
        }
    }

    func outputKinds(_ inputs: [ValueKind?]) throws -> [ValueKind?] { [.tensor] }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        [TensorType(outputType, [.fixed(1), sparse ? .fixed(maximum) : .unknown])]
    }

    func run(values inputs: [Value?], _ context: ExecutionContext) throws -> [Value] {
        let map = try MapInput.required(inputs, keys: [.int64])
        let keys = map.keys.scalars(as: Int64.self)
        let order = keys.indices.sorted { keys[$0] < keys[$1] }
        // Column of each entry in key order; nil for an entry SPARSE leaves out (key >= max_map).
        let columns: [Int?]
        let width: Int
        if sparse {
            if let first = order.first, keys[first] < 0 {
                throw OpError.invalidArgument("CastMap SPARSE takes keys from 0; the map has key \(keys[first])")
            }
            columns = order.map { keys[$0] < Int64(maximum) ? Int(keys[$0]) : nil }
            width = maximum
        } else {
            columns = order.indices.map { $0 }
            width = map.count
        }
        let shape: Shape = [1, width]
        switch (map.values.dataType, target) {
        case (.float, .float):
            return [.tensor(try fill(map.values.scalars(as: Float.self), order, columns, shape, pad: 0, context) { $0 })]
        case (.float, .int64):
            return [.tensor(try fill(map.values.scalars(as: Float.self), order, columns, shape, pad: 0, context, ClassicMLOperators.truncated))]
        case (.float, .string):
            return [.tensor(try strings(map.values.scalars(as: Float.self), order, columns, shape, context) { String(format: "%f", Double($0)) })]
        case (.string, .float):
            return [.tensor(try fill(map.values.strings, order, columns, shape, pad: Float(0), context) { text in
                guard let value = Float(text) else { throw OpError.invalidArgument("map value '\(text)' is not a float") }
                return value
            })]
        case (.string, .int64):
            return [.tensor(try fill(map.values.strings, order, columns, shape, pad: Int64(0), context) { text in
                guard let value = Int64(text) else { throw OpError.invalidArgument("map value '\(text)' is not an int64") }
                return value
            })]
        case (.string, .string):
            return [.tensor(try strings(map.values.strings, order, columns, shape, context) { $0 })]
        case (let type, _):
            throw OpError.invalidArgument("CastMap takes a map of float or string values, not \(type)")
        }
    }

    /// A numeric [1, width] tensor: `pad` everywhere, then each entry's converted value at its column.
    private func fill<Source, Target: TensorElement>(_ values: [Source], _ order: [Int], _ columns: [Int?], _ shape: Shape,
                                                     pad: Target, _ context: ExecutionContext,
                                                     _ convert: (Source) throws -> Target) throws -> Tensor {
        let output = try context.allocate(Target.dataType, shape)
        let elements = output.mutablePointer(as: Target.self)
        elements.initialize(repeating: pad, count: output.elementCount)
        for (entry, column) in zip(order, columns) {
            guard let column else { continue }
            elements[column] = try convert(values[entry])
        }
        return output
    }

    /// A string [1, width] tensor, padded with "0.f" (ONNX Runtime's pad). (A huge SPARSE `max_map`
    /// is refused before the run starts: the output type is [1, max_map], and the run's
    /// working-memory estimate counts every string.)
    private func strings<Source>(_ values: [Source], _ order: [Int], _ columns: [Int?], _ shape: Shape,
                                 _ context: ExecutionContext, _ convert: (Source) throws -> String) throws -> Tensor {
        var output = Array(repeating: "0.f", count: shape[1])
        for (entry, column) in zip(order, columns) {
            guard let column else { continue }
            output[column] = try convert(values[entry])
        }
        return Tensor(strings: output, shape: shape)
    }
}

// MARK: DictVectorizer

/// DictVectorizer (ai.onnx.ml 1): a map → a [1, V] tensor with column i the map's value under
/// vocabulary entry i, 0 (or "") when the map lacks it; keys outside the vocabulary are ignored,
/// as ONNX Runtime and scikit-learn do. The vocabulary (`string_vocabulary` or
/// `int64_vocabulary`) fixes the key type; the values keep their type. The spec's pairs:
/// string keys with int64, float or double values, int64 keys with string, float or double values.
struct DictVectorizer: ValueOperator {
    let vocabulary: Tensor

    init(_ context: OperatorContext) throws {
        let strings = try context.strings("string_vocabulary") ?? [], integers = try context.ints("int64_vocabulary") ?? []
        guard strings.isEmpty != integers.isEmpty else {
            throw OpError("set exactly one of 'string_vocabulary' and 'int64_vocabulary'")
        }
        vocabulary = strings.isEmpty ? Tensor(integers.map(Int64.init), shape: [integers.count])
                                     : Tensor(strings: strings, shape: [strings.count])
    }

    func outputKinds(_ inputs: [ValueKind?]) throws -> [ValueKind?] {
        try MapInput.expect(inputs, keys: [vocabulary.dataType])
        return [.tensor]
    }

    func run(values inputs: [Value?], _ context: ExecutionContext) throws -> [Value] {
        let map = try MapInput.required(inputs, keys: [vocabulary.dataType])
        // Entry of the map under each vocabulary word (nil: absent).
        let entries: [Int?]
        if vocabulary.dataType == .string {
            let positions = Dictionary(map.keys.strings.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
            entries = vocabulary.strings.map { positions[$0] }
        } else {
            let positions = Dictionary(map.keys.scalars(as: Int64.self).enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
            entries = vocabulary.scalars(as: Int64.self).map { positions[$0] }
        }
        let shape: Shape = [1, vocabulary.elementCount]
        // The value type is one the contract's pairs allow for these keys.
        switch map.values.dataType {
        case .string:
            let values = map.values.strings
            return [.tensor(Tensor(strings: entries.map { $0.map { values[$0] } ?? "" }, shape: shape))]
        case .float: return [.tensor(try gather(map.values.scalars(as: Float.self), entries, shape, context))]
        case .double: return [.tensor(try gather(map.values.scalars(as: Double.self), entries, shape, context))]
        case .int64: return [.tensor(try gather(map.values.scalars(as: Int64.self), entries, shape, context))]
        case let type: throw OpError("DictVectorizer cannot read map values of \(type)")
        }
    }

    private func gather<T: NumericElement>(_ values: [T], _ entries: [Int?], _ shape: Shape, _ context: ExecutionContext) throws -> Tensor {
        let output = try context.allocate(T.dataType, shape)
        let elements = output.mutablePointer(as: T.self)
        for (column, entry) in entries.enumerated() { elements[column] = entry.map { values[$0] } ?? 0 }
        return output
    }
}

// MARK: Map inputs

/// The map input (input 0) of CastMap and DictVectorizer.
enum MapInput {
    /// Throws when input 0 is known to be something else than a map with keys of one of `keys`.
    static func expect(_ kinds: [ValueKind?], keys: Set<DataType>) throws {
        guard let kind = kinds.first ?? nil else { return }
        guard case .map(let key) = kind else { throw OpError("input 0 is a \(kind); a map is needed") }
        guard keys.contains(key) else { throw OpError("input 0 is a map with \(key) keys; \(keys.map(\.description).sorted().joined(separator: " or ")) keys are needed") }
    }

    /// Input 0 as a map with keys of one of `keys`.
    static func required(_ inputs: [Value?], keys: Set<DataType>) throws -> TensorMap {
        guard let value = inputs.first ?? nil else { throw OpError("missing required input 0") }
        guard let map = value.map else { throw OpError.invalidArgument("input 0 is a \(value.kind); a map is needed") }
        guard keys.contains(map.keys.dataType) else {
            throw OpError.invalidArgument("input 0 is a map with \(map.keys.dataType) keys; \(keys.map(\.description).sorted().joined(separator: " or ")) keys are needed")
        }
        return map
    }
}

extension ClassicMLOperators {
    /// A float as x86's truncating conversion (ONNX Runtime's static_cast) gives it: INT64_MIN for
    /// NaN and values out of range.
    package static func truncated(_ value: Float) -> Int64 {
        guard value.isFinite, value >= -0x1p63, value < 0x1p63 else { return .min }
        return Int64(value.rounded(.towardZero))
    }
}
