#if canImport(Glibc)
import Glibc
#endif

/// Collects one request body as libmicrohttpd hands it over in chunks: checks the size limit and
/// the daemon's memory budget as bytes arrive and decodes gzip/deflate on the fly, into one
/// contiguous buffer. Used on one thread at a time; needs nothing from libmicrohttpd, so a fuzz
/// harness drives it as the server does: `init(headers:limit:budget:)`, `append` per chunk,
/// `finish()`.
package final class BodyReader {
    /// Why a body is refused; each maps to one error answer.
    package enum Failure: Error, Equatable {
        /// The body (declared, received or decoded) exceeds the limit.
        case tooLarge(limit: Int)
        /// A `Content-Encoding` other than identity, gzip or deflate.
        case unsupportedEncoding(String)
        /// A `Transfer-Encoding` other than chunked (e.g. `gzip, chunked`).
        case unsupportedTransferEncoding(String)
        /// The memory budget for request data is spent.
        case overBudget
        /// The encoded body does not decode.
        case malformed(String)

        /// The JSON error answer for this failure.
        package var response: HTTPResponse {
            switch self {
            case .tooLarge(let limit):
                .error(status: 413, message: "request body exceeds the maximum allowed size of \(limit) bytes")
            case .unsupportedEncoding(let encoding):
                .error(status: 415, message: "unsupported Content-Encoding '\(encoding)'; supported: gzip, deflate, identity")
            case .unsupportedTransferEncoding(let coding):
                .error(status: 501, message: "unsupported Transfer-Encoding '\(coding)'; supported: chunked")
            case .overBudget:
                .overBudget
            case .malformed(let reason):
                .error(status: 400, message: reason)
            }
        }
    }

    /// Bodies are charged to the budget in steps of this many bytes, so that a large body costs
    /// one reservation per step rather than one per network read.
    package static let chargeStep = 64 << 10

    /// What this body holds against the memory budget, if there is one. It outlives the reader's
    /// use: the request's owner releases it when the request ends.
    package let reservation: MemoryBudget.Reservation?
    private let limit: Int
    private let inflater: Inflater?
    private var encodedBytesSeen = false
    private var body: [UInt8] = []
    /// Bytes of `body`'s storage, from its start, whose pages are known to be faulted in (only
    /// for a declared length, whose storage is reserved whole and never moves).
    private var prefaulted = 0
    /// Bytes from the body's start whose pages `prefault` has populated (for the tests).
    package var populatedBytes: Int { prefaulted }
    /// The declared length when `body`'s storage was reserved for all of it, else 0.
    private var reservedLength = 0

    /// Prepares for the body the headers announce; refuses a declared length over `limit`, a
    /// transfer coding other than chunked and unknown content encodings before any body byte is
    /// read. Bytes kept are charged to `budget`, if given.
    package init(headers: HTTPHeaders, limit: Int, budget: MemoryBudget? = nil) throws(Failure) {
        self.limit = limit
        reservation = budget.map(MemoryBudget.Reservation.init(budget:))
        var declaredLength: Int?
        if let coding = headers["Transfer-Encoding"] {
            // libmicrohttpd decodes a value of exactly "chunked" (any case) and reads any other
            // as a body that ends when the connection does, which no client means.
            guard coding.equalsIgnoringASCIICase("chunked") else {
                throw .unsupportedTransferEncoding(coding)
            }
        } else if let length = headers["Content-Length"] {
            // libmicrohttpd refused anything but digits already, and reads 2^64-1 as "until the
            // connection ends": digits too large for Int are too large.
            guard !length.isEmpty, length.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
                throw .malformed("invalid Content-Length '\(length)'")
            }
            guard let value = Int(length), value <= limit else { throw .tooLarge(limit: limit) }
            declaredLength = value
        }

        switch headers["Content-Encoding"]?.lowercased() ?? "" {
        case "", "identity":
            inflater = nil
            // Address space only: pages cost memory (and budget) as the bytes arrive.
            body.reserveCapacity(declaredLength ?? 0)
            reservedLength = declaredLength ?? 0
        case "gzip", "x-gzip", "deflate":
            inflater = try Inflater()
        case let other:
            throw .unsupportedEncoding(other)
        }
    }

    /// Appends one chunk as it arrived (decoding it if needed); throws once the limit is crossed
    /// or the budget cannot cover the bytes.
    package func append(_ chunk: UnsafeRawBufferPointer) throws(Failure) {
        guard let inflater else {
            try keep(chunk)
            return
        }
        encodedBytesSeen = encodedBytesSeen || !chunk.isEmpty
        try inflater.inflate(chunk) { (decoded) throws(Failure) in try keep(decoded) }
    }

    /// The complete body; throws if an encoded body stopped before its end.
    package func finish() throws(Failure) -> [UInt8] {
        if let inflater, encodedBytesSeen, !inflater.isAtStreamEnd {
            throw .malformed("compressed request body is truncated")
        }
        return body
    }

    private func keep(_ bytes: UnsafeRawBufferPointer) throws(Failure) {
        let (total, overflow) = body.count.addingReportingOverflow(bytes.count)
        guard !overflow, total <= limit else { throw .tooLarge(limit: limit) }
        if let reservation, total > reservation.bytes {
            let step = Self.chargeStep
            let (rounded, roundingOverflow) = total.addingReportingOverflow(step - 1)
            guard reservation.grow(to: roundingOverflow ? total : rounded / step * step) else { throw .overBudget }
        }
        if reservedLength > 0, total > prefaulted { prefault(through: total) }
        body.append(contentsOf: bytes.assumingMemoryBound(to: UInt8.self))
    }

    /// Faults in the pages the next `chargeStep` bytes from `total` on will fill, in one call
    /// instead of one fault per page (a 3 MB body: 1.7 ms of faults, 0.9 ms populated). Never
    /// beyond the declared length, nor beyond what the budget has charged (in whole steps, so up
    /// to a step past the bytes received); without a budget, a step past them. Does nothing where
    /// the kernel cannot (before Linux 5.14): the pages then fault in as they are written.
    private func prefault(through total: Int) {
        let ahead = reservation.map { Swift.max(total, $0.bytes) } ?? total + Self.chargeStep - 1
        let end = min(body.capacity, reservedLength, ahead)
        body.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            let page = 4096
            let first = (Int(bitPattern: base) + prefaulted + page - 1) / page * page
            let last = (Int(bitPattern: base) + end) / page * page
            if last > first, let start = UnsafeMutableRawPointer(bitPattern: first) {
                _ = madvise(start, last - first, Self.populateWrite)
            }
        }
        prefaulted = end
    }

    /// MADV_POPULATE_WRITE (Linux 5.14, not in every libc's headers).
    private static let populateWrite: Int32 = 23
}

extension HTTPResponse {
    /// The answer when the memory budget for request data is spent: try again shortly.
    public static let overBudget: HTTPResponse = {
        var response = HTTPResponse.error(status: 503, message: "the server is short of memory for requests; retry later")
        response.headers["Retry-After"] = "1"
        return response
    }()
}
