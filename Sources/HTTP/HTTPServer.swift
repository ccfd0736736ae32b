import Glibc
import Synchronization

/// An HTTP/1.1 server on libmicrohttpd: a pool of epoll threads, keep-alive, bounded bodies,
/// and answers that may come later from any thread without holding a thread meanwhile.
///
///     let server = try HTTPServer.start(.init(host: "127.0.0.1", port: 0), handler: handler)
///     print(server.port)
///     await server.stop()
public final class HTTPServer: Sendable {
    private struct Running: Sendable {
        let daemon: MicroHTTPD.Daemon
        /// The dispatcher as libmicrohttpd's callback context, retained until the daemon stops.
        let context: Unmanaged<RequestDispatcher>
    }

    /// The configuration the server started with.
    public let configuration: Configuration
    /// The port the server listens on; the ephemeral port chosen when configured with port 0.
    public let port: UInt16
    private let dispatcher: RequestDispatcher
    private let running: Mutex<Running?>

    private init(configuration: Configuration, port: UInt16, dispatcher: RequestDispatcher, running: Running) {
        self.configuration = configuration
        self.port = port
        self.dispatcher = dispatcher
        self.running = Mutex(running)
    }

    /// Binds and starts serving; `handler` answers every complete request. The server runs
    /// until `stop()`, which every started server needs.
    public static func start(_ configuration: Configuration = Configuration(), handler: some HTTPHandler) throws(HTTPError) -> HTTPServer {
        try configuration.validate()
        let address = try ListenAddress(host: configuration.host, port: configuration.port)
        let dispatcher = try RequestDispatcher(handler: handler, configuration: configuration)
        let context = Unmanaged.passRetained(dispatcher)
        guard let daemon = MicroHTTPD.startDaemon(configuration, address: address, context: context.toOpaque()) else {
            context.release()
            dispatcher.suspended.shutdown()
            dispatcher.connections.stopTimer()
            throw .startFailed(dispatcher.lastMessage ?? "libmicrohttpd gave no reason")
        }
        return HTTPServer(
            configuration: configuration,
            port: MicroHTTPD.boundPort(daemon),
            dispatcher: dispatcher,
            running: Running(daemon: daemon, context: context)
        )
    }

    /// Stops gracefully: refuses new connections at once and closes those whose request the
    /// handler does not have (idle keep-alive ones, and those still sending headers or a body),
    /// lets requests in flight finish for up to `gracePeriod` (their answers close the
    /// connection), answers 503 to those still waiting for their handler (cancelling them), then
    /// closes everything. Later calls do nothing.
    public func stop(gracePeriod: Duration = .seconds(10)) async {
        guard let running = running.withLock({ $0.take() }) else { return }
        let listenSocket = MicroHTTPD.quiesce(running.daemon)
        // Refuse new connections, and those in the backlog, now rather than when the daemon stops.
        if let listenSocket { shutdown(listenSocket, Int32(SHUT_RD)) }
        dispatcher.beginDraining()
        await dispatcher.waitUntilIdle(before: .now + gracePeriod)
        dispatcher.abandonWaitingRequests()
        await dispatcher.waitUntilIdle(before: .now + Self.abandonedAnswersFlushTime)
        MicroHTTPD.stop(running.daemon)
        if let listenSocket { close(listenSocket) }
        dispatcher.suspended.shutdown()
        dispatcher.connections.stopTimer()
        running.context.release()
    }

    /// The number of connections open now.
    public var openConnectionCount: Int {
        dispatcher.connections.count
    }

    /// How long the 503 answers to abandoned requests get to go out before connections close.
    private static let abandonedAnswersFlushTime = Duration.milliseconds(250)
}
