import HTTP
import Testing

/// The connection table with a made-up clock: header deadlines, kept-alive connections, and
/// what a stopping server closes.
@Suite struct ConnectionTableTests {
    private let start = ContinuousClock.now
    private func table() -> ConnectionTable {
        ConnectionTable(headerTimeout: .seconds(10), keepAliveTimeout: .seconds(30))
    }

    @Test func headersLateAfterOpeningAreShutDownOnce() {
        var table = table()
        #expect(table.opened(1, socket: 11, now: start) == nil)
        #expect(table.opened(2, socket: 12, now: start + .seconds(5)) == nil)
        #expect(table.expired(now: start + .seconds(9)) == [])
        #expect(table.expired(now: start + .seconds(10)) == [11])
        #expect(table.expired(now: start + .seconds(20)) == [12])  // 11 is reported once
        #expect(table.stage(of: 1) == .shutDown)
        table.closed(1)
        table.closed(2)
        #expect(table.count == 0)
    }

    @Test func headersThatArriveStopTheDeadlineUntilTheNextRequest() {
        var table = table()
        _ = table.opened(1, socket: 11, now: start)
        table.headersArrived(1)
        #expect(table.expired(now: start + .seconds(60)) == [])
        table.handling(1)
        // Kept alive after the answer: the next request's headers get the keep-alive time.
        #expect(table.requestEnded(1, now: start + .seconds(60)) == nil)
        #expect(table.stage(of: 1) == .awaitingHeaders(deadline: start + .seconds(90)))
        #expect(table.expired(now: start + .seconds(89)) == [])
        #expect(table.expired(now: start + .seconds(90)) == [11])
        // Nothing revives a connection that was shut down.
        table.headersArrived(1)
        #expect(table.stage(of: 1) == .shutDown)
    }

    @Test func keepAliveTimeIsAtLeastTheHeaderTimeout() {
        var table = ConnectionTable(headerTimeout: .seconds(10), keepAliveTimeout: .seconds(2))
        _ = table.opened(1, socket: 11, now: start)
        _ = table.requestEnded(1, now: start)
        #expect(table.stage(of: 1) == .awaitingHeaders(deadline: start + .seconds(10)))
    }

    @Test func closingShutsDownEveryConnectionWithoutARequestInTheHandler() {
        var table = table()
        _ = table.opened(1, socket: 11, now: start)  // sending headers, or idle
        _ = table.opened(2, socket: 12, now: start)
        table.headersArrived(2)  // sending a body
        _ = table.opened(3, socket: 13, now: start)
        table.headersArrived(3)
        table.handling(3)  // the handler has its request
        #expect(table.close().sorted() == [11, 12])
        #expect(table.stage(of: 3) == .handling)
        // Once its answer is sent the handled one goes too, and so does any late arrival.
        #expect(table.requestEnded(3, now: start) == 13)
        #expect(table.opened(4, socket: 14, now: start) == 14)
        #expect(table.close() == [])
    }

    @Test func queryCheckMatchesOnlyItsOwnTarget() {
        var table = table()
        _ = table.opened(1, socket: 11, now: start)
        table.requestLineArrived(1, target: 0x1000, arguments: 3)
        #expect(table.argumentsParsed(1, target: 0x1004) == nil)  // an argument, not the path
        #expect(table.argumentsParsed(1, target: 0x1000) == 3)
        #expect(table.argumentsParsed(1, target: 0x1000) == nil)  // checked once
        table.requestLineArrived(1, target: 0x2000, arguments: 0)
        #expect(table.argumentsParsed(1, target: 0x2000) == nil)
        #expect(table.argumentsParsed(2, target: 0x2000) == nil)
    }

    @Test(arguments: [("/p", 0), ("/p?", 0), ("/p?a", 1), ("/p?a&", 1), ("/p?&", 1), ("/p?a&&b=", 3), ("/p?&&", 2), ("/p?a=1&b=2?c", 2)])
    func queryArgumentsAreCountedAsLibmicrohttpdDoes(target: String, count: Int) {
        #expect(ConnectionTable.queryArgumentCount(in: target) == count)
    }
}
