import CZlib
import Foundation
import HTTP
import Synchronization

/// A handler made of a closure.
struct ClosureHandler: HTTPHandler {
    let body: @Sendable (HTTPRequest, HTTPResponder) -> Void

    init(_ body: @escaping @Sendable (HTTPRequest, HTTPResponder) -> Void) {
        self.body = body
    }

    func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        body(request, responder)
    }
}

/// Answers at once with the request body, and the request's path in `X-Path`.
let echoHandler = ClosureHandler { request, responder in
    responder.respond(HTTPResponse(status: 200, headers: ["X-Path": request.path], body: request.body))
}

/// A handler that answers `/wait/...` only when the test says so, and everything else at once.
final class WaitingHandler: HTTPHandler {
    private let waiting = Mutex<[String: HTTPResponder]>([:])
    private let cancelled = Mutex<Set<String>>([])

    func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        guard request.path.hasPrefix("/wait/") else {
            responder.respond(HTTPResponse(status: 200, body: Array(request.path.utf8)))
            return
        }
        let path = request.path
        request.cancellation.onCancel { [weak self] in _ = self?.cancelled.withLock { $0.insert(path) } }
        waiting.withLock { $0[path] = responder }
    }

    func isWaiting(_ path: String) -> Bool { waiting.withLock { $0[path] != nil } }
    func isCancelled(_ path: String) -> Bool { cancelled.withLock { $0.contains(path) } }

    func answer(_ path: String) {
        waiting.withLock { $0[path] }?.respond(HTTPResponse(status: 200, body: Array(path.utf8)))
    }
}

/// Starts a server on IPv4 loopback, port 0, with short timeouts and small limits for tests.
func startServer(
    host: String = "127.0.0.1",
    threadCount: Int = 2,
    idleTimeout: Duration = .seconds(5),
    headerTimeout: Duration = .seconds(5),
    maxConnectionsPerClient: Int = 0,
    maxBodySize: Int = 1 << 20,
    memoryBudget: MemoryBudget = MemoryBudget(limit: .max),
    handler: some HTTPHandler = echoHandler
) throws -> HTTPServer {
    try HTTPServer.start(
        HTTPServer.Configuration(
            host: host, port: 0, threadCount: threadCount, idleTimeout: idleTimeout, headerTimeout: headerTimeout,
            maxConnectionsPerClient: maxConnectionsPerClient, maxBodySize: maxBodySize, memoryBudget: memoryBudget),
        handler: handler
    )
}

/// Runs curl; returns the status and the body.
func curl(_ arguments: [String], input: Data? = nil) throws -> (status: Int, body: Data) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    process.arguments = ["--silent", "--show-error", "--max-time", "20", "--output", "-", "--write-out", "\n%{http_code}"] + arguments
    let output = Pipe()
    let inputPipe = Pipe()
    process.standardOutput = output
    process.standardInput = inputPipe
    try process.run()
    inputPipe.fileHandleForWriting.write(input ?? Data())
    try inputPipe.fileHandleForWriting.close()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard let newline = data.lastIndex(of: UInt8(ascii: "\n")),
          let status = Int(String(decoding: data[(newline + 1)...], as: UTF8.self))
    else { throw ClientError(description: "curl printed no status") }
    return (status, data[..<newline])
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(within timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { return false }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return true
}

/// Compresses with zlib: `gzip` framing (window bits 31) or zlib framing, HTTP's "deflate" (15).
func compress(_ bytes: [UInt8], gzip: Bool) -> [UInt8] {
    // On the heap: zlib keeps a pointer back to the stream.
    let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    stream.initialize(to: z_stream())
    defer { deflateEnd(stream); stream.deallocate() }
    let windowBits: Int32 = gzip ? 31 : 15
    let initialised = deflateInit2_(stream, Z_BEST_COMPRESSION, Z_DEFLATED, windowBits, 8, Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
    precondition(initialised == Z_OK)
    var input = bytes
    var output = [UInt8](repeating: 0, count: Int(deflateBound(stream, UInt(bytes.count))))
    input.withUnsafeMutableBufferPointer { input in
        output.withUnsafeMutableBufferPointer { output in
            stream.pointee.next_in = input.baseAddress
            stream.pointee.avail_in = UInt32(input.count)
            stream.pointee.next_out = output.baseAddress
            stream.pointee.avail_out = UInt32(output.count)
            precondition(deflate(stream, Z_FINISH) == Z_STREAM_END)
        }
    }
    return Array(output[..<Int(stream.pointee.total_out)])
}
