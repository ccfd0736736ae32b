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
        /// whose body stops arriving. libmicrohttpd counts whole seconds: rounded up. A
        /// kept-alive connection must also send its next request's line and headers within
        /// this time (or `headerTimeout`, if longer) of the previous answer.
        public var idleTimeout: Duration
        /// A new connection whose first request line and headers are not complete this long
        /// after it opened is closed, however slowly bytes keep arriving.
        public var headerTimeout: Duration
        /// Connections beyond this many are closed as they arrive.
        public var maxConnections: Int
        /// Connections from one client address beyond this many are closed as they arrive
        /// (0: no limit). Behind a proxy that is every client's address, raise it.
        public var maxConnectionsPerClient: Int
        /// The largest request body accepted, also after decoding gzip/deflate; larger ones get
        /// 413 as soon as the limit is crossed.
        public var maxBodySize: Int
        /// The daemon-wide budget that request bodies are charged to as they arrive (inflated
        /// bytes included) until their request ends; past it, a request gets 503 with
        /// `Retry-After`. Other layers may charge the same budget. Default: unlimited.
        public var memoryBudget: MemoryBudget
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
            headerTimeout: Duration = .seconds(10),
            maxConnections: Int = 1024,
            maxConnectionsPerClient: Int = 256,
            maxBodySize: Int = 64 << 20,
            memoryBudget: MemoryBudget = MemoryBudget(limit: .max),
            connectionMemory: Int = 32 << 10,
            log: (@Sendable (String) -> Void)? = nil
        ) {
            self.host = host
            self.port = port
            self.threadCount = threadCount
            self.idleTimeout = idleTimeout
            self.headerTimeout = headerTimeout
            self.maxConnections = maxConnections
            self.maxConnectionsPerClient = maxConnectionsPerClient
            self.maxBodySize = maxBodySize
            self.memoryBudget = memoryBudget
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
        guard headerTimeout > .zero else { throw .invalidConfiguration("headerTimeout must be positive") }
        guard maxConnections >= 1 else { throw .invalidConfiguration("maxConnections must be at least 1") }
        guard maxConnectionsPerClient >= 0 else { throw .invalidConfiguration("maxConnectionsPerClient must not be negative") }
        guard maxBodySize >= 0 else { throw .invalidConfiguration("maxBodySize must not be negative") }
        guard connectionMemory >= 4096 else { throw .invalidConfiguration("connectionMemory must be at least 4096 bytes") }
    }
}
