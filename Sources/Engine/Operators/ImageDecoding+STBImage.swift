internal import CSTBImage
import Tensors

/// BMP and binary PNM (P5, P6) through stb_image (Debian's libstb). stb_image reads past the end
/// of a memory stream as zeros and does not scale PNM samples, so the headers are checked here
/// first: the declared size against the pixel bound, the stream long enough for its pixel data,
/// and only header forms stb_image decides the same way it is asked (a BMP header of a size it
/// knows, so that it never falls through to another format). Samples are then scaled as Pillow
/// does (PNM maxval, 16-bit BMP channels), which produced the ONNX node tests' data.
extension ImageDecoding {
    // MARK: BMP

    static func decodeBMP(_ bytes: UnsafeBufferPointer<UInt8>, _ context: ExecutionContext) throws -> Tensor {
        func malformed(_ why: String) -> OpError { OpError.invalidArgument("the BMP image cannot be decoded (\(why))") }
        func uint32(_ offset: Int) -> UInt32 {
            (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
        }
        func uint16(_ offset: Int) -> UInt16 { UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8 }
        guard bytes.count >= 18 else { throw malformed("truncated header") }
        let dataOffset = Int(uint32(10)), headerSize = Int(uint32(14))
        guard [12, 40, 56, 108, 124].contains(headerSize) else {
            throw malformed("a \(headerSize)-byte info header; the known ones are 12, 40, 56, 108 and 124 bytes")
        }
        guard bytes.count >= 14 + headerSize else { throw malformed("truncated header") }
        let width: Int, height: Int, bitsPerPixel: Int, compression: UInt32
        if headerSize == 12 {
            (width, height) = (Int(uint16(18)), Int(uint16(20)))
            (bitsPerPixel, compression) = (Int(uint16(24)), 0)
        } else {
            (width, height) = (Int(Int32(bitPattern: uint32(18))), Int(Int32(bitPattern: uint32(22))).magnitude.signedOrMax)
            (bitsPerPixel, compression) = (Int(uint16(28)), uint32(30))
        }
        guard [1, 2, 4, 8, 16, 24, 32].contains(bitsPerPixel) else { throw malformed("\(bitsPerPixel) bits per pixel") }
        // 0: uncompressed; 3: bit fields (16 and 32 bits per pixel). RLE and embedded JPEG/PNG are not decoded.
        guard compression == 0 || (compression == 3 && (bitsPerPixel == 16 || bitsPerPixel == 32)) else {
            throw malformed("compression \(compression) with \(bitsPerPixel) bits per pixel; only uncompressed and"
                            + " bit-field images are decoded")
        }
        let shape = try checkedShape(width: width, height: height, "BMP")
        // Rows are padded to 4 bytes; the pixel data starts at the header's offset and must be all there.
        let rowBits = width.multipliedReportingOverflow(by: bitsPerPixel)
        let rowBytes = ((rowBits.partialValue + 31) / 32).multipliedReportingOverflow(by: 4)
        let data = rowBytes.partialValue.multipliedReportingOverflow(by: height)
        let end = dataOffset.addingReportingOverflow(data.partialValue)
        guard !rowBits.overflow, !rowBytes.overflow, !data.overflow, !end.overflow, end.partialValue <= bytes.count else {
            throw malformed("truncated: \(width) × \(height) pixels at \(bitsPerPixel) bits need the stream to reach byte"
                            + " \(end.overflow ? "beyond \(Int.max)" : String(end.partialValue)), it has \(bytes.count)")
        }
        let rgb = try loadWithSTB(bytes, width: width, height: height, shape, context, "BMP")
        if bitsPerPixel == 16 {
            // stb_image widens a channel of n bits by repeating its bits; Pillow scales it (v · 255 / (2^n − 1),
            // rounded down). The top n bits of stb_image's value are the channel's own.
            let masks: [UInt32] = compression == 3 && bytes.count >= 66 ? [uint32(54), uint32(58), uint32(62)]
                : [0x7C00, 0x03E0, 0x001F]
            let pixels = rgb.mutablePointer(as: UInt8.self)
            for channel in 0..<3 {
                let bits = masks[channel].nonzeroBitCount
                guard (1..<8).contains(bits) else { continue }
                let maximum = (1 << bits) - 1
                for i in stride(from: channel, to: rgb.elementCount, by: 3) {
                    pixels[i] = UInt8(truncatingIfNeeded: (Int(pixels[i]) >> (8 - bits)) * 255 / maximum)
                }
            }
        }
        return rgb
    }

    // MARK: PNM

    static func decodePNM(_ bytes: UnsafeBufferPointer<UInt8>, _ context: ExecutionContext) throws -> Tensor {
        func malformed(_ why: String) -> OpError { OpError.invalidArgument("the PNM image cannot be decoded (\(why))") }
        let kind = bytes[1]
        guard kind == UInt8(ascii: "5") || kind == UInt8(ascii: "6") else {
            throw OpError.invalidArgument("the PNM image is P\(Character(Unicode.Scalar(kind))) (plain text, bitmap or PAM);"
                                          + " ImageDecoder reads the binary graymap and pixmap forms, P5 and P6")
        }
        // Header: the magic, then width, height and maxval as decimal numbers separated by white space and
        // '#' comments (to the end of the line); one white-space byte, then the samples.
        func isSpace(_ byte: UInt8) -> Bool { [9, 10, 11, 12, 13, 32].contains(byte) }
        var position = 2
        func number(_ name: String) throws -> Int {
            while position < bytes.count && (isSpace(bytes[position]) || bytes[position] == UInt8(ascii: "#")) {
                if bytes[position] == UInt8(ascii: "#") {
                    while position < bytes.count && bytes[position] != 10 && bytes[position] != 13 { position += 1 }
                } else {
                    position += 1
                }
            }
            var value = 0, digits = 0
            while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) {
                guard digits < 9 else { throw malformed("the \(name) has more than 9 digits") }
                value = value * 10 + Int(bytes[position] - UInt8(ascii: "0"))
                digits += 1
                position += 1
            }
            guard position < bytes.count else { throw malformed("truncated header") }
            guard digits > 0, isSpace(bytes[position]) else { throw malformed("the \(name) is not a decimal number") }
            position += 1
            return value
        }
        let width = try number("width"), height = try number("height"), maxval = try number("maxval")
        let channels = kind == UInt8(ascii: "6") ? 3 : 1
        let shape = try checkedShape(width: width, height: height, "PNM")
        guard (1...255).contains(maxval) else {
            throw malformed(maxval == 0 ? "maxval 0" : "maxval \(maxval): 16-bit samples are not decoded")
        }
        // checkedShape bounds width × height by 2^26, so these products cannot overflow.
        let end = position + width * height * channels
        guard end <= bytes.count else {
            throw malformed("truncated: \(width) × \(height) × \(channels) samples need \(end) bytes, the stream has \(bytes.count)")
        }
        let rgb = try loadWithSTB(bytes, width: width, height: height, shape, context, "PNM")
        if maxval != 255 {
            // Pillow: min(255, round(v / maxval · 255)), rounding half to even as Python's round does.
            let levels = (0...255).map { v in
                UInt8(min(255, (Double(v) / Double(maxval) * 255).rounded(.toNearestOrEven)))
            }
            let pixels = rgb.mutablePointer(as: UInt8.self)
            for i in 0..<rgb.elementCount { pixels[i] = levels[Int(pixels[i])] }
        }
        return rgb
    }

