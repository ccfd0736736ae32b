package import Engine
import Foundation
import ONNX
public import Tensors

/// One loaded model version: its session, kept warm, and the queue its requests go through.
public final class ServedModel: Sendable {
    /// Model name.
    public let name: String
    /// Version number.
    public let version: Int
    /// The `.onnx` file it came from.
    public let path: String
    /// The engine session (the wire formats see only `inputs`, `outputs` and `makeInput`).
    package let session: InferenceSession
    /// True when requests can be joined along a leading batch dimension.
    public let batchable: Bool
    /// Batching settings in effect.
    public var policy: BatchPolicy { scheduler.policy }
    /// How long loading took (decode, optimise, compile; warm-up excluded).
    public let loadDuration: Duration
    /// Request, queue and engine counters (Triton's statistics extension).
    public let statistics = ModelStatistics()

    private let scheduler: BatchScheduler
    private let metrics: ServingMetrics

    /// Builds a session from `contents`, the bytes read from `path` (external data is looked up
    /// beside it), and prepares its queue.
    init(name: String, version: Int, path: String, contents: ModelFileContents, options: InferenceSession.Options, policy: BatchPolicy,
         metrics: ServingMetrics) throws(ServingError) {
        let start = ContinuousClock.now
        let session: InferenceSession
        do {
            let directory = (path as NSString).deletingLastPathComponent
            let model = try ModelLoader.load(contents, directory: directory.isEmpty ? "." : directory, source: path)
            session = try InferenceSession(model: model, options: options)
        } catch {
            throw .invalidArgument("\(error)")
        }
        // Requests carry tensors and maps (a JSON object); sequence and optional outputs are spelled
        // out by the wire formats (a list of tensors, one output per element), and anything inside
        // the graph is fine.
        if let value = session.inputs.first(where: { input in
            guard let kind = input.kind, kind != .tensor else { return false }
            if case .map = kind { return false }
            return true
        }) {
            throw .invalidArgument("input '\(value.name)' is a \(value.typeDescription ?? "sequence or optional"); the HTTP APIs take"
                                   + " tensor and map inputs (`onnx-serve run` takes sequences and optionals)")
        }
        try Self.checkElementNames(session.outputs)
        self.name = name
        self.version = version
        self.metrics = metrics
        self.path = path
        self.session = session
        self.loadDuration = ContinuousClock.now - start
        let batchable = Self.isBatchable(session)
        self.batchable = batchable
        var effective = policy
        if !batchable { effective.enabled = false }
        let outputOrder = session.outputs.map(\.name)
        let statistics = self.statistics
        scheduler = BatchScheduler(
            policy: effective, label: "\(name).\(version)", outputOrder: outputOrder,
            executor: { requests in Self.execute(requests, session: session, batchable: batchable) },
            observer: { observation in
                switch observation {
                case .queueLength(let length): metrics.setQueueLength(model: name, version: version, length: length)
                case .run(let rows, let waits, let engine):
                    for wait in waits { metrics.recordQueueWait(model: name, version: version, duration: wait) }
                    metrics.recordEngineRun(model: name, version: version, rows: rows, duration: engine)
                    statistics.recordRun(rows: rows, requests: waits.count, queueWaits: waits, engine: engine)
                case .rejected: metrics.recordRejected(model: name, version: version)
                case .timedOut: metrics.recordTimedOut(model: name, version: version)
                }
            })
    }

    /// Refuses a model where the Open Inference name of a sequence output's element
    /// (`<name>/<index>`) could be the name of another output.
    private static func checkElementNames(_ outputs: [ValueInfo]) throws(ServingError) {
        for sequence in outputs where sequence.kind != .tensor && sequence.kind != nil {
            if let clash = outputs.first(where: { $0.name.hasPrefix(sequence.name + "/") }) {
                throw .invalidArgument("output '\(clash.name)' could be confused with an element of the sequence output '\(sequence.name)'"
                                       + " (sent as '\(sequence.name)/<index>'); rename one of them")
            }
        }
    }

