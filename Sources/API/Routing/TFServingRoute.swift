import Serving

/// Which model a request names: `name`, optionally pinned to a version or a label.
package struct ModelSpec: Sendable, Equatable {
    package var name: String
    package var version: Int?
    package var label: String?

    package init(name: String, version: Int? = nil, label: String? = nil) {
        self.name = name
        self.version = version
        self.label = label
    }
}

/// The TF Serving REST routes (http_rest_api_util.cc), matched case-insensitively like TF Serving:
///   POST /v1/models/{name}[/versions/{v}|/labels/{l}]:(predict|classify|regress)
///   GET  /v1/models/{name}[/versions/{v}|/labels/{l}][/metadata]
package enum TFServingRoute: Equatable {
    case predict(ModelSpec)
    case classify(ModelSpec)
    case regress(ModelSpec)
    case status(ModelSpec)
    case metadata(ModelSpec)

    /// The model the route names.
    package var spec: ModelSpec {
        switch self {
        case .predict(let spec), .classify(let spec), .regress(let spec), .status(let spec), .metadata(let spec): spec
        }
    }

    /// True when `rawPath` belongs to this API (so a mismatch is answered by it).
    package static func claims(_ rawPath: String) -> Bool {
        rawPath.lowercased().hasPrefix("/v1/models")
    }

    /// Matches a request; `rawPath` is still percent-encoded (names and labels are decoded here).
    package static func match(method: String, rawPath: String) -> Result<TFServingRoute, RouteError> {
        let malformed = RouteError.malformed("Malformed request: \(method) \(rawPath)")
        let lower = rawPath.lowercased()
        guard lower.hasPrefix("/v1/models") else { return .failure(malformed) }
        var rest = Substring(rawPath.dropFirst("/v1/models".count))
        if rest.isEmpty || rest == "/" {
            return .failure(.malformed("Missing model name in request."))
        }
        guard rest.first == "/" else { return .failure(malformed) }
        rest = rest.dropFirst()
        let nameEnd = rest.firstIndex { $0 == "/" || $0 == ":" } ?? rest.endIndex
        let encodedName = rest[..<nameEnd]
        rest = rest[nameEnd...]
        guard let name = PercentDecoding.decode(encodedName) else {
            return .failure(.malformed("malformed percent-encoding in model name '\(encodedName)'"))
        }
        guard ModelRepository.isValidName(name) else {
            return .failure(.malformed("invalid model name '\(name)'"))
        }
        var spec = ModelSpec(name: name)
        if rest.lowercased().hasPrefix("/versions/") {
            rest = rest.dropFirst("/versions/".count)
            let end = rest.firstIndex { $0 == "/" || $0 == ":" } ?? rest.endIndex
            let digits = rest[..<end]
            guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit) else { return .failure(malformed) }
            guard let version = Int64(digits).map(Int.init) else {
                return .failure(.malformed("Failed to convert version: \(digits)"))
            }
            spec.version = version
            rest = rest[end...]
        } else if rest.lowercased().hasPrefix("/labels/") {
            rest = rest.dropFirst("/labels/".count)
            let end = rest.firstIndex { $0 == "/" || $0 == ":" } ?? rest.endIndex
            guard end > rest.startIndex, let label = PercentDecoding.decode(rest[..<end]) else { return .failure(malformed) }
            spec.label = label
            rest = rest[end...]
        }
        let route: TFServingRoute
        let needsPost: Bool
        switch rest.lowercased() {
        case ":predict": (route, needsPost) = (.predict(spec), true)
        case ":classify": (route, needsPost) = (.classify(spec), true)
        case ":regress": (route, needsPost) = (.regress(spec), true)
        case "": (route, needsPost) = (.status(spec), false)
        case "/metadata": (route, needsPost) = (.metadata(spec), false)
        default: return .failure(malformed)
        }
        return RouteError.expect(needsPost ? "POST" : "GET", method, route)
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

/// Strict percent-decoding of URL path segments.
package enum PercentDecoding {
    /// The decoded text, or nil for a bad escape or bytes that are not UTF-8.
    package static func decode(_ text: Substring) -> String? {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
