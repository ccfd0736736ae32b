import Glibc
import HTTP

struct ClientError: Error, CustomStringConvertible {
    let description: String
}

/// A response as read off the wire.
struct RawResponse {
    let status: Int
    let headers: HTTPHeaders
    let body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }
}

/// A blocking TCP client, for what curl cannot send: pipelined requests, hand-made chunked or
/// truncated bodies, half-closes and hang-ups at chosen moments, a chosen source address. Every
/// read times out, so no test hangs.
final class RawClient {
    private var socket: Int32
    private var buffer: [UInt8] = []

    /// Connects to `host`:`port`, from `source` (an address of this machine) if given.
    init(host: String = "127.0.0.1", port: UInt16, source: String? = nil, readTimeout: Duration = .seconds(10)) throws {
        var hints = addrinfo()
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var results: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &results) == 0, let address = results?.pointee else {
            throw ClientError(description: "cannot resolve \(host)")
        }
        defer { freeaddrinfo(results) }
        socket = Glibc.socket(address.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: Int(readTimeout.components.seconds), tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            guard inet_pton(AF_INET, source, &local.sin_addr) == 1, withUnsafePointer(to: &local, {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }) == 0 else {
                Glibc.close(socket)
                socket = -1  // deinit runs for a class whose init throws once its properties are set
                throw ClientError(description: "cannot bind to \(source)")
            }
        }
        guard connect(socket, address.ai_addr, address.ai_addrlen) == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(socket)
            socket = -1  // see above: closing twice would close whatever socket reused the number
            throw ClientError(description: "connect to \(host):\(port): \(reason)")
        }
    }

    deinit { if socket >= 0 { Glibc.close(socket) } }

    func send(_ text: String) throws {
        try send(Array(text.utf8))
    }

    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw ClientError(description: "send: \(String(cString: strerror(errno)))") }
            sent += count
        }
    }

    /// Reads one response with a Content-Length body.
    func readResponse() throws -> RawResponse {
        let headEnd = try readUntil(Array("\r\n\r\n".utf8))
        let head = String(decoding: buffer[..<headEnd], as: UTF8.self)
        buffer.removeFirst(headEnd + 4)
        var lines = head.split(separator: "\r\n").map(String.init)
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
            throw ClientError(description: "bad status line in \(head)")
        }
        var headers = HTTPHeaders()
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append(name: String(line[..<colon]), value: String(line[line.index(after: colon)...].drop { $0 == " " }))
        }
        let length = Int(headers["Content-Length"] ?? "0") ?? 0
        while buffer.count < length { try fill() }
        let body = Array(buffer[..<length])
        buffer.removeFirst(length)
        return RawResponse(status: status, headers: headers, body: body)
    }

    /// Shuts down the sending side (the server reads end-of-file) and waits until the server's
    /// kernel has acknowledged it (the socket in FIN_WAIT2), so the server has seen it.
    func halfClose() throws {
        guard Glibc.shutdown(socket, Int32(SHUT_WR)) == 0 else { throw ClientError(description: "shutdown: \(String(cString: strerror(errno)))") }
        let finWait2: UInt8 = 5  // TCP_FIN_WAIT2 in linux/tcp_states.h
        for _ in 0..<10_000 {
            var info = tcp_info()
            var size = socklen_t(MemoryLayout<tcp_info>.size)
            guard getsockopt(socket, Int32(IPPROTO_TCP), TCP_INFO, &info, &size) == 0 else { break }
            if info.tcpi_state == finWait2 { return }
            usleep(1000)
        }
        throw ClientError(description: "the server did not acknowledge the half-close")
    }

    /// Closes with a reset (SO_LINGER 0) instead of a FIN, as a client that gave up does when it
    /// leaves unread data or sets no linger time. The client is unusable afterwards.
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(socket, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        Glibc.close(socket)
        socket = -1
    }

    /// True when the server closes the connection (end of stream or reset) before the read
    /// timeout, with nothing more to read.
    func waitForClose() -> Bool {
        var byte: UInt8 = 0
        let count = recv(socket, &byte, 1, 0)
        return count == 0 || (count < 0 && errno == ECONNRESET)
    }

    private func readUntil(_ marker: [UInt8]) throws -> Int {
        while true {
            if let end = buffer.firstRange(of: marker)?.lowerBound { return end }
            try fill()
        }
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = recv(socket, &chunk, chunk.count, 0)
        guard count > 0 else {
            throw ClientError(description: count == 0 ? "connection closed" : "recv: \(String(cString: strerror(errno)))")
        }
        buffer += chunk[..<count]
    }
}
