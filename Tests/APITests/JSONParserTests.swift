import API
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Tensors
import TestSupport
import Testing

@Suite struct JSONParserTests {
    func parse(_ text: String) throws -> JSONValue { try JSONParser.parse(Array(text.utf8)) }

    /// The numeric array `text` parses to (nil, recorded as an issue, otherwise).
    func numbers(_ text: String) throws -> NumericArray? {
        guard case .numbers(let array) = try parse(text) else {
            Issue.record("expected a numeric array for \(text)")
            return nil
        }
        return array
    }

    func values(_ array: NumericArray?) -> [Double] { array.map { Array($0.doubles) } ?? [] }

    /// Every leaf as an exact integer, or nil when one is not an integer literal.
    func integers(_ array: NumericArray?) -> [Int64]? {
        guard let array else { return nil }
        var result: [Int64] = []
        for index in 0..<array.count {
            guard let integer = array.integer(at: index) else { return nil }
            result.append(integer)
        }
        return result
    }

    @Test func rectangularNumericArraysAreFlat() throws {
        let array = try numbers("[[1, 2.5, -3e2], [4, 5, 6]]")
        #expect(array?.shape == [2, 3])
        #expect(values(array) == [1, 2.5, -300, 4, 5, 6])
        #expect(integers(array) == nil)
        let ints = try numbers(" [ [ [1] ,[2] ] ] ")
        #expect(ints?.shape == [1, 2, 1])
        #expect(integers(ints) == [1, 2])
    }

    @Test func emptyListsKeepTheirShape() throws {
        #expect(try numbers("[]")?.shape == [0])
        #expect(try numbers("[[], []]")?.shape == [2, 0])
    }

    @Test func raggedOrMixedArraysFallBackToATree() throws {
        guard case .array(let ragged) = try parse("[[1, 2], [3]]") else { Issue.record("ragged"); return }
        #expect(ragged.count == 2)
        guard case .array(let mixed) = try parse("[1, \"a\", {\"b64\": \"AA==\"}]") else { Issue.record("mixed"); return }
        #expect(mixed.count == 3)
        guard case .number(let first) = mixed[0] else { Issue.record("first of mixed"); return }
        #expect(first.integer == 1)
        guard case .array(let deeper) = try parse("[[1], 2]") else { Issue.record("depth"); return }
        #expect(deeper.count == 2)
        // The issue's heap overflow: numbers, then an empty list. A tree of 3 values, not a [3, 0] array.
        guard case .array(let trailing) = try parse("[1, 1, []]") else { Issue.record("trailing empty list"); return }
        #expect(trailing.count == 3)
        guard case .numbers(let empty) = trailing[2] else { Issue.record("the empty list"); return }
        #expect(empty.shape == [0])
    }

    @Test func numericSubArraysOfAMixedListKeepTheirValues() throws {
        guard case .array(let list) = try parse("[[1, 2], [3, 4], \"x\", [[5], [6]], [7, 8]]") else { Issue.record("mixed"); return }
        let arrays = list.compactMap { value -> NumericArray? in
            if case .numbers(let array) = value { return array }
            return nil
        }
        #expect(arrays.map(\.shape) == [[2], [2], [2, 1], [2]])
        #expect(arrays.map { Array($0.doubles) } == [[1, 2], [3, 4], [5, 6], [7, 8]])
    }

    @Test func deepRectangularArraysShareOneShapePerLevel() throws {
        // 100 levels around 1,000 numbers: one flat array, whatever the depth.
        let text = String(repeating: "[", count: 100) + (1...1000).map(String.init).joined(separator: ",") + String(repeating: "]", count: 100)
        let array = try numbers(text)
        #expect(array?.shape == Array(repeating: 1, count: 99) + [1000])
        #expect(values(array) == (1...1000).map(Double.init))
        // A level of many equal sub-lists is one array too.
        let rows = "[" + Array(repeating: "[1,2,3]", count: 500).joined(separator: ",") + "]"
        #expect(try numbers(rows)?.shape == [500, 3])
    }

