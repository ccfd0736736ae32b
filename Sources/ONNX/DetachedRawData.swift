/// A serialized `ModelProto` with the `raw_data` payloads of its main graph's initializers cut
/// out, and where each payload lies in the original bytes.
///
/// swift-protobuf copies every `bytes` field into a `Data` of its own, so decoding a model whole
/// holds its weights twice (the file's bytes and the message's) and a third time once they become
/// tensors: BERT-base peaked at 3× its 415 MiB file. Decoding the rest and copying each
/// initializer's bytes straight from the file into its tensor holds them once.
///
/// Only the wire layout is read here, and only along ModelProto.graph (7) → GraphProto.initializer
/// (5) → TensorProto.raw_data (9); every other field is copied as it is. Each cut-out payload is
/// replaced by an empty `raw_data`, so the decoded message says the same things (a repeated
/// `graph` merges, a repeated `raw_data` keeps the last). Anything unusual (groups, a field
/// number 0, a length past the end) gives nil: the caller decodes the original bytes, and
/// swift-protobuf judges them as before.
struct DetachedRawData {
    /// The message without the payloads.
    let skeleton: [UInt8]
    /// Per initializer of the main graph, in the order the decoder appends them: the byte range of
    /// its last `raw_data` in the original bytes, nil when it has none.
    let payloads: [Range<Int>?]

    private enum Level { case model, graph, tensor }

    private struct Cutter {
        let bytes: UnsafeRawBufferPointer
        var payloads: [Range<Int>?] = []
        var detachedBytes = 0

        /// The varint at `position` (advanced past it), or nil when it runs past `end` or 10 bytes.
        func varint(_ position: inout Int, end: Int) -> UInt64? {
            var value: UInt64 = 0
            for shift in stride(from: UInt64(0), to: 70, by: 7) {
                guard position < end else { return nil }
                let byte = bytes[position]
                position += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
            }
            return nil
        }

        /// Appends the fields of the message in `range` to `output`, cutting payloads at `level`.
        mutating func copy(_ range: Range<Int>, level: Level, into output: inout [UInt8]) -> Bool {
            var position = range.lowerBound
            let end = range.upperBound
            while position < end {
                let fieldStart = position
                guard let tag = varint(&position, end: end) else { return false }
                let tagEnd = position
                let field = tag >> 3
                guard field != 0 else { return false }
                switch tag & 7 {
                case 0:
                    guard varint(&position, end: end) != nil else { return false }
                case 1:
                    guard end - position >= 8 else { return false }
                    position += 8
                case 5:
                    guard end - position >= 4 else { return false }
                    position += 4
                case 2:
                    guard let length = varint(&position, end: end), length <= UInt64(end - position) else { return false }
                    let body = position..<(position + Int(length))
                    position = body.upperBound
                    switch (level, field) {
                    case (.model, 7), (.graph, 5):
                        if level == .graph { payloads.append(nil) }
                        var nested: [UInt8] = []
                        guard copy(body, level: level == .model ? .graph : .tensor, into: &nested) else { return false }
                        output.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[fieldStart..<tagEnd]))
                        Self.appendVarint(UInt64(nested.count), to: &output)
                        output.append(contentsOf: nested)
                        continue
                    case (.tensor, 9):
                        payloads[payloads.count - 1] = body
                        detachedBytes += body.count
                        output.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[fieldStart..<tagEnd]))
                        output.append(0)
                        continue
                    default:
                        break
                    }
                default:
                    return false
                }
                output.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[fieldStart..<position]))
            }
            return true
        }

        static func appendVarint(_ value: UInt64, to output: inout [UInt8]) {
            var rest = value
            while rest >= 0x80 {
                output.append(UInt8(truncatingIfNeeded: rest) | 0x80)
                rest >>= 7
            }
            output.append(UInt8(rest))
        }
    }

    /// Cuts the initializers' payloads out of `bytes`, a serialized `ModelProto`; nil when the
    /// layout is unusual, or when the payloads are less than half the bytes (then the skeleton,
    /// a copy of the rest, would cost more than it saves).
    init?(cutting bytes: UnsafeRawBufferPointer) {
        var cutter = Cutter(bytes: bytes)
        var skeleton: [UInt8] = []
        guard cutter.copy(0..<bytes.count, level: .model, into: &skeleton),
              cutter.detachedBytes > bytes.count / 2 else { return nil }
        self.skeleton = skeleton
        payloads = cutter.payloads
    }
}
