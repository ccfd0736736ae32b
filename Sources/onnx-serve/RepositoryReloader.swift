import Dispatch
import Foundation
import Logging
import Serving

/// What makes the daemon read its repository again: SIGHUP in every control mode (systemd's
/// `ExecReload`), and in `poll` mode a timer. Rescans run one at a time on their own queue, off
/// the HTTP threads; a burst of signals or ticks while one runs costs one more rescan, not many.
final class RepositoryReloader {
    private let queue = DispatchQueue(label: "onnx-serve.repository-reload")
    private let hangUp: any DispatchSourceSignal
    private let timer: (any DispatchSourceTimer)?

    /// Takes over SIGHUP at once (its default action would end the process) and starts the poll
    /// timer; a rescan that comes during start-up loading waits for it.
    init(registry: ModelRegistry, pollInterval: Double?, logger: Logger) {
        signal(SIGHUP, SIG_IGN)
        hangUp = DispatchSource.makeSignalSource(signal: SIGHUP, queue: queue)
        hangUp.setEventHandler {
            logger.info("SIGHUP: rescanning the model repository")
            registry.rescan()
        }
        hangUp.resume()
        timer = pollInterval.map { [queue] seconds in
            let timer = DispatchSource.makeTimerSource(queue: queue)
            timer.schedule(deadline: .now() + seconds, repeating: seconds, leeway: .milliseconds(10))
            timer.setEventHandler { registry.rescan() }
            timer.resume()
            return timer
        }
    }

    deinit {
        hangUp.cancel()
        timer?.cancel()
    }
}
