import Tensors

/// BitCast (opset 26): the same bits read as another element type of the same width.
struct BitCast: Operator {
    /// Any type but string to the one `to` names (of the same bit width, which the operator checks).
    static let definition = OperatorDefinition("BitCast", versions: [26], contract: OperatorContract(
        inputs: [.init("input", "T1")], outputs: [.init("output", "T2")],
        types: ["T1": ElementTypes.all.subtracting([.string]), "T2": ElementTypes.all.subtracting([.string])])) { try BitCast($0) }

    let target: DataType

    init(_ context: OperatorContext) throws {
        let code = try context.required("to", context.int)
        guard let type = Int32(exactly: code).flatMap(DataType.init(rawValue:)), type != .string else {
            throw OpError("cannot bit-cast to element type \(code): not supported")
        }
        target = type
    }

    /// Throws unless `source` has the target's bit width.
    private func check(_ source: DataType) throws {
        guard source.bitWidth == target.bitWidth else {
            throw OpError("cannot bit-cast \(source) (\(source.bitWidth) bits) to \(target) (\(target.bitWidth) bits)")
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        try check(x.dataType)
        return [TensorType(target, x.dims)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        try check(x.dataType)
        let width = target.bitWidth
        // Whole bytes whose every pattern is a value of the target: the same storage, relabelled.
        if width == 8 * target.byteSize && target != .bool {
            return [Tensor(dataType: target, shape: x.shape, storage: x.storage)]
        }
        // Bool bytes must hold 0 or 1; 4- and 2-bit values sit one per byte in memory, sign-extended
        // when signed: keep the low bits, then sign-extend for a signed target.
        let y = try context.allocate(target, x.shape)
        let mask = UInt8(truncatingIfNeeded: (1 << width) - 1)
        let signed = target == .int4 || target == .int2
        withExtendedLifetime(x) {
            let source = x.rawPointer.assumingMemoryBound(to: UInt8.self)
            let result = y.rawPointer.assumingMemoryBound(to: UInt8.self)
            for i in 0..<x.elementCount {
                if target == .bool {
                    result[i] = source[i] != 0 ? 1 : 0
                } else {
                    var value = source[i] & mask
                    if signed && value & (1 << UInt8(width - 1)) != 0 { value |= ~mask }
                    result[i] = value
                }
            }
        }
        return [y]
    }
}
