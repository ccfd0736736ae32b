import Dispatch
import Synchronization
import Tensors

/// Drives a `BatchQueue` with Dispatch: feeds it events, carries out its actions, and runs
/// batches on a work queue so that no caller thread waits long for the engine.
///
/// One exception: a model whose runs are short (`inlineEngineLimit`) runs a request that finds
/// its queue idle on the submitting thread, as do up to `inlineBatches` batches formed meanwhile,
/// before the rest moves to the work queue. For such a model, handing the run to another thread
/// and waking the caller's again costs more than the run (two context switches, tens of
/// microseconds each), and the caller holds its thread for no longer than a thread hop would.
final class BatchScheduler: Sendable {
    /// Runs a group of requests together and returns one result per request, in order.
    typealias Executor = @Sendable ([InferenceRequest]) -> (results: [Result<[String: Value], ServingError>], engine: Duration)

    private struct Pending {
        var request: InferenceRequest
        var completion: InferenceCompletion
        var arrival: ContinuousClock.Instant
    }

    private struct State {
        var queue: BatchQueue
        var pending: [Int: Pending] = [:]
        var nextID = 0
    }

    private let state: Mutex<State>
    private let executor: Executor
    private let work: DispatchQueue
    private let observer: @Sendable (SchedulerObservation) -> Void
    private let outputOrder: [String]
    let policy: BatchPolicy
    /// Engine time of recent runs, exponentially weighted (ns); -1 until a run was timed.
    private let recentEngineNanoseconds = Atomic<Int>(-1)

    /// Runs at most this long (recent mean) may run on the submitting thread.
    static let inlineEngineLimit = 200_000
    /// Batches a submitting thread runs before handing the rest to the work queue.
    static let inlineBatches = 4

    /// What the scheduler reports for metrics.
    enum SchedulerObservation {
        case queueLength(Int)
        /// A run finished: its rows, how long each of its requests had waited, and its engine time.
        case run(rows: Int, queueWaits: [Duration], engine: Duration)
        case rejected
        case timedOut
    }

    init(policy: BatchPolicy, label: String, outputOrder: [String], executor: @escaping Executor,
         observer: @escaping @Sendable (SchedulerObservation) -> Void) {
        self.policy = policy
        self.state = Mutex(State(queue: BatchQueue(policy: policy)))
        self.executor = executor
        self.outputOrder = outputOrder
        self.observer = observer
        self.work = DispatchQueue(label: "onnx-serve.\(label)", qos: .userInitiated, attributes: .concurrent)
    }

    /// Queues a request; returns an id that `clientGone` accepts.
    @discardableResult
    func submit(_ request: InferenceRequest, rows: Int, signature: BatchSignature?, completion: @escaping InferenceCompletion) -> Int {
        let now = ContinuousClock.now
        let deadline = request.deadline ?? policy.defaultDeadline.map { now + $0 }
        let (id, actions, length) = state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            state.pending[id] = Pending(request: request, completion: completion, arrival: now)
            let entry = BatchQueue.Entry(id: id, rows: rows, signature: signature, arrival: now, deadline: deadline)
            return (id, state.queue.handle(.arrived(entry), now: now), state.queue.waiting.count)
        }
        observer(.queueLength(length))
        let recent = recentEngineNanoseconds.load(ordering: .relaxed)
        let inline = recent >= 0 && recent <= Self.inlineEngineLimit
        let (batch, startHere) = perform(actions, startInline: inline)
        assert(batch == nil, "the queue hands batches only to workers")
        if startHere { workerLoop(inline: true) }
        return id
    }

    /// The client of request `id` went away: if it has not started, it never will.
    func clientGone(_ id: Int) {
        handle(.clientGone(id: id))
    }

    /// Feeds `event` to the queue and carries out its actions; returns the batch the calling
    /// worker must run, if the event came from a worker and the queue gave it one.
    @discardableResult
    private func handle(_ event: BatchQueue.Event) -> [Pending]? {
        let now = ContinuousClock.now
        let (actions, length) = state.withLock { state in
            (state.queue.handle(event, now: now), state.queue.waiting.count)
        }
        observer(.queueLength(length))
        return perform(actions).batch
    }

    private func take(_ id: Int) -> Pending? {
        state.withLock { $0.pending.removeValue(forKey: id) }
    }

    /// Carries out `actions`. Returns the batch handed to the calling worker, if any, and
    /// whether a worker is to start on the calling thread (only with `startInline`).
    private func perform(_ actions: [BatchQueue.Action], startInline: Bool = false) -> (batch: [Pending]?, startHere: Bool) {
        var batch: [Pending]?
        var startHere = false
        for action in actions {
            switch action {
            case .startWorker:
                if startInline && !startHere {
                    startHere = true
                } else {
                    work.async { self.workerLoop(inline: false) }
                }
            case .run(let ids):
                batch = ids.compactMap { id in take(id) }
            case .reject(let id):
                observer(.rejected)
                take(id)?.completion(.failure(ServingError(
                    .resourceExhausted, "the model's queue is full (\(policy.maxQueueLength) requests waiting); retry later",
                    retryAfterSeconds: 1)))
            case .expire(let id):
                observer(.timedOut)
                take(id)?.completion(.failure(ServingError(.deadlineExceeded, "the request's deadline passed before it could run")))
            case .drop(let id):
                take(id)?.completion(.failure(ServingError(.cancelled, "the client went away")))
            case .armTimer(let instant):
                let nanoseconds = max(0, ContinuousClock.now.duration(to: instant).nanoseconds)
                DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(nanoseconds))) {
                    self.handle(.timerFired)
                }
            }
        }
        return (batch, startHere)
    }

    /// One instance at work: takes the batch formed when it wakes (or the one it `holding`, handed
    /// over by an inline worker), runs it, and goes on with the next ready batch on the same thread
    /// (no hand-off between batches) until none is ready. On a submitting thread (`inline`), after
    /// `inlineBatches` batches the rest continues on the work queue.
    private func workerLoop(inline: Bool, holding first: [Pending]? = nil) {
        var next = first ?? handle(.workerReady)
        var runs = 0
        while let batch = next {
            if inline && runs >= Self.inlineBatches {
                work.async { self.workerLoop(inline: false, holding: batch) }
                return
            }
            run(batch)
            runs += 1
            next = handle(.runFinished)
        }
    }

    private func run(_ batch: [Pending]) {
        if batch.isEmpty { return }  // nothing to run; the loop still reports `.runFinished`
        let start = ContinuousClock.now
        let (results, engine) = executor(batch.map(\.request))
        let nanoseconds = Int(engine.nanoseconds)
        let recent = recentEngineNanoseconds.load(ordering: .relaxed)
        recentEngineNanoseconds.store(recent < 0 ? nanoseconds : (recent * 7 + nanoseconds) / 8, ordering: .relaxed)
        let rows = batch.reduce(0) { $0 + ($1.request.inputs.values.first?.shape.first ?? 1) }
        observer(.run(rows: rows, queueWaits: batch.map { start - $0.arrival }, engine: engine))
        for (pending, result) in zip(batch, results) {
            pending.completion(result.map { outputs in
                InferenceResponse(values: outputs, outputOrder: outputOrder.filter { outputs[$0] != nil },
                                  queueDuration: start - pending.arrival, engineDuration: engine, batchRows: rows)
            })
        }
    }
}