    @Test func integersBeyondDoublePrecisionStayExactInArrays() throws {
        let array = try numbers("[9007199254740993, -9223372036854775808, 9223372036854775807, 3]")
        #expect(integers(array) == [9_007_199_254_740_993, .min, .max, 3])
        let over = try numbers("[9223372036854775808, 1]")
        #expect(over?.integer(at: 0) == nil)
        #expect(over?.integer(at: 1) == 1)
    }

    @Test func nonFiniteTokensAreAccepted() throws {
        let array = values(try numbers("[NaN, Infinity, -Infinity, 0]"))
        #expect(array.count == 4 && array[0].isNaN)
        #expect(array.count == 4 && array[1] == .infinity && array[2] == -.infinity)
    }

    @Test func numbersAreCorrectlyRounded() throws {
        var generator = SeededGenerator(seed: 7)
        for _ in 0..<2000 {
            let value = Double(bitPattern: generator.next() & 0x7FEF_FFFF_FFFF_FFFF) * (Bool.random(using: &generator) ? 1 : -1)
            let text = "\(value)"
            guard case .number(let number) = try parse(text) else { Issue.record("not a number: \(text)"); continue }
            #expect(number.double == value, "\(text)")
        }
        // Python's 17-digit doubles (the extended-precision path) and edge cases near halfway.
        for _ in 0..<20000 {
            let value = Double(Float.random(in: -1...1, using: &generator)) * Double.random(in: 0.5...2, using: &generator)
            let text = "\(value)"
            guard case .number(let number) = try parse(text) else { Issue.record("not a number: \(text)"); continue }
            #expect(number.double == Double(text)!, "\(text)")
        }
        for text in ["9007199254740993", "0.1000000000000000055511151231257827", "1.7976931348623157e308",
                     "4.9406564584124654e-324", "2.4703282292062328e-324", "7.038531e-26", "9.999999999999999e22"] {
            guard case .number(let number) = try parse(text) else { Issue.record("\(text)"); continue }
            #expect(number.double == Double(text)!, "\(text)")
        }
        for text in ["0.1", "1e-7", "3.4028235e38", "123456789012345678901234567890", "2.2250738585072014e-308", "0.30000000000000004"] {
            guard case .number(let number) = try parse(text) else { Issue.record("\(text)"); continue }
            #expect(number.double == Double(text)!, "\(text)")
        }
    }

    @Test func integersStayExact() throws {
        guard case .number(let big) = try parse("9007199254740993") else { Issue.record("big"); return }
        #expect(big.integer == 9_007_199_254_740_993)
        guard case .number(let min) = try parse("-9223372036854775808") else { Issue.record("min"); return }
        #expect(min.integer == .min)
        guard case .number(let over) = try parse("9223372036854775808") else { Issue.record("over"); return }
        #expect(over.integer == nil)
        guard case .number(let real) = try parse("1.0") else { Issue.record("real"); return }
        #expect(real.integer == nil)
    }

    @Test func stringsDecodeEscapes() throws {
        #expect(try parse(#""a\"b\\c\/\n\u00e9\ud83d\ude00""#).string == "a\"b\\c/\né😀")
        #expect(try parse("\"plain\"").string == "plain")
    }

    @Test func objectsKeepOrder() throws {
        let object = try parse(#"{"instances": [1], "signature_name": "serving_default"}"#).object
        #expect(object?.keys == ["instances", "signature_name"])
        #expect(object?["signature_name"]?.string == "serving_default")
    }

    @Test(arguments: [
        ("", "empty"), ("  ", "empty"), ("[1, 2", "expected"), ("[1 2]", "expected"), ("{\"a\" 1}", "':'"),
        ("01", "leading zero"), ("1.", "after '.'"), ("1e", "exponent"), ("[1] x", "after the document"),
        ("\"abc", "unterminated"), ("\"\u{01}\"", "control"), ("tru", "literal"), ("{1: 2}", "string key"),
        ("\"\\x\"", "escape"), ("-", "invalid number"),
    ])
    func malformedDocumentsAreRejected(text: String, fragment: String) {
        do {
            _ = try parse(text)
            Issue.record("accepted \(text.debugDescription)")
        } catch {
            #expect("\(error)".lowercased().contains(fragment.lowercased()), "\(error)")
        }
    }

    @Test func deepNestingIsRejectedNotACrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONError.self) { try parse(deep) }
        let deepObjects = String(repeating: "{\"a\":", count: 10_000) + "1" + String(repeating: "}", count: 10_000)
        #expect(throws: JSONError.self) { try parse(deepObjects) }
    }
}

