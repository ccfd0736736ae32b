import Synchronization

/// Whether the server still wants the answer to a request. Handlers with queued work check
/// `isCancelled` or register `onCancel` to skip work nobody will receive.
public final class HTTPCancellation: Sendable {
    private enum State {
        case active(actions: [@Sendable () -> Void])
        case cancelled
    }

    private let state = Mutex(State.active(actions: []))

    /// Creates a cancellation that is not cancelled.
    public init() {}

    /// True once the client reset the connection while waiting (a half-close or clean close is
    /// not a reset: see `SuspendedConnections`), or the stopping server gave up.
    public var isCancelled: Bool {
        state.withLock { if case .cancelled = $0 { true } else { false } }
    }

    /// Runs `action` once on cancellation, on the thread that cancels; at once if already cancelled.
    public func onCancel(_ action: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state in
            guard case .active(var actions) = state else { return true }
            actions.append(action)
            state = .active(actions: actions)
            return false
        }
        if runNow { action() }
    }

    /// Marks the request cancelled and runs the registered actions, once.
    package func cancel() {
        let actions = state.withLock { state -> [@Sendable () -> Void] in
            guard case .active(let actions) = state else { return [] }
            state = .cancelled
            return actions
        }
        for action in actions { action() }
    }
}
