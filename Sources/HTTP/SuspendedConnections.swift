import CMicroHTTPD
@preconcurrency import Dispatch  // DispatchSource is thread-safe but not annotated Sendable
import Glibc
import Synchronization

/// Connections suspended until their answer arrives. libmicrohttpd stops watching a suspended
/// socket, so a client hanging up would go unnoticed: the sockets also sit in an epoll set that
/// reports hang-ups, and a hang-up abandons the exchange, which cancels its request.
/// Closing hands back every exchange still waiting, so a stopping server can answer them.
///
/// What counts as a hang-up: TCP tells a client that closed its socket apart from one that only
/// shut down its sending side (`shutdown(SHUT_WR)`, a complete request and then end-of-file)
/// only once the client refuses data: both send a FIN (EPOLLRDHUP), and a reset (EPOLLERR and
/// EPOLLHUP) comes from a client that closed with unread data or with SO_LINGER 0, or whose
/// host answers a later send with one. Half-closed clients are owed their answer, so only the
/// reset counts: a client that closed cleanly while waiting keeps its request running, and its
/// answer then meets the reset and closes the connection.
final class SuspendedConnections: Sendable {
    private struct Registry {
        var waiting: [UInt64: Exchange] = [:]
        var isClosed = false
    }

    private let epoll: Int32
    private let registry = Mutex(Registry())
    private let hangUps: any DispatchSourceRead

    init() throws(HTTPError) {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw .startFailed("epoll_create1: \(String(cString: strerror(errno)))") }
        hangUps = DispatchSource.makeReadSource(fileDescriptor: epoll, queue: DispatchQueue(label: "onnx-serve.http.hang-ups"))
        hangUps.setEventHandler { [weak self] in self?.abandonHungUp() }
        hangUps.setCancelHandler { [epoll] in Glibc.close(epoll) }
        hangUps.activate()
    }

    /// Starts watching a connection that is being suspended; false when closed (server stopping).
    func watch(_ exchange: Exchange) -> Bool {
        registry.withLock { registry in
            guard !registry.isClosed else { return false }
            // No event asked for: epoll always reports EPOLLERR and EPOLLHUP, the resets; a FIN
            // (EPOLLRDHUP) or pipelined bytes (EPOLLIN) must not wake us.
            var event = epoll_event()
            event.events = 0
            event.data.u64 = exchange.id
            // If this fails the request still works; only a hang-up would go unnoticed.
            _ = epoll_ctl(epoll, EPOLL_CTL_ADD, exchange.socket, &event)
            registry.waiting[exchange.id] = exchange
            return true
        }
    }

    /// Resumes a watched connection; called under the exchange's lock.
    func resume(_ exchange: Exchange) {
        // Unwatch first: once resumed, libmicrohttpd may close the socket and its number be reused.
        _ = epoll_ctl(epoll, EPOLL_CTL_DEL, exchange.socket, nil)
        MicroHTTPD.resume(exchange.connection)
        // Removed only now, so that `close()` never misses a connection not yet resumed.
        _ = registry.withLock { $0.waiting.removeValue(forKey: exchange.id) }
    }

    /// Refuses further connections and returns those still waiting.
    func close() -> [Exchange] {
        registry.withLock { registry in
            registry.isClosed = true
            return Array(registry.waiting.values)
        }
    }

    /// Stops watching for hang-ups, once the daemon has stopped.
    func shutdown() {
        hangUps.cancel()
    }

    private func abandonHungUp() {
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while true {
            let count = Int(epoll_wait(epoll, &events, Int32(events.count), 0))
            guard count > 0 else { return }
            for event in events[..<count] {
                let exchange = registry.withLock { $0.waiting[event.data.u64] }
                exchange?.abandon(reply: nil, suspended: self)
            }
            if count < events.count { return }
        }
    }
}
