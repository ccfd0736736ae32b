import API
import Foundation
import Logging
import Serving
import Tensors
import Testing

@Suite struct OpenInferenceCodecTests {
    /// Tests/Python/data/relu.onnx: x float[batch, 3] -> y = relu(x).
    static func model() throws -> ServedModel {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Python/data/relu.onnx").standardized.path
        let registry = ModelRegistry(repository: nil, explicit: [ModelSource(name: "relu", versions: [1: path])],
                                     defaults: ServingDefaults(warmup: false), metrics: ServingMetrics(), logger: Logger(label: "test"))
        try registry.loadAll()
        return try registry.resolve(name: "relu")
    }

    /// A binary request whose tensor data starts `misalignment` bytes past a 64-byte boundary.
    /// The array's storage is reserved up front, so appending never moves it.
    static func body(values: [Float], misalignment: Int) -> (body: [UInt8], headerLength: Int) {
        let json = Array(#"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","parameters":{"binary_data_size":12}}]}"#.utf8)
        var body = [UInt8]()
        body.reserveCapacity(json.count + 64 + MemoryLayout<Float>.size * values.count)
        body += json
        let base = body.withUnsafeBytes { Int(bitPattern: $0.baseAddress) }
        while (base + body.count) % 64 != misalignment { body.append(UInt8(ascii: " ")) }
        let header = body.count
        values.withUnsafeBytes { body += $0 }
        return (body, header)
    }

    @Test(arguments: [0, 4, 17])
    func binaryTensorsReadCorrectlyAlignedOrNot(misalignment: Int) throws {
        let model = try Self.model()
        let values: [Float] = [-1, 2, 3.5]
        let (body, header) = Self.body(values: values, misalignment: misalignment)
        try #require(body.withUnsafeBytes { (Int(bitPattern: $0.baseAddress) + header) % 64 } == misalignment)
        let decoded = try OpenInferenceCodec.decode(body, headerLength: header, model: model)
        let tensor = try #require(decoded.request.inputs["x"])
        #expect(tensor.scalars(as: Float.self) == values)
        let inside = body.withUnsafeBytes { raw in
            (Int(bitPattern: raw.baseAddress)..<(Int(bitPattern: raw.baseAddress) + raw.count)).contains(Int(bitPattern: tensor.rawPointer))
        }
        #expect(inside == (misalignment == 0), "aligned data is read in place, other data copied")
    }
}
