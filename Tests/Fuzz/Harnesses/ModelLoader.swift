import Engine
import Foundation
import ONNX

/// Input: an `.onnx` file, loaded and built into a session (optimisation passes, operators,
/// type inference). External data may name files in Tests/Fuzz/Models (`weights.bin`).
func fuzzModelLoader(_ data: UnsafePointer<UInt8>, _ size: Int) {
    guard let model = try? ModelLoader.load(Data(bytes: data, count: size), directory: FuzzModels.folder) else { return }
    _ = try? InferenceSession(model: model, options: .init(intraOpThreads: 1))
}
