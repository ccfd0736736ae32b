internal import Synchronization
import Tensors

/// What an operator last derived from its input shapes (a convolution's layout and output shape,
/// a pooling window), kept so that a run of the shapes it saw before derives nothing again: the
/// window and layout arrays are not rebuilt (and allocated) on every warm run of one shape class.
/// One entry, shared by the threads running the plan: a run of other shapes replaces it.
final class ShapeMemo<Value: Sendable>: Sendable {
    private let entry = Mutex<(first: Shape, second: Shape?, value: Value)?>(nil)

    init() {}

    /// The value for these shapes: the one kept when they are the shapes it was made for,
    /// otherwise `make()`'s, then kept. A `make` that throws keeps nothing.
    func value(_ first: Shape, _ second: Shape? = nil, make: () throws -> Value) throws -> Value {
        let kept: Value? = entry.withLock { entry in
            guard let entry, entry.first == first, entry.second == second else { return nil }
            return entry.value
        }
        if let kept { return kept }
        let value = try make()
        entry.withLock { $0 = (first, second, value) }
        return value
    }
}
