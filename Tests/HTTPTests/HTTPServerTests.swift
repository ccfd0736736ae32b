import Foundation
import Glibc
import HTTP
import Synchronization
import Testing

/// The server on 127.0.0.1 port 0, driven by curl and a raw socket client. Serialized: the
/// machine has two cores and some tests count on timing slack (idle timeouts, grace periods).
@Suite(.serialized) struct HTTPServerTests {
    // MARK: Requests and answers

    @Test func answersCurlOnAnEphemeralPort() async throws {
        let server = try startServer()
        #expect(server.port != 0)
        let (status, body) = try curl(["--data-binary", "hello", "http://127.0.0.1:\(server.port)/echo"])
        #expect(status == 200)
        #expect(String(decoding: body, as: UTF8.self) == "hello")
        await server.stop()
    }

    @Test func requestCarriesRawAndDecodedPathQueryAndHeaders() async throws {
        let seen = Mutex<HTTPRequest?>(nil)
        let server = try startServer(handler: ClosureHandler { request, responder in
            seen.withLock { $0 = request }
            responder.respond(HTTPResponse(status: 204))
        })
        let client = try RawClient(port: server.port)
        try client.send("GET /v1/models/a%20b%3Apredict?x=1&y=%2F+z&flag HTTP/1.1\r\nHost: t\r\nX-Custom: Yes\r\n\r\n")
        #expect(try client.readResponse().status == 204)
        let request = try #require(seen.withLock { $0 })
        #expect(request.method == "GET")
        #expect(request.rawPath == "/v1/models/a%20b%3Apredict")
        #expect(request.path == "/v1/models/a b:predict")
        #expect(request.query == [.init(name: "x", value: "1"), .init(name: "y", value: "/ z"), .init(name: "flag", value: nil)])
        #expect(request.headers["x-custom"] == "Yes")
        #expect(request.body.isEmpty)
        await server.stop()
    }

