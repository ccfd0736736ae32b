import API

/// Input: a TF Serving predict body, decoded for each of the fuzz models.
func fuzzTFServing(_ data: UnsafePointer<UInt8>, _ size: Int) {
    guard let body = try? JSONParser.parse(UnsafeRawBufferPointer(start: data, count: size)) else { return }
    for model in FuzzModels.served {
        _ = try? TFServingCodec.decodePredict(body, model: model)
    }
}
