import API

/// Input: the `Inference-Header-Content-Length` as 4 little-endian bytes (0xFFFFFFFF: no such
/// header), then an Open Inference infer body, decoded for each of the fuzz models within a
/// 1 MiB charge, as the daemon charges its memory budget (so over-budget paths run too).
func fuzzOpenInference(_ data: UnsafePointer<UInt8>, _ size: Int) {
    guard size >= 4 else { return }
    let declared = (0..<4).reduce(UInt32(0)) { $0 | UInt32(data[$1]) << (8 * $1) }
    let headerLength = declared == .max ? nil : Int(declared)
    let body = Array(UnsafeBufferPointer(start: data + 4, count: size - 4))
    for model in FuzzModels.served {
        var charged = 0
        _ = try? OpenInferenceCodec.decode(body, headerLength: headerLength, model: model, charge: { bytes in
            guard bytes >= 0, bytes <= (1 << 20) - charged else { return false }
            charged += bytes
            return true
        })
    }
}
