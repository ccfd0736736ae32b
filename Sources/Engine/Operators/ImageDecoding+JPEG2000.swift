internal import COpenJPEG
import Tensors

/// JPEG 2000 (JP2 files and raw J2K codestreams) through OpenJPEG: a stream over the buffer, the
/// header read and checked (size against the pixel bound, 1 to 4 full-resolution components of at
/// most 16 bits, a colour space Pillow decodes) before anything is decoded, then strict decoding (a
/// truncated codestream is an error, not a partial image). OpenJPEG's messages go to handlers that
/// keep the first error and print nothing. Samples become 8 bits as Pillow does (signed ones offset by
/// half their range, then shifted to 8 bits); gray is repeated, alpha dropped.
extension ImageDecoding {
    static func decodeJPEG2000(_ bytes: UnsafeBufferPointer<UInt8>, codestream: Bool, _ context: ExecutionContext) throws -> Tensor {
        let source = StreamSource(bytes)
        // The library holds `source` only as a raw pointer: keep it alive until every library object is gone.
        defer { withExtendedLifetime(source) {} }
        let client = Unmanaged.passUnretained(source).toOpaque()
        func failure(_ step: String) -> OpError {
            OpError.invalidArgument("the JPEG 2000 image cannot be decoded (\(step)\(source.error.map { ": \($0)" } ?? ""))")
        }
        guard let codec = opj_create_decompress(codestream ? OPJ_CODEC_J2K : OPJ_CODEC_JP2) else {
            throw OpError("OpenJPEG could not create a decoder")
        }
        defer { opj_destroy_codec(codec) }
        _ = opj_set_error_handler(codec, { message, client in
            guard let message, let client else { return }
            let source = Unmanaged<StreamSource>.fromOpaque(client).takeUnretainedValue()
            if source.error == nil {
                source.error = String(cString: message).trimmingSuffix { $0 == "\n" }
            }
        }, client)
        _ = opj_set_warning_handler(codec, { _, _ in }, client)
        _ = opj_set_info_handler(codec, { _, _ in }, client)
        var parameters = opj_dparameters_t()
        opj_set_default_decoder_parameters(&parameters)
        guard opj_setup_decoder(codec, &parameters) != 0, opj_decoder_set_strict_mode(codec, 1) != 0 else {
            throw failure("setup")
        }

        guard let stream = opj_stream_create(1 << 16, 1) else { throw OpError("OpenJPEG could not create a stream") }
        defer { opj_stream_destroy(stream) }
        opj_stream_set_user_data(stream, client, nil)
        opj_stream_set_user_data_length(stream, UInt64(bytes.count))
        // OPJ_SIZE_T is size_t, which Swift imports as Int: OpenJPEG's end-of-stream value (OPJ_SIZE_T)-1 is -1 here.
        opj_stream_set_read_function(stream) { buffer, count, client in
            guard let buffer, let client, count > 0 else { return -1 }
            let source = Unmanaged<StreamSource>.fromOpaque(client).takeUnretainedValue()
            let available = source.bytes.count - source.position
            guard available > 0, let base = source.bytes.baseAddress else { return -1 }
            let n = min(count, available)
            buffer.copyMemory(from: base + source.position, byteCount: n)
            source.position += n
            return n
        }
        opj_stream_set_skip_function(stream) { count, client in
            guard let client else { return -1 }
            let source = Unmanaged<StreamSource>.fromOpaque(client).takeUnretainedValue()
            // Within the stream only: a skip past either end stops at it.
            let target = max(0, min(Int64(source.bytes.count), Int64(source.position) &+ count))
            let skipped = target - Int64(source.position)
            source.position = Int(target)
            return skipped == 0 && count != 0 ? -1 : skipped
        }
        opj_stream_set_seek_function(stream) { offset, client in
            guard let client else { return 0 }
            let source = Unmanaged<StreamSource>.fromOpaque(client).takeUnretainedValue()
            guard offset >= 0, offset <= Int64(source.bytes.count) else { return 0 }
            source.position = Int(offset)
            return 1
        }

        var header: UnsafeMutablePointer<opj_image_t>? = nil
        guard opj_read_header(stream, codec, &header) != 0, let image = header else { throw failure("header") }
        defer { opj_image_destroy(image) }
        let (width, height) = (Int(image.pointee.x1) - Int(image.pointee.x0), Int(image.pointee.y1) - Int(image.pointee.y0))
        let shape = try checkedShape(width: width, height: height, "JPEG 2000")
        let count = Int(image.pointee.numcomps)
        guard (1...4).contains(count), let components = image.pointee.comps else {
            throw OpError.invalidArgument("the JPEG 2000 image has \(count) components; ImageDecoder reads 1 to 4"
                                          + " (gray, gray and alpha, RGB, RGB and alpha)")
        }
        switch image.pointee.color_space {
        case OPJ_CLRSPC_SYCC, OPJ_CLRSPC_EYCC, OPJ_CLRSPC_CMYK:
            throw OpError.invalidArgument("the JPEG 2000 image's colour space (\(image.pointee.color_space.rawValue):"
                                          + " YCC or CMYK) is not decoded")
        default: break
        }
        for c in 0..<count {
            let component = components[c]
            guard component.dx == 1, component.dy == 1 else {
                throw OpError.invalidArgument("the JPEG 2000 image's component \(c) is subsampled (\(component.dx) × \(component.dy));"
                                              + " ImageDecoder reads full-resolution components")
            }
            guard (1...16).contains(component.prec) else {
                throw OpError.invalidArgument("the JPEG 2000 image's component \(c) has \(component.prec)-bit samples;"
                                              + " ImageDecoder reads 1 to 16 bits")
            }
        }
        let rgb = try context.allocate(.uint8, shape)
        // OpenJPEG holds each component as 32-bit samples, once for the tile it decodes and once
        // for the image: about 8 bytes per sample, counted against the budget while it decodes
        // (a few hundred bytes of stream can declare an image of a gigabyte).
        let decoderBytes = width * height * count * 8  // at most 2^26 pixels × 4 components × 8: no overflow
        try context.withExternalMemory(decoderBytes, for: "decoding the \(width) × \(height) JPEG 2000 image") {
            guard opj_decode(codec, stream, image) != 0, opj_end_decompress(codec, stream) != 0 else { throw failure("data") }
        }

        let colours = count >= 3 ? 3 : 1
        let target = rgb.mutablePointer(as: UInt8.self)
        for c in 0..<colours {
            let component = components[c]
            guard Int(component.w) == width, Int(component.h) == height, let data = component.data else {
                throw failure("component \(c) decoded as \(component.w) × \(component.h), not \(width) × \(height)")
            }
            // Pillow's j2ku_shift: (offset + v) shifted left by 8 − prec (right when negative), kept to 8 bits.
            let precision = Int(component.prec)
            let offset: Int32 = component.sgnd != 0 ? 1 << (precision - 1) : 0
            let shift = 8 - precision
            for i in 0..<(width * height) {
                let value = UInt32(bitPattern: offset &+ data[i])
                let byte = UInt8(truncatingIfNeeded: shift >= 0 ? value << UInt32(shift) : value >> UInt32(-shift))
                if colours == 3 {
                    target[3 * i + c] = byte
                } else {
                    (target[3 * i], target[3 * i + 1], target[3 * i + 2]) = (byte, byte, byte)
                }
            }
        }
        return rgb
    }
}

private extension String {
    func trimmingSuffix(while predicate: (Character) -> Bool) -> String {
        var text = self
        while let last = text.last, predicate(last) { text.removeLast() }
        return text
    }
}
