import Dispatch
import Foundation
public import HTTP
public import Logging
public import Serving

/// Every HTTP route of the daemon: TF Serving REST (`/v1`), health, metrics and the Open
/// Inference Protocol (`/v2`). Cheap routes answer on the server's thread; predictions are
/// decoded and queued on a Dispatch queue and answered when the engine is done, so no server
/// thread waits.
public final class ServingAPI: HTTPHandler {
    let registry: ModelRegistry
    let metrics: ServingMetrics
    let logger: Logger
    let accessLog: Bool
    /// The header the repository API requires, if any (it is off entirely unless the registry's
    /// control mode is `explicit`).
    let repositoryRestriction: RequiredHeader?
    let work = DispatchQueue(label: "onnx-serve.api", qos: .userInitiated, attributes: .concurrent)

    /// A handler serving `registry`'s models.
    public init(registry: ModelRegistry, metrics: ServingMetrics, logger: Logger, accessLog: Bool,
                repositoryRestriction: RequiredHeader? = nil) {
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
        self.accessLog = accessLog
        self.repositoryRestriction = repositoryRestriction
    }

    public func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        let start = ContinuousClock.now
        let exchange = Exchange(api: self, request: request, responder: responder, start: start)
        switch (request.method, request.rawPath) {
        case ("GET", "/v2/health/live"), ("HEAD", "/v2/health/live"):
            exchange.finish(.json(Array(#"{"live":true}"#.utf8)))
        case ("GET", "/v2/health/ready"), ("HEAD", "/v2/health/ready"):
            exchange.finish(registry.isReady ? .json(Array(#"{"ready":true}"#.utf8))
                : .json(status: 503, Array(#"{"ready":false,"error":"models are still loading or the server is shutting down"}"#.utf8)))
        case ("GET", "/metrics"):
            exchange.finish(HTTPResponse(status: 200, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"],
                                         body: metrics.exposition()))
        case (_, "/v2/health/live"), (_, "/v2/health/ready"), (_, "/metrics"):
            exchange.finish(.methodNotAllowed(request.method, allowed: "GET"))
        default:
            if TFServingRoute.claims(request.rawPath) {
                handleTFServing(exchange)
            } else if OpenInferenceRoute.claims(request.rawPath) {
                handleOpenInference(exchange)
            } else {
                exchange.finish(.error(status: 404, message: "Not Found: \(request.method) \(request.rawPath)"))
            }
        }
    }

    // MARK: TF Serving REST

    private func handleTFServing(_ exchange: Exchange) {
        let route: TFServingRoute
        switch TFServingRoute.match(method: exchange.request.method, rawPath: exchange.request.rawPath) {
        case .success(let matched): route = matched
        case .failure(let mismatch):
            if let allowed = mismatch.allowed {
                exchange.finish(.methodNotAllowed(exchange.request.method, allowed: allowed))
            } else {
                exchange.finish(.error(status: mismatch.status, message: mismatch.message))
            }
            return
        }
        switch route {
        case .predict(let spec):
            exchange.model = spec.name
            exchange.api = "predict"
            // A small body is parsed here, on the HTTP thread (as small Open Inference requests
            // are); a large one on the work queue, so no HTTP thread parses for milliseconds.
            if exchange.request.body.count <= Self.inlineJSONBodyLimit {
                predict(spec, exchange)
            } else {
                work.async { self.predict(spec, exchange) }
            }
        case .classify(let spec), .regress(let spec):
            exchange.model = spec.name
            exchange.api = "classify/regress"
            exchange.finish(ServingError(.unimplemented, "classify and regress need a tf.Example signature, which ONNX models do not have; use :predict").response)
        case .status(let spec):
            exchange.model = spec.name
            exchange.api = "status"
            exchange.finish(status(spec))
        case .metadata(let spec):
            exchange.model = spec.name
            exchange.api = "metadata"
            do {
                let model = try registry.resolve(name: spec.name, version: spec.version, label: spec.label)
                exchange.finish(.json(TFServingCodec.encodeMetadata(model)))
            } catch {
                exchange.finish(error.response)
            }
        }
    }

    private func status(_ spec: ModelSpec) -> HTTPResponse {
        var statuses = registry.statuses(of: spec.name)
        guard !statuses.isEmpty else {
            return ServingError.notFound("Could not find any versions of model \(spec.name)").response
        }
        if let label = spec.label {
            guard let version = registry.labels(of: spec.name)[label] else {
                return ServingError.notFound("Unrecognized servable version label: \(label)").response
            }
            statuses = statuses.filter { $0.version == version }
        }
        if let version = spec.version {
            statuses = statuses.filter { $0.version == version }
            guard !statuses.isEmpty else {
                return ServingError.notFound("Could not find version \(version) of model \(spec.name)").response
            }
        }
        return .json(TFServingCodec.encodeStatus(statuses))
    }

    private func predict(_ spec: ModelSpec, _ exchange: Exchange) {
        do throws(ServingError) {
            let model = try registry.resolve(name: spec.name, version: spec.version, label: spec.label)
            let body = try exchange.request.body.withUnsafeBytes { raw in
                Result { () throws(JSONError) in try JSONParser.parse(raw) }
            }.mapError { ServingError.invalidArgument("\($0)") }.get()
            let (request, format) = try TFServingCodec.decodePredict(body, model: model)
            if exchange.request.cancellation.isCancelled { return }  // the client left while we decoded
            let decodeTime = ContinuousClock.now - exchange.start
            let handle = model.submit(request) { result in
                let encodeStart = ContinuousClock.now
                let response = Self.response(result) { response throws(ServingError) in
                    try TFServingCodec.encodePredict(response, format: format)
                }
                let now = ContinuousClock.now
                if response.status == 200 {
                    model.statistics.recordSuccess(total: now - exchange.start, input: decodeTime, output: now - encodeStart)
                } else {
                    model.statistics.recordFailure(total: now - exchange.start)
                }
                exchange.finish(response)
            }
            exchange.request.cancellation.onCancel { handle.cancel() }
        } catch {
            exchange.finish(error.response)
        }
    }

    /// The HTTP answer to an inference: the encoded body with a `Server-Timing` header giving
    /// queue and engine time (ms), or the error's response.
    static func response(_ result: Result<InferenceResponse, ServingError>,
                         encode: (InferenceResponse) throws(ServingError) -> [UInt8]) -> HTTPResponse {
        do throws(ServingError) {
            let inference = try result.get()
            var response = HTTPResponse.json(try encode(inference))
            response.headers.append(name: "Server-Timing", value: serverTiming(inference))
            return response
        } catch {
            return error.response
        }
    }

    static func serverTiming(_ inference: InferenceResponse) -> String {
        // Milliseconds with three decimals, from whole microseconds (no printf: this runs per request).
        func milliseconds(_ duration: Duration) -> String {
            let micros = max(0, duration.microseconds)
            let fraction = String(micros % 1000)
            return String(micros / 1000) + "." + String(repeating: "0", count: 3 - fraction.count) + fraction
        }
        return "queue;dur=\(milliseconds(inference.queueDuration)), engine;dur=\(milliseconds(inference.engineDuration))"
    }
}

/// One request in flight: answers it once, and records metrics and the access log.
final class Exchange: @unchecked Sendable {
    let request: HTTPRequest
    private let responder: HTTPResponder
    /// When the request arrived.
    let start: ContinuousClock.Instant
    private unowned let owner: ServingAPI
    /// Model named by the request ("" when none), for metrics.
    var model = ""
    /// Which API the request used, for metrics.
    var api = "other"

    init(api: ServingAPI, request: HTTPRequest, responder: HTTPResponder, start: ContinuousClock.Instant) {
        self.owner = api
        self.request = request
        self.responder = responder
        self.start = start
    }

    func finish(_ response: HTTPResponse) {
        var response = response
        if request.method == "HEAD" { response.body = [] }
        responder.respond(response)
        let duration = ContinuousClock.now - start
        if !model.isEmpty {
            // Names of models we do not serve share one label, so clients cannot grow the series.
            let label = owner.registry.statuses(of: model).isEmpty ? "(unknown)" : model
            owner.metrics.recordRequest(model: label, api: api, status: response.status, duration: duration)
        }
        if owner.accessLog {
            owner.logger.info("\(request.method) \(request.rawPath) \(response.status) \(response.body.count)B \(duration.microseconds)us")
        }
    }
}

extension Duration {
    /// Whole microseconds (rounded toward zero).
    var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
}
