/// One complete HTTP request, as handed to an `HTTPHandler`.
public struct HTTPRequest: Sendable {
    /// One `name[=value]` pair of the query string, percent-decoded (`+` is a space).
    public struct QueryItem: Sendable, Equatable {
        /// The decoded name.
        public var name: String
        /// The decoded value; nil when the item has no `=`.
        public var value: String?

        /// Creates a query item.
        public init(name: String, value: String?) {
            self.name = name
            self.value = value
        }
    }

    /// The request method as sent, e.g. `GET` or `POST`.
    public var method: String
    /// The path as sent: still percent-encoded, without the query string.
    public var rawPath: String
    /// The percent-decoded path.
    public var path: String
    /// The query items in order.
    public var query: [QueryItem]
    /// The request headers.
    public var headers: HTTPHeaders
    /// The whole body in one contiguous buffer, already decoded when it came with a gzip or
    /// deflate `Content-Encoding`. Read it in place with `body.withUnsafeBytes`.
    public var body: [UInt8]
    /// Tells whether the server still wants an answer: it is cancelled when the client resets
    /// the connection while waiting, or when a stopping server gives up on the request.
    public let cancellation: HTTPCancellation

    /// Creates a request, e.g. to call a handler in process. `path` defaults to `rawPath`.
    public init(
        method: String,
        rawPath: String,
        path: String? = nil,
        query: [QueryItem] = [],
        headers: HTTPHeaders = [:],
        body: [UInt8] = [],
        cancellation: HTTPCancellation = HTTPCancellation()
    ) {
        self.method = method
        self.rawPath = rawPath
        self.path = path ?? rawPath
        self.query = query
        self.headers = headers
        self.body = body
        self.cancellation = cancellation
    }
}
