internal import CPNG
internal import CTurboJPEG
import Tensors

/// Decoding of encoded images (ImageDecoder) with the system's libraries: JPEG with libjpeg-turbo's
/// TurboJPEG API, PNG with libpng's simplified API, WebP with libwebp (ImageDecoding+WebP.swift),
/// BMP and binary PNM with stb_image (ImageDecoding+STBImage.swift), TIFF with libtiff
/// (ImageDecoding+TIFF.swift), JPEG 2000 with OpenJPEG (ImageDecoding+JPEG2000.swift). All report errors through return
/// codes (none longjmps through Swift frames or exits), which become `OpError.invalidArgument` here.
/// Other formats are recognised by their signature and refused by name.
enum ImageDecoding {
    /// Most pixels a decoded image may have (64 Mi: 8192 × 8192), checked against the stream's
    /// header before anything is allocated; the run's working-memory budget applies on top.
    static let maximumPixels = 1 << 26

    /// An encoded stream a C decoder reads through callbacks (OpenJPEG's, libtiff's client
    /// procedures): the bytes, the read position, and the first error the decoder reported.
    final class StreamSource {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0
        var error: String?

        init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }
    }

    /// What the output holds per pixel.
    enum PixelFormat: Sendable {
        case rgb, bgr, grayscale

        var channels: Int { self == .grayscale ? 1 : 3 }
    }

    /// The image in `bytes` as uint8 [height, width, channels] in `format`.
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>, as format: PixelFormat, _ context: ExecutionContext) throws -> Tensor {
        let rgb: Tensor
        switch try Container(bytes) {
        case .jpeg: rgb = try decodeJPEG(bytes, context)
        case .png: rgb = try decodePNG(bytes, context)
        case .webp: rgb = try decodeWebP(bytes, context)
        case .bmp: rgb = try decodeBMP(bytes, context)
        case .pnm: rgb = try decodePNM(bytes, context)
        case .tiff: rgb = try decodeTIFF(bytes, context)
        case .jp2: rgb = try decodeJPEG2000(bytes, codestream: false, context)
        case .j2k: rgb = try decodeJPEG2000(bytes, codestream: true, context)
        }
        switch format {
        case .rgb:
            return rgb
        case .bgr:
            let pixels = rgb.mutablePointer(as: UInt8.self)
            for i in 0..<(rgb.elementCount / 3) { (pixels[3 * i], pixels[3 * i + 2]) = (pixels[3 * i + 2], pixels[3 * i]) }
            return rgb
        case .grayscale:
            let gray = try context.allocate(.uint8, [rgb.shape[0], rgb.shape[1], 1])
            let source = rgb.pointer(as: UInt8.self), target = gray.mutablePointer(as: UInt8.self)
            // ITU-R 601-2 luma in 16-bit fixed point, rounded: what Pillow's convert("L") computes.
            for i in 0..<gray.elementCount {
                let sum = Int(source[3 * i]) * 19595 + Int(source[3 * i + 1]) * 38470 + Int(source[3 * i + 2]) * 7471
                target[i] = UInt8(truncatingIfNeeded: (sum + 0x8000) >> 16)
            }
            return gray
        }
    }

    /// The stream's format, from its signature.
    enum Container {
        case jpeg, png, webp, bmp, pnm, tiff, jp2, j2k

        /// What the error for an unrecognised stream lists.
        static let readable = "JPEG, PNG, WebP, BMP, binary PNM (P5, P6), TIFF or JPEG 2000"

        init(_ bytes: UnsafeBufferPointer<UInt8>) throws {
            func starts(_ prefix: [UInt8], at offset: Int = 0) -> Bool {
                bytes.count >= offset + prefix.count && prefix.indices.allSatisfy { bytes[offset + $0] == prefix[$0] }
            }
            if starts([0xFF, 0xD8, 0xFF]) { self = .jpeg; return }
            if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { self = .png; return }
            if starts(Array("RIFF".utf8)) && starts(Array("WEBP".utf8), at: 8) { self = .webp; return }
            if starts(Array("BM".utf8)) { self = .bmp; return }
            if bytes.count >= 2 && bytes[0] == UInt8(ascii: "P") && (UInt8(ascii: "1")...UInt8(ascii: "7")).contains(bytes[1]) {
                self = .pnm
                return
            }
            if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) { self = .tiff; return }
            if starts([0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20]) { self = .jp2; return }
            if starts([0xFF, 0x4F, 0xFF, 0x51]) { self = .j2k; return }
            let other: String? =
                if starts(Array("GIF8".utf8)) { "GIF" }
                else if starts([0x49, 0x49, 0x2B, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2B]) { "BigTIFF" }
                else { nil }
            if let other { throw OpError.invalidArgument("the encoded image is \(other); ImageDecoder reads \(Container.readable)") }
            throw OpError.invalidArgument("the encoded stream (\(bytes.count) bytes) is not a \(Container.readable) image")
        }
    }

    /// Checks a header's size against `maximumPixels` and returns the RGB output shape.
    static func checkedShape(width: Int, height: Int, _ what: String) throws -> Shape {
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        guard width >= 1, height >= 1, !overflow, pixels <= maximumPixels else {
            throw OpError.invalidArgument("the \(what) image claims \(width) × \(height) pixels; ImageDecoder decodes at most"
                                          + " \(maximumPixels) pixels")
        }
        return [height, width, 3]
    }

    // MARK: JPEG

    private static func decodeJPEG(_ bytes: UnsafeBufferPointer<UInt8>, _ context: ExecutionContext) throws -> Tensor {
        guard let handle = tjInitDecompress() else { throw OpError("libturbojpeg could not start a decompressor") }
        defer { tjDestroy(handle) }
        func failure(_ step: String) -> OpError {
            OpError.invalidArgument("the JPEG image cannot be decoded (\(step): \(String(cString: tjGetErrorStr2(handle))))")
        }
        let size = UInt(bytes.count)
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        guard tjDecompressHeader3(handle, bytes.baseAddress, size, &width, &height, &subsampling, &colorspace) == 0 else {
            throw failure("header")
        }
        // A stream that ends before its frame header may still pass the header call, with no size.
        guard width > 0, height > 0 else {
            throw OpError.invalidArgument("the JPEG image cannot be decoded (header: no frame size before the stream ends)")
        }
        let shape = try checkedShape(width: Int(width), height: Int(height), "JPEG")
        let rgb = try context.allocate(.uint8, shape)
        // Warnings (a truncated stream, corrupt data) are errors; progressive streams are limited in scans.
        let flags = TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS
        guard tjDecompress2(handle, bytes.baseAddress, size, rgb.mutablePointer(as: UInt8.self), width, 0, height,
                            Int32(TJPF_RGB.rawValue), flags) == 0 else {
            throw failure("data")
        }
        return rgb
    }

    // MARK: PNG

    private static func decodePNG(_ bytes: UnsafeBufferPointer<UInt8>, _ context: ExecutionContext) throws -> Tensor {
        var image = png_image()
        image.version = png_uint_32(PNG_IMAGE_VERSION)
        func failure() -> OpError {
            let message = withUnsafeBytes(of: image.message) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            png_image_free(&image)
            return OpError.invalidArgument("the PNG image cannot be decoded (\(message))")
        }
        guard png_image_begin_read_from_memory(&image, bytes.baseAddress, bytes.count) != 0 else { throw failure() }
        let shape: Shape
        do {
            shape = try checkedShape(width: Int(image.width), height: Int(image.height), "PNG")
        } catch {
            png_image_free(&image)
            throw error
        }
        // An alpha channel is read and then dropped (as Pillow's convert("RGB") does), not composited.
        let alpha = image.format & png_uint_32(PNG_FORMAT_FLAG_ALPHA) != 0
        let rgb: Tensor, decoded: Tensor
        do {
            rgb = try context.allocate(.uint8, shape)
            decoded = alpha ? try context.allocate(.uint8, [shape[0], shape[1], 4]) : rgb
        } catch {
            png_image_free(&image)
            throw error
        }
        image.format = png_uint_32(PNG_FORMAT_FLAG_COLOR) | (alpha ? png_uint_32(PNG_FORMAT_FLAG_ALPHA) : 0)
        guard png_image_finish_read(&image, nil, decoded.mutablePointer(as: UInt8.self), 0, nil) != 0 else { throw failure() }
        if alpha {
            let source = decoded.pointer(as: UInt8.self), target = rgb.mutablePointer(as: UInt8.self)
            for i in 0..<(rgb.elementCount / 3) {
                target[3 * i] = source[4 * i]
                target[3 * i + 1] = source[4 * i + 1]
                target[3 * i + 2] = source[4 * i + 2]
            }
        }
        return rgb
    }
}

