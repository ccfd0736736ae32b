/// Joining requests along the batch axis and splitting answers back.
extension Tensor {
    /// Concatenates tensors along axis 0. All must share the element type and every dimension
    /// but the first; returns nil otherwise.
    public static func concatenatingBatch(_ parts: [Tensor], pool: BufferPool? = nil) -> Tensor? {
        guard let first = parts.first, first.shape.rank >= 1 else { return nil }
        let inner = Array(first.shape.dims.dropFirst())
        var rows = 0
        for part in parts {
            guard part.dataType == first.dataType, part.shape.rank == first.shape.rank,
                  Array(part.shape.dims.dropFirst()) == inner else { return nil }
            rows += part.shape[0]
        }
        if parts.count == 1 { return first }
        let shape = Shape([rows] + inner)
        if first.dataType == .string {
            return Tensor(strings: parts.flatMap(\.strings), shape: shape)
        }
        let result = Tensor(uninitialized: first.dataType, shape: shape, pool: pool)
        copyConsecutively(parts, into: result)
        return result
    }

    /// Copies the bytes of `parts` one after another into `target` (not strings), which holds
    /// at least their sum: the rows of tensors joined on axis 0.
    public static func copyConsecutively(_ parts: [Tensor], into target: Tensor) {
        var offset = 0
        withExtendedLifetime(target) {
            for part in parts {
                withExtendedLifetime(part) {
                    (target.rawPointer + offset).copyMemory(from: part.rawPointer, byteCount: part.byteCount)
                }
                offset += part.byteCount
            }
        }
    }

    /// Rows `range` of axis 0, copied into a tensor of their own.
    public func batchRows(_ range: Range<Int>) -> Tensor {
        precondition(shape.rank >= 1 && range.lowerBound >= 0 && range.upperBound <= shape[0], "rows \(range) of \(shape)")
        var dims = shape.dims
        dims[0] = range.count
        let rowElements = shape.dims.dropFirst().reduce(1, *)
        if range.count == shape[0] { return self }
        if dataType == .string {
            return Tensor(strings: Array(strings[(range.lowerBound * rowElements)..<(range.upperBound * rowElements)]), shape: Shape(dims))
        }
        let result = Tensor(uninitialized: dataType, shape: Shape(dims))
        let rowBytes = rowElements * dataType.byteSize
        withExtendedLifetime(self) {
            result.rawPointer.copyMemory(from: rawPointer + range.lowerBound * rowBytes, byteCount: range.count * rowBytes)
        }
        return result
    }
}
