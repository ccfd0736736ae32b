import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Tells systemd about the service's state (the sd_notify protocol: a datagram to the unix socket
/// named by `NOTIFY_SOCKET`). Does nothing when the variable is unset (not run by systemd, or not
/// `Type=notify`).
enum SystemdNotifier {
    /// Sends a state line such as "READY=1" or "STOPPING=1"; returns whether it was sent.
    @discardableResult
    static func notify(_ state: String) -> Bool {
        guard var path = ProcessInfo.processInfo.environment["NOTIFY_SOCKET"], !path.isEmpty else { return false }
        // A leading '@' names a socket in the abstract namespace (a leading NUL byte).
        let abstract = path.hasPrefix("@")
        if abstract { path.removeFirst() }
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        let offset = abstract ? 1 : 0
        guard bytes.count + offset < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index + offset] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + offset + bytes.count + (abstract ? 0 : 1))
        let message = Array(state.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                sendto(descriptor, message, message.count, 0, socketAddress, length)
            }
        }
        return sent == message.count
    }
}
