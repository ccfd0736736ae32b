/// Collects one request body as libmicrohttpd hands it over in chunks: checks the size limit as
/// bytes arrive and decodes gzip/deflate on the fly, into one contiguous buffer. Used on the
/// connection's thread only.
package final class BodyReader {
    /// Why a body is refused; each maps to one error answer.
    package enum Failure: Error, Equatable {
        /// The body (declared, received or decoded) exceeds the limit.
        case tooLarge(limit: Int)
        /// A `Content-Encoding` other than identity, gzip or deflate.
        case unsupportedEncoding(String)
        /// The encoded body does not decode.
        case malformed(String)

        /// The JSON error answer for this failure.
        package var response: HTTPResponse {
            switch self {
            case .tooLarge(let limit):
                .error(status: 413, message: "request body exceeds the maximum allowed size of \(limit) bytes")
            case .unsupportedEncoding(let encoding):
                .error(status: 415, message: "unsupported Content-Encoding '\(encoding)'; supported: gzip, deflate, identity")
            case .malformed(let reason):
                .error(status: 400, message: reason)
            }
        }
    }

    private let limit: Int
    private let inflater: Inflater?
    private var encodedBytesSeen = false
    private var body: [UInt8] = []

    /// Prepares for the body the headers announce; refuses a declared length over `limit` and
    /// unknown encodings before any body byte is read.
    package init(headers: HTTPHeaders, limit: Int) throws(Failure) {
        self.limit = limit
        let isChunked = headers["Transfer-Encoding"].map { $0.lowercased().contains("chunked") } ?? false
        // libmicrohttpd has already rejected a malformed Content-Length.
        let declaredLength = isChunked ? nil : headers["Content-Length"].flatMap { Int($0) }
        if let declaredLength, declaredLength > limit { throw .tooLarge(limit: limit) }

        switch headers["Content-Encoding"]?.lowercased() ?? "" {
        case "", "identity":
            inflater = nil
            body.reserveCapacity(declaredLength ?? 0)
        case "gzip", "x-gzip", "deflate":
            inflater = try Inflater()
        case let other:
            throw .unsupportedEncoding(other)
        }
    }

    /// Appends one chunk as it arrived (decoding it if needed); throws once the limit is crossed.
    package func append(_ chunk: UnsafeRawBufferPointer) throws(Failure) {
        guard let inflater else {
            guard body.count + chunk.count <= limit else { throw .tooLarge(limit: limit) }
            body.append(contentsOf: chunk.assumingMemoryBound(to: UInt8.self))
            return
        }
        encodedBytesSeen = encodedBytesSeen || !chunk.isEmpty
        try inflater.inflate(chunk, appendingTo: &body, limit: limit)
    }

    /// The complete body; throws if an encoded body stopped before its end.
    package func finish() throws(Failure) -> [UInt8] {
        if let inflater, encodedBytesSeen, !inflater.isAtStreamEnd {
            throw .malformed("compressed request body is truncated")
        }
        return body
    }
}
