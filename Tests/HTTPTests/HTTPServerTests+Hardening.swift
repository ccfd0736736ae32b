import Foundation
import Glibc
import HTTP
import Synchronization
import Testing

/// Hostile clients over real sockets: the memory budget, slow headers, connections per client,
/// requests libmicrohttpd would leave unanswered, and a stop with such connections open. No
/// test waits on a clock: the idle timeout is far longer than any client's read timeout, so
/// an answer or a close seen in time came from the behaviour under test.
extension HTTPServerTests {
    // MARK: Memory budget

    @Test func bodiesPastTheMemoryBudgetGet503AndTheServerKeepsServing() async throws {
        let budget = MemoryBudget(limit: 1 << 20)
        let server = try startServer(idleTimeout: .seconds(60), maxBodySize: 8 << 20, memoryBudget: budget)
        // 2 MiB inflated from a few KiB, past a 1 MiB budget.
        let bomb = compress([UInt8](repeating: 0, count: 2 << 20), gzip: true)
        let client = try RawClient(port: server.port)
        try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Encoding: gzip\r\nContent-Length: \(bomb.count)\r\n\r\n")
        try client.send(bomb)
        let refused = try client.readResponse()
        #expect(refused.status == 503)
        #expect(refused.headers["Retry-After"] == "1")
        #expect(refused.headers["Content-Type"] == "application/json")
        #expect(refused.text.hasPrefix(#"{"error":"the server is short of memory"#))
        #expect(client.waitForClose())
        #expect(await eventually { budget.bytesInUse == 0 })
        #expect(try curl(["--data-binary", "small", "http://127.0.0.1:\(server.port)/"]).status == 200)
        await server.stop()
    }

    /// Stalled bodies hold their bytes against the budget; the next body that does not fit is
    /// refused while they are held, and fits again once they are gone.
    @Test func stalledBodiesHoldTheBudgetUntilTheirConnectionsClose() async throws {
        let budget = MemoryBudget(limit: 3 << 20)
        let server = try startServer(idleTimeout: .seconds(60), maxBodySize: 8 << 20, memoryBudget: budget)
        let inflated = compress([UInt8](repeating: 0, count: 1 << 20), gzip: true)
        var stalled: [RawClient] = []
        for _ in 0..<2 {
            let client = try RawClient(port: server.port)
            try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Encoding: gzip\r\nContent-Length: \(inflated.count + 100)\r\n\r\n")
            try client.send(inflated)
            stalled.append(client)
        }
        #expect(await eventually { budget.bytesInUse >= 2 << 20 })
        let big = [UInt8](repeating: UInt8(ascii: "x"), count: 3 << 19)  // 1.5 MiB
        let refused = try RawClient(port: server.port)
        try refused.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: \(big.count)\r\n\r\n")
        try refused.send(big)
        #expect(try refused.readResponse().status == 503)
        for client in stalled { client.reset() }
        #expect(await eventually { budget.bytesInUse == 0 })
        let accepted = try RawClient(port: server.port)
        try accepted.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: \(big.count)\r\n\r\n")
        try accepted.send(big)
        #expect(try accepted.readResponse().body == big)
        await server.stop()
    }

