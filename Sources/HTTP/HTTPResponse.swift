/// An answer to one request. The server adds `Content-Length`, `Date` and `Connection`.
public struct HTTPResponse: Sendable, Equatable {
    /// The status code, e.g. 200.
    public var status: Int
    /// The response headers.
    public var headers: HTTPHeaders
    /// The body, handed to libmicrohttpd without a copy.
    public var body: [UInt8]

    /// Creates a response.
    public init(status: Int = 200, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

// MARK: - JSON errors

extension HTTPResponse {
    /// A `{"error": message}` JSON response, the error shape of TF Serving and Triton.
    public static func error(status: Int, message: String) -> HTTPResponse {
        var body = Array(#"{"error":""#.utf8)
        appendJSONEscaped(message, to: &body)
        body.append(contentsOf: #""}"#.utf8)
        return HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: body)
    }

    private static func appendJSONEscaped(_ text: String, to out: inout [UInt8]) {
        let hexDigits = Array("0123456789abcdef".utf8)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), byte]
            case UInt8(ascii: "\n"): out += Array(#"\n"#.utf8)
            case UInt8(ascii: "\r"): out += Array(#"\r"#.utf8)
            case UInt8(ascii: "\t"): out += Array(#"\t"#.utf8)
            case ..<0x20: out += Array(#"\u00"#.utf8) + [hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
    }
}
