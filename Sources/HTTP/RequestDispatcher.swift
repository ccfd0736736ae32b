import CMicroHTTPD
import Glibc
import Synchronization

/// What libmicrohttpd's callbacks call into: creates an `Exchange` per request, feeds it the
/// body, hands complete requests to the handler, queues answers, and counts requests in flight
/// for a graceful stop.
final class RequestDispatcher: Sendable {
    let suspended: SuspendedConnections
    let connections: OpenConnections
    private let handler: any HTTPHandler
    private let maxBodySize: Int
    private let budget: MemoryBudget
    private let log: (@Sendable (String) -> Void)?
    private let nextExchangeID = Atomic<UInt64>(0)
    private let requestsInFlight = Atomic<Int>(0)
    private let isDraining = Atomic<Bool>(false)
    private let lastLibraryMessage = Mutex<String?>(nil)

    init(handler: any HTTPHandler, configuration: HTTPServer.Configuration) throws(HTTPError) {
        self.handler = handler
        maxBodySize = configuration.maxBodySize
        budget = configuration.memoryBudget
        log = configuration.log
        suspended = try SuspendedConnections()
        connections = OpenConnections(headerTimeout: configuration.headerTimeout, keepAliveTimeout: configuration.idleTimeout)
    }

    // MARK: libmicrohttpd callbacks

    func connectionChanged(_ connection: MicroHTTPD.Connection, opened: Bool) {
        if opened { connections.opened(connection) } else { connections.closed(connection) }
    }

    func requestStarted(target: UnsafePointer<CChar>?, connection: MicroHTTPD.Connection) -> Exchange {
        requestsInFlight.add(1, ordering: .relaxed)
        let rawTarget = target.map { String(cString: $0) } ?? ""
        if let target {
            connections.requestLineArrived(connection, target: target, arguments: ConnectionTable.queryArgumentCount(in: rawTarget))
        }
        let id = nextExchangeID.add(1, ordering: .relaxed).newValue
        return Exchange(id: id, connection: connection, rawTarget: rawTarget)
    }

    /// libmicrohttpd 0.9.75 stores query arguments in the connection's fixed memory; when they
    /// do not fit (about 480 short ones in 32 KiB) it queues a 431 but then goes on waiting for
    /// headers that it no longer reads, and the client hears nothing until the idle timeout.
    /// The path is unescaped right after the arguments: if fewer arrived than the target holds,
    /// answer here and shut the socket down, which makes libmicrohttpd close the connection.
    func unescaping(_ text: UnsafeMutablePointer<CChar>, connection: MicroHTTPD.Connection) {
        guard let expected = connections.argumentsParsed(connection, target: text),
              MicroHTTPD.queryItemCount(of: connection) < expected
        else { return }
        let socket = MicroHTTPD.socket(of: connection)
        MicroHTTPD.writeDirectly(.tooManyQueryArguments, to: socket)
        _ = shutdown(socket, Int32(SHUT_RDWR))
    }

    func access(
        _ exchange: Exchange,
        method: UnsafePointer<CChar>?,
        path: UnsafePointer<CChar>?,
        upload: UnsafeRawBufferPointer?
    ) -> MHD_Result {
        let action = exchange.step { state -> ExchangeState.CallbackAction? in
            if let upload { return state.bodyArrived(upload) }
            if state.isAwaitingHeaders {
                connections.headersArrived(exchange.connection)
                return state.headersArrived(MicroHTTPD.headers(of: exchange.connection), bodyLimit: maxBodySize, budget: budget)
            }
            return nil
        } ?? exchange.callbackWithoutBody(suspended: suspended)
        switch action {
        case .proceed, .suspend:
            return .YES
        case .reply(let response):
            return queue(response, on: exchange.connection)
        case .replyAndClose(let response):
            MicroHTTPD.writeDirectly(response, to: exchange.socket)
            return .NO
        case .close:
            return .NO
        case .handle(let headers, let body):
            connections.handling(exchange.connection)
            let rawTarget = exchange.rawTarget
            let request = HTTPRequest(
                method: method.map { String(cString: $0) } ?? "",
                rawPath: String(rawTarget[..<(rawTarget.firstIndex(of: "?") ?? rawTarget.endIndex)]),
                path: path.map { String(cString: $0) } ?? "",
                query: MicroHTTPD.queryItems(of: exchange.connection),
                headers: headers,
                body: body,
                cancellation: exchange.cancellation
            )
            let suspended = suspended
            handler.handle(request, responder: HTTPResponder { exchange.answer($0, suspended: suspended) })
            return exchange.handlerReturned().map { queue($0, on: exchange.connection) } ?? .YES
        }
    }

    func requestEnded(_ exchange: Exchange) {
        exchange.step { $0.end() }
        // libmicrohttpd 0.9.75 takes a read shorter than asked for as "nothing more to read" and
        // may miss an end-of-file that came with the request's last bytes: the connection would
        // stay open until the idle timeout. Shutting down our reading side of a socket that is
        // at end-of-file (all a client sends is in libmicrohttpd's buffer, pipelined requests
        // included) makes epoll report it again; once it has answered those requests,
        // libmicrohttpd reads the end-of-file and closes the connection.
        if MicroHTTPD.clientStoppedSending(exchange.socket) { _ = shutdown(exchange.socket, Int32(SHUT_RD)) }
        connections.requestEnded(exchange.connection)
        requestsInFlight.subtract(1, ordering: .releasing)
    }

    func libraryLogged(_ message: String) {
        let line = message.hasSuffix("\n") ? String(message.dropLast()) : message
        lastLibraryMessage.withLock { $0 = line }
        log?(line)
    }

    /// Queues an answer; if libmicrohttpd refuses it (e.g. a header it forbids), answers 500 instead.
    private func queue(_ response: HTTPResponse, on connection: MicroHTTPD.Connection) -> MHD_Result {
        let closing = isDraining.load(ordering: .relaxed)
        do {
            try MicroHTTPD.queue(response, closing: closing, on: connection)
            return .YES
        } catch {
            log?("\(error)")
            let fallback = HTTPResponse.error(status: 500, message: "the server could not send its answer: \(error)")
            return (try? MicroHTTPD.queue(fallback, closing: closing, on: connection)) != nil ? .YES : .NO
        }
    }

    // MARK: Stopping

    /// The last message libmicrohttpd logged, e.g. why the daemon did not start.
    var lastMessage: String? {
        lastLibraryMessage.withLock { $0 }
    }

    /// From now on, answers close their connection; connections that carry no request the
    /// handler has are closed now, and others as soon as their request ends.
    func beginDraining() {
        isDraining.store(true, ordering: .relaxed)
        connections.close()
    }

    /// Waits until no request is in flight, or until `deadline`.
    func waitUntilIdle(before deadline: ContinuousClock.Instant) async {
        while requestsInFlight.load(ordering: .acquiring) > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Answers 503 to every request still waiting for its handler, and to any that starts
    /// waiting from now on; their cancellations fire.
    func abandonWaitingRequests() {
        for exchange in suspended.close() {
            exchange.abandon(reply: .shuttingDown, suspended: suspended)
        }
    }
}

extension HTTPResponse {
    /// The answer to a target whose query arguments do not fit in the connection's memory.
    static let tooManyQueryArguments = HTTPResponse.error(
        status: 414, message: "the request target has more query arguments than the server accepts")
}