@Suite struct JSONWriterTests {
    @Test func floatsAreShortestRoundTrip() throws {
        var generator = SeededGenerator(seed: 3)
        for _ in 0..<5000 {
            let value = Float(bitPattern: UInt32(truncatingIfNeeded: generator.next()) & 0x7F7F_FFFF)
            var writer = JSONWriter()
            writer.number(value)
            let text = String(decoding: writer.bytes, as: UTF8.self)
            #expect(Float(text) == value, "\(text)")
        }
        var writer = JSONWriter()
        writer.number(Float(0.1))
        writer.comma()
        writer.number(Float(3))
        writer.comma()
        writer.number(Float.nan)
        writer.comma()
        writer.number(-Float.infinity)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == "0.1,3.0,NaN,-Infinity")
    }

    @Test func tensorsAreWrittenNested() {
        let tensor = Tensor([1, 2, 3, 4, 5, 6] as [Int64], shape: [2, 3])
        var writer = JSONWriter()
        writer.tensor(tensor, dims: tensor.shape.dims[...], offset: 0)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == "[[1,2,3],[4,5,6]]")
        var row = JSONWriter()
        row.tensor(tensor, dims: tensor.shape.dims.dropFirst(), offset: 3)
        #expect(String(decoding: row.bytes, as: UTF8.self) == "[4,5,6]")
        var strings = JSONWriter()
        let text = Tensor(strings: ["a\"b", "c"], shape: [2])
        strings.tensor(text, dims: text.shape.dims[...], offset: 0)
        #expect(String(decoding: strings.bytes, as: UTF8.self) == #"["a\"b","c"]"#)
        var empty = JSONWriter()
        let none = Tensor(strings: [], shape: [0, 2])
        empty.tensor(none, dims: none.shape.dims[...], offset: 0)
        #expect(String(decoding: empty.bytes, as: UTF8.self) == "[]")
    }
}

/// The number reader's fast paths against their naive twins: eight-digit words against reading
/// byte by byte, and every number against the C library's `strtod` (correctly rounded, which the
/// parser was before these paths and must stay, bit for bit).
@Suite struct JSONNumberReadingTests {
    func parse(_ text: String) throws -> JSONValue { try JSONParser.parse(Array(text.utf8)) }

    /// The naive reading of eight bytes (first byte lowest): nil unless all are digits.
    func naiveEightDigits(_ word: UInt64) -> UInt64? {
        var value: UInt64 = 0
        for index in 0..<8 {
            let byte = UInt8(truncatingIfNeeded: word >> (8 * UInt64(index)))
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + UInt64(byte - UInt8(ascii: "0"))
        }
        return value
    }

