import Glibc

/// The address the daemon binds, resolved from the configured host.
enum ListenAddress {
    /// Every IPv6 and IPv4 address on one socket (host `::` or empty).
    case dualStack
    case ipv4(sockaddr_in)
    case ipv6(sockaddr_in6)

    /// Resolves `host` (an address, `[v6 address]`, or a name) and sets `port`.
    init(host: String, port: UInt16) throws(HTTPError) {
        let name = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if name.isEmpty || name == "::" {
            self = .dualStack
            return
        }
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var results: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &results) == 0, let first = results?.pointee, let address = first.ai_addr else {
            throw .invalidHost(host)
        }
        defer { freeaddrinfo(results) }
        switch first.ai_family {
        case AF_INET:
            var ipv4 = UnsafeRawPointer(address).load(as: sockaddr_in.self)
            ipv4.sin_port = port.bigEndian
            self = .ipv4(ipv4)
        case AF_INET6:
            var ipv6 = UnsafeRawPointer(address).load(as: sockaddr_in6.self)
            ipv6.sin6_port = port.bigEndian
            self = .ipv6(ipv6)
        default:
            throw .invalidHost(host)
        }
    }

    /// Calls `body` with a pointer to the socket address, or nil for the dual-stack wildcard,
    /// which libmicrohttpd builds itself.
    func withSocketAddress<Result>(_ body: (UnsafeRawPointer?) -> Result) -> Result {
        switch self {
        case .dualStack: body(nil)
        case .ipv4(var address): withUnsafePointer(to: &address) { body(UnsafeRawPointer($0)) }
        case .ipv6(var address): withUnsafePointer(to: &address) { body(UnsafeRawPointer($0)) }
        }
    }
}
