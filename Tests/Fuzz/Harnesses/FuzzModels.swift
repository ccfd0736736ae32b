import Foundation
import Logging
import Serving

/// Files and models the harnesses share, found from this source file's place in the repository
/// (harnesses run from a build of this checkout).
enum FuzzModels {
    /// The repository's root folder.
    static let root: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Tests/Fuzz/Models: the codecs' second model, and `weights.bin`, which fuzzed models may
    /// name as external data.
    static let folder = root + "/Tests/Fuzz/Models"

    /// The models the request codecs decode for: the shipped `digits` (one float input
    /// `pixels` [N, 64]) and `signature` (one input of each element type the wire formats carry;
    /// built by tools/make_fuzz_corpus.py).
    static let served: [ServedModel] = {
        let sources = [
            ModelSource(name: "digits", versions: [1: root + "/config/models/digits/1/model.onnx"]),
            ModelSource(name: "signature", versions: [1: folder + "/signature.onnx"]),
        ]
        let registry = ModelRegistry(repository: nil, explicit: sources, defaults: ServingDefaults(warmup: false),
                                     metrics: ServingMetrics(), logger: Logger(label: "fuzz"))
        do {
            try registry.loadAll()
            return try sources.map { source throws(ServingError) in try registry.resolve(name: source.name) }
        } catch {
            FileHandle.standardError.write(Data("fuzz: cannot load the codecs' models: \(error)\n".utf8))
            exit(1)
        }
    }()
}
