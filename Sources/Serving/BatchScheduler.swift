import Dispatch
import Synchronization
import Tensors

/// Drives a `BatchQueue` with Dispatch: feeds it events, carries out its actions, and runs
/// batches on a work queue so that no caller thread ever waits for the engine.
final class BatchScheduler: Sendable {
    /// Runs a group of requests together and returns one result per request, in order.
    typealias Executor = @Sendable ([InferenceRequest]) -> (results: [Result<[String: Tensor], ServingError>], engine: Duration)

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
        perform(actions)
        return id
    }

    /// The client of request `id` went away: if it has not started, it never will.
    func clientGone(_ id: Int) {
        handle(.clientGone(id: id))
    }

    private func handle(_ event: BatchQueue.Event) {
        let now = ContinuousClock.now
        let (actions, length) = state.withLock { state in
            (state.queue.handle(event, now: now), state.queue.waiting.count)
        }
        observer(.queueLength(length))
        perform(actions)
    }

    private func take(_ id: Int) -> Pending? {
        state.withLock { $0.pending.removeValue(forKey: id) }
    }

    private func perform(_ actions: [BatchQueue.Action]) {
        for action in actions {
            switch action {
            case .run(let ids):
                let batch = ids.compactMap { id in take(id) }
                work.async { self.run(batch) }
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
                let delay = ContinuousClock.now.duration(to: instant)
                let nanoseconds = max(0, delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000)
                DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(nanoseconds))) {
                    self.handle(.timerFired)
                }
            }
        }
    }

    private func run(_ batch: [Pending]) {
        let start = ContinuousClock.now
        let (results, engine) = executor(batch.map(\.request))
        let rows = batch.reduce(0) { $0 + ($1.request.inputs.values.first?.shape.first ?? 1) }
        observer(.run(rows: rows, queueWaits: batch.map { start - $0.arrival }, engine: engine))
        for (pending, result) in zip(batch, results) {
            pending.completion(result.map { outputs in
                InferenceResponse(outputs: outputs, outputOrder: outputOrder.filter { outputs[$0] != nil },
                                  queueDuration: start - pending.arrival, engineDuration: engine, batchRows: rows)
            })
        }
        handle(.runFinished)
    }
}