    /// Every way a request can end gives its body's bytes back: answered, refused, the client
    /// hanging up while sending or while waiting, the idle timeout, the header deadline, a
    /// stopping server's 503.
    @Test func budgetReturnsToZeroAfterEveryKindOfRequestEnd() async throws {
        let budget = MemoryBudget(limit: 64 << 20)
        let handler = WaitingHandler()
        let server = try startServer(idleTimeout: .seconds(1), headerTimeout: .seconds(1), maxBodySize: 1 << 20,
                                     memoryBudget: budget, handler: handler)
        let body = String(repeating: "b", count: 100_000)
        func post(_ path: String, _ client: RawClient, length: Int? = nil, body: String = body) throws {
            try client.send("POST \(path) HTTP/1.1\r\nHost: t\r\nContent-Length: \(length ?? body.utf8.count)\r\n\r\n" + body)
        }

        let answered = try RawClient(port: server.port)
        try post("/now", answered)
        #expect(try answered.readResponse().status == 200)
        #expect(await eventually { budget.bytesInUse == 0 })

        let tooLarge = try RawClient(port: server.port)
        try tooLarge.send("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        try tooLarge.send(String(format: "%x\r\n", 900_000) + String(repeating: "x", count: 900_000) + "\r\n")
        try tooLarge.send(String(format: "%x\r\n", 200_000) + String(repeating: "x", count: 200_000) + "\r\n")
        #expect(try tooLarge.readResponse().status == 413)
        #expect(await eventually { budget.bytesInUse == 0 })

        let hangingUpWhileSending = try RawClient(port: server.port)
        try post("/", hangingUpWhileSending, length: 200_000)
        #expect(await eventually { budget.bytesInUse > 0 })
        hangingUpWhileSending.reset()
        #expect(await eventually { budget.bytesInUse == 0 })

        let hangingUpWhileWaiting = try RawClient(port: server.port)
        try post("/wait/hang-up", hangingUpWhileWaiting)
        #expect(await eventually { handler.isWaiting("/wait/hang-up") })
        #expect(budget.bytesInUse > 0)
        hangingUpWhileWaiting.reset()
        #expect(await eventually { budget.bytesInUse == 0 })

        let timedOut = try RawClient(port: server.port)
        try post("/", timedOut, length: 200_000)
        #expect(timedOut.waitForClose())  // the idle timeout
        #expect(await eventually { budget.bytesInUse == 0 })

        let waitingAtStop = try RawClient(port: server.port)
        try post("/wait/stop", waitingAtStop)
        #expect(await eventually { handler.isWaiting("/wait/stop") })
        await server.stop(gracePeriod: .milliseconds(100))
        #expect(try waitingAtStop.readResponse().status == 503)
        #expect(await eventually { budget.bytesInUse == 0 })
    }

    // MARK: Connections

    @Test func headersNotCompleteByTheDeadlineCloseTheConnectionHoweverSlowlyTheyArrive() async throws {
        let server = try startServer(idleTimeout: .seconds(60), headerTimeout: .seconds(1))
        let slow = try RawClient(port: server.port, readTimeout: .seconds(1))
        try slow.send("GET / HTTP/1.1\r\nHost: t\r\n")
        // One header byte per read timeout (a second, far inside the idle timeout) until closed.
        var closed = false
        for _ in 0..<20 where !closed {
            try? slow.send("X")
            closed = slow.waitForClose()
        }
        #expect(closed)
        #expect(try curl(["http://127.0.0.1:\(server.port)/after"]).status == 200)
        await server.stop()
    }

    @Test func connectionsPastThePerClientLimitAreClosedWhileOtherClientsAreServed() async throws {
        let server = try startServer(threadCount: 1, idleTimeout: .seconds(60), headerTimeout: .seconds(60), maxConnectionsPerClient: 3)
        let held = try (0..<3).map { _ in try RawClient(port: server.port, source: "127.0.0.1") }
        for client in held { try client.send("GET / HTTP/1.1\r\nHost: t\r\n") }
        #expect(await eventually { server.openConnectionCount == 3 }, "\(server.openConnectionCount) open")
        let fourth = try RawClient(port: server.port, source: "127.0.0.1")
        try? fourth.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(fourth.waitForClose())
        // The held clients must stay open until here: Swift may free (and so close) them right
        // after their last use above, which let the fourth in.
        withExtendedLifetime(held) {}
        let other = try RawClient(port: server.port, source: "127.0.0.2")
        try other.send("GET /other HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(try other.readResponse().headers["X-Path"] == "/other")
        await server.stop()
    }

    // MARK: Requests libmicrohttpd would leave unanswered

    @Test func queryWithMoreArgumentsThanFitIs414AtOnce() async throws {
        let seen = Mutex<[HTTPRequest.QueryItem]>([])
        let server = try startServer(idleTimeout: .seconds(60), handler: ClosureHandler { request, responder in
            seen.withLock { $0 = request.query }
            responder.respond(HTTPResponse(status: 200))
        })
        let many = try RawClient(port: server.port)
        try many.send("GET /?" + (0..<600).map { "a\($0)=1" }.joined(separator: "&") + " HTTP/1.1\r\nHost: t\r\n\r\n")
        let refused = try many.readResponse()
        #expect(refused.status == 414)
        #expect(refused.text.contains("query arguments"))
        #expect(many.waitForClose())

        // Empty and value-less arguments count as libmicrohttpd counts them.
        for (query, count) in [("a&&b=&", 3), ("&", 1), ("", 0), ("x=1&y", 2)] {
            let client = try RawClient(port: server.port)
            try client.send("GET /q?\(query) HTTP/1.1\r\nHost: t\r\n\r\n")
            #expect(try client.readResponse().status == 200)
            #expect(seen.withLock { $0.count } == count)
            #expect(ConnectionTable.queryArgumentCount(in: "/q?" + query) == count)
        }
        let hundred = try RawClient(port: server.port)
        try hundred.send("GET /?" + (0..<100).map { "a\($0)=\($0)" }.joined(separator: "&") + " HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(try hundred.readResponse().status == 200)
        #expect(seen.withLock { $0 }.last == HTTPRequest.QueryItem(name: "a99", value: "99"))
        await server.stop()
    }

    @Test func transferCodingOtherThanChunkedIs501AndClosed() async throws {
        let server = try startServer(idleTimeout: .seconds(60))
        let body = compress(Array("{}".utf8), gzip: true)
        let client = try RawClient(port: server.port)
        try client.send("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\(String(body.count, radix: 16))\r\n")
        try client.send(body + Array("\r\n0\r\n\r\n".utf8))
        let response = try client.readResponse()
        #expect(response.status == 501)
        #expect(response.text.contains("Transfer-Encoding 'gzip, chunked'"))
        #expect(client.waitForClose())
        await server.stop()
    }

    @Test(arguments: ["18446744073709551615", "9223372036854775807", "9223372036854775808"])
    func contentLengthBeyondAnyLimitIs413(length: String) async throws {
        let server = try startServer(idleTimeout: .seconds(60))
        let client = try RawClient(port: server.port)
        try client.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: \(length)\r\n\r\n{}")
        #expect(try client.readResponse().status == 413)
        #expect(client.waitForClose())
        await server.stop()
    }

    // MARK: Stopping with hostile connections open

    /// Idle keep-alive connections and connections stalled in their headers or body close as
    /// soon as the server stops, long before their idle timeout, while a request the handler has
    /// still gets its answer.
    @Test func stopClosesIdleAndStalledConnectionsAndAnswersRequestsInFlight() async throws {
        let handler = WaitingHandler()
        let server = try startServer(idleTimeout: .seconds(60), headerTimeout: .seconds(60), handler: handler)
        let keptAlive = try RawClient(port: server.port)
        try keptAlive.send("GET /first HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(try keptAlive.readResponse().status == 200)
        let stalledHeaders = try RawClient(port: server.port)
        try stalledHeaders.send("GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        let stalledBody = try RawClient(port: server.port)
        try stalledBody.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly ten b")
        let inFlight = try RawClient(port: server.port)
        try inFlight.send("GET /wait/in-flight HTTP/1.1\r\nHost: t\r\n\r\n")
        #expect(await eventually { handler.isWaiting("/wait/in-flight") })
        #expect(await eventually { server.openConnectionCount == 4 })

        let stopping = Task { await server.stop(gracePeriod: .seconds(30)) }
        #expect(keptAlive.waitForClose())
        #expect(stalledHeaders.waitForClose())
        #expect(stalledBody.waitForClose())
        handler.answer("/wait/in-flight")
        let answer = try inFlight.readResponse()
        #expect(answer.status == 200)
        #expect(answer.headers["Connection"]?.lowercased() == "close")
        await stopping.value
    }
}
