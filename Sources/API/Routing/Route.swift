/// Every route of the daemon, matched from the method and the raw (percent-encoded) path by a
/// pure function. What each route answers lives in `ServingAPI`; how a failed match becomes an
/// HTTP status lives in `HTTPStatus+Serving.swift`.
package enum Route: Equatable {
    /// `GET /v2/health/live`
    case live
    /// `GET /v2/health/ready`
    case ready
    /// `GET /metrics`
    case metrics
    /// TF Serving REST (`/v1/models/...`).
    case tfServing(TFServingRoute)
    /// Open Inference Protocol (`/v2/...`).
    case openInference(OpenInferenceRoute)

    /// The route a request names, or why it names none.
    package static func match(method: String, rawPath: String) -> Result<Route, RouteError> {
        switch rawPath {
        case "/v2/health/live": return RouteError.expect("GET", method, .live)
        case "/v2/health/ready": return RouteError.expect("GET", method, .ready)
        case "/metrics": return RouteError.expect("GET", method, .metrics)
        default: break
        }
        if TFServingRoute.claims(rawPath) {
            return TFServingRoute.match(method: method, rawPath: rawPath).map(Route.tfServing)
        }
        if OpenInferenceRoute.claims(rawPath) {
            return OpenInferenceRoute.match(method: method, rawPath: rawPath).map(Route.openInference)
        }
        return .failure(.notFound("Not Found: \(method) \(rawPath)"))
    }

    /// The model a route names, for metrics and the access log ("" when none).
    package var model: String {
        switch self {
        case .live, .ready, .metrics: ""
        case .tfServing(let route): route.spec.name
        case .openInference(let route): route.spec?.name ?? ""
        }
    }

    /// Which API the route belongs to, as the requests metric labels it.
    package var api: String {
        switch self {
        case .live, .ready, .metrics: "other"
        case .tfServing(.predict): "predict"
        case .tfServing(.classify), .tfServing(.regress): "classify/regress"
        case .tfServing(.status): "status"
        case .tfServing(.metadata): "metadata"
        case .openInference(.infer): "v2-infer"
        case .openInference(.modelMetadata): "v2-metadata"
        case .openInference(.modelReady): "v2-ready"
        case .openInference(.modelConfig): "v2-config"
        case .openInference(.statistics): "v2-stats"
        case .openInference(.serverMetadata): "other"
        case .openInference(.repository(.index)): "v2-index"
        case .openInference(.repository(.load)): "v2-load"
        case .openInference(.repository(.unload)): "v2-unload"
        }
    }
}

/// Why a request matches no route.
package enum RouteError: Error, Equatable {
    /// No such route (404).
    case notFound(String)
    /// A path of a known API that does not parse: a bad version, name or escape (400).
    case malformed(String)
    /// The path exists for other methods (405, with `Allow`).
    case methodNotAllowed(method: String, allowed: String)

    /// `route` when `method` is `expected` (or HEAD for a GET route), else 405.
    static func expect<Matched>(_ expected: String, _ method: String, _ route: Matched) -> Result<Matched, RouteError> {
        method == expected || (expected == "GET" && method == "HEAD")
            ? .success(route) : .failure(.methodNotAllowed(method: method, allowed: expected))
    }
}