    @Test func keepAliveServesSequentialAndPipelinedRequestsOnOneConnection() async throws {
        let server = try startServer()
        let client = try RawClient(port: server.port)
        for index in 0..<3 {
            try client.send("POST /seq/\(index) HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
            let response = try client.readResponse()
            #expect(response.status == 200)
            #expect(response.headers["X-Path"] == "/seq/\(index)")
            #expect(response.text == "hello")
        }
        try client.send("GET /pipelined/a HTTP/1.1\r\nHost: t\r\n\r\nGET /pipelined/b HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(try client.readResponse().headers["X-Path"] == "/pipelined/a")
        #expect(try client.readResponse().headers["X-Path"] == "/pipelined/b")
        await server.stop()
    }

    @Test func chunkedUploadIsReassembled() async throws {
        let server = try startServer()
        let client = try RawClient(port: server.port)
        try client.send("POST /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        for chunk in ["hello ", "chunked ", "world"] {
            try client.send(String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n")
        }
        try client.send("0\r\n\r\n")
        #expect(try client.readResponse().text == "hello chunked world")

        // curl streams standard input chunked; a larger body crosses many reads.
        let payload = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        let (status, body) = try curl(
            ["-H", "Transfer-Encoding: chunked", "--data-binary", "@-", "http://127.0.0.1:\(server.port)/chunked"],
            input: payload
        )
        #expect(status == 200)
        #expect(body == payload)
        await server.stop()
    }

    @Test func compressedBodiesAreDecodedAndUnknownEncodingsRefused() async throws {
        let server = try startServer()
        let text = Array(String(repeating: "compressible ", count: 1000).utf8)
        for (encoding, gzip) in [("gzip", true), ("deflate", false)] {
            let client = try RawClient(port: server.port)
            let body = compress(text, gzip: gzip)
            try client.send("POST /z HTTP/1.1\r\nHost: t\r\nContent-Encoding: \(encoding)\r\nContent-Length: \(body.count)\r\n\r\n")
            try client.send(body)
            #expect(try client.readResponse().body == text)
        }
        let client = try RawClient(port: server.port)
        try client.send("POST /z HTTP/1.1\r\nHost: t\r\nContent-Encoding: br\r\nContent-Length: 3\r\n\r\nabc")
        let refused = try client.readResponse()
        #expect(refused.status == 415)
        #expect(refused.headers["Content-Type"] == "application/json")
        #expect(refused.text.hasPrefix(#"{"error":"unsupported Content-Encoding 'br'"#))
        await server.stop()
    }

    @Test func answerLibmicrohttpdRefusesBecomesA500() async throws {
        let server = try startServer(handler: ClosureHandler { _, responder in
            responder.respond(HTTPResponse(status: 200, headers: ["Content-Length": "5"], body: Array("hello".utf8)))
        })
        let (status, body) = try curl(["http://127.0.0.1:\(server.port)/"])
        #expect(status == 500)
        #expect(String(decoding: body, as: UTF8.self).contains("Content-Length"))
        await server.stop()
    }

    // MARK: Limits and hostile clients

    @Test func declaredBodyOverTheLimitIs413JSON() async throws {
        let server = try startServer(maxBodySize: 1024)
        let (status, body) = try curl(["--data-binary", String(repeating: "x", count: 2000), "http://127.0.0.1:\(server.port)/"])
        #expect(status == 413)
        #expect(String(decoding: body, as: UTF8.self).hasPrefix(#"{"error":"request body exceeds"#))
        #expect(try curl(["--data-binary", "small", "http://127.0.0.1:\(server.port)/"]).status == 200)
        await server.stop()
    }

    @Test func chunkedBodyCrossingTheLimitIs413AtOnce() async throws {
        let server = try startServer(maxBodySize: 1024)
        let client = try RawClient(port: server.port)
        try client.send("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        let chunk = "3e8\r\n" + String(repeating: "x", count: 1000) + "\r\n"
        try client.send(chunk)
        try client.send(chunk)
        // No final chunk sent: the answer comes when the limit is crossed, not at the end.
        let response = try client.readResponse()
        #expect(response.status == 413)
        #expect(response.headers["Content-Type"] == "application/json")
        #expect(response.text.contains("1024 bytes"))
        #expect(client.waitForClose())
        await server.stop()
    }

    @Test func decodedBodyOverTheLimitIs413() async throws {
        let server = try startServer(maxBodySize: 4096)
        let bomb = compress([UInt8](repeating: 0, count: 1 << 20), gzip: true)
        let client = try RawClient(port: server.port)
        try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Encoding: gzip\r\nContent-Length: \(bomb.count)\r\n\r\n")
        try client.send(bomb)
        #expect(try client.readResponse().status == 413)
        await server.stop()
    }

    @Test func bodyShorterThanItsLengthIsClosedByTheIdleTimeoutWithoutStallingOthers() async throws {
        let server = try startServer(idleTimeout: .seconds(1))
        let stalled = try RawClient(port: server.port)
        try stalled.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly ten b")
        #expect(try curl(["http://127.0.0.1:\(server.port)/other"]).status == 200)
        #expect(stalled.waitForClose())
        #expect(try curl(["http://127.0.0.1:\(server.port)/after"]).status == 200)
        await server.stop()
    }

    @Test func tooLongURLAndTooLargeHeadersGet4xx() async throws {
        let server = try startServer()
        let longURL = try RawClient(port: server.port)
        try longURL.send("GET /" + String(repeating: "a", count: 100_000) + " HTTP/1.1\r\nHost: t\r\n\r\n")
        let urlStatus = try longURL.readResponse().status
        #expect((400..<500).contains(urlStatus))

        let bigHeaders = try RawClient(port: server.port)
        let headers = (0..<200).map { "X-Filler-\($0): " + String(repeating: "h", count: 500) + "\r\n" }.joined()
        try bigHeaders.send("GET / HTTP/1.1\r\nHost: t\r\n" + headers + "\r\n")
        let headerStatus = try bigHeaders.readResponse().status
        #expect((400..<500).contains(headerStatus))

        #expect(try curl(["http://127.0.0.1:\(server.port)/still-serving"]).status == 200)
        await server.stop()
    }

    // MARK: Answers that come later

    /// With 2 threads, 200 requests are all waiting at once: the handler holds every answer
    /// until the 200th request arrives, which can only happen if suspended connections hold no
    /// thread. Then it answers them all from another thread after 200 ms.
    @Test func manyWaitingRequestsHoldNoThreads() async throws {
        let clientCount = 200
        let held = Mutex<[(HTTPRequest, HTTPResponder)]>([])
        let server = try startServer(threadCount: 2, handler: ClosureHandler { request, responder in
            let all = held.withLock { held -> [(HTTPRequest, HTTPResponder)]? in
                held.append((request, responder))
                return held.count == clientCount ? held : nil
            }
            guard let all else { return }
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(200)) {
                for (request, responder) in all {
                    responder.respond(HTTPResponse(status: 200, body: Array(request.path.utf8)))
                }
            }
        })
        let clients = try (0..<clientCount).map { _ in try RawClient(port: server.port, readTimeout: .seconds(20)) }
        for (index, client) in clients.enumerated() {
            try client.send("GET /slow/\(index) HTTP/1.1\r\nHost: t\r\n\r\n")
        }
        for (index, client) in clients.enumerated() {
            let response = try client.readResponse()
            #expect(response.status == 200)
            #expect(response.text == "/slow/\(index)")
        }
        #expect(held.withLock { $0.count } == clientCount)
        await server.stop()
    }

    @Test func clientResettingWhileWaitingCancelsTheRequest() async throws {
        let handler = WaitingHandler()
        let server = try startServer(handler: handler)
        let client = try RawClient(port: server.port)
        try client.send("GET /wait/a HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(await eventually { handler.isWaiting("/wait/a") })
        client.reset()
        #expect(await eventually { handler.isCancelled("/wait/a") })
        // A late answer to the vanished client is dropped, and the server keeps serving.
        handler.answer("/wait/a")
        #expect(try curl(["http://127.0.0.1:\(server.port)/next"]).status == 200)
        await server.stop()
    }

    /// A client that half-closes after its requests (a FIN, as a clean close also sends) and one
    /// with pipelined requests are not hang-ups. No sleep decides it: a second client's reset,
    /// which the hang-up watcher sees after the first client's FIN and pipelined bytes (those
    /// were there when the first client was watched, the FIN was acknowledged before the reset
    /// was sent), must cancel only the second client's request.
    @Test func halfCloseAndPipelinedRequestsBehindAWaitingOneAreNotHangUps() async throws {
        let handler = WaitingHandler()
        let server = try startServer(handler: handler)
        let halfClosed = try RawClient(port: server.port)
        try halfClosed.send("GET /wait/half HTTP/1.1\r\nHost: t\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(await eventually { handler.isWaiting("/wait/half") })
        try halfClosed.halfClose()

        let resetting = try RawClient(port: server.port)
        try resetting.send("GET /wait/reset HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(await eventually { handler.isWaiting("/wait/reset") })
        resetting.reset()
        #expect(await eventually { handler.isCancelled("/wait/reset") })

        #expect(!handler.isCancelled("/wait/half"))
        handler.answer("/wait/half")
        #expect(try halfClosed.readResponse().text == "/wait/half")
        #expect(try halfClosed.readResponse().text == "/next")
        #expect(halfClosed.waitForClose())
        await server.stop()
    }

    // MARK: Stopping

    @Test func stopRefusesNewConnectionsAndLetsWaitingAnswersFinish() async throws {
        let waiting = Mutex<HTTPResponder?>(nil)
        let server = try startServer(handler: ClosureHandler { _, responder in waiting.withLock { $0 = responder } })
        let client = try RawClient(port: server.port)
        try client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(await eventually { waiting.withLock { $0 != nil } })

        let stopping = Task { await server.stop(gracePeriod: .seconds(10)) }
        #expect(await eventually { (try? RawClient(port: server.port)) == nil })
        waiting.withLock { $0 }?.respond(HTTPResponse(status: 200, body: Array("late".utf8)))
        let response = try client.readResponse()
        #expect(response.text == "late")
        #expect(response.headers["Connection"]?.lowercased() == "close")
        await stopping.value
    }

    @Test func stopAnswers503ToRequestsStillWaitingAfterTheGracePeriod() async throws {
        let cancelled = Atomic<Bool>(false)
        let arrived = Atomic<Bool>(false)
        let server = try startServer(handler: ClosureHandler { request, _ in
            request.cancellation.onCancel { cancelled.store(true, ordering: .relaxed) }
            arrived.store(true, ordering: .relaxed)
        })
        let client = try RawClient(port: server.port)
        try client.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(await eventually { arrived.load(ordering: .relaxed) })
        await server.stop(gracePeriod: .milliseconds(100))
        let response = try client.readResponse()
        #expect(response.status == 503)
        #expect(response.text == #"{"error":"the server is shutting down"}"#)
        let wasCancelled = cancelled.load(ordering: .relaxed)
        #expect(wasCancelled)
    }

    // MARK: Addresses

    @Test func startFailsWithTheReasonWhenThePortIsTaken() async throws {
        let first = try startServer()
        #expect {
            try HTTPServer.start(HTTPServer.Configuration(host: "127.0.0.1", port: first.port), handler: echoHandler)
        } throws: { error in
            guard case .startFailed(let reason) = error as? HTTPError else { return false }
            return reason.contains("Address already in use")
        }
        #expect(throws: HTTPError.invalidHost("no.such.host.invalid")) {
            try HTTPServer.start(HTTPServer.Configuration(host: "no.such.host.invalid", port: 0), handler: echoHandler)
        }
        await first.stop()
    }

    @Test(.enabled(if: ipv6LoopbackAvailable)) func listensOnIPv6AndDualStack() async throws {
        let ipv6Only = try startServer(host: "::1")
        #expect(try curl(["http://[::1]:\(ipv6Only.port)/"]).status == 200)
        #expect((try? RawClient(host: "127.0.0.1", port: ipv6Only.port)) == nil)
        await ipv6Only.stop()

        let dualStack = try startServer(host: "::")
        #expect(try curl(["http://[::1]:\(dualStack.port)/"]).status == 200)
        #expect(try curl(["http://127.0.0.1:\(dualStack.port)/"]).status == 200)
        await dualStack.stop()

        let ipv4Only = try startServer(host: "127.0.0.1")
        #expect((try? RawClient(host: "::1", port: ipv4Only.port)) == nil)
        await ipv4Only.stop()
    }
}

/// Whether this machine has an IPv6 loopback to bind.
let ipv6LoopbackAvailable: Bool = {
    let probe = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(probe) }
    var address = sockaddr_in6()
    address.sin6_family = sa_family_t(AF_INET6)
    address.sin6_addr = in6addr_loopback
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(probe, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) == 0 }
    }
}()