    /// Inputs the model takes.
    public var inputs: [ValueInfo] { session.inputs }
    /// Outputs it produces.
    public var outputs: [ValueInfo] { session.outputs }
    /// Keys of the outputs that are sequences of maps (ZipMap), by output name.
    public var mapOutputKeys: [String: Tensor] {
        var keys: [String: Tensor] = [:]
        for output in session.outputs { if let mapKeys = output.mapKeys { keys[output.name] = mapKeys } }
        return keys
    }
    /// Threads one run of this model may use.
    public var intraOpThreads: Int { session.options.intraOpThreads }

    /// A new, uninitialised tensor for a request's input, from the buffers the model's runs
    /// recycle (no fresh pages per request). The caller fills every element.
    public func makeInput(_ dataType: DataType, _ shape: Shape) -> Tensor {
        Tensor(uninitialized: dataType, shape: shape, pool: session.bufferPool)
    }

    /// True when every input and output has a symbolic or unknown leading dimension (and at least
    /// one input exists): the model's rows are independent and requests can share a run.
    static func isBatchable(_ session: InferenceSession) -> Bool {
        func leadingIsDynamic(_ info: ValueInfo) -> Bool {
            guard let dims = info.type?.dims, let first = dims.first else { return false }
            if case .fixed = first { return false }
            return true
        }
        // A sequence, a map or an optional has no rows to split.
        return !session.inputs.isEmpty && session.inputs.allSatisfy(leadingIsDynamic) && session.outputs.allSatisfy(leadingIsDynamic)
            && session.inputs.allSatisfy { $0.kind == .tensor || $0.kind == nil }
            && session.outputs.allSatisfy { $0.kind == .tensor || $0.kind == nil }
    }

    // MARK: Requests

    /// Checks a request and queues it; `completion` is called once, on another thread.
    /// Returns a handle whose `cancel` drops the request if it has not started.
    @discardableResult
    public func submit(_ request: InferenceRequest, completion: @escaping InferenceCompletion) -> RequestHandle {
        do throws(EngineError) {
            try session.validate(request.inputs)
            // Refused before it queues when its run alone would pass the run budget.
            try session.checkWorkingMemory(request.inputs, outputs: request.outputs)
        } catch {
            completion(.failure(Self.servingError(error)))
            return RequestHandle(cancel: {})
        }
        if let wanted = request.outputs {
            let known = Set(session.outputs.map(\.name))
            if let unknown = wanted.first(where: { !known.contains($0) }) {
                completion(.failure(.invalidArgument("unknown output '\(unknown)'; the model's outputs are: \(session.outputs.map(\.name).joined(separator: ", "))")))
                return RequestHandle(cancel: {})
            }
        }
        let (rows, signature) = batchKey(request)
        if batchable, policy.enabled, rows > policy.maxBatchSize {
            // As Triton: a request larger than a batch is refused, not run as one oversized batch.
            completion(.failure(.invalidArgument("inference request batch-size must be <= \(policy.maxBatchSize) for '\(name)' (this request has \(rows) rows)")))
            return RequestHandle(cancel: {})
        }
        let (name, version, metrics) = (name, version, metrics)
        metrics.addInFlight(model: name, version: version, 1)
        let id = scheduler.submit(request, rows: rows, signature: signature) { result in
            metrics.addInFlight(model: name, version: version, -1)
            completion(result)
        }
        return RequestHandle(cancel: { [scheduler] in scheduler.clientGone(id) })
    }

    /// Rows a request carries and the signature deciding which requests it may share a run with.
    private func batchKey(_ request: InferenceRequest) -> (rows: Int, signature: BatchSignature?) {
        guard batchable else { return (1, nil) }
        let names = request.inputs.keys.sorted()
        let rows = request.inputs[names[0]]?.shape.first ?? 1
        // Built from plain concatenation (no string interpolation of enums and arrays, which
        // goes through reflection): this runs for every request of a batching model.
        var parts: [String] = []
        parts.reserveCapacity(names.count + 1)
        for name in names {
            let tensor = request.inputs[name]!
            guard tensor.shape.first == rows else { return (rows, nil) }
            var part = name
            part += ":"
            part += String(tensor.dataType.rawValue)
            for size in tensor.shape.dims.dropFirst() {
                part += ","
                part += String(size)
            }
            parts.append(part)
        }
        parts.append("outputs:" + (request.outputs?.sorted().joined(separator: ",") ?? "*"))
        return (rows, BatchSignature(parts: parts))
    }

