/// Every open connection and what it is doing, for the two reasons the server closes a
/// connection itself: its request line and headers did not arrive in time, or the server is
/// stopping and the connection carries no request the handler has. Pure: `OpenConnections` runs
/// it under a lock, with the clock's time, and shuts down the sockets it returns.
package struct ConnectionTable {
    /// A connection's identity while it is open (libmicrohttpd's handle).
    package typealias ID = UInt

    /// What a connection is doing.
    package enum Stage: Equatable {
        /// Waiting for a request's line and headers, which must be complete by `deadline`.
        case awaitingHeaders(deadline: ContinuousClock.Instant)
        /// The headers arrived; the body is arriving.
        case receivingBody
        /// The handler has the request, or its answer is being sent.
        case handling
        /// Its socket was shut down; libmicrohttpd closes it next.
        case shutDown
    }

    private struct Entry {
        let socket: Int32
        var stage: Stage
        /// The request line's target, by address, and the number of query arguments it holds:
        /// checked when libmicrohttpd has parsed them (see `argumentsParsed`).
        var pendingQuery: (target: UInt, arguments: Int)?
    }

    /// How long a new connection may take to send its first request's line and headers.
    package let headerTimeout: Duration
    /// How long a kept-alive connection may take, after an answer, to send the next request's
    /// line and headers (at least `headerTimeout`).
    package let keepAliveTimeout: Duration
    private var entries: [ID: Entry] = [:]
    private var isClosing = false

    /// Creates an empty table.
    package init(headerTimeout: Duration, keepAliveTimeout: Duration) {
        self.headerTimeout = headerTimeout
        self.keepAliveTimeout = max(keepAliveTimeout, headerTimeout)
    }

    /// The number of connections open.
    package var count: Int { entries.count }

    /// The stage of a connection, nil when it is not open.
    package func stage(of id: ID) -> Stage? {
        entries[id]?.stage
    }

    /// A connection was accepted. Returns its socket to shut down when the server is closing.
    package mutating func opened(_ id: ID, socket: Int32, now: ContinuousClock.Instant) -> Int32? {
        entries[id] = Entry(socket: socket, stage: .awaitingHeaders(deadline: now + headerTimeout))
        return isClosing ? shutDown(id) : nil
    }

    /// The number of arguments libmicrohttpd finds in a request target's query: the parts
    /// between `&`s, empty ones included, except an empty last one.
    package static func queryArgumentCount(in target: String) -> Int {
        guard let question = target.utf8.firstIndex(of: UInt8(ascii: "?")) else { return 0 }
        let query = target.utf8[target.utf8.index(after: question)...]
        guard let last = query.last else { return 0 }
        let separators = query.count { $0 == UInt8(ascii: "&") }
        return last == UInt8(ascii: "&") ? separators : separators + 1
    }

    /// A request line arrived with `arguments` query arguments in the target at address `target`.
    package mutating func requestLineArrived(_ id: ID, target: UInt, arguments: Int) {
        entries[id]?.pendingQuery = arguments > 0 ? (target, arguments) : nil
    }

    /// libmicrohttpd finished parsing the query of the target at `target` (it unescapes the
    /// path last): returns the number of arguments it should have found, nil when there is
    /// nothing to check.
    package mutating func argumentsParsed(_ id: ID, target: UInt) -> Int? {
        guard let pending = entries[id]?.pendingQuery, pending.target == target else { return nil }
        entries[id]?.pendingQuery = nil
        return pending.arguments
    }

    /// The request's headers are complete: no header deadline until the next request.
    package mutating func headersArrived(_ id: ID) {
        setStage(.receivingBody, of: id)
    }

    /// The handler has the request.
    package mutating func handling(_ id: ID) {
        setStage(.handling, of: id)
    }

    /// The request ended; a connection kept alive waits for the next one. Returns its socket to
    /// shut down when the server is closing.
    package mutating func requestEnded(_ id: ID, now: ContinuousClock.Instant) -> Int32? {
        setStage(.awaitingHeaders(deadline: now + keepAliveTimeout), of: id)
        return isClosing ? shutDown(id) : nil
    }

    /// libmicrohttpd is about to close the connection's socket.
    package mutating func closed(_ id: ID) {
        entries[id] = nil
    }

    /// The sockets of connections whose headers are late at `now`, marked shut down.
    package mutating func expired(now: ContinuousClock.Instant) -> [Int32] {
        var late: [ID] = []
        for (id, entry) in entries {
            if case .awaitingHeaders(let deadline) = entry.stage, deadline <= now { late.append(id) }
        }
        return late.compactMap { shutDown($0) }
    }

    /// The server is stopping: the sockets of every connection whose request the handler does
    /// not have (idle, sending headers or a body), marked shut down. From now on a connection is
    /// shut down as soon as it opens or its request ends.
    package mutating func close() -> [Int32] {
        isClosing = true
        let idle = entries.compactMap { id, entry in entry.stage == .handling ? nil : id }
        return idle.compactMap { shutDown($0) }
    }

    private mutating func setStage(_ stage: Stage, of id: ID) {
        guard let current = entries[id]?.stage, current != .shutDown else { return }
        entries[id]?.stage = stage
    }

    /// Marks a connection shut down; its socket, the first time only.
    private mutating func shutDown(_ id: ID) -> Int32? {
        guard let entry = entries[id], entry.stage != .shutDown else { return nil }
        entries[id]?.stage = .shutDown
        return entry.socket
    }
}
