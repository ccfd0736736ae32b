import Foundation
import ONNX
import Tensors
import Testing

/// Standalone `TensorProto`s (the backend test format): every element type round-trips through
/// encode and decode, and bad bytes give a clear error instead of a crash.
@Suite struct TensorFileTests {
    private func roundTrip(_ tensor: Tensor, name: String = "t") throws -> Tensor {
        let decoded = try TensorFile.decode(TensorFile.encode(tensor, name: name))
        #expect(decoded.name == name)
        #expect(decoded.tensor.dataType == tensor.dataType)
        #expect(decoded.tensor.shape == tensor.shape)
        return decoded.tensor
    }

    @Test func everyNumericElementTypeRoundTrips() throws {
        let shape: Shape = [2, 3]
        #expect(try roundTrip(Tensor([Float]([1.5, -0, .infinity, -3e-39, 7, .greatestFiniteMagnitude]), shape: shape))
            .scalars(as: Float.self) == [1.5, -0, .infinity, -3e-39, 7, .greatestFiniteMagnitude])
        #expect(try roundTrip(Tensor([Double]([1e300, -2, 0.1, 4, 5, 6]), shape: shape)).scalars(as: Double.self) == [1e300, -2, 0.1, 4, 5, 6])
        #expect(try roundTrip(Tensor([Float16]([0.5, -1, 65504, 0, 2, 3]), shape: shape)).scalars(as: Float16.self) == [0.5, -1, 65504, 0, 2, 3])
        #expect(try roundTrip(Tensor([Int8]([-128, 127, 0, 1, 2, 3]), shape: shape)).scalars(as: Int8.self) == [-128, 127, 0, 1, 2, 3])
        #expect(try roundTrip(Tensor([Int16]([-32768, 32767, 0, 1, 2, 3]), shape: shape)).scalars(as: Int16.self) == [-32768, 32767, 0, 1, 2, 3])
        #expect(try roundTrip(Tensor([Int32]([.min, .max, 0, 1, 2, 3]), shape: shape)).scalars(as: Int32.self) == [.min, .max, 0, 1, 2, 3])
        #expect(try roundTrip(Tensor([Int64]([.min, .max, 0, 1, 2, 3]), shape: shape)).scalars(as: Int64.self) == [.min, .max, 0, 1, 2, 3])
        #expect(try roundTrip(Tensor([UInt8]([255, 0, 1, 2, 3, 4]), shape: shape)).scalars(as: UInt8.self) == [255, 0, 1, 2, 3, 4])
        #expect(try roundTrip(Tensor([UInt16]([65535, 0, 1, 2, 3, 4]), shape: shape)).scalars(as: UInt16.self) == [65535, 0, 1, 2, 3, 4])
        #expect(try roundTrip(Tensor([UInt32]([.max, 0, 1, 2, 3, 4]), shape: shape)).scalars(as: UInt32.self) == [.max, 0, 1, 2, 3, 4])
        #expect(try roundTrip(Tensor([UInt64]([.max, 0, 1, 2, 3, 4]), shape: shape)).scalars(as: UInt64.self) == [.max, 0, 1, 2, 3, 4])
        #expect(try roundTrip(Tensor([Bool]([true, false, true, true, false, false]), shape: shape)).scalars(as: Bool.self)
            == [true, false, true, true, false, false])
    }

    @Test func nanSurvivesTheRoundTrip() throws {
        let decoded = try roundTrip(Tensor([Float.nan], shape: [1])).scalars(as: Float.self)
        #expect(decoded[0].isNaN)
    }

    @Test func scalarsEmptyTensorsAndStringsRoundTrip() throws {
        #expect(try roundTrip(Tensor(scalar: Float(4.25))).scalars(as: Float.self) == [4.25])
        #expect(try roundTrip(Tensor([Float](), shape: [0, 5])).elementCount == 0)
        #expect(try roundTrip(Tensor(strings: ["a", "", "ünïcode"], shape: [3])).strings == ["a", "", "ünïcode"])
    }

    @Test func garbageIsAClearError() {
        #expect(throws: ONNXError.self) { try TensorFile.decode([0xFF, 0xFF, 0xFF, 0xFF]) }
        let valid = TensorFile.encode(Tensor([Float](repeating: 1, count: 100), shape: [100]), name: "t")
        do {
            _ = try TensorFile.decode(Array(valid.prefix(valid.count / 2)))
            Issue.record("a truncated TensorProto decoded")
        } catch {
            #expect("\(error)".contains("TensorProto"), "\(error)")
        }
    }

    @Test func modelLoaderRefusesEmptyAndNonModelBytes() {
        #expect(throws: ONNXError.self) { try ModelLoader.load(Data(), directory: nil) }
        #expect(throws: ONNXError.self) { try ModelLoader.load(Data("not a model at all".utf8), directory: nil) }
        #expect(throws: ONNXError.self) { try ModelLoader.load(contentsOf: "/nonexistent/model.onnx") }
    }
}
