import ONNX

/// Input: a serialized ONNX `TensorProto` (as `onnx-serve run --input` reads).
func fuzzTensorProto(_ data: UnsafePointer<UInt8>, _ size: Int) {
    _ = try? TensorFile.decode(Array(UnsafeBufferPointer(start: data, count: size)))
}
