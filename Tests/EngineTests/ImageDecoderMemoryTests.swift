import Engine
import Tensors
import Testing

/// ImageDecoder's C decoders allocate buffers of their own, outside the run's pool: those count
/// against the run's working-memory budget too, so that a stream of about a hundred bytes declaring a
/// huge JPEG 2000 image is refused before OpenJPEG allocates a gigabyte.
@Suite struct ImageDecoderMemoryTests {
    /// A JPEG 2000 codestream (ITU-T T.800 Annex A) declaring `width` × `height` pixels of
    /// `components` unsigned 8-bit components in one tile, with a main header OpenJPEG reads (SIZ,
    /// COD with 5 reversible decomposition levels, QCD) and an empty tile.
    static func codestream(width: UInt32, height: UInt32, components: UInt16) -> [UInt8] {
        var bytes: [UInt8] = []
        func u8(_ v: UInt8) { bytes.append(v) }
        func u16(_ v: UInt16) { bytes += [UInt8(v >> 8), UInt8(v & 0xFF)] }
        func u32(_ v: UInt32) { u16(UInt16(v >> 16)); u16(UInt16(v & 0xFFFF)) }
        u16(0xFF4F)                                           // SOC
        u16(0xFF51); u16(38 + 3 * components); u16(0)         // SIZ: length, capabilities
        u32(width); u32(height); u32(0); u32(0)               // image size and offset
        u32(width); u32(height); u32(0); u32(0)               // one tile of the whole image
        u16(components)
        for _ in 0..<components { u8(7); u8(1); u8(1) }       // 8-bit unsigned, not subsampled
        u16(0xFF52); u16(12); u8(0)                           // COD
        u8(0); u16(1); u8(0)                                  // LRCP order, 1 layer, no colour transform
        u8(5); u8(4); u8(4); u8(0); u8(1)                     // 5 levels, 64 × 64 code-blocks, 5/3 wavelet
        u16(0xFF5C); u16(19); u8(0x40)                        // QCD: no quantisation, 2 guard bits
        for _ in 0..<16 { u8(8 << 3) }                        // one exponent per subband (3 · 5 + 1)
        u16(0xFF90); u16(10); u16(0); u32(0); u8(0); u8(1)    // SOT: tile 0, to the end, part 0 of 1
        u16(0xFF93)                                           // SOD: no packet data
        u16(0xFFD9)                                           // EOC
        return bytes
    }

    static func session(budget: Int) throws -> InferenceSession {
        let graph = Graph(nodes: [Node(name: "decode", opType: "ImageDecoder", inputs: ["stream"], outputs: ["image"])],
                          inputs: [ValueInfo(name: "stream", type: TensorType(.uint8, [.symbolic("bytes")]))],
                          outputs: [ValueInfo(name: "image", type: nil)])
        return try InferenceSession(model: Model(graph: graph, opsets: ["": 20]),
                                    options: .init(intraOpThreads: 1, workingMemoryBudget: budget))
    }

    static func stream(_ bytes: [UInt8]) -> [String: Tensor] { ["stream": Tensor(bytes, shape: [bytes.count])] }

    @Test func jpeg2000DecoderMemoryCountsAgainstTheBudget() throws {
        let session = try Self.session(budget: 256 << 20)
        // 6000 × 6000 RGB: the output (108 MB) fits the 256 MiB budget, OpenJPEG's 32-bit samples
        // (6000 · 6000 · 3 components · 8 bytes = 864 MB) do not.
        let huge = Self.codestream(width: 6000, height: 6000, components: 3)
        #expect(huge.count < 128)
        #expect {
            try session.run(Self.stream(huge))
        } throws: { error in
            guard case .resourceExhausted(let message) = error as? EngineError else { return false }
            return message.contains("decoding the 6000 × 6000 JPEG 2000 image needs about 864000000 bytes of its own")
        }
        // The same stream declaring a small image passes the budget and reaches OpenJPEG's decode,
        // which refuses its empty tile (no packet data), not the memory.
        #expect {
            try session.run(Self.stream(Self.codestream(width: 64, height: 48, components: 3)))
        } throws: { error in
            guard case .invalidInput(let message) = error as? EngineError else { return false }
            return message.contains("the JPEG 2000 image cannot be decoded (data: Failed to decode tile 1/1)")
        }
    }
}
