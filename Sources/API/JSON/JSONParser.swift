#if canImport(Glibc)
import Glibc
#endif
package import Serving

/// Why a document is not valid JSON, and where.
package struct JSONError: Error, Sendable, CustomStringConvertible {
    package var message: String
    package var offset: Int
    /// True when parsing stopped because the memory it may use ran out, not for bad JSON.
    package var isOverBudget = false
    package var description: String { "JSON Parse error: \(message) at byte \(offset)" }
}

/// A JSON parser for request bodies, in one pass over the bytes. Numbers inside lists go to one
/// flat `NumberStore`; a list whose elements are all numbers, or all lists of one shape backed by
/// the store, becomes a `NumericArray` view (shapes are interned, so a level costs O(1) per
/// element however deep it nests). Anything else becomes a tree of values.
///
/// Cost: time linear in the body; memory at most 8 bytes and a bit per number, 32 bytes per other
/// list element and 48 per object member. Accepts RFC 8259 JSON plus `NaN`, `Infinity` and
/// `-Infinity` (as TF Serving does). Rejects trailing content and nesting deeper than
/// `maximumDepth` (which also bounds the recursion).
package struct JSONParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var position = 0
    private let store = NumberStore()
    /// The numbers read so far, handed to `store` at the end.
    private var numbers: NumberColumn
    /// Asked for each further `chargeStep` bytes the parsed document will take; false stops the
    /// parse (the caller's memory budget is spent).
    private let charge: (Int) -> Bool
    /// Bytes used and not yet charged.
    private var uncharged = 0
    /// Charging granularity.
    static let chargeStep = 1 << 20
    /// Deepest nesting accepted: tensors have a handful of dimensions, requests a few levels of
    /// objects around them.
    package static let maximumDepth = 128

    private init(_ bytes: UnsafeBufferPointer<UInt8>, charge: @escaping (Int) -> Bool) {
        self.bytes = bytes
        self.charge = charge
        // Room for the numbers of a typical tensor body (a float takes 8 to 20 bytes of text):
        // fresh pages cost memory only as numbers fill them, and these are charged as they do.
        numbers = NumberColumn(capacity: bytes.count / 8)
    }

    /// Parses one JSON document that fills `bytes` (surrounding whitespace allowed). `charge` is
    /// asked for the memory the document takes, a megabyte at a time, as it grows.
    package static func parse(_ bytes: UnsafeRawBufferPointer, charge: @escaping (Int) -> Bool = { _ in true }) throws(JSONError) -> JSONValue {
        var parser = JSONParser(bytes.bindMemory(to: UInt8.self), charge: charge)
        parser.skipWhitespace()
        guard parser.position < parser.bytes.count else { throw JSONError(message: "The document is empty", offset: 0) }
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.position == parser.bytes.count else {
            throw parser.error("unexpected content after the document")
        }
        parser.store.adopt(parser.numbers)
        return value
    }

    /// Parses a JSON document held in an array.
    package static func parse(_ bytes: [UInt8], charge: @escaping (Int) -> Bool = { _ in true }) throws(JSONError) -> JSONValue {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(JSONError) in try parse(raw, charge: charge) } }
        return try result.get()
    }

    /// Counts `size` more bytes of parsed document, charging them a step at a time.
    @inline(__always)
    private mutating func use(_ size: Int) throws(JSONError) {
        uncharged += size
        guard uncharged >= Self.chargeStep else { return }
        guard charge(uncharged) else {
            var error = error("the request's parsed JSON would exceed the server's memory budget")
            error.isOverBudget = true
            throw error
        }
        uncharged = 0
    }

    /// Memory a value in a list takes, and a member of an object (key and value).
    private static let listElementSize = MemoryLayout<JSONValue>.stride
    private static let memberSize = MemoryLayout<(key: String, value: JSONValue)>.stride

    // MARK: Values

    private func error(_ message: String) -> JSONError { JSONError(message: message, offset: position) }

    private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func skipWhitespace() {
        while position < bytes.count, Self.isWhitespace(bytes[position]) { position += 1 }
    }

    @inline(__always)
    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }

    private mutating func value(depth: Int) throws(JSONError) -> JSONValue {
        guard depth < Self.maximumDepth else { throw error("nesting deeper than \(Self.maximumDepth) levels") }
        guard let byte = current else { throw error("unexpected end of document") }
        switch byte {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""):
            let text = try string()
            if text.utf8.count > 15 { try use(text.utf8.count) }  // shorter ones live inside the value
            return .string(text)
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default:
            guard Self.startsNumber(byte) else { throw error("unexpected character '\(Self.printable(byte))'") }
            return .number(try number())
        }
    }

    private static func printable(_ byte: UInt8) -> String {
        (0x20..<0x7F).contains(byte) ? String(UnicodeScalar(byte)) : "\\x" + String(byte, radix: 16)
    }

    @inline(__always)
    private static func startsNumber(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-")
            || byte == UInt8(ascii: "N") || byte == UInt8(ascii: "I")
    }

    private mutating func literal(_ word: StaticString) throws(JSONError) {
        let count = word.utf8CodeUnitCount
        guard count <= bytes.count - position,
              memcmp(bytes.baseAddress! + position, word.utf8Start, count) == 0 else {
            throw error("invalid literal")
        }
        position += count
    }

    private mutating func object(depth: Int) throws(JSONError) -> JSONValue {
        position += 1
        var members: [(key: String, value: JSONValue)] = []
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            position += 1
            return .object(JSONObject(members))
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let key = try string()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw error("expected ':' after key \"\(key)\"") }
            position += 1
            skipWhitespace()
            try use(Self.memberSize + (key.utf8.count > 15 ? key.utf8.count : 0))
            members.append((key, try value(depth: depth + 1)))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"): position += 1; return .object(JSONObject(members))
            default: throw error("expected ',' or '}' in object")
            }
        }
    }

    /// What the elements of a list read so far have in common.
    private enum ListForm {
        /// No element yet.
        case empty
        /// Every element a number, all in the store from the list's start.
        case numbers
        /// Every element a numeric array of this shape, back to back in the store.
        case arrays(Int32)
        /// Anything else: the elements are kept as values (in a local array, never in this enum,
        /// so that appending to it never copies).
        case values
    }

    private mutating func array(depth: Int) throws(JSONError) -> JSONValue {
        guard depth < Self.maximumDepth else { throw error("nesting deeper than \(Self.maximumDepth) levels") }
        position += 1
        let start = numbers.count
        var form = ListForm.empty
        var values: [JSONValue] = []
        var count = 0
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            position += 1
        } else {
            elements: while true {
                skipWhitespace()
                guard let byte = current else { throw error("unexpected end of document") }
                switch form {
                case .empty where Self.startsNumber(byte), .numbers where Self.startsNumber(byte):
                    form = .numbers
                    try use(MemoryLayout<Double>.stride)
                    numbers.append(try number())
                    // The numbers that follow, each after a comma, in one tight loop; anything
                    // else (the list's end, another kind of element, an error) is left to the
                    // separator handling below, at the same place as without this loop.
                    while true {
                        skipWhitespace()
                        guard position < bytes.count, bytes[position] == UInt8(ascii: ",") else { break }
                        var next = position + 1
                        while next < bytes.count, Self.isWhitespace(bytes[next]) { next += 1 }
                        guard next < bytes.count, Self.startsNumber(bytes[next]) else { break }
                        position = next
                        count += 1
                        try use(MemoryLayout<Double>.stride)
                        numbers.append(try number())
                    }
                case .empty where byte == UInt8(ascii: "["), .arrays where byte == UInt8(ascii: "["):
                    let element = try array(depth: depth + 1)
                    switch (form, element) {
                    case (.empty, .numbers(let child)):
                        form = .arrays(child.shapeID)
                    case (.arrays(let shape), .numbers(let child)) where child.shapeID == shape:
                        break
                    default:
                        try materialize(form, count: count, start: start, into: &values)
                        form = .values
                        try use(Self.listElementSize)
                        values.append(element)
                    }
                default:
                    try materialize(form, count: count, start: start, into: &values)
                    form = .values
                    try use(Self.listElementSize)
                    values.append(try value(depth: depth + 1))
                }
                count += 1
                skipWhitespace()
                switch current {
                case UInt8(ascii: ","): position += 1
                case UInt8(ascii: "]"): position += 1; break elements
                default: throw error("expected ',' or ']' in list")
                }
            }
        }
        let inner: Int32
        switch form {
        case .values: return .array(values)
        case .empty, .numbers: inner = NumberStore.scalarShape
        case .arrays(let shape): inner = shape
        }
        guard let shape = store.intern(count: count, inner: inner) else { throw error("list too large") }
        return .numbers(NumericArray(store: store, start: start, shapeID: shape))
    }

    /// Turns the elements read so far into values, when a list turns out not to be numeric (once:
    /// nothing to do when they are values already). Numbers stay in the store (unused); numeric
    /// sub-arrays keep their place in it.
    private mutating func materialize(_ form: ListForm, count: Int, start: Int, into values: inout [JSONValue]) throws(JSONError) {
        switch form {
        case .values:
            return
        case .empty:
            break
        case .numbers:
            try use(count * Self.listElementSize)
            values = (start..<(start + count)).map { index in
                .number(JSONNumber(double: numbers.doubles[index], integer: numbers.integer(at: index)))
            }
        case .arrays(let shape):
            try use(count * Self.listElementSize)
            let size = store.shapes[Int(shape)].elements
            values = (0..<count).map { .numbers(NumericArray(store: store, start: start + $0 * size, shapeID: shape)) }
        }
    }

    // MARK: Strings

    private mutating func string() throws(JSONError) -> String {
        position += 1
        let start = position
        // Fast scan: no escapes is the common case.
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
                position += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw error("control character in string") }
            position += 1
        }
        var scalars = Array(bytes[start..<position])
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: scalars, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard let escape = current else { throw error("unterminated string") }
                position += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalars.append(escape)
                case UInt8(ascii: "b"): scalars.append(0x08)
                case UInt8(ascii: "f"): scalars.append(0x0C)
                case UInt8(ascii: "n"): scalars.append(0x0A)
                case UInt8(ascii: "r"): scalars.append(0x0D)
                case UInt8(ascii: "t"): scalars.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code), current == UInt8(ascii: "\\"),
                       position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "u") {
                        position += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("invalid surrogate pair") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                    scalars.append(contentsOf: Array(String(scalar).utf8))
                default:
                    throw error("invalid escape '\\\(Self.printable(escape))'")
                }
            default:
                if byte < 0x20 { throw error("control character in string") }
                scalars.append(byte)
            }
        }
        throw error("unterminated string")
    }

    private mutating func hex4() throws(JSONError) -> UInt32 {
        guard position + 4 <= bytes.count else { throw error("short \\u escape") }
        var code: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("invalid \\u escape")
            }
            code = code << 4 | UInt32(digit)
            position += 1
        }
        return code
    }

    // MARK: Numbers

    private static let exactPowersOfTen: [Double] = (0...22).map { exponent in
        var value = 1.0
        for _ in 0..<exponent { value *= 10 }
        return value
    }

    /// Parses a number (or NaN / Infinity / -Infinity), at a byte that `startsNumber` accepts.
    /// Reads the grammar of RFC 8259 byte by byte, except runs of eight fraction digits, which
    /// are recognised and converted eight at a time (`eightDigits`) where the byte-by-byte reading
    /// would have taken all eight into the mantissa; the mantissa, digit count and exponent are
    /// the same either way, and so is the value.
    private mutating func number() throws(JSONError) -> JSONNumber {
        let start = position
        // The caller saw a byte at `position`, so the buffer has a base address.
        guard let base = bytes.baseAddress, position < bytes.count else { throw error("unexpected end of document") }
        let end = bytes.count
        var p = position
        var negative = false
        if base[p] == UInt8(ascii: "-") {
            negative = true
            p += 1
        }
        if p < end, base[p] == UInt8(ascii: "I") {
            position = p
            try literal("Infinity")
            return JSONNumber(double: negative ? -.infinity : .infinity, integer: nil)
        }
        if p < end, base[p] == UInt8(ascii: "N"), !negative {
            position = p
            try literal("NaN")
            return JSONNumber(double: .nan, integer: nil)
        }
        // Up to 19 significant digits go into the mantissa (a digit is significant from the first
        // non-zero one on, so `digits == 0` exactly while `mantissa == 0`); further integer digits
        // scale by ten, further fraction digits are dropped.
        var mantissa: UInt64 = 0
        var digits = 0
        var exponent = 0
        var integral = true
        let integerStart = p
        while p < end {
            let digit = base[p] &- UInt8(ascii: "0")
            guard digit <= 9 else { break }
            if digits < 19 {
                mantissa = mantissa &* 10 &+ UInt64(digit)
                if mantissa != 0 { digits += 1 }
            } else {
                exponent += 1
                digits += 1
            }
            p += 1
        }
        let integerDigits = p - integerStart
        guard integerDigits > 0 else {
            position = p
            throw error("invalid number")
        }
        if integerDigits > 1, base[integerStart] == UInt8(ascii: "0") {
            position = p
            throw error("leading zero in number")
        }
        if p < end, base[p] == UInt8(ascii: ".") {
            integral = false
            p += 1
            let fractionStart = p
            // Eight digits at a time while all eight would go into the mantissa: byte by byte, the
            // k-th of them is taken when `digits` < 19 before it, and `digits` grows by at most one
            // per digit, so `digits <= 11` at the start is enough.
            while digits <= 11, end - p >= 8 {
                let word = UInt64(littleEndian: UnsafeRawPointer(base + p).loadUnaligned(as: UInt64.self))
                guard Self.isEightDigits(word) else { break }
                let value = Self.eightDigits(word)
                digits = mantissa == 0 ? Self.decimalLength(value) : digits + 8
                mantissa = mantissa &* 100_000_000 &+ value
                exponent -= 8
                p += 8
            }
            while p < end {
                let digit = base[p] &- UInt8(ascii: "0")
                guard digit <= 9 else { break }
                if digits < 19 {
                    mantissa = mantissa &* 10 &+ UInt64(digit)
                    if mantissa != 0 { digits += 1 }
                    exponent -= 1
                } else {
                    digits += 1
                }
                p += 1
            }
            guard p > fractionStart else {
                position = p
                throw error("invalid number: no digits after '.'")
            }
        }
        if p < end, base[p] | 0x20 == UInt8(ascii: "e") {
            integral = false
            p += 1
            var exponentNegative = false
            if p < end, base[p] == UInt8(ascii: "+") || base[p] == UInt8(ascii: "-") {
                exponentNegative = base[p] == UInt8(ascii: "-")
                p += 1
            }
            var value = 0
            let exponentStart = p
            while p < end {
                let digit = base[p] &- UInt8(ascii: "0")
                guard digit <= 9 else { break }
                if value < 100_000 { value = value * 10 + Int(digit) }
                p += 1
            }
            guard p > exponentStart else {
                position = p
                throw error("invalid number: no exponent digits")
            }
            exponent += exponentNegative ? -value : value
        }
        position = p
        var integer: Int64?
        if integral, digits <= 19, exponent == 0 {
            if negative {
                if mantissa <= UInt64(Int64.max) + 1 { integer = mantissa == UInt64(Int64.max) + 1 ? .min : -Int64(mantissa) }
            } else if mantissa <= UInt64(Int64.max) {
                integer = Int64(mantissa)
            }
        }
        // Clinger's fast path: exact when the mantissa and the power of ten are both exact doubles.
        if digits <= 19, mantissa <= 1 << 53, abs(exponent) <= 22 {
            var value = Double(mantissa)
            value = exponent < 0 ? value / Self.exactPowersOfTen[-exponent] : value * Self.exactPowersOfTen[exponent]
            return JSONNumber(double: negative ? -value : value, integer: integer)
        }
        if digits <= 19, abs(exponent) <= 27, let value = Self.extendedPrecision(mantissa, exponent) {
            return JSONNumber(double: negative ? -value : value, integer: integer)
        }
        return JSONNumber(double: slowParse(start..<position), integer: integer)
    }

    /// True when the eight bytes of `word` (first byte lowest) are all ASCII digits: each byte's
    /// high nibble is 3, and adding 6 keeps it 3 (so the low nibble is at most 9). No carry
    /// crosses bytes: a byte with high nibble 3 plus 6 is at most 0x45.
    @inline(__always)
    package static func isEightDigits(_ word: UInt64) -> Bool {
        (word & 0xF0F0_F0F0_F0F0_F0F0) | (((word &+ 0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) >> 4)
            == 0x3333_3333_3333_3333
    }

    /// The value of eight ASCII digits (first byte lowest, most significant digit), in three
    /// multiplications: pairs, then fours, then the eight (fast_float's parse_eight_digits).
    @inline(__always)
    package static func eightDigits(_ word: UInt64) -> UInt64 {
        var value = word &- 0x3030_3030_3030_3030
        value = value &* 10 &+ (value >> 8)
        let low = (value & 0x0000_00FF_0000_00FF) &* (100 &+ (1_000_000 << 32))
        let high = ((value >> 16) & 0x0000_00FF_0000_00FF) &* (1 &+ (10_000 << 32))
        return (low &+ high) >> 32
    }

    /// Decimal digits of `value` (below 10^8), 0 for 0.
    @inline(__always)
    static func decimalLength(_ value: UInt64) -> Int {
        var length = 0
        var power: UInt64 = 1
        while length < 8, value >= power {
            length += 1
            power &*= 10
        }
        return length
    }

    private static let exactExtendedPowersOfTen: [Float80] = (0...27).map { exponent in
        var value: Float80 = 1
        for _ in 0..<exponent { value *= 10 }
        return value
    }

    /// The double nearest to mantissa × 10^exponent for up to 19 digits (17-digit doubles, as
    /// Python writes them), or nil when this cannot tell. A 64-bit mantissa and 10^0...10^27 are
    /// exact in Float80, so the product has one rounding (half an 80-bit ulp); rounding that to
    /// 53 bits is then exact unless the 11 dropped bits sit next to the halfway point.
    private static func extendedPrecision(_ mantissa: UInt64, _ exponent: Int) -> Double? {
        let scaled = exponent < 0
            ? Float80(mantissa) / exactExtendedPowersOfTen[-exponent]
            : Float80(mantissa) * exactExtendedPowersOfTen[exponent]
        let dropped = scaled.significandBitPattern & 0x7FF
        guard dropped < 0x3FF || dropped > 0x401 else { return nil }
        return Double(scaled)
    }

    /// Correctly rounded conversion of the literal in `range` by the C library.
    private func slowParse(_ range: Range<Int>) -> Double {
        var text = Array(bytes[range])
        text.append(0)
        return text.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { strtod($0.baseAddress!, nil) }
        }
    }
}

extension ServingError {
    /// A request body that did not parse: 400, or 503 (retry later) when the memory budget ran out.
    package init(_ error: JSONError) {
        self = error.isOverBudget ? ServingError(.unavailable, error.message, retryAfterSeconds: 1) : .invalidArgument("\(error)")
    }
}
