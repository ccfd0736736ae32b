import Foundation

/// Where one model's versions live, and its settings.
public struct ModelSource: Sendable {
    /// Model name (the folder name, or the NAME of `--model NAME=PATH`).
    public var name: String
    /// Version → path of its `model.onnx`.
    public var versions: [Int: String]
    /// Settings from the model's config file (defaults when there is none).
    public var configuration: ModelConfiguration
    /// Why the model cannot be served as configured (a bad config file), if so.
    public var problem: String?
    /// The model's folder, re-read by rescans (nil for a single file given as `--model NAME=PATH`).
    public var directory: String?
    /// The config file as it was when read (a change to it reloads the model's versions).
    var configurationFingerprint: FileFingerprint?

    public init(name: String, versions: [Int: String], configuration: ModelConfiguration = ModelConfiguration(), problem: String? = nil,
                directory: String? = nil) {
        self.name = name
        self.versions = versions
        self.configuration = configuration
        self.problem = problem
        self.directory = directory
    }

    /// The source as it is on disk now: a folder is read again; a single file stays version 1.
    public func reread() -> ModelSource {
        guard let directory else { return self }
        return ModelRepository.modelSource(directory: directory, name: name)
    }
}

/// A model repository on disk: `<root>/<model>/<version>/model.onnx`, versions being positive
/// integers (folders named otherwise, or with a leading zero, are ignored, as Triton does), with an
/// optional `config.yaml` beside the versions. A model folder without version folders but with a
/// `model.onnx` of its own (KServe's bare layout at /mnt/models) serves that file as version 1.
public struct ModelRepository: Sendable {
    /// The repository folder.
    public let root: String

    public init(root: String) { self.root = root }

    /// File name of a version's model inside its folder.
    public static let modelFileName = "model.onnx"

    /// True when `name` can be a model name: not empty, no path separators, not hidden, no `..`.
    public static func isValidName(_ name: String) -> Bool {
        // Byte checks (with Foundation imported, `contains("/")` is a slow NSString search; this runs per request).
        let bytes = name.utf8
        return !bytes.isEmpty && name.count <= 255 && bytes.first != UInt8(ascii: ".")
            && !bytes.contains(UInt8(ascii: "/")) && !bytes.contains(0)
    }

    /// Every model in the repository, sorted by name.
    public func scan() throws(ServingError) -> [ModelSource] {
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: root)
        } catch {
            throw .notFound("model repository '\(root)' cannot be read: \(error.localizedDescription)")
        }
        var sources: [ModelSource] = []
        for name in entries.sorted() where Self.isValidName(name) && Self.isDirectory("\(root)/\(name)") {
            sources.append(Self.modelSource(directory: "\(root)/\(name)", name: name))
        }
        return sources
    }

    /// The model called `name`, which must be a folder of this repository.
    public func source(named name: String) throws(ServingError) -> ModelSource {
        guard Self.isValidName(name) else { throw .invalidArgument("invalid model name '\(name)'") }
        let directory = "\(root)/\(name)"
        guard Self.isDirectory(directory) else { throw .notFound("model '\(name)' is not in the repository") }
        return Self.modelSource(directory: directory, name: name)
    }

    /// True when `path` is a folder (following links).
    public static func isDirectory(_ path: String) -> Bool {
        var directory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &directory) && directory.boolValue
    }

    /// One model's folder: its version folders (or a bare `model.onnx`) and its config file.
    public static func modelSource(directory: String, name: String) -> ModelSource {
        var versions: [Int: String] = [:]
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for entry in entries {
            guard let version = Int(entry), version > 0, !entry.hasPrefix("0"), !entry.hasPrefix("+") else { continue }
            let file = "\(directory)/\(entry)/\(Self.modelFileName)"
            if FileManager.default.fileExists(atPath: file) { versions[version] = file }
        }
        if versions.isEmpty, FileManager.default.fileExists(atPath: "\(directory)/\(Self.modelFileName)") {
            versions[1] = "\(directory)/\(Self.modelFileName)"
        }
        var source = ModelSource(name: name, versions: versions, directory: directory)
        for file in ModelConfiguration.fileNames where FileManager.default.fileExists(atPath: "\(directory)/\(file)") {
            // Taken before reading, so that a change made meanwhile shows at the next rescan.
            source.configurationFingerprint = FileFingerprint(path: "\(directory)/\(file)")
            do {
                let text = try String(contentsOfFile: "\(directory)/\(file)", encoding: .utf8)
                source.configuration = try ModelConfiguration.parse(text, source: "\(name)/\(file)")
            } catch let error as ServingError {
                source.problem = error.message
            } catch {
                source.problem = "\(name)/\(file): \(error.localizedDescription)"
            }
            break
        }
        return source
    }
}
