import Synchronization

/// One request between libmicrohttpd and the handler. The connection keeps it (retained) from
/// the request line to the end of the request; the handler's responder may keep it longer and
/// then finds it finished. Lock order: an exchange's lock, then `SuspendedConnections`' lock.
final class Exchange: Sendable {
    let id: UInt64
    let connection: MicroHTTPD.Connection
    /// The connection's socket, for hang-up watching and early error answers.
    let socket: Int32
    /// The request target exactly as sent (path and query, percent-encoded).
    let rawTarget: String
    let cancellation = HTTPCancellation()
    private let state = Mutex(ExchangeState())

    init(id: UInt64, connection: MicroHTTPD.Connection, rawTarget: String) {
        self.id = id
        self.connection = connection
        self.socket = MicroHTTPD.socket(of: connection)
        self.rawTarget = rawTarget
    }

    /// Runs one libmicrohttpd callback's step of the state machine.
    func step<Result: Sendable>(_ body: (inout ExchangeState) -> Result) -> Result {
        state.withLock { body(&$0) }
    }

    /// After the handler returned: the answer to queue now, or nil when there is none yet and
    /// the callback returns without one (see `ExchangeState`). Called on the connection's thread.
    func handlerReturned() -> HTTPResponse? {
        state.withLock { state in
            switch state.handlerReturned() {
            case .reply(let response): response
            case .callAgain: nil
            }
        }
    }

    /// A libmicrohttpd callback without body bytes after the headers (see
    /// `ExchangeState.callbackWithoutBody`); suspends the connection when that is the step, or
    /// answers 503 when the server is stopping and has answered everyone waiting already.
    /// Called on the connection's thread.
    func callbackWithoutBody(suspended: SuspendedConnections) -> ExchangeState.CallbackAction {
        let (action, refused) = state.withLock { state -> (ExchangeState.CallbackAction, Bool) in
            let action = state.callbackWithoutBody()
            guard action == .suspend else { return (action, false) }
            guard suspended.watch(self) else {
                _ = state.abandon(reply: .shuttingDown)
                return (state.callbackWithoutBody(), true)
            }
            MicroHTTPD.suspend(connection)
            return (action, false)
        }
        if refused { cancellation.cancel() }
        return action
    }

    /// Delivers the handler's answer, from any thread; resumes the connection if it waits.
    func answer(_ response: HTTPResponse, suspended: SuspendedConnections) {
        state.withLock { state in
            if state.answer(response) { suspended.resume(self) }
        }
    }

    /// Gives up waiting for the answer (see `ExchangeState.abandon`) and cancels the request.
    func abandon(reply: HTTPResponse?, suspended: SuspendedConnections) {
        let abandoned = state.withLock { state in
            guard state.abandon(reply: reply) else { return false }
            suspended.resume(self)
            return true
        }
        if abandoned { cancellation.cancel() }
    }
}

extension HTTPResponse {
    /// The answer to requests still waiting when a stopping server's grace period ends.
    static let shuttingDown = HTTPResponse.error(status: 503, message: "the server is shutting down")
}