    // MARK: stb_image

    /// stb_image's 8-bit RGB decode of a stream whose header was checked, copied into a tensor of `shape`.
    private static func loadWithSTB(_ bytes: UnsafeBufferPointer<UInt8>, width: Int, height: Int, _ shape: Shape,
                                    _ context: ExecutionContext, _ what: String) throws -> Tensor {
        guard let length = Int32(exactly: bytes.count) else {
            throw OpError.invalidArgument("the \(what) stream (\(bytes.count) bytes) is over 2 GiB")
        }
        let rgb = try context.allocate(.uint8, shape)
        // stb_image decodes into a buffer of its own (3 bytes per pixel, asked for RGB, and a
        // palette or conversion row on top): 4 bytes per pixel counted against the budget.
        try context.withExternalMemory(width * height * 4, for: "decoding the \(width) × \(height) \(what) image") {
            var x: Int32 = 0, y: Int32 = 0, components: Int32 = 0
            guard let pixels = stbi_load_from_memory(bytes.baseAddress, length, &x, &y, &components, 3) else {
                let reason = stbi_failure_reason().map { String(cString: $0) } ?? "unknown error"
                throw OpError.invalidArgument("the \(what) image cannot be decoded (\(reason))")
            }
            defer { stbi_image_free(pixels) }
            guard Int(x) == width, Int(y) == height else {
                throw OpError.invalidArgument("the \(what) image cannot be decoded (stb_image read \(x) × \(y) pixels,"
                                              + " the header says \(width) × \(height))")
            }
            rgb.mutablePointer(as: UInt8.self).update(from: pixels, count: rgb.elementCount)
        }
        return rgb
    }
}

private extension UInt {
    /// The magnitude as an Int, or Int.max if it does not fit (only Int.min's magnitude does not).
    var signedOrMax: Int { Int(exactly: self) ?? Int.max }
}
