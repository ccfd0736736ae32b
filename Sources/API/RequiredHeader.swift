public import HTTP
import Serving

/// A header and value a group of routes requires, as Triton's `--http-restricted-api`
/// (`model-repository:HEADER=VALUE`): requests without it are refused with 403.
public struct RequiredHeader: Sendable, Equatable {
    /// Header name (matched case-insensitively, as every HTTP header name).
    public var name: String
    /// The exact value required.
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// Parses `HEADER=VALUE` (the value may contain `=`); nil when either side is empty.
    public init?(parsing text: String) {
        guard let separator = text.firstIndex(of: "=") else { return nil }
        let name = String(text[..<separator]).trimmingASCIIWhitespace
        let value = String(text[text.index(after: separator)...])
        guard !name.isEmpty, !value.isEmpty, name.utf8.allSatisfy(Self.isTokenByte) else { return nil }
        self.init(name: name, value: value)
    }

    /// Throws 403 unless `headers` carry the value. The comparison takes the same time wherever
    /// the first difference is, so a client cannot find the value byte by byte.
    func check(_ headers: HTTPHeaders, api: String) throws(ServingError) {
        let given = headers[name].map { Array($0.utf8) } ?? []
        let expected = Array(value.utf8)
        var difference = given.count ^ expected.count
        for index in expected.indices {
            difference |= Int(expected[index] ^ (index < given.count ? given[index] : 0))
        }
        guard difference == 0 else {
            throw .permissionDenied("This API is restricted, expecting header '\(name)' with valid value (\(api))")
        }
    }

    /// RFC 9110 token characters, the only ones a header name may use.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
        }
    }
}

extension String {
    var trimmingASCIIWhitespace: String {
        var text = Substring(self)
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return String(text)
    }
}