    /// Runs requests as one batch (joined along axis 0) and splits the answers; when the batch
    /// fails and holds several requests, runs each alone so a bad one fails only itself.
    static func execute(_ requests: [InferenceRequest], session: InferenceSession, batchable: Bool)
        -> (results: [Result<[String: Value], ServingError>], engine: Duration)
    {
        let start = ContinuousClock.now
        if requests.count == 1 {
            let result = runOne(requests[0], session: session)
            return ([result], ContinuousClock.now - start)
        }
        var joined: [String: Tensor] = [:]
        var counts: [Int] = []
        for request in requests { counts.append(request.inputs.values.first?.shape.first ?? 1) }
        for name in requests[0].inputs.keys {
            guard let tensor = Tensor.concatenatingBatch(requests.map { $0.inputs[name]! }, pool: session.bufferPool) else {
                return (requests.map { runOne($0, session: session) }, ContinuousClock.now - start)
            }
            joined[name] = tensor
        }
        do {
            let outputs = try session.run(joined, outputs: requests[0].outputs)
            var results: [Result<[String: Value], ServingError>] = []
            var offset = 0
            for count in counts {
                var mine: [String: Value] = [:]
                for (name, tensor) in outputs { mine[name] = .tensor(tensor.batchRows(offset..<(offset + count))) }
                results.append(.success(mine))
                offset += count
            }
            return (results, ContinuousClock.now - start)
        } catch {
            return (requests.map { runOne($0, session: session) }, ContinuousClock.now - start)
        }
    }

    private static func runOne(_ request: InferenceRequest, session: InferenceSession) -> Result<[String: Value], ServingError> {
        do {
            var feeds = request.inputs.mapValues(Value.tensor)
            for (name, map) in request.maps { feeds[name] = .map(map) }
            return .success(try session.runValues(feeds, outputs: request.outputs))
        } catch {
            return .failure(servingError(error))
        }
    }

    /// How a client sees an engine error: its mistake (400), too large to run (413), or ours (500).
    private static func servingError(_ error: EngineError) -> ServingError {
        switch error {
        case .invalidInput(let message): .invalidArgument(message)
        case .resourceExhausted: ServingError(.tooLarge, "\(error)")
        default: .internal("inference failed: \(error)")
        }
    }

    // MARK: Warm-up

    /// Runs the model on synthetic inputs (zeros; symbolic dimensions 1; empty maps) so the first
    /// real request does not pay for first-touch memory and lazy initialisation. An empty map is
    /// the only map there is to make up, and a model may refuse it (CastMap DENSE then gives no
    /// columns to the classifier after it), so a model with map inputs loads whatever its warm-up gives.
    func warmUp(runs: Int = 2) throws(ServingError) {
        var feeds: [String: Value] = [:]
        for input in session.inputs {
            guard let type = input.type else {
                throw .invalidArgument("input '\(input.name)' has no declared type, so it cannot be warmed up")
            }
            if let key = input.mapKey {
                let empty = TensorMap.checked(keys: Tensor(zeros: key, shape: [0]), values: Tensor(zeros: type.dataType, shape: [0]))
                if case .success(let map) = empty { feeds[input.name] = .map(map) }
                continue
            }
            let shape = Shape((type.dims ?? []).map { $0.value ?? 1 })
            feeds[input.name] = .tensor(Tensor(zeros: type.dataType, shape: shape))
        }
        let hasMaps = session.inputs.contains { $0.mapKey != nil }
        for _ in 0..<runs {
            do {
                _ = try session.runValues(feeds)
            } catch {
                if hasMaps { return }
                throw .invalidArgument("warm-up failed: \(error)")
            }
        }
    }
}

/// Lets the caller drop a queued request (its client went away).
public struct RequestHandle: Sendable {
    private let action: @Sendable () -> Void
    init(cancel: @escaping @Sendable () -> Void) { action = cancel }
    /// Drops the request if it has not started running.
    public func cancel() { action() }
}
