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
/// truncated bodies, hang-ups at chosen moments. Every read times out, so no test hangs.
final class RawClient {
    private let socket: Int32
    private var buffer: [UInt8] = []

    init(host: String = "127.0.0.1", port: UInt16, readTimeout: Duration = .seconds(10)) throws {
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
        guard connect(socket, address.ai_addr, address.ai_addrlen) == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(socket)
            throw ClientError(description: "connect to \(host):\(port): \(reason)")
        }
    }

    deinit { Glibc.close(socket) }

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
