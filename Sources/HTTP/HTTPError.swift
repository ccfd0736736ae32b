/// What can go wrong when starting the server or when libmicrohttpd refuses a call.
public enum HTTPError: Error, Equatable, CustomStringConvertible {
    /// The host is neither an address nor a name that resolves.
    case invalidHost(String)
    /// A configuration value is out of range.
    case invalidConfiguration(String)
    /// The daemon did not start; the reason is libmicrohttpd's last message, e.g. a bind failure.
    case startFailed(String)
    /// libmicrohttpd refused a call (named) while answering a request.
    case libraryCallFailed(String)

    public var description: String {
        switch self {
        case .invalidHost(let host): "cannot listen on host '\(host)': not an address or a resolvable name"
        case .invalidConfiguration(let reason): "invalid HTTP server configuration: \(reason)"
        case .startFailed(let reason): "HTTP server did not start: \(reason)"
        case .libraryCallFailed(let call): "libmicrohttpd refused \(call)"
        }
    }
}
