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
    static func body(values: [Float], misalignment: Int) -> (body: [UInt8], headerLength: Int) {
        let json = #"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","parameters":{"binary_data_size":12}}]}"#
        var body = Array(json.utf8) + Array(repeating: UInt8(ascii: " "), count: 128) + values.withUnsafeBytes { Array($0) }
        let base = body.withUnsafeBytes { Int(bitPattern: $0.baseAddress) }
        var header = json.utf8.count
        while (base + header) % 64 != misalignment { header += 1 }
        body = Array(json.utf8) + Array(repeating: UInt8(ascii: " "), count: header - json.utf8.count) + values.withUnsafeBytes { Array($0) }
        return (body, header)
    }

    @Test(arguments: [0, 4, 17])
    func binaryTensorsReadCorrectlyAlignedOrNot(misalignment: Int) throws {
        let model = try Self.model()
        let values: [Float] = [-1, 2, 3.5]
        var (body, header) = Self.body(values: values, misalignment: misalignment)
        // Rebuilding the array may move it: retry until the data lands where the case wants it.
        for _ in 0..<64 where body.withUnsafeBytes({ (Int(bitPattern: $0.baseAddress) + header) % 64 }) != misalignment {
            (body, header) = Self.body(values: values, misalignment: misalignment)
        }
        let decoded = try OpenInferenceCodec.decode(body, headerLength: header, model: model)
        let tensor = try #require(decoded.request.inputs["x"])
        #expect(tensor.scalars(as: Float.self) == values)
        let inside = body.withUnsafeBytes { raw in
            (Int(bitPattern: raw.baseAddress)..<(Int(bitPattern: raw.baseAddress) + raw.count)).contains(Int(bitPattern: tensor.rawPointer))
        }
        #expect(inside == (misalignment == 0), "aligned data is read in place, other data copied")
    }
}
