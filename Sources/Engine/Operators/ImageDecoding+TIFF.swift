internal import CTIFF
import Glibc
import Tensors

/// TIFF through libtiff: the stream is opened from memory (client procedures over the buffer, never a
/// file), the first image directory read through TIFFRGBAImage (every photometric interpretation,
/// compression, strip or tile layout libtiff knows, 8-bit RGBA out). libtiff's errors and warnings go
/// to handlers of this decode that keep the first error for the message and print nothing; each of
/// its own allocations is capped. Rows come out in the file's order, as Pillow gives them (it does
/// not apply the Orientation tag), and an unassociated alpha channel is dropped rather than
/// multiplied in (TIFFRGBAImage would premultiply it; Pillow's convert("RGB") drops it).
extension ImageDecoding {
    /// The largest single allocation libtiff may make while decoding (a strip or tile buffer).
    private static let tiffAllocationLimit = (maximumPixels * 4) + (1 << 20)

    /// The process-wide handlers, silenced once: libtiff calls them only where no per-TIFF handler exists.
    private static let silenceGlobalTIFFHandlers: Void = {
        _ = TIFFSetErrorHandler(nil)
        _ = TIFFSetWarningHandler(nil)
    }()

    static func decodeTIFF(_ bytes: UnsafeBufferPointer<UInt8>, _ context: ExecutionContext) throws -> Tensor {
        _ = silenceGlobalTIFFHandlers
        let source = StreamSource(bytes)
        // The library holds `source` only as a raw pointer: keep it alive until every library object is gone.
        defer { withExtendedLifetime(source) {} }
        let client = Unmanaged.passUnretained(source).toOpaque()
        func failure(_ step: String) -> OpError {
            OpError.invalidArgument("the TIFF image cannot be decoded (\(step)\(source.error.map { ": \($0)" } ?? ""))")
        }
        guard let options = TIFFOpenOptionsAlloc() else { throw OpError("libtiff could not allocate its options") }
        defer { TIFFOpenOptionsFree(options) }
        TIFFOpenOptionsSetMaxSingleMemAlloc(options, tmsize_t(tiffAllocationLimit))
        TIFFOpenOptionsSetErrorHandlerExtR(options, { _, client, module, format, arguments in
            guard let client, let format, let arguments else { return 1 }
            let source = Unmanaged<StreamSource>.fromOpaque(client).takeUnretainedValue()
            if source.error == nil {
                var text = [CChar](repeating: 0, count: 512)
                _ = vsnprintf(&text, text.count, format, arguments)
                let module = module.map { String(cString: $0) + ": " } ?? ""
                source.error = module + String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
            return 1
        }, client)
        // Warnings (unknown tags, odd but readable values) are ignored, as Pillow ignores them.
        TIFFOpenOptionsSetWarningHandlerExtR(options, { _, _, _, _, _ in 1 }, client)

        guard let tiff = TIFFClientOpenExt("memory", "r", client, { client, buffer, count in
            // read
            guard let client, let buffer, count >= 0 else { return -1 }
            let source = Unmanaged<StreamSource>.fromOpaque(client).takeUnretainedValue()
            let available = max(0, source.bytes.count - source.position)
            let n = min(Int(clamping: count), available)
            if n > 0, let base = source.bytes.baseAddress {
                buffer.copyMemory(from: base + source.position, byteCount: n)
                source.position += n
            }
            return tmsize_t(n)
        }, { _, _, _ in -1 }, { client, offset, whence in
            // seek: positions past the end are allowed (reads there return nothing), negative ones are not
            guard let client else { return toff_t.max }
            let source = Unmanaged<StreamSource>.fromOpaque(client).takeUnretainedValue()
            let base: Int
            switch whence {
            case SEEK_SET: base = 0
            case SEEK_CUR: base = source.position
            case SEEK_END: base = source.bytes.count
            default: return toff_t.max
            }
            let delta = Int64(bitPattern: offset)
            let (target, overflow) = Int64(base).addingReportingOverflow(delta)
            guard !overflow, target >= 0, let position = Int(exactly: target) else { return toff_t.max }
            source.position = position
            return toff_t(target)
        }, { _ in 0 }, { client in
            // size
            guard let client else { return 0 }
            return toff_t(Unmanaged<StreamSource>.fromOpaque(client).takeUnretainedValue().bytes.count)
        }, { _, _, _ in 0 }, { _, _, _ in }, options) else {
            throw failure("header")
        }
        defer { TIFFClose(tiff) }

        var message = [CChar](repeating: 0, count: 1024)
        func libraryMessage() -> String { String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        guard TIFFRGBAImageOK(tiff, &message) != 0 else {
            throw OpError.invalidArgument("the TIFF image cannot be decoded (\(source.error ?? libraryMessage()))")
        }
        try dropUnassociatedAlpha(tiff)
        var image = TIFFRGBAImage()
        guard TIFFRGBAImageBegin(&image, tiff, 1, &message) != 0 else {
            throw OpError.invalidArgument("the TIFF image cannot be decoded (\(source.error ?? libraryMessage()))")
        }
        defer { TIFFRGBAImageEnd(&image) }
        let shape = try checkedShape(width: Int(image.width), height: Int(image.height), "TIFF")
        // The file's own orientation requested: no flips, rows as stored.
        image.req_orientation = image.orientation
        let rgba = try context.allocate(.uint8, [shape[0], shape[1], 4])
        let raster = UnsafeMutableRawPointer(rgba.mutablePointer(as: UInt8.self)).bindMemory(to: UInt32.self,
                                                                                             capacity: rgba.elementCount / 4)
        guard TIFFRGBAImageGet(&image, raster, image.width, image.height) != 0, source.error == nil else {
            throw failure("data")
        }
        // TIFFRGBAImage packs a pixel as A·2^24 + B·2^16 + G·2^8 + R.
        let rgb = try context.allocate(.uint8, shape)
        let target = rgb.mutablePointer(as: UInt8.self)
        for i in 0..<(rgb.elementCount / 3) {
            let pixel = raster[i]
            target[3 * i] = UInt8(truncatingIfNeeded: pixel)
            target[3 * i + 1] = UInt8(truncatingIfNeeded: pixel >> 8)
            target[3 * i + 2] = UInt8(truncatingIfNeeded: pixel >> 16)
        }
        return rgb
    }

    /// Marks the directory's unassociated-alpha extra samples as unspecified (in memory only), so that
    /// TIFFRGBAImage copies the colour samples instead of multiplying them by alpha.
    private static func dropUnassociatedAlpha(_ tiff: OpaquePointer) throws {
        var count: UInt16 = 0
        var kinds: UnsafeMutablePointer<UInt16>? = nil
        let found = withUnsafeMutablePointer(to: &count) { countPointer in
            withUnsafeMutablePointer(to: &kinds) { kindsPointer in
                withVaList([countPointer, kindsPointer]) { TIFFVGetField(tiff, UInt32(TIFFTAG_EXTRASAMPLES), $0) }
            }
        }
        guard found != 0, count > 0, let kinds else { return }
        var replaced = (0..<Int(count)).map { kinds[$0] }
        guard replaced.contains(UInt16(EXTRASAMPLE_UNASSALPHA)) else { return }
        for i in replaced.indices where replaced[i] == UInt16(EXTRASAMPLE_UNASSALPHA) { replaced[i] = UInt16(EXTRASAMPLE_UNSPECIFIED) }
        let set = replaced.withUnsafeMutableBufferPointer { buffer -> Int32 in
            guard let kinds = buffer.baseAddress else { return 0 }
            return withVaList([Int32(count), kinds]) { TIFFVSetField(tiff, UInt32(TIFFTAG_EXTRASAMPLES), $0) }
        }
        guard set != 0 else { throw OpError.invalidArgument("the TIFF image cannot be decoded (its extra samples)") }
    }
}
