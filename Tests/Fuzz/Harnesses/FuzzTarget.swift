import Foundation

/// The harness a fuzzing process runs, named by `ONNX_SERVE_FUZZ_TARGET` (tools/fuzz.sh sets it):
/// one executable holds every harness, so that the sanitized package is built once.
enum FuzzTarget: String, CaseIterable {
    case json, tfserving, openinference, bodyreader, tensorproto, modelloader

    static let selected: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["ONNX_SERVE_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            let names = allCases.map(\.rawValue).joined(separator: ", ")
            FileHandle.standardError.write(Data("fuzz: set ONNX_SERVE_FUZZ_TARGET to one of \(names)\n".utf8))
            exit(2)
        }
        return target
    }()

    func run(_ data: UnsafePointer<UInt8>, _ size: Int) {
        switch self {
        case .json: fuzzJSON(data, size)
        case .tfserving: fuzzTFServing(data, size)
        case .openinference: fuzzOpenInference(data, size)
        case .bodyreader: fuzzBodyReader(data, size)
        case .tensorproto: fuzzTensorProto(data, size)
        case .modelloader: fuzzModelLoader(data, size)
        }
    }
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: OpaquePointer?, _ argv: OpaquePointer?) -> CInt {
    if [.tfserving, .openinference].contains(FuzzTarget.selected) { _ = FuzzModels.served }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzTarget.selected.run(data, size)
    return 0
}