    func word(_ bytes: [UInt8]) -> UInt64 {
        bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    @Test func eightDigitWordsMatchTheByteByByteReading() {
        var generator = SeededGenerator(seed: 11)
        let digits = Array("0123456789".utf8)
        // Every byte value at every place among digits.
        for place in 0..<8 {
            for byte in 0...255 {
                var bytes = (0..<8).map { _ in digits.randomElement(using: &generator)! }
                bytes[place] = UInt8(byte)
                let value = word(bytes)
                #expect(JSONParser.isEightDigits(value) == (naiveEightDigits(value) != nil), "\(bytes)")
                if let expected = naiveEightDigits(value) { #expect(JSONParser.eightDigits(value) == expected) }
            }
        }
        // Several bytes off at once, from the values next to the digits' edges (carries, borrows).
        let edges: [UInt8] = [0x00, 0x06, 0x2F, 0x30, 0x35, 0x39, 0x3A, 0x3F, 0x40, 0x7F, 0x80, 0xB0, 0xB9, 0xBA, 0xF9, 0xFA, 0xFF]
        for _ in 0..<200_000 {
            let bytes = (0..<8).map { _ in Bool.random(using: &generator) ? digits.randomElement(using: &generator)! : edges.randomElement(using: &generator)! }
            let value = word(bytes)
            #expect(JSONParser.isEightDigits(value) == (naiveEightDigits(value) != nil), "\(bytes)")
        }
        for _ in 0..<10_000 {
            let value = word((0..<8).map { _ in digits.randomElement(using: &generator)! })
            #expect(JSONParser.eightDigits(value) == naiveEightDigits(value))
        }
    }

    /// `strtod`'s double for `text`.
    func libc(_ text: String) -> Double {
        text.withCString { strtod($0, nil) }
    }

    /// Texts of every form the grammar allows, many of each.
    func numberTexts() -> [String] {
        var generator = SeededGenerator(seed: 23)
        var texts: [String] = []
        func random<T: FixedWidthInteger>(_ range: ClosedRange<T>) -> T { T.random(in: range, using: &generator) }
        for _ in 0..<20_000 {
            let float = Float(bitPattern: random(0...0x7F7F_FFFF)) * (random(0...1) == 0 ? 1 : -1)
            texts.append("\(Double(float))")  // Python's 17-digit repr of a float32 widened
            texts.append("\(float)")  // shortest float32 text
            let image = Float.random(in: 0..<1, using: &generator)
            texts.append("\(Double(image))")
            texts.append("\(Double(bitPattern: random(0...0x7FEF_FFFF_FFFF_FFFF)))")  // any double, e.g. 1.2345e-300
            texts.append("\(Double(bitPattern: random(1...0x000F_FFFF_FFFF_FFFF)))")  // subnormals
            texts.append(String(random(Int64.min...Int64.max)))  // integers without a dot
            texts.append(String(random(0...99_999)))
            // Exponent forms: e/E, signs, leading zeros in the exponent, many digits.
            let mantissa = String(random(0...UInt64.max) >> random(0...63))
            let fraction = String(random(0...UInt64.max) >> random(0...63))
            let e = ["e", "E"][Int(random(0...1))], sign = ["", "+", "-"][Int(random(0...2))]
            let exponent = String(random(0...340))
            texts.append("\(mantissa).\(fraction)\(e)\(sign)\(exponent)")
            texts.append("\(mantissa)\(e)\(sign)0\(exponent)")
            // Long fractions with leading zeros (past 19 digits: the digits that are dropped).
            let zeros = String(repeating: "0", count: Int(random(0...30)))
            texts.append("0.\(zeros)\(fraction)\(String(random(0...UInt64.max)))")
            texts.append("\(random(1...9))\(String(random(0...UInt64.max))).\(fraction)")
        }
        texts += ["0", "-0", "0.0", "-0.0", "0e0", "-0e-0", "0E+5", "1", "-1", "10", "1.5", "1e0", "1e-0", "1E+0",
                  "1e400", "-1e400", "1e-400", "-1e-400", "123456789012345678901234567890e-400", "0.0000000000000000000000001e425",
                  "1.7976931348623157e308", "1.7976931348623158e308", "1.7976931348623159e308", "4.9406564584124654e-324",
                  "2.4703282292062327e-324", "2.4703282292062328e-324", "2.2250738585072011e-308", "2.2250738585072014e-308",
                  "9007199254740993", "9007199254740992.5", "0.1000000000000000055511151231257827", "7.038531e-26",
                  "9.999999999999999e22", "3.4028235e38", "3.4028236e38", "1.17549435e-38", "1.4e-45", "0.30000000000000004",
                  "12345678.12345678", "0.12345678", "0.123456789012345678901234567890", "0.1e1",
                  "99999999999999999999", "18446744073709551615", "18446744073709551616", "-9223372036854775808",
                  "9223372036854775807", "9223372036854775808", "1" + String(repeating: "0", count: 400),
                  "0." + String(repeating: "0", count: 400) + "1", "0." + String(repeating: "9", count: 400)]
        return texts
    }

    @Test func everyNumberReadsAsTheCLibraryReadsIt() throws {
        let texts = numberTexts()
        for text in texts {
            guard case .number(let number) = try parse(text) else { Issue.record("not a number: \(text)"); continue }
            let expected = libc(text)
            #expect(number.double.bitPattern == expected.bitPattern, "\(text)")
            let isInteger = !text.contains(where: { ".eE".contains($0) })
            #expect(number.integer == (isInteger ? Int64(text) : nil), "\(text)")
        }
        // The same numbers in lists (the run of numbers read in one loop), with assorted spacing.
        let spacing = ["", " ", "\n", " \t\r\n "]
        var document = "["
        for (index, text) in texts.enumerated() {
            if index > 0 { document += spacing[index % 4] + "," + spacing[(index / 4) % 4] }
            document += text
        }
        document += "]"
        guard case .numbers(let array) = try parse(document) else { Issue.record("not a numeric list"); return }
        #expect(array.count == texts.count)
        for (index, text) in texts.enumerated() where index < array.count {
            #expect(array.doubles[array.doubles.startIndex + index].bitPattern == libc(text).bitPattern, "\(text)")
            let isInteger = !text.contains(where: { ".eE".contains($0) })
            #expect(array.integer(at: index) == (isInteger ? Int64(text) : nil), "\(text)")
        }
        // Non-finite tokens among them.
        guard case .numbers(let tokens) = try parse("[1, NaN, -Infinity, 0.5, Infinity]") else { Issue.record("tokens"); return }
        let values = Array(tokens.doubles)
        #expect(values.count == 5 && values[1].isNaN && values[2] == -.infinity && values[3] == 0.5 && values[4] == .infinity)
    }

    /// Malformed numbers are refused with the message and byte offset they had before the fast
    /// paths (worked out from the grammar: the offset is where reading stopped).
    @Test(arguments: [
        ("[1, 2.]", "no digits after '.'", 6), ("[1, 2.5e]", "no exponent digits", 8), ("[1, 2.5e+]", "no exponent digits", 9),
        ("[1, -]", "invalid number", 5), ("[1, 01]", "leading zero", 6), ("[1, -0012]", "leading zero", 9),
        ("[1, -Inf]", "invalid literal", 5), ("[1, -NaN]", "invalid number", 5), ("[1, 1.5.5]", "expected ',' or ']'", 7),
        ("[1, +1]", "unexpected character '+'", 4), ("[1, .5]", "unexpected character '.'", 4), ("[1,2,", "unexpected end", 5),
        ("[0.12345678901234567890x]", "expected ',' or ']'", 23), ("[0.12345678.9]", "expected ',' or ']'", 11),
        ("[1e5e5]", "expected ',' or ']'", 4), ("[1,,2]", "unexpected character ','", 3), ("[1 2]", "expected ',' or ']'", 3),
        ("[0x10]", "expected ',' or ']'", 2), ("[1.e5]", "no digits after '.'", 3), ("[-.5]", "invalid number", 2),
        ("[1, 2, 3", "expected ',' or ']'", 8), ("[1.23456789", "expected ',' or ']'", 11),
    ])
    func malformedNumbersAreRefusedAsBefore(text: String, fragment: String, offset: Int) {
        do {
            _ = try parse(text)
            Issue.record("accepted \(text.debugDescription)")
        } catch let error as JSONError {
            #expect(error.message.contains(fragment), "\(text): \(error)")
            #expect(error.offset == offset, "\(text): \(error)")
        } catch {
            Issue.record("\(error)")
        }
    }
}

/// The storage of parsed numbers is kept for the next parse: a later document never sees an
/// earlier one's numbers, and an earlier document still held keeps its own.
@Suite struct NumberStorageReuseTests {
    func numbers(_ text: String) throws -> NumericArray? {
        guard case .numbers(let array) = try JSONParser.parse(Array(text.utf8)) else { return nil }
        return array
    }

    @Test func laterDocumentsSeeOnlyTheirOwnNumbers() throws {
        let large = "[" + (0..<5000).map { "\(Double($0) + 0.25)" }.joined(separator: ",") + "]"
        let held = try numbers(large)  // kept alive across the parses below
        for round in 0..<6 {
            // Dropped at once: its storage goes back for the next parse.
            #expect(try numbers(large).map { Array($0.doubles) } == (0..<5000).map { Double($0) + 0.25 })
            let small = try numbers("[\(round), 7.5, -1]")
            #expect(small.map { Array($0.doubles) } == [Double(round), 7.5, -1])
            #expect(small?.integer(at: 0) == Int64(round) && small?.integer(at: 1) == nil)
            #expect(try numbers("[]")?.count == 0)
        }
        #expect(held.map { Array($0.doubles) } == (0..<5000).map { Double($0) + 0.25 })
    }
}
