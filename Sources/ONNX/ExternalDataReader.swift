#if canImport(Glibc)
import Glibc
#endif
import Tensors

/// Reads tensors stored outside the model file (`data_location: EXTERNAL`), relative to the
/// model's folder, by mapping each data file once. Paths may not leave that folder.
final class ExternalDataReader {
    private let directory: String
    private let realDirectory: String
    private var files: [String: MappedFile] = [:]

    /// A reader for a model in `directory`.
    init(directory: String) throws(ONNXError) {
        self.directory = directory
        guard let real = Self.realPath(directory) else {
            throw .externalData("cannot resolve the model folder '\(directory)'")
        }
        realDirectory = real
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The bytes of one external tensor: borrowed from the mapped file when suitably aligned,
    /// copied otherwise.
    func read(_ proto: Onnx_TensorProto, byteCount: Int, what: String) throws(ONNXError) -> TensorBuffer {
        var entries: [String: String] = [:]
        for entry in proto.externalData { entries[entry.key] = entry.value }
        guard let location = entries["location"], !location.isEmpty else {
            throw .externalData("\(what) has no 'location'")
        }
        guard let offset = Int(entries["offset"] ?? "0"), offset >= 0 else {
            throw .externalData("\(what) has an invalid offset '\(entries["offset"] ?? "")'")
        }
        if let length = entries["length"] {
            guard let value = Int(length), value == byteCount else {
                throw .externalData("\(what) has length \(length) but its type and shape need \(byteCount) bytes")
            }
        }
        let file = try mappedFile(location, what: what)
        guard offset <= file.count, file.count - offset >= byteCount else {
            throw .externalData("\(what) needs \(byteCount) bytes from offset \(offset) of '\(location)', which has \(file.count)")
        }
        guard byteCount > 0, let base = file.bytes else { return TensorBuffer.allocate(byteCount: 0) }
        let start = base + offset
        if Int(bitPattern: start) % TensorBuffer.alignment == 0 {
            return TensorBuffer.borrowing(start, byteCount: byteCount, owner: file)
        }
        let copy = TensorBuffer.allocate(byteCount: byteCount)
        copy.baseAddress.copyMemory(from: start, byteCount: byteCount)
        return copy
    }

    private func mappedFile(_ location: String, what: String) throws(ONNXError) -> MappedFile {
        if let file = files[location] { return file }
        guard !location.hasPrefix("/") else {
            throw .externalData("\(what) uses absolute path '\(location)'; paths must be relative to the model's folder")
        }
        let path = directory + "/" + location
        guard let real = Self.realPath(path) else {
            throw .externalData("\(what): file '\(location)' not found next to the model")
        }
        guard real.hasPrefix(realDirectory + "/") else {
            throw .externalData("\(what): path '\(location)' leads outside the model's folder")
        }
        let file = try MappedFile(path: real)
        files[location] = file
        return file
    }
}