/// ImageDecoder (20): a 1-D uint8 tensor holding an encoded image (JPEG, PNG, WebP, BMP, PNM, TIFF, JPEG 2000) → uint8
/// [height, width, channels] in `pixel_format` (RGB, BGR, or Grayscale with one channel).
struct ImageDecoder: Operator {
    let pixelFormat: ImageDecoding.PixelFormat

    init(_ context: OperatorContext) throws {
        switch try context.string("pixel_format", default: "RGB") {
        case "RGB": pixelFormat = .rgb
        case "BGR": pixelFormat = .bgr
        case "Grayscale": pixelFormat = .grayscale
        case let other: throw OpError("pixel_format '\(other)' is not RGB, BGR or Grayscale")
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        return [TensorType(.uint8, [.unknown, .unknown, .fixed(pixelFormat.channels)])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let stream = try inputs.required(0)
        guard stream.shape.rank == 1 else {
            throw OpError.invalidArgument("encoded_stream must be a 1-D uint8 tensor, not \(stream.dataType)\(stream.shape)")
        }
        return [try withExtendedLifetime(stream) {
            try ImageDecoding.decode(UnsafeBufferPointer(start: stream.pointer(as: UInt8.self), count: stream.elementCount),
                                     as: pixelFormat, context)
        }]
    }
}
