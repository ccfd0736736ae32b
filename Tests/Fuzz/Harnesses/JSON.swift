import API

/// Input: any bytes, parsed as a request body.
func fuzzJSON(_ data: UnsafePointer<UInt8>, _ size: Int) {
    _ = try? JSONParser.parse(UnsafeRawBufferPointer(start: data, count: size))
}
