@preconcurrency import Dispatch  // DispatchSource is thread-safe but not annotated Sendable
import Glibc
import Synchronization

/// The server's open connections (a `ConnectionTable` under a lock), told of each connection's
/// stages by libmicrohttpd's callbacks. A timer shuts down the sockets of connections whose
/// headers are late, and a stopping server shuts down those that carry no request.
///
/// libmicrohttpd tells us a connection closed before it closes its socket, and that callback
/// waits for this lock; every `shutdown` here runs under the lock for a connection still in the
/// table, so it can never reach a socket number that was closed and reused meanwhile. A shut-down
/// socket reports a hang-up to libmicrohttpd's epoll loop, which then closes the connection.
final class OpenConnections: Sendable {
    private let table: Mutex<ConnectionTable>
    private let deadlineTimer: any DispatchSourceTimer

    init(headerTimeout: Duration, keepAliveTimeout: Duration) {
        table = Mutex(ConnectionTable(headerTimeout: headerTimeout, keepAliveTimeout: keepAliveTimeout))
        // Deadlines are met to within an eighth of the header timeout, at most half a second.
        let interval = max(.milliseconds(10), min(headerTimeout / 8, .milliseconds(500))).components
        let milliseconds = Int(interval.seconds) * 1000 + Int(interval.attoseconds / 1_000_000_000_000_000)
        deadlineTimer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "onnx-serve.http.header-deadlines"))
        deadlineTimer.schedule(deadline: .now(), repeating: .milliseconds(milliseconds))
        deadlineTimer.setEventHandler { [weak self] in
            self?.shutDown { $0.expired(now: .now) }
        }
        deadlineTimer.activate()
    }

    /// The number of connections open.
    var count: Int {
        table.withLock { $0.count }
    }

    func opened(_ connection: MicroHTTPD.Connection) {
        let socket = MicroHTTPD.socket(of: connection)
        shutDown { $0.opened(connection.id, socket: socket, now: .now).map { [$0] } ?? [] }
    }

    func requestLineArrived(_ connection: MicroHTTPD.Connection, target: UnsafePointer<CChar>, arguments: Int) {
        table.withLock { $0.requestLineArrived(connection.id, target: UInt(bitPattern: target), arguments: arguments) }
    }

    func argumentsParsed(_ connection: MicroHTTPD.Connection, target: UnsafePointer<CChar>) -> Int? {
        table.withLock { $0.argumentsParsed(connection.id, target: UInt(bitPattern: target)) }
    }

    func headersArrived(_ connection: MicroHTTPD.Connection) {
        table.withLock { $0.headersArrived(connection.id) }
    }

    func handling(_ connection: MicroHTTPD.Connection) {
        table.withLock { $0.handling(connection.id) }
    }

    func requestEnded(_ connection: MicroHTTPD.Connection) {
        shutDown { $0.requestEnded(connection.id, now: .now).map { [$0] } ?? [] }
    }

    func closed(_ connection: MicroHTTPD.Connection) {
        table.withLock { $0.closed(connection.id) }
    }

    /// Shuts down every connection whose request the handler does not have, and from now on
    /// each connection as soon as it opens or its request ends.
    func close() {
        shutDown { $0.close() }
    }

    /// Stops the deadline timer, once the daemon has stopped.
    func stopTimer() {
        deadlineTimer.cancel()
    }

    /// Shuts down the sockets `choose` returns, under the table's lock (see the type's comment).
    private func shutDown(_ choose: (inout ConnectionTable) -> [Int32]) {
        table.withLock { table in
            for socket in choose(&table) { _ = Glibc.shutdown(socket, Int32(SHUT_RDWR)) }
        }
    }
}

extension MicroHTTPD.Connection {
    /// The connection's identity in a `ConnectionTable`.
    var id: ConnectionTable.ID { UInt(bitPattern: handle) }
}
