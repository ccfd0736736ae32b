import Synchronization

/// A daemon-wide cap on the bytes held for requests: the HTTP server charges request bodies to
/// it (inflated bytes included) as they arrive, and other layers may charge what they derive
/// from a request (e.g. decoded tensors). Whoever reserves releases the same count, once, when
/// the memory is freed, on every path (`Reservation` does this for its owner). Thread-safe.
///
///     let budget = MemoryBudget(limit: 4 << 30)
///     guard budget.reserve(bytes) else { return overBudgetAnswer }   // 503 + Retry-After
///     defer { budget.release(bytes) }
public final class MemoryBudget: Sendable {
    /// The most bytes that may be reserved at once.
    public let limit: Int
    private let reserved = Atomic<Int>(0)

    /// Creates a budget of `limit` bytes (negative counts as 0; `Int.max`: unlimited).
    public init(limit: Int) {
        self.limit = max(0, limit)
    }

    /// The bytes reserved now.
    public var bytesInUse: Int {
        reserved.load(ordering: .relaxed)
    }

    /// Reserves `bytes` if they fit within the limit beside what is reserved already; false
    /// (and nothing reserved) otherwise, or when `bytes` is negative.
    public func reserve(_ bytes: Int) -> Bool {
        guard bytes >= 0 else { return false }
        var current = reserved.load(ordering: .relaxed)
        while true {
            let (total, overflow) = current.addingReportingOverflow(bytes)
            guard !overflow, total <= limit else { return false }
            let (exchanged, original) = reserved.compareExchange(
                expected: current, desired: total, successOrdering: .relaxed, failureOrdering: .relaxed)
            if exchanged { return true }
            current = original
        }
    }

    /// Gives back `bytes` reserved earlier. Releasing more than is reserved is a bug in the
    /// caller; the count stops at zero rather than going negative.
    public func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        var current = reserved.load(ordering: .relaxed)
        while true {
            let (exchanged, original) = reserved.compareExchange(
                expected: current, desired: current > bytes ? current - bytes : 0,
                successOrdering: .relaxed, failureOrdering: .relaxed)
            if exchanged { return }
            current = original
        }
    }
}

extension MemoryBudget {
    /// The bytes one owner holds against a budget, grown as its data grows and released all at
    /// once, by `release()` or at the latest when the reservation is freed, so no path leaks.
    public final class Reservation: Sendable {
        /// The budget charged.
        public let budget: MemoryBudget
        private let held = Mutex(0)

        /// Creates an empty reservation against `budget`.
        public init(budget: MemoryBudget) {
            self.budget = budget
        }

        deinit {
            release()
        }

        /// The bytes held now.
        public var bytes: Int {
            held.withLock { $0 }
        }

        /// Makes the reservation hold at least `total` bytes, reserving the difference; false
        /// (and the reservation unchanged) when the budget cannot grant it.
        public func grow(to total: Int) -> Bool {
            held.withLock { held in
                guard total > held else { return true }
                guard budget.reserve(total - held) else { return false }
                held = total
                return true
            }
        }

        /// Gives every byte held back to the budget; the reservation may grow again afterwards.
        public func release() {
            let bytes = held.withLock { held in
                defer { held = 0 }
                return held
            }
            budget.release(bytes)
        }
    }
}
