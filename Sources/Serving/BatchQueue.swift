/// Batching settings of one model version, resolved (every field decided).
public struct BatchPolicy: Sendable, Equatable {
    /// Group compatible requests into one engine run; when false, one request per run.
    public var enabled: Bool
    /// Most rows in one run.
    public var maxBatchSize: Int
    /// Longest the oldest waiting request is held back to let a batch grow (zero: never).
    public var maxQueueDelay: Duration
    /// Batch sizes (in rows) to cut at when possible, ascending.
    public var preferredBatchSizes: [Int]
    /// Most requests waiting; more are rejected at once.
    public var maxQueueLength: Int
    /// Deadline for requests that bring none.
    public var defaultDeadline: Duration?
    /// Runs (batches) that may execute at once.
    public var instances: Int

    public init(enabled: Bool = true, maxBatchSize: Int = 32, maxQueueDelay: Duration = .zero,
                preferredBatchSizes: [Int] = [], maxQueueLength: Int = 1024, defaultDeadline: Duration? = nil,
                instances: Int = 1) {
        self.enabled = enabled
        self.maxBatchSize = max(1, maxBatchSize)
        self.maxQueueDelay = maxQueueDelay
        self.preferredBatchSizes = preferredBatchSizes.filter { $0 >= 1 && $0 <= max(1, maxBatchSize) }.sorted()
        self.maxQueueLength = max(1, maxQueueLength)
        self.defaultDeadline = defaultDeadline
        self.instances = max(1, instances)
    }
}

/// What decides whether two requests may share a run: same input names, element types and
/// shapes apart from the batch axis, and the same outputs asked for.
package struct BatchSignature: Hashable, Sendable {
    package var parts: [String]
    package init(parts: [String]) { self.parts = parts }
}

/// The requests waiting for one model version, as a pure state machine: events in, actions out.
/// No threads, no clocks of its own (time is an argument), so every decision is unit-testable.
package struct BatchQueue: Sendable {
    /// A waiting request, as far as scheduling cares.
    package struct Entry: Sendable, Equatable {
        package var id: Int
        /// Rows the request carries (its batch dimension).
        package var rows: Int
        /// Requests with equal signatures may share a run; nil never shares.
        package var signature: BatchSignature?
        package var arrival: ContinuousClock.Instant
        package var deadline: ContinuousClock.Instant?

        package init(id: Int, rows: Int, signature: BatchSignature?, arrival: ContinuousClock.Instant,
                     deadline: ContinuousClock.Instant? = nil) {
            self.id = id
            self.rows = rows
            self.signature = signature
            self.arrival = arrival
            self.deadline = deadline
        }
    }

    package enum Event: Sendable {
        /// A request arrived.
        case arrived(Entry)
        /// The timer asked for by `.armTimer` went off (or an earlier one did).
        case timerFired
        /// A run finished, freeing its instance.
        case runFinished
        /// The client of a request went away.
        case clientGone(id: Int)
    }

    package enum Action: Sendable, Equatable {
        /// Run these requests together, in this order.
        case run([Int])
        /// Answer at once: the queue is full.
        case reject(Int)
        /// Answer at once: the deadline passed before the request could run.
        case expire(Int)
        /// Forget the request: its client is gone.
        case drop(Int)
        /// Send `.timerFired` at this time.
        case armTimer(ContinuousClock.Instant)
    }

    package let policy: BatchPolicy
    package private(set) var waiting: [Entry] = []
    package private(set) var running = 0
    private var armedTimer: ContinuousClock.Instant?

    package init(policy: BatchPolicy) { self.policy = policy }

    /// Applies an event at time `now` and returns what the driver must do, in order.
    package mutating func handle(_ event: Event, now: ContinuousClock.Instant) -> [Action] {
        var actions: [Action] = []
        switch event {
        case .arrived(let entry):
            if waiting.count >= policy.maxQueueLength {
                return [.reject(entry.id)]
            }
            waiting.append(entry)
        case .timerFired:
            armedTimer = nil
        case .runFinished:
            running = max(0, running - 1)
        case .clientGone(let id):
            guard let index = waiting.firstIndex(where: { $0.id == id }) else { return [] }
            waiting.remove(at: index)
            actions.append(.drop(id))
        }
        schedule(now: now, into: &actions)
        return actions
    }

    private mutating func schedule(now: ContinuousClock.Instant, into actions: inout [Action]) {
        let expired = waiting.filter { $0.deadline.map { $0 <= now } ?? false }
        if !expired.isEmpty {
            waiting.removeAll { $0.deadline.map { $0 <= now } ?? false }
            actions.append(contentsOf: expired.map { .expire($0.id) })
        }
        var waitUntil: ContinuousClock.Instant?
        while running < policy.instances, !waiting.isEmpty {
            let (batch, ready) = nextBatch(now: now)
            guard ready else {
                waitUntil = waiting[0].arrival + policy.maxQueueDelay
                break
            }
            let chosen = Set(batch)
            waiting.removeAll { chosen.contains($0.id) }
            running += 1
            actions.append(.run(batch))
        }
        let earliestDeadline = waiting.compactMap(\.deadline).min()
        let next = [waitUntil, earliestDeadline].compactMap { $0 }.min()
        if let next, armedTimer.map({ next < $0 }) ?? true {
            armedTimer = next
            actions.append(.armTimer(next))
        }
    }

    /// The batch to run next, and whether to run it now or wait for it to grow.
    private func nextBatch(now: ContinuousClock.Instant) -> (ids: [Int], ready: Bool) {
        let first = waiting[0]
        guard policy.enabled, let signature = first.signature else { return ([first.id], true) }
        var chosen: [Entry] = []
        var rows = 0
        var full = false
        for entry in waiting where entry.signature == signature {
            if !chosen.isEmpty && rows + entry.rows > policy.maxBatchSize {
                full = true
                break
            }
            chosen.append(entry)
            rows += entry.rows
            if rows >= policy.maxBatchSize {
                full = true
                break
            }
        }
        if !policy.preferredBatchSizes.isEmpty {
            // The longest prefix whose row count is a preferred size, if any.
            var prefixRows = 0
            var best: Int?
            for (index, entry) in chosen.enumerated() {
                prefixRows += entry.rows
                if policy.preferredBatchSizes.contains(prefixRows) { best = index + 1 }
            }
            if let best { return (chosen.prefix(best).map(\.id), true) }
        }
        let delayOver = now - first.arrival >= policy.maxQueueDelay
        return (chosen.map(\.id), full || delayOver)
    }
}
