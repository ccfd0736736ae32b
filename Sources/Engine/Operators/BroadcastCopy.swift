import Tensors

/// Copies a tensor into a larger shape by numpy broadcasting (for the rare operands that do not
/// already have the shape a fast path wants, such as a Gemm's C or a fused residual).
enum BroadcastCopy {
    /// Writes `source` broadcast to `shape` into `target` (room for `shape.elementCount` elements
    /// of the source's type). Throws when the source does not broadcast to `shape`.
    static func copy(_ source: Tensor, to shape: Shape, into target: UnsafeMutableRawPointer) throws {
        guard Shape.broadcast(source.shape, shape) == shape else {
            throw OpError.invalidArgument("shape \(source.shape) does not broadcast to \(shape)")
        }
        let size = source.dataType.byteSize, count = shape.elementCount
        let from = UnsafeRawPointer(source.rawPointer)
        if source.shape.elementCount == count {
            target.copyMemory(from: from, byteCount: count * size)
            return
        }
        // Source strides in elements, 0 along broadcast axes.
        let rank = shape.rank, missing = rank - source.shape.rank
        let sourceStrides = source.shape.strides
        let strides = (0..<rank).map { axis in
            axis < missing || source.shape[axis - missing] == 1 ? 0 : sourceStrides[axis - missing]
        }
        var index = [Int](repeating: 0, count: rank), offset = 0
        for element in 0..<count {
            (target + element * size).copyMemory(from: from + offset * size, byteCount: size)
            var axis = rank - 1
            while axis >= 0 {
                index[axis] += 1
                offset += strides[axis]
                if index[axis] < shape[axis] { break }
                offset -= strides[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }
}
