import Tensors

/// Element-type sets from the ONNX type constraints, for operators' checks.
enum ElementTypes {
    static let floatingPoint: Set<DataType> = [.float, .double, .float16]
    static let signedIntegers: Set<DataType> = [.int8, .int16, .int32, .int64]
    static let unsignedIntegers: Set<DataType> = [.uint8, .uint16, .uint32, .uint64]
    static let integers = signedIntegers.union(unsignedIntegers)
    static let numeric = floatingPoint.union(integers)
    /// Floating point and signed integers: the types with a negation.
    static let signedNumeric = floatingPoint.union(signedIntegers)
    /// Every element type we have: ONNX's "all tensor types" of opset 25 without the complex ones.
    static let all = Set(DataType.allCases)
    /// Opset 13's "all tensor types" without the complex ones: no float8, float4, 4-bit or 2-bit
    /// integer types (the operators that copy elements where ONNX did not extend the list).
    static let allOfOpset13 = all.subtracting([
        .float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float8e8m0, .float4e2m1, .int4, .uint4, .int2, .uint2,
    ])

    /// "float, double, float16" in a stable order, for messages.
    static func names(_ types: Set<DataType>) -> String {
        types.sorted { $0.rawValue < $1.rawValue }.map(\.name).joined(separator: ", ")
    }
}

/// Throws unless `type` is in `allowed`; `role` names the input ("input", "exponent", ...).
func checkElementType(_ type: DataType, _ allowed: Set<DataType>, role: String = "input") throws {
    guard allowed.contains(type) else {
        throw OpError("\(role) element type \(type) is not supported (expected one of: \(ElementTypes.names(allowed)))")
    }
}

/// Throws unless all known types are the same, naming the first two that differ.
func checkSameElementType(_ types: [DataType?], roles: [String]? = nil) throws {
    let known = types.enumerated().compactMap { index, type in type.map { (index, $0) } }
    guard let (firstIndex, first) = known.first else { return }
    for (index, type) in known where type != first {
        let name = { (i: Int) in roles?[i] ?? "input \(i)" }
        throw OpError("\(name(firstIndex)) and \(name(index)) must have one element type, got \(first) and \(type)")
    }
}

extension Array where Element == Tensor? {
    /// Input `index`, which the operator requires.
    func required(_ index: Int) throws -> Tensor {
        guard index < count, let tensor = self[index] else { throw OpError("missing required input \(index)") }
        return tensor
    }

    /// Input `index`, or nil when omitted.
    func optional(_ index: Int) -> Tensor? { index < count ? self[index] : nil }
}

extension Array where Element == TensorType? {
    /// Type of input `index`, or nil when unknown or omitted.
    func type(_ index: Int) -> TensorType? { index < count ? self[index] : nil }
}

/// What a kernel visit over `x`'s element type returned, or an error when no kernel takes the type
/// (the visit returned nil and wrote nothing). Contracts keep such types away from the operators;
/// this guards the operators that run one another internally (a reduction's final square root).
@discardableResult
func requireKernel<Output>(_ visited: Output?, _ x: Tensor) throws -> Output {
    guard let visited else { throw OpError("no kernel for element type \(x.dataType)") }
    return visited
}
