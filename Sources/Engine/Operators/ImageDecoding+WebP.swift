internal import CWebP
import Tensors

/// WebP through libwebp's simple decoding API: features (size, animation) first, then one decode
/// into the output tensor. libwebp reports errors as return values and prints nothing.
extension ImageDecoding {
    static func decodeWebP(_ bytes: UnsafeBufferPointer<UInt8>, _ context: ExecutionContext) throws -> Tensor {
        var features = WebPBitstreamFeatures()
        let status = WebPGetFeatures(bytes.baseAddress, bytes.count, &features)
        guard status == VP8_STATUS_OK else {
            throw OpError.invalidArgument("the WebP image cannot be decoded (header: \(describe(status)))")
        }
        guard features.has_animation == 0 else {
            throw OpError.invalidArgument("the WebP image is animated; ImageDecoder decodes still images")
        }
        let shape = try checkedShape(width: Int(features.width), height: Int(features.height), "WebP")
        let rgb = try context.allocate(.uint8, shape)
        // An alpha channel is not written (RGB output), as Pillow's convert("RGB") drops it.
        let (stride, strideOverflow) = shape[1].multipliedReportingOverflow(by: 3)
        guard !strideOverflow, let strideValue = Int32(exactly: stride) else {
            throw OpError.invalidArgument("the WebP image is too wide (\(shape[1]) pixels)")
        }
        guard WebPDecodeRGBInto(bytes.baseAddress, bytes.count, rgb.mutablePointer(as: UInt8.self), rgb.elementCount,
                                strideValue) != nil else {
            throw OpError.invalidArgument("the WebP image cannot be decoded (data: truncated or corrupt bitstream)")
        }
        return rgb
    }

    private static func describe(_ status: VP8StatusCode) -> String {
        switch status {
        case VP8_STATUS_OUT_OF_MEMORY: "out of memory"
        case VP8_STATUS_INVALID_PARAM: "invalid parameter"
        case VP8_STATUS_BITSTREAM_ERROR: "bitstream error"
        case VP8_STATUS_UNSUPPORTED_FEATURE: "unsupported feature"
        case VP8_STATUS_SUSPENDED: "suspended"
        case VP8_STATUS_USER_ABORT: "aborted"
        case VP8_STATUS_NOT_ENOUGH_DATA: "not enough data: truncated stream"
        default: "status \(status.rawValue)"
        }
    }
}
