import Glibc

extension HTTPServer {
    /// How the server listens, and its limits.
    public struct Configuration: Sendable {
        /// The address or name to bind. `::` (the default) or empty: every IPv6 and IPv4
        /// address; `0.0.0.0`: every IPv4 address; `127.0.0.1`: IPv4 loopback only.
        public var host: String
        /// The port; 0 picks a free one (read `HTTPServer.port`).
        public var port: UInt16
        /// libmicrohttpd threads, each running its own epoll loop.
        public var threadCount: Int
        /// A connection idle this long (no byte received or sent) is closed, including one
        /// whose body stops arriving. libmicrohttpd counts whole seconds: rounded up.
        public var idleTimeout: Duration
        /// Connections beyond this many are closed as they arrive.
        public var maxConnections: Int
        /// The largest request body accepted, also after decoding gzip/deflate; larger ones get
        /// 413 as soon as the limit is crossed.
        public var maxBodySize: Int
        /// libmicrohttpd's memory per connection, for the request line, headers and I/O buffers;
        /// a request line or headers that do not fit get 414 or 431. libmicrohttpd zeroes it
        /// for every request, so larger costs time on small requests (64 KiB: ~2 µs more).
        public var connectionMemory: Int
        /// Receives libmicrohttpd's messages and answers the server could not send, if set.
        public var log: (@Sendable (String) -> Void)?

        /// Creates a configuration; every parameter has a production default.
        public init(
            host: String = "::",
            port: UInt16 = 8000,
            threadCount: Int = Configuration.processorCount,
            idleTimeout: Duration = .seconds(30),
            maxConnections: Int = 1024,
            maxBodySize: Int = 64 << 20,
            connectionMemory: Int = 32 << 10,
            log: (@Sendable (String) -> Void)? = nil
        ) {
            self.host = host
            self.port = port
            self.threadCount = threadCount
            self.idleTimeout = idleTimeout
            self.maxConnections = maxConnections
            self.maxBodySize = maxBodySize
            self.connectionMemory = connectionMemory
            self.log = log
        }
    }
}

// MARK: - Defaults and checks

extension HTTPServer.Configuration {
    /// The number of online processors, the default thread count.
    public static var processorCount: Int {
        max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }

    var idleTimeoutSeconds: Int64 {
        let (seconds, attoseconds) = idleTimeout.components
        return seconds + (attoseconds > 0 ? 1 : 0)
    }

    func validate() throws(HTTPError) {
        guard threadCount >= 1 else { throw .invalidConfiguration("threadCount must be at least 1") }
        guard idleTimeout > .zero else { throw .invalidConfiguration("idleTimeout must be positive") }
        guard maxConnections >= 1 else { throw .invalidConfiguration("maxConnections must be at least 1") }
        guard maxBodySize >= 0 else { throw .invalidConfiguration("maxBodySize must not be negative") }
        guard connectionMemory >= 4096 else { throw .invalidConfiguration("connectionMemory must be at least 4096 bytes") }
    }
}
