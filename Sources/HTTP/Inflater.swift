import CZlib

/// zlib's streaming inflate for gzip and zlib-wrapped ("deflate") bodies. The `z_stream` lives
/// on the heap because zlib keeps a pointer back to it.
final class Inflater {
    /// 15 window bits, +32 to accept both the gzip and the zlib header.
    private static let windowBits: Int32 = 15 + 32
    private static let scratchSize = 64 * 1024

    private let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    private let scratch = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: Inflater.scratchSize)
    /// True after the end of a gzip member or zlib stream.
    private(set) var isAtStreamEnd = false

    init() throws(BodyReader.Failure) {
        stream.initialize(to: z_stream())
        // inflateInit2 is a macro; this is its expansion.
        guard inflateInit2_(stream, Self.windowBits, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            stream.deallocate()
            scratch.deallocate()
            throw .malformed("cannot initialise the decompressor")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
        scratch.deallocate()
    }

    /// Decodes `input`, handing each piece of output to `keep` (which may refuse it by
    /// throwing). Concatenated gzip members are decoded one after the other.
    func inflate(
        _ input: UnsafeRawBufferPointer,
        into keep: (UnsafeRawBufferPointer) throws(BodyReader.Failure) -> Void
    ) throws(BodyReader.Failure) {
        guard let base = input.baseAddress else { return }
        // zlib counts input in UInt32: feed larger inputs in parts.
        var offset = 0
        while offset < input.count {
            let count = min(input.count - offset, Int(UInt32.max))
            // zlib reads `next_in` only; its missing `const` forces the cast.
            stream.pointee.next_in = UnsafeMutablePointer(mutating: (base + offset).assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = UInt32(count)
            try inflatePending(into: keep)
            offset += count
        }
    }

    /// Decodes the input zlib holds until it is all consumed.
    private func inflatePending(into keep: (UnsafeRawBufferPointer) throws(BodyReader.Failure) -> Void) throws(BodyReader.Failure) {
        while true {
            if isAtStreamEnd {
                guard stream.pointee.avail_in > 0 else { return }
                inflateReset(stream)
                isAtStreamEnd = false
            }
            stream.pointee.next_out = scratch.baseAddress
            stream.pointee.avail_out = UInt32(scratch.count)
            let status = CZlib.inflate(stream, Z_NO_FLUSH)
            let produced = scratch.count - Int(stream.pointee.avail_out)
            try keep(UnsafeRawBufferPointer(start: scratch.baseAddress, count: produced))
            switch status {
            case Z_STREAM_END:
                isAtStreamEnd = true
            case Z_OK where stream.pointee.avail_out == 0:
                continue  // more output is pending
            case Z_OK, Z_BUF_ERROR:
                return  // all input consumed
            default:
                let reason = stream.pointee.msg.map { String(cString: $0) } ?? "error \(status)"
                throw .malformed("compressed request body does not decode: \(reason)")
            }
        }
    }
}
