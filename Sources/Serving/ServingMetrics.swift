import Prometheus
import Synchronization

/// The daemon's Prometheus metrics: requests, latencies, engine time, models loaded, and the
/// batching queue's figures. Thread-safe; `exposition()` renders the text format.
public final class ServingMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()

    /// Latency buckets from 100 µs to 30 s.
    static let latencyBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30),
    ]

    static let batchSizeBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256]

    private static func name(_ metric: String, unit: String = "", help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "onnx_serve", subsystem: nil, metricName: metric, unitName: unit, helpText: help)
    }

    public init() {}

    // The registry validates names and labels and looks the metric up on every `make…` call,
    // several microseconds each; these run for every request, so the metrics of each label set
    // are made once and kept.
    private struct RequestKey: Hashable { var model: String, api: String, status: Int }
    private struct RequestMetrics { var count: Counter, duration: DurationHistogram }
    private struct ModelKey: Hashable { var model: String, version: Int }
    private struct ModelMetrics {
        var engine: DurationHistogram, batchSize: ValueHistogram, queueWait: DurationHistogram, queueLength: Gauge
        var inFlight: Gauge
    }
    private let requestMetrics = Mutex<[RequestKey: RequestMetrics]>([:])
    private let modelMetrics = Mutex<[ModelKey: ModelMetrics]>([:])

    private func metrics(model: String, api: String, status: Int) -> RequestMetrics {
        let key = RequestKey(model: model, api: api, status: status)
        if let known = requestMetrics.withLock({ $0[key] }) { return known }
        let made = RequestMetrics(
            count: registry.makeCounter(descriptor: Self.name("requests", unit: "total", help: "HTTP requests by model, API and status code"),
                                        labels: [("model", model), ("api", api), ("status", String(status))]),
            duration: registry.makeDurationHistogram(descriptor: Self.name("request_duration", unit: "seconds", help: "Time from request to response"),
                                                     labels: [("model", model), ("api", api)], buckets: Self.latencyBuckets))
        requestMetrics.withLock { $0[key] = made }
        return made
    }

    private func metrics(model: String, version: Int) -> ModelMetrics {
        let key = ModelKey(model: model, version: version)
        if let known = modelMetrics.withLock({ $0[key] }) { return known }
        let labels = [("model", model), ("version", String(version))]
        let made = ModelMetrics(
            engine: registry.makeDurationHistogram(descriptor: Self.name("engine_duration", unit: "seconds", help: "Time the engine spent on one run (one batch)"),
                                                   labels: labels, buckets: Self.latencyBuckets),
            batchSize: registry.makeValueHistogram(descriptor: Self.name("batch_size", help: "Rows per engine run"),
                                                   labels: labels, buckets: Self.batchSizeBuckets),
            queueWait: registry.makeDurationHistogram(descriptor: Self.name("queue_duration", unit: "seconds", help: "Time a request waited for the engine"),
                                                      labels: labels, buckets: Self.latencyBuckets),
            queueLength: registry.makeGauge(descriptor: Self.name("queue_length", help: "Requests waiting in a model's queue"), labels: labels),
            inFlight: registry.makeGauge(descriptor: Self.name("requests_in_flight", help: "Requests a model has accepted and not yet answered (queued or running)"),
                                         labels: labels))
        modelMetrics.withLock { $0[key] = made }
        return made
    }

    /// Counts one finished HTTP request.
    public func recordRequest(model: String, api: String, status: Int, duration: Duration) {
        let metrics = metrics(model: model, api: api, status: status)
        metrics.count.increment()
        metrics.duration.record(duration)
    }

    /// Records one engine run (a batch) of a model.
    public func recordEngineRun(model: String, version: Int, rows: Int, duration: Duration) {
        let metrics = metrics(model: model, version: version)
        metrics.engine.record(duration)
        metrics.batchSize.record(Double(rows))
    }

    /// Records how long a request waited in its model's queue.
    public func recordQueueWait(model: String, version: Int, duration: Duration) {
        metrics(model: model, version: version).queueWait.record(duration)
    }

    /// Sets how many requests wait in a model's queue.
    public func setQueueLength(model: String, version: Int, length: Int) {
        metrics(model: model, version: version).queueLength.set(Double(length))
    }

    /// Counts a request a model accepted (`+1`) or answered (`-1`).
    public func addInFlight(model: String, version: Int, _ change: Int) {
        metrics(model: model, version: version).inFlight.increment(by: Double(change))
    }

    /// Counts requests turned away because the queue was full.
    public func recordRejected(model: String, version: Int) {
        registry.makeCounter(descriptor: Self.name("rejected_requests", unit: "total", help: "Requests rejected because the queue was full"),
                             labels: [("model", model), ("version", String(version))]).increment()
    }

    /// Counts requests whose deadline passed before they ran.
    public func recordTimedOut(model: String, version: Int) {
        registry.makeCounter(descriptor: Self.name("timed_out_requests", unit: "total", help: "Requests whose deadline passed before they ran"),
                             labels: [("model", model), ("version", String(version))]).increment()
    }

    /// Sets the number of model versions loaded and available.
    public func setModelsLoaded(_ count: Int) {
        registry.makeGauge(descriptor: Self.name("models_loaded", help: "Model versions loaded and available")).set(Double(count))
    }

    /// The Prometheus text exposition of every metric.
    public func exposition() -> [UInt8] { registry.emitToBuffer() }
}
