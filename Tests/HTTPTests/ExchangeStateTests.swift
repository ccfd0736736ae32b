import HTTP
import Testing

/// The exchange state machine without sockets: the orders in which headers, body, handler
/// answers, hang-ups and a stopping server can meet.
@Suite struct ExchangeStateTests {
    private let ok = HTTPResponse(status: 200, body: Array("ok".utf8))

    private func receivedRequest(body: String = "") -> ExchangeState {
        var state = ExchangeState()
        #expect(state.headersArrived(["Content-Length": "\(body.utf8.count)"], bodyLimit: 100) == .proceed)
        if !body.isEmpty {
            #expect(Array(body.utf8).withUnsafeBytes { state.bodyArrived($0) } == .proceed)
        }
        #expect(state.callbackWithoutBody() == .handle(["Content-Length": "\(body.utf8.count)"], body: Array(body.utf8)))
        return state
    }

    /// The handler returns without answering; libmicrohttpd calls again and the connection is
    /// suspended then.
    private func suspend(_ state: inout ExchangeState) {
        #expect(state.handlerReturned() == .callAgain)
        #expect(state.callbackWithoutBody() == .suspend)
    }

    @Test func answerGivenBeforeTheCallbackAfterTheHandlerReturnedIsQueuedWithoutSuspending() {
        var state = receivedRequest(body: "input")
        #expect(state.handlerReturned() == .callAgain)
        #expect(state.answer(ok) == false)  // nothing to resume
        #expect(state.abandon(reply: nil) == false)  // only a suspended request is abandoned
        #expect(state.callbackWithoutBody() == .reply(ok))
    }

    @Test func answerGivenInsideTheHandlerIsQueuedWhenItReturns() {
        var state = receivedRequest(body: "input")
        #expect(state.answer(ok) == false)
        #expect(state.handlerReturned() == .reply(ok))
        #expect(state.answer(HTTPResponse(status: 500)) == false)  // a second answer is dropped
    }

    @Test func laterAnswerResumesTheSuspendedConnection() {
        var state = receivedRequest()
        suspend(&state)
        #expect(state.answer(ok) == true)
        #expect(state.abandon(reply: nil) == false)  // too late to abandon: the answer won
        #expect(state.callbackWithoutBody() == .reply(ok))
    }

    @Test func hangUpWhileWaitingClosesAndDropsTheLateAnswer() {
        var state = receivedRequest()
        suspend(&state)
        #expect(state.abandon(reply: nil) == true)
        #expect(state.answer(ok) == false)
        #expect(state.callbackWithoutBody() == .close)
    }

    @Test func stoppingServerAnswersForTheHandler() {
        var state = receivedRequest()
        suspend(&state)
        let unavailable = HTTPResponse(status: 503)
        #expect(state.abandon(reply: unavailable) == true)
        #expect(state.callbackWithoutBody() == .reply(unavailable))
    }

    @Test func refusedHeadersAreAnsweredAtOnce() {
        var state = ExchangeState()
        guard case .reply(let response) = state.headersArrived(["Content-Length": "101"], bodyLimit: 100) else {
            Issue.record("expected an answer")
            return
        }
        #expect(response.status == 413)
    }

    @Test func bodyCrossingTheLimitIsAnsweredAndClosedAtOnce() {
        var state = ExchangeState()
        #expect(state.headersArrived(["Transfer-Encoding": "chunked"], bodyLimit: 4) == .proceed)
        guard case .replyAndClose(let response) = Array("12345".utf8).withUnsafeBytes({ state.bodyArrived($0) }) else {
            Issue.record("expected an answer and a close")
            return
        }
        #expect(response.status == 413)
    }

    @Test func requestEndingWhileWaitingIgnoresEverythingAfter() {
        var state = receivedRequest()
        suspend(&state)
        state.end()
        #expect(state.answer(ok) == false)
        #expect(state.abandon(reply: nil) == false)
    }

    @Test func bodyBytesStayChargedUntilTheRequestEnds() {
        let budget = MemoryBudget(limit: 1 << 20)
        var state = ExchangeState()
        #expect(state.headersArrived(["Content-Length": "5"], bodyLimit: 100, budget: budget) == .proceed)
        #expect(Array("input".utf8).withUnsafeBytes { state.bodyArrived($0) } == .proceed)
        #expect(state.callbackWithoutBody() == .handle(["Content-Length": "5"], body: Array("input".utf8)))
        suspend(&state)
        #expect(budget.bytesInUse > 0)  // the handler still holds the body
        #expect(state.abandon(reply: nil) == true)
        #expect(budget.bytesInUse > 0)
        state.end()
        #expect(budget.bytesInUse == 0)
    }

    @Test func bodyPastTheBudgetIsAnswered503AndItsBytesGiveBackAtOnce() {
        let budget = MemoryBudget(limit: 1 << 20)
        #expect(budget.reserve((1 << 20) - 100))
        var state = ExchangeState()
        #expect(state.headersArrived(["Transfer-Encoding": "chunked"], bodyLimit: 1 << 20, budget: budget) == .proceed)
        guard case .replyAndClose(let response) = Array("12345".utf8).withUnsafeBytes({ state.bodyArrived($0) }) else {
            Issue.record("expected an answer and a close")
            return
        }
        #expect(response.status == 503)
        #expect(response.headers["Retry-After"] == "1")
        #expect(budget.bytesInUse == (1 << 20) - 100)
        state.end()
        #expect(budget.bytesInUse == (1 << 20) - 100)
    }

    @Test func refusedTransferCodingIsAnswered501BeforeTheBody() {
        var state = ExchangeState()
        guard case .reply(let response) = state.headersArrived(["Transfer-Encoding": "gzip, chunked"], bodyLimit: 100) else {
            Issue.record("expected an answer")
            return
        }
        #expect(response.status == 501)
    }
}
