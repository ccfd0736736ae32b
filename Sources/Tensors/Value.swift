/// A value of a graph: a tensor (nearly always), a sequence of tensors, or an optional of either
/// (ONNX's `sequence_type` and `optional_type`).
///
/// The tensor case holds its `Tensor` inline: a graph of tensors only pays a case check per
/// operand, no boxing.
public enum Value: Sendable {
    case tensor(Tensor)
    case sequence(TensorSequence)
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

    /// What kind of value this is.
    public var kind: ValueKind {
        switch self {
        case .tensor: .tensor
        case .sequence: .sequence
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
    /// An optional tensor or sequence.
    case optional(ValueKind)

    public var description: String {
        switch self {
        case .tensor: "tensor"
        case .sequence: "sequence"
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
