/// A value of a graph: a tensor (nearly always), a sequence of tensors, a map, or an optional of a
/// tensor or a sequence (ONNX's `sequence_type`, `map_type` and `optional_type`).
///
/// The tensor case holds its `Tensor` inline: a graph of tensors only pays a case check per
/// operand, no boxing.
public enum Value: Sendable {
    case tensor(Tensor)
    case sequence(TensorSequence)
    /// A map from int64 or string keys to scalars (a graph input of CastMap or DictVectorizer).
    case map(TensorMap)
    /// An optional value: nil for "none", else a tensor or a sequence. `kind` is the kind of the
    /// element, so that a none still says what it would hold.
    indirect case optional(Value?, kind: ValueKind)

    /// The tensor, when this is one.
    public var tensor: Tensor? {
        if case .tensor(let tensor) = self { return tensor }
        return nil
    }

    /// The sequence, when this is one.
    public var sequence: TensorSequence? {
        if case .sequence(let sequence) = self { return sequence }
        return nil
    }

    /// The map, when this is one.
    public var map: TensorMap? {
        if case .map(let map) = self { return map }
        return nil
    }

    /// What kind of value this is.
    public var kind: ValueKind {
        switch self {
        case .tensor: .tensor
        case .sequence: .sequence
        case .map(let map): .map(key: map.keys.dataType)
        case .optional(_, let kind): .optional(kind)
        }
    }
}

/// The kind of a value, without element types or shapes: what a `TypeProto` says beyond its
/// tensor type.
public indirect enum ValueKind: Hashable, Sendable, CustomStringConvertible {
    case tensor
    /// A sequence of tensors.
    case sequence
    /// A map with keys of element type `key` (int64 or string); its values are scalars of the
    /// value's tensor type.
    case map(key: DataType)
    /// An optional tensor or sequence.
    case optional(ValueKind)

    public var description: String {
        switch self {
        case .tensor: "tensor"
        case .sequence: "sequence"
        case .map(let key): "map(\(key))"
        case .optional(let element): "optional(\(element))"
        }
    }
}

/// An ordered list of tensors of one element type (shapes may differ), ONNX's `seq(tensor(T))`.
public struct TensorSequence: Sendable {
    /// The element type every tensor has (known even when the sequence is empty).
    public let elementType: DataType
    /// The tensors, in order.
    public let tensors: [Tensor]

    /// A sequence of `tensors`, which must all have `elementType` (callers check that first;
    /// see `checked`).
    public init(elementType: DataType, tensors: [Tensor]) {
        self.elementType = elementType
        self.tensors = tensors
    }

    /// A sequence of `tensors`, or nil when one of them is not of `elementType`.
    public static func checked(elementType: DataType, _ tensors: [Tensor]) -> TensorSequence? {
        tensors.allSatisfy { $0.dataType == elementType } ? TensorSequence(elementType: elementType, tensors: tensors) : nil
    }
}

/// A map with distinct keys, ONNX's `map(K, tensor(V))` with one scalar per key: the keys (a rank-1
/// int64 or string tensor, in the order given) and the values (a rank-1 tensor, value i under key
/// i). ZipMap's maps are carried the same way, keys apart (`ValueInfo.mapKeys`, one row of values
/// per map).
public struct TensorMap: Sendable {
    /// The element types a key may have.
    public static let keyTypes: Set<DataType> = [.int64, .string]

    /// The keys, rank 1, int64 or string, all distinct.
    public let keys: Tensor
    /// The values, rank 1, as many as the keys.
    public let values: Tensor

    /// Number of entries.
    public var count: Int { keys.elementCount }

    private init(keys: Tensor, values: Tensor) {
        self.keys = keys
        self.values = values
    }

    /// A map of `keys` to `values`, or the reason it is not one: keys of a type other than int64
    /// or string, a rank other than 1, counts that differ, or a key given twice.
    public static func checked(keys: Tensor, values: Tensor) -> Result<TensorMap, MapError> {
        guard keyTypes.contains(keys.dataType) else { return .failure(MapError("map keys must be int64 or string, not \(keys.dataType)")) }
        guard keys.shape.rank == 1, values.shape.rank == 1, keys.shape[0] == values.shape[0] else {
            return .failure(MapError("a map needs one value per key; got keys \(keys.shape) and values \(values.shape)"))
        }
        if keys.dataType == .string {
            var seen = Set<String>()
            for key in keys.strings where !seen.insert(key).inserted { return .failure(MapError("key '\(key)' is given twice")) }
        } else {
            var seen = Set<Int64>()
            for key in keys.scalars(as: Int64.self) where !seen.insert(key).inserted { return .failure(MapError("key \(key) is given twice")) }
        }
        return .success(TensorMap(keys: keys, values: values))
    }
}

/// Why keys and values do not make a map.
public struct MapError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
