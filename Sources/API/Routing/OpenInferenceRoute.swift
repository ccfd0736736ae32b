import Serving

/// The Open Inference Protocol (KServe v2) routes with Triton's extensions, matched like
/// Triton's http_server.cc (case-sensitive, numeric versions):
///   GET  /v2                                   server metadata
///   GET  /v2/models/stats                      statistics of every model
///   GET  /v2/models/{name}[/versions/{v}]      model metadata
///   GET  /v2/models/{name}[/versions/{v}]/ready|config|stats
///   POST /v2/models/{name}[/versions/{v}]/infer
///   POST /v2/repository/index
///   POST /v2/repository/models/{name}/load|unload
package enum OpenInferenceRoute: Equatable {
    case serverMetadata
    case modelMetadata(ModelSpec)
    case modelReady(ModelSpec)
    case modelConfig(ModelSpec)
    case statistics(ModelSpec?)
    case infer(ModelSpec)
    case repository(RepositoryRoute)

    /// The model repository extension's routes (off unless the control mode is `explicit`).
    package enum RepositoryRoute: Equatable {
        case index
        case load(String)
        case unload(String)
    }

    /// The model the route names, if any.
    package var spec: ModelSpec? {
        switch self {
        case .modelMetadata(let spec), .modelReady(let spec), .modelConfig(let spec), .infer(let spec): spec
        case .statistics(let spec): spec
        case .repository(.load(let name)), .repository(.unload(let name)): ModelSpec(name: name)
        case .serverMetadata, .repository(.index): nil
        }
    }

    /// True when `rawPath` belongs to this API (health routes are answered before this).
    package static func claims(_ rawPath: String) -> Bool {
        rawPath == "/v2" || rawPath.hasPrefix("/v2/")
    }

    package static func match(method: String, rawPath: String) -> Result<OpenInferenceRoute, RouteError> {
        let notFound = RouteError.notFound("Not Found: \(method) \(rawPath)")
        var segments = rawPath.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        guard segments.first == "v2" else { return .failure(notFound) }
        segments.removeFirst()
        func expect(_ expected: String, _ route: OpenInferenceRoute) -> Result<OpenInferenceRoute, RouteError> {
            RouteError.expect(expected, method, route)
        }
        func name(_ encoded: String) -> Result<String, RouteError> {
            guard let decoded = PercentDecoding.decode(Substring(encoded)) else {
                return .failure(.malformed("malformed percent-encoding in model name '\(encoded)'"))
            }
            guard ModelRepository.isValidName(decoded) else {
                return .failure(.malformed("invalid model name '\(decoded)'"))
            }
            return .success(decoded)
        }
        switch segments.first {
        case nil:
            return expect("GET", .serverMetadata)
        case "models":
            segments.removeFirst()
            if segments == ["stats"] { return expect("GET", .statistics(nil)) }
            guard let first = segments.first, !first.isEmpty else { return .failure(notFound) }
            let modelName: String
            switch name(first) {
            case .success(let decoded): modelName = decoded
            case .failure(let mismatch): return .failure(mismatch)
            }
            segments.removeFirst()
            var spec = ModelSpec(name: modelName)
            if segments.first == "versions" {
                guard segments.count >= 2, !segments[1].isEmpty, segments[1].allSatisfy(\.isASCIIDigit),
                      let version = Int(segments[1]) else {
                    return .failure(.malformed("model version must be a number: \(rawPath)"))
                }
                spec.version = version
                segments.removeFirst(2)
            }
            switch segments {
            case []: return expect("GET", .modelMetadata(spec))
            case ["ready"]: return expect("GET", .modelReady(spec))
            case ["config"]: return expect("GET", .modelConfig(spec))
            case ["stats"]: return expect("GET", .statistics(spec))
            case ["infer"]: return expect("POST", .infer(spec))
            default: return .failure(notFound)
            }
        case "repository":
            segments.removeFirst()
            if segments == ["index"] { return expect("POST", .repository(.index)) }
            guard segments.count == 3, segments[0] == "models" else { return .failure(notFound) }
            let modelName: String
            switch name(segments[1]) {
            case .success(let decoded): modelName = decoded
            case .failure(let mismatch): return .failure(mismatch)
            }
            switch segments[2] {
            case "load": return expect("POST", .repository(.load(modelName)))
            case "unload": return expect("POST", .repository(.unload(modelName)))
            default: return .failure(notFound)
            }
        default:
            return .failure(notFound)
        }
    }
}
