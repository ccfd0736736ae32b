import Prometheus

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

    /// Counts one finished HTTP request.
    public func recordRequest(model: String, api: String, status: Int, duration: Duration) {
        registry.makeCounter(descriptor: Self.name("requests", unit: "total", help: "HTTP requests by model, API and status code"),
                             labels: [("model", model), ("api", api), ("status", String(status))]).increment()
        registry.makeDurationHistogram(descriptor: Self.name("request_duration", unit: "seconds", help: "Time from request to response"),
                                       labels: [("model", model), ("api", api)], buckets: Self.latencyBuckets).record(duration)
    }

    /// Records one engine run (a batch) of a model.
    public func recordEngineRun(model: String, version: Int, rows: Int, duration: Duration) {
        let labels = [("model", model), ("version", String(version))]
        registry.makeDurationHistogram(descriptor: Self.name("engine_duration", unit: "seconds", help: "Time the engine spent on one run (one batch)"),
                                       labels: labels, buckets: Self.latencyBuckets).record(duration)
        registry.makeValueHistogram(descriptor: Self.name("batch_size", help: "Rows per engine run"),
                                    labels: labels, buckets: Self.batchSizeBuckets).record(Double(rows))
    }

    /// Records how long a request waited in its model's queue.
    public func recordQueueWait(model: String, version: Int, duration: Duration) {
        registry.makeDurationHistogram(descriptor: Self.name("queue_duration", unit: "seconds", help: "Time a request waited for the engine"),
                                       labels: [("model", model), ("version", String(version))], buckets: Self.latencyBuckets).record(duration)
    }

    /// Sets how many requests wait in a model's queue.
    public func setQueueLength(model: String, version: Int, length: Int) {
        registry.makeGauge(descriptor: Self.name("queue_length", help: "Requests waiting in a model's queue"),
                           labels: [("model", model), ("version", String(version))]).set(Double(length))
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
