#if canImport(Glibc)
import Glibc
#endif

/// A whole file mapped read-only into memory; unmapped when the last user lets go.
/// Tensors borrowing bytes from it keep it alive (`TensorBuffer.borrowing(_:byteCount:owner:)`).
final class MappedFile: @unchecked Sendable {
    /// First byte (nil for an empty file, which cannot be mapped).
    let bytes: UnsafeMutableRawPointer?
    /// File size in bytes.
    let count: Int

    /// Maps `path`; the message names the file and the system's reason on failure.
    init(path: String) throws(ONNXError) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .unreadable(path: path, reason: Self.reason()) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .unreadable(path: path, reason: Self.reason()) }
        guard (status.st_mode & S_IFMT) == S_IFREG else { throw .unreadable(path: path, reason: "not a regular file") }
        count = Int(status.st_size)
        if count == 0 {
            bytes = nil
            return
        }
        // MAP_PRIVATE: the file is never written; pages load lazily and are shared with the page cache.
        let address = mmap(nil, count, PROT_READ, MAP_PRIVATE, descriptor, 0)
        guard let address, address != MAP_FAILED else { throw .unreadable(path: path, reason: Self.reason()) }
        bytes = address
    }

    deinit {
        if let bytes { munmap(bytes, count) }
    }

    private static func reason() -> String { String(cString: strerror(errno)) }

    /// Lets go of the resident pages wholly inside `range` (byte offsets): the mapping stays and
    /// reads them again from the file if touched, but they stop counting in this process's
    /// memory. Loading copies each weight out of the file once; without this, every page of the
    /// file stayed resident next to the copies until the file was unmapped.
    func releasePages(_ range: Range<Int>) {
        guard let bytes, range.lowerBound >= 0, range.upperBound <= count else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard page > 0 else { return }
        let start = (range.lowerBound + page - 1) / page * page, end = range.upperBound / page * page
        if start < end { _ = madvise(bytes + start, end - start, MADV_DONTNEED) }
    }

    /// The bytes as a read-only buffer.
    var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: bytes, count: count) }
}
