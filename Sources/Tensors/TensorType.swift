/// One dimension of a declared tensor type.
public enum Dim: Hashable, Sendable, CustomStringConvertible {
    /// A known size.
    case fixed(Int)
    /// A named size decided at run time (ONNX `dim_param`), e.g. "batch".
    case symbolic(String)
    /// A size nobody named or fixed.
    case unknown

    /// The size when it is known.
    public var value: Int? {
        if case .fixed(let value) = self { return value }
        return nil
    }

    public var description: String {
        switch self {
        case .fixed(let value): String(value)
        case .symbolic(let name): name
        case .unknown: "?"
        }
    }
}

/// Element type and (possibly partly known) shape of a value in a graph.
public struct TensorType: Hashable, Sendable, CustomStringConvertible {
    /// Element type.
    public var dataType: DataType
    /// Dimensions; nil when even the rank is unknown.
    public var dims: [Dim]?

    /// A type with the given element type and dimensions.
    public init(_ dataType: DataType, _ dims: [Dim]?) {
        self.dataType = dataType
        self.dims = dims
    }

    /// A type with fully known dimensions.
    public init(_ dataType: DataType, shape: Shape) {
        self.init(dataType, shape.dims.map { .fixed($0) })
    }

    /// The concrete shape, when every dimension is known.
    public var shape: Shape? {
        guard let dims else { return nil }
        var values: [Int] = []
        for dim in dims {
            guard let value = dim.value else { return nil }
            values.append(value)
        }
        return Shape(values)
    }

    /// Rank, when known.
    public var rank: Int? { dims?.count }

    public var description: String {
        guard let dims else { return "\(dataType)[?]" }
        return "\(dataType)[" + dims.map(\.description).joined(separator: ", ") + "]"
    }
}

/// A named, typed graph input or output.
public struct ValueInfo: Sendable {
    /// Value name.
    public var name: String
    /// Declared type; nil when the model does not say. For a sequence or an optional, the type of
    /// the tensors it holds; for a map, the element type of its values.
    public var type: TensorType?
    /// Tensor, sequence or optional; nil when unknown (an outer value a subgraph reads).
    public var kind: ValueKind?
    /// For an output that is a sequence of maps (ONNX-ML's ZipMap): the keys every map has. The
    /// value is then carried as `type`, a tensor with one row of map values per map.
    public var mapKeys: Tensor?

    public init(name: String, type: TensorType?, kind: ValueKind? = .tensor, mapKeys: Tensor? = nil) {
        self.name = name
        self.type = type
        self.kind = kind
        self.mapKeys = mapKeys
    }
}

extension ValueInfo {
    /// The key type of a map input or output; nil for other kinds.
    public var mapKey: DataType? {
        if case .map(let key)? = kind { return key }
        return nil
    }

    /// The type as ONNX writes it: `float[1, 3]`, `seq(float[?])`, `optional(seq(int64[2]))`;
    /// nil when neither the kind nor the tensor type is known.
    public var typeDescription: String? {
        func described(_ kind: ValueKind) -> String {
            switch kind {
            case .tensor: type?.description ?? "?"
            case .sequence: "seq(\(type?.description ?? "?"))"
            case .map(let key): "map(\(key), \(type.map { "\($0.dataType)" } ?? "?"))"
            case .optional(let element): "optional(\(described(element)))"
            }
        }
        guard let kind, kind != .tensor else { return type?.description }
        return described(kind)
    }
}
