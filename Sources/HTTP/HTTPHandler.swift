/// Answers requests. The server calls `handle` once per complete request, on one of its own
/// threads, which must not block: hand slow work elsewhere and answer through the responder
/// later. While the answer is pending the connection is suspended and holds no thread.
public protocol HTTPHandler: Sendable {
    /// Handles one request; answer through `responder`, now or later, from any thread.
    func handle(_ request: HTTPRequest, responder: HTTPResponder)
}

/// Delivers the answer to one request. Callable from any thread; the server keeps the first
/// answer and ignores later ones, and ignores answers to requests it no longer waits for (see
/// `HTTPRequest.cancellation`).
public struct HTTPResponder: Sendable {
    private let deliver: @Sendable (HTTPResponse) -> Void

    /// Creates a responder that passes the answer to `deliver`, e.g. to test a handler in process.
    public init(_ deliver: @escaping @Sendable (HTTPResponse) -> Void) {
        self.deliver = deliver
    }

    /// Answers the request.
    public func respond(_ response: HTTPResponse) {
        deliver(response)
    }
}
