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
        /// A worker started by `.startWorker` is ready to run: it takes the batch formed now.
        case workerReady
        /// The calling worker finished its run: it takes the next batch, if one is ready, or stops.
        case runFinished
        /// The client of a request went away.
        case clientGone(id: Int)
    }

    package enum Action: Sendable, Equatable {
        /// Start a worker (an instance is reserved for it); it reports `.workerReady`.
        case startWorker
        /// The worker that reported `.workerReady` or `.runFinished` runs these requests
        /// together, in this order, and reports `.runFinished`.
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
    /// Instances in use: workers starting or running.
    package private(set) var running = 0
    /// Workers started but not yet ready. Their batch is formed only when they are ready, so
    /// requests arriving while a worker wakes up join it: batches grow at no cost in latency.
    package private(set) var starting = 0
    private var armedTimer: ContinuousClock.Instant?

    package init(policy: BatchPolicy) { self.policy = policy }

    /// Applies an event at time `now` and returns what the driver must do, in order. A `.run`
    /// is only ever returned for `.workerReady` and `.runFinished`, to the worker that sent them.
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
        case .workerReady:
            starting = max(0, starting - 1)
            expire(now: now, into: &actions)
            takeBatch(now: now, into: &actions)
        case .runFinished:
            expire(now: now, into: &actions)
            takeBatch(now: now, into: &actions)
        case .clientGone(let id):
            guard let index = waiting.firstIndex(where: { $0.id == id }) else { return [] }
            waiting.remove(at: index)
            actions.append(.drop(id))
        }
        schedule(now: now, into: &actions)
        return actions
    }

    /// The calling worker takes the batch that is ready now, or gives its instance back.
    private mutating func takeBatch(now: ContinuousClock.Instant, into actions: inout [Action]) {
        if !waiting.isEmpty {
            let (batch, ready) = nextBatch(now: now)
            if ready {
                let chosen = Set(batch)
                waiting.removeAll { chosen.contains($0.id) }
                actions.append(.run(batch))
                return
            }
        }
        running = max(0, running - 1)
    }

    private mutating func expire(now: ContinuousClock.Instant, into actions: inout [Action]) {
        let expired = waiting.filter { $0.deadline.map { $0 <= now } ?? false }
        if !expired.isEmpty {
            waiting.removeAll { $0.deadline.map { $0 <= now } ?? false }
            actions.append(contentsOf: expired.map { .expire($0.id) })
        }
    }

    private mutating func schedule(now: ContinuousClock.Instant, into actions: inout [Action]) {
        expire(now: now, into: &actions)
        var waitUntil: ContinuousClock.Instant?
        // One worker starts at a time: it takes whatever is ready when it wakes, and once it
        // has, the next is started if more is ready.
        if starting == 0, running < policy.instances, !waiting.isEmpty {
            if nextBatch(now: now).ready {
                starting += 1
                running += 1
                actions.append(.startWorker)
            } else {
                waitUntil = waiting[0].arrival + policy.maxQueueDelay
            }
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
