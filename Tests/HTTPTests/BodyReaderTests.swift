import HTTP
import Testing

@Suite struct BodyReaderTests {
    private func read(
        _ chunks: [[UInt8]], headers: HTTPHeaders = [:], limit: Int = 1 << 20, budget: MemoryBudget? = nil
    ) throws -> [UInt8] {
        let reader = try BodyReader(headers: headers, limit: limit, budget: budget)
        for chunk in chunks {
            try chunk.withUnsafeBytes { try reader.append($0) }
        }
        return try reader.finish()
    }

    /// Splits `bytes` at odd places, as the network would.
    private func chunks(_ bytes: [UInt8], size: Int = 7) -> [[UInt8]] {
        stride(from: 0, to: bytes.count, by: size).map { Array(bytes[$0..<min($0 + size, bytes.count)]) }
    }

    private let text = Array(String(repeating: "tensor bytes and more ", count: 500).utf8)

    @Test func identityBodyIsReassembled() throws {
        #expect(try read(chunks(text), headers: ["Content-Length": "\(text.count)"]) == text)
        #expect(try read([]) == [])
    }

    @Test func declaredLengthOverLimitIsRefusedBeforeTheBody() {
        #expect(throws: BodyReader.Failure.tooLarge(limit: 100)) {
            try BodyReader(headers: ["Content-Length": "101"], limit: 100)
        }
        // Chunked transfer wins over a Content-Length, as in HTTP/1.1.
        #expect(throws: Never.self) {
            try BodyReader(headers: ["Content-Length": "101", "Transfer-Encoding": "chunked"], limit: 100)
        }
    }

    @Test func bodyCrossingTheLimitIsRefused() {
        #expect(throws: BodyReader.Failure.tooLarge(limit: 100)) {
            try read(chunks(Array(repeating: 1, count: 101)), limit: 100)
        }
        #expect(throws: Never.self) { try read(chunks(Array(repeating: 1, count: 100)), limit: 100) }
    }

    @Test(arguments: [("gzip", true), ("x-gzip", true), ("deflate", false), ("GZIP", true)])
    func compressedBodiesAreDecoded(encoding: String, gzip: Bool) throws {
        let compressed = compress(text, gzip: gzip)
        #expect(try read(chunks(compressed), headers: ["Content-Encoding": encoding]) == text)
    }

    @Test func concatenatedGzipMembersAreDecoded() throws {
        let twice = compress(Array("first,".utf8), gzip: true) + compress(Array("second".utf8), gzip: true)
        #expect(try read(chunks(twice, size: 5), headers: ["Content-Encoding": "gzip"]) == Array("first,second".utf8))
    }

    @Test func decodedBodyIsBoundedByTheLimit() {
        let bomb = compress([UInt8](repeating: 0, count: 1 << 20), gzip: true)
        #expect(bomb.count < 2000)
        #expect(throws: BodyReader.Failure.tooLarge(limit: 4096)) {
            try read(chunks(bomb, size: 100), headers: ["Content-Encoding": "gzip"], limit: 4096)
        }
    }

    @Test func truncatedOrCorruptCompressedBodiesAreMalformed() {
        let compressed = compress(text, gzip: true)
        #expect(throws: BodyReader.Failure.malformed("compressed request body is truncated")) {
            try read([Array(compressed.dropLast(10))], headers: ["Content-Encoding": "gzip"])
        }
        #expect {
            try read([Array("not gzip at all".utf8)], headers: ["Content-Encoding": "gzip"])
        } throws: { error in
            guard case .malformed(let reason) = error as? BodyReader.Failure else { return false }
            return reason.hasPrefix("compressed request body does not decode")
        }
    }

    @Test(arguments: ["18446744073709551615", "9223372036854775808", "9223372036854775807", "99999999999999999999999"])
    func declaredLengthBeyondIntIsTooLarge(length: String) {
        #expect(throws: BodyReader.Failure.tooLarge(limit: 100)) {
            try BodyReader(headers: ["Content-Length": length], limit: 100)
        }
    }

    @Test(arguments: ["-1", "+5", "", "1e3", "0x10"])
    func declaredLengthThatIsNotDigitsIsMalformed(length: String) {
        #expect(throws: BodyReader.Failure.malformed("invalid Content-Length '\(length)'")) {
            try BodyReader(headers: ["Content-Length": length], limit: 100)
        }
    }

    @Test(arguments: ["gzip, chunked", "gzip", "identity", "chunked, chunked", "chunked "])
    func transferCodingsOtherThanChunkedAreRefused(coding: String) {
        #expect(throws: BodyReader.Failure.unsupportedTransferEncoding(coding)) {
            try BodyReader(headers: ["Transfer-Encoding": coding, "Content-Length": "2"], limit: 100)
        }
        #expect(BodyReader.Failure.unsupportedTransferEncoding(coding).response.status == 501)
    }

    @Test func bodiesAreChargedToTheBudgetInStepsAsTheyGrow() throws {
        let budget = MemoryBudget(limit: 1 << 20)
        let step = BodyReader.chargeStep
        let reader = try BodyReader(headers: ["Content-Length": "\(3 * step)"], limit: 1 << 20, budget: budget)
        #expect(budget.bytesInUse == 0)  // declared, not yet arrived
        try [UInt8](repeating: 1, count: 10).withUnsafeBytes { try reader.append($0) }
        #expect(budget.bytesInUse == step)
        try [UInt8](repeating: 1, count: step).withUnsafeBytes { try reader.append($0) }
        #expect(budget.bytesInUse == 2 * step)
        #expect(reader.reservation?.bytes == 2 * step)
        reader.reservation?.release()
        #expect(budget.bytesInUse == 0)
    }

    @Test func inflatedBytesAreChargedAndABodyPastTheBudgetIsRefused() throws {
        let budget = MemoryBudget(limit: 1 << 20)
        let bomb = compress([UInt8](repeating: 0, count: 2 << 20), gzip: true)
        #expect(throws: BodyReader.Failure.overBudget) {
            try read(chunks(bomb, size: 1000), headers: ["Content-Encoding": "gzip"], limit: 4 << 20, budget: budget)
        }
        #expect(budget.bytesInUse == 0)  // the refused reader is gone, and its reservation with it
        let fits = compress([UInt8](repeating: 0, count: 512 << 10), gzip: true)
        #expect(try read(chunks(fits, size: 1000), headers: ["Content-Encoding": "gzip"], budget: budget).count == 512 << 10)
        let response = BodyReader.Failure.overBudget.response
        #expect(response.status == 503)
        #expect(response.headers["Retry-After"] == "1")
    }

    @Test func unknownEncodingIsRefused() {
        #expect(throws: BodyReader.Failure.unsupportedEncoding("br")) {
            try BodyReader(headers: ["Content-Encoding": "br"], limit: 100)
        }
        #expect(BodyReader.Failure.unsupportedEncoding("br").response.status == 415)
        #expect(BodyReader.Failure.tooLarge(limit: 1).response.status == 413)
        #expect(BodyReader.Failure.malformed("x").response.status == 400)
    }
}

