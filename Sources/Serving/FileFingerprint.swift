import Glibc

/// What identifies a file's contents without reading them: device, inode, size and change times.
/// A file renamed into place gets a new inode; one rewritten in place a new size or times. Rescans
/// compare fingerprints to find replaced models, and a load compares them before and after reading
/// to catch a file that changed meanwhile.
struct FileFingerprint: Equatable, Sendable {
    private var device: UInt64
    private var inode: UInt64
    private(set) var size: Int64
    private var modified: timespec
    private var changed: timespec

    /// The file's fingerprint now; nil when it cannot be read (gone, or no permission).
    init?(path: String) {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
        size = Int64(status.st_size)
        modified = status.st_mtim
        changed = status.st_ctim
    }

    static func == (left: FileFingerprint, right: FileFingerprint) -> Bool {
        left.device == right.device && left.inode == right.inode && left.size == right.size
            && left.modified.tv_sec == right.modified.tv_sec && left.modified.tv_nsec == right.modified.tv_nsec
            && left.changed.tv_sec == right.changed.tv_sec && left.changed.tv_nsec == right.changed.tv_nsec
    }
}

/// The files one loaded version came from: its `model.onnx` and the model's config file.
struct VersionFingerprint: Equatable, Sendable {
    var model: FileFingerprint?
    var configuration: FileFingerprint?

    init(modelPath: String, configuration: FileFingerprint?) {
        model = FileFingerprint(path: modelPath)
        self.configuration = configuration
    }
}
