/// Problems reading ONNX files, each a one-line message naming the problem.
public enum ONNXError: Error, Sendable, CustomStringConvertible {
    /// The file could not be read.
    case unreadable(path: String, reason: String)
    /// The bytes are not a valid ONNX protobuf message.
    case malformed(String)
    /// The model is valid protobuf but not a model we can load.
    case invalidModel(String)
    /// External tensor data is missing, short, or outside the model's folder.
    case externalData(String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "cannot read \(path): \(reason)"
        case .malformed(let message): "not a valid ONNX file: \(message)"
        case .invalidModel(let message): "invalid model: \(message)"
        case .externalData(let message): "external data: \(message)"
        }
    }
}
