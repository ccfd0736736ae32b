import Dispatch
import Foundation
public import HTTP
public import Logging
public import Serving

/// Every HTTP route of the daemon: TF Serving REST (`/v1`), health, metrics and the Open
/// Inference Protocol (`/v2`). A request is matched to a `Route` by a pure function, then
/// answered here. Cheap routes answer on the server's thread; inferences are decoded (on the
/// server's thread when small, on a Dispatch queue otherwise), queued, and answered when the
/// engine is done, so no server thread waits.
public final class ServingAPI: HTTPHandler {
    let registry: ModelRegistry
    let metrics: ServingMetrics
    let logger: Logger
    let accessLog: Bool
    /// The header the repository API requires, if any (it is off entirely unless the registry's
    /// control mode is `explicit`).
    let repositoryRestriction: RequiredHeader?
    /// The daemon-wide budget for request data, charged for what decoding makes beyond the body
    /// (nil: unbounded, for tests).
    let memoryBudget: MemoryBudget?
    let work = DispatchQueue(label: "onnx-serve.api", qos: .userInitiated, attributes: .concurrent)

    /// A handler serving `registry`'s models.
    public init(registry: ModelRegistry, metrics: ServingMetrics, logger: Logger, accessLog: Bool,
                repositoryRestriction: RequiredHeader? = nil, memoryBudget: MemoryBudget? = nil) {
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
        self.accessLog = accessLog
        self.repositoryRestriction = repositoryRestriction
        self.memoryBudget = memoryBudget
    }

    public func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        let start = ContinuousClock.now
        switch Route.match(method: request.method, rawPath: request.rawPath) {
        case .failure(let error):
            ServedRequest(owner: self, request: request, responder: responder, start: start, model: "", api: "other")
                .finish(error.response)
        case .success(let route):
            let served = ServedRequest(owner: self, request: request, responder: responder, start: start,
                                       model: route.model, api: route.api)
            answer(route, served)
        }
    }

    private func answer(_ route: Route, _ served: ServedRequest) {
        switch route {
        case .live:
            served.finish(.json(Array(#"{"live":true}"#.utf8)))
        case .ready:
            served.finish(registry.isReady ? .json(Array(#"{"ready":true}"#.utf8))
                : .json(status: 503, Array(#"{"ready":false,"error":"models are still loading or the server is shutting down"}"#.utf8)))
        case .metrics:
            served.finish(HTTPResponse(status: 200, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"],
                                       body: metrics.exposition()))
        case .tfServing(let route):
            answerTFServing(route, served)
        case .openInference(let route):
            answerOpenInference(route, served)
        }
    }

    /// 200 with the JSON body `body` returns, or the error's response.
    func answer(_ body: () throws(ServingError) -> [UInt8]) -> HTTPResponse {
        do throws(ServingError) {
            return .json(try body())
        } catch {
            return error.response
        }
    }
}

/// One request being answered: answers it once, and records metrics and the access log.
final class ServedRequest: Sendable {
    let request: HTTPRequest
    /// When the request arrived.
    let start: ContinuousClock.Instant
    /// The model the route names ("" when none), for metrics.
    let model: String
    /// Which API the route belongs to, for metrics.
    let api: String
    private let responder: HTTPResponder
    private let owner: ServingAPI

    init(owner: ServingAPI, request: HTTPRequest, responder: HTTPResponder, start: ContinuousClock.Instant,
         model: String, api: String) {
        self.owner = owner
        self.request = request
        self.responder = responder
        self.start = start
        self.model = model
        self.api = api
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
