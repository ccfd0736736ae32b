import HTTP
import Serving

/// The one place where errors become HTTP statuses and bodies.
extension ServingError {
    /// HTTP status for this error, following TF Serving's mapping of status codes
    /// (tensorflow_serving/model_servers/http_server.cc), which Triton's agrees with where both
    /// define one.
    var httpStatus: Int {
        switch kind {
        case .invalidArgument, .failedPrecondition: 400
        case .permissionDenied: 403
        case .notFound: 404
        case .tooLarge: 413
        case .unavailable: 503
        case .resourceExhausted: 429
        case .deadlineExceeded: 504
        case .cancelled: 499
        case .unimplemented: 501
        case .internal: 500
        }
    }

    /// `{"error": message}` with the status, plus `Retry-After` when the error says when.
    var response: HTTPResponse {
        var response = HTTPResponse.error(status: httpStatus, message: message)
        if let seconds = retryAfterSeconds { response.headers.append(name: "Retry-After", value: String(seconds)) }
        return response
    }
}

extension HTTPResponse {
    /// A JSON body with `Content-Type: application/json`.
    static func json(status: Int = 200, _ body: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: body)
    }

    /// 405 with the methods the route does allow.
    static func methodNotAllowed(_ method: String, allowed: String) -> HTTPResponse {
        var response = HTTPResponse.error(status: 405, message: "Method Not Allowed: \(method) (allowed: \(allowed))")
        response.headers.append(name: "Allow", value: allowed)
        return response
    }
}

extension RouteError {
    /// 404 unknown route, 400 malformed path (TF Serving's "Malformed request"), 405 with `Allow`.
    var response: HTTPResponse {
        switch self {
        case .notFound(let message): .error(status: 404, message: message)
        case .malformed(let message): .error(status: 400, message: message)
        case .methodNotAllowed(let method, let allowed): .methodNotAllowed(method, allowed: allowed)
        }
    }
}
