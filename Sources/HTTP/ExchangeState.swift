/// The life of one request, from libmicrohttpd's first callback to the end of the request:
/// receiving the body, waiting for the handler's answer (with the connection suspended), and
/// giving up on it. Pure: `Exchange` runs it under a lock and applies the results to
/// libmicrohttpd.
///
/// A handler that returns without answering gets its connection suspended at the callback
/// after, not at once. libmicrohttpd 0.9.75 updates what a connection waits for (to read, to
/// write, or neither) at the end of a callback's pass, except for a suspended connection. One
/// suspended by the request's last callback thus keeps waiting to read, as while the request
/// arrived, and once resumed it reads before it sends: a client that has shut down its sending
/// side meanwhile (a complete request, then end-of-file) reads as end-of-file there, and
/// libmicrohttpd closes the connection without the answer. Returning from the last callback
/// without an answer leaves the connection waiting for neither; libmicrohttpd calls again on
/// its next pass, and the connection suspended then reads nothing when resumed.
package struct ExchangeState {
    private enum Phase {
        /// Created from the request line; headers not seen yet.
        case awaitingHeaders
        /// The body is arriving.
        case receiving(headers: HTTPHeaders, body: BodyReader)
        /// The request was refused with an error answer while receiving.
        case rejected
        /// The handler has the request and has not answered yet.
        case handling
        /// The handler returned without answering: suspend at the next callback.
        case returned
        /// The connection is suspended until the answer arrives or the request is abandoned.
        case suspended
        /// An answer waits to be queued on the connection's thread.
        case answered(HTTPResponse)
        /// Nobody waits for the answer any more: close the connection.
        case abandoned
        /// The answer was queued, or the request ended.
        case finished
    }

    /// What to do at the end of a libmicrohttpd access callback.
    package enum CallbackAction: Equatable {
        /// Nothing more; keep reading.
        case proceed
        /// Queue this answer now.
        case reply(HTTPResponse)
        /// Answer and close while the body is still arriving (libmicrohttpd cannot queue then).
        case replyAndClose(HTTPResponse)
        /// Give the complete request to the handler.
        case handle(HTTPHeaders, body: [UInt8])
        /// Close the connection without an answer.
        case close
        /// Suspend the connection until the answer comes.
        case suspend
    }

    /// What to do when the handler returns.
    package enum HandlerReturnAction: Equatable {
        /// The handler answered already: queue it now.
        case reply(HTTPResponse)
        /// No answer yet: return without one; libmicrohttpd calls again (see the type's comment).
        case callAgain
    }

    private var phase = Phase.awaitingHeaders
    /// What the body holds against the memory budget, from the headers to the end of the request.
    private var bodyReservation: MemoryBudget.Reservation?

    package init() {}

    /// True until the first callback: the next one carries the headers.
    package var isAwaitingHeaders: Bool {
        if case .awaitingHeaders = phase { true } else { false }
    }

    /// The first callback, with the headers: decide whether to accept the body, whose bytes are
    /// charged to `budget` until the request ends.
    package mutating func headersArrived(_ headers: HTTPHeaders, bodyLimit: Int, budget: MemoryBudget? = nil) -> CallbackAction {
        guard case .awaitingHeaders = phase else { return .close }
        do {
            let body = try BodyReader(headers: headers, limit: bodyLimit, budget: budget)
            bodyReservation = body.reservation
            phase = .receiving(headers: headers, body: body)
            return .proceed
        } catch {
            phase = .rejected
            return .reply(error.response)
        }
    }

    /// A callback with body bytes.
    package mutating func bodyArrived(_ chunk: UnsafeRawBufferPointer) -> CallbackAction {
        guard case .receiving(_, let body) = phase else { return .close }
        do {
            try body.append(chunk)
            return .proceed
        } catch {
            reject()
            return .replyAndClose(error.response)
        }
    }

    /// A callback without body bytes after the headers: the body is complete, the handler
    /// returned without answering, or the suspended connection was resumed.
    package mutating func callbackWithoutBody() -> CallbackAction {
        switch phase {
        case .returned:
            phase = .suspended
            return .suspend
        case .receiving(let headers, let body):
            do {
                let bytes = try body.finish()
                phase = .handling
                return .handle(headers, body: bytes)
            } catch {
                reject()
                return .reply(error.response)
            }
        case .answered(let response):
            phase = .finished
            return .reply(response)
        default:
            phase = .finished
            return .close
        }
    }

    /// The handler returned, with or without having answered.
    package mutating func handlerReturned() -> HandlerReturnAction {
        if case .answered(let response) = phase {
            phase = .finished
            return .reply(response)
        }
        phase = .returned
        return .callAgain
    }

    /// The handler's answer; true when the suspended connection must be resumed to send it.
    /// Answers after the first, or to an abandoned request, are dropped.
    package mutating func answer(_ response: HTTPResponse) -> Bool {
        switch phase {
        case .handling, .returned:
            phase = .answered(response)
            return false
        case .suspended:
            phase = .answered(response)
            return true
        default:
            return false
        }
    }

    /// Stop waiting for the handler: close the connection (`reply` nil, the client is gone) or
    /// send `reply`. True when the request was still waiting: resume the connection and cancel
    /// the request.
    package mutating func abandon(reply: HTTPResponse?) -> Bool {
        guard case .suspended = phase else { return false }
        phase = reply.map { .answered($0) } ?? .abandoned
        return true
    }

    /// Refuses the body, whose bytes are dropped now.
    private mutating func reject() {
        phase = .rejected
        bodyReservation?.release()
    }

    /// The request ended (answer sent, connection closed or timed out): the body's memory is
    /// given back to the budget.
    package mutating func end() {
        phase = .finished
        bodyReservation?.release()
    }
}