@Suite struct BodyReaderPrefaultTests {
    /// Bodies of a declared length, whose pages are faulted in ahead a step at a time, arrive
    /// intact whatever the chunking, across page and step boundaries, with and without a budget,
    /// and are charged as before: in 64 KiB steps, never beyond what arrived rounded up to one.
    @Test(arguments: [1, 4095, 4096, 4097, 65_535, 65_536, 65_537, 300_001, 1 << 20])
    func declaredBodiesArriveIntact(size: Int) throws {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for chunk in [1, 7, 4096, 16_179, 70_000] where size / chunk < 100_000 {
            let budget = MemoryBudget(limit: 64 << 20)
            for withBudget in [false, true] {
                let reader = try BodyReader(headers: ["Content-Length": "\(size)"], limit: 8 << 20,
                                            budget: withBudget ? budget : nil)
                var sent = 0
                while sent < size {
                    let piece = bytes[sent..<min(sent + chunk, size)]
                    try piece.withUnsafeBytes { try reader.append($0) }
                    sent += piece.count
                    if withBudget {
                        let step = BodyReader.chargeStep
                        #expect(budget.bytesInUse == (sent + step - 1) / step * step)
                        // Pages are populated only within what the budget has charged.
                        #expect(reader.populatedBytes <= budget.bytesInUse)
                    }
                    #expect(reader.populatedBytes <= size)
                    if !withBudget {
                        #expect(reader.populatedBytes <= sent + BodyReader.chargeStep)
                    }
                }
                #expect(try reader.finish() == bytes)
                reader.reservation?.release()
            }
        }
    }
}
