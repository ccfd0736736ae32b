#if canImport(Glibc)
import Glibc
#endif

/// A whole file mapped read-only into memory, or read into memory of its own; unmapped when the
/// last user lets go. Tensors borrowing bytes from it keep it alive
/// (`TensorBuffer.borrowing(_:byteCount:owner:)`).
final class MappedFile: @unchecked Sendable {
    /// First byte (nil for an empty file, which cannot be mapped).
    let bytes: UnsafeMutableRawPointer?
    /// File size in bytes (read into memory: the bytes read).
    let count: Int
    /// Bytes mapped at `bytes`.
    private let mappedCount: Int

    /// Maps `path`; the message names the file and the system's reason on failure.
    init(path: String) throws(ONNXError) {
        let (descriptor, size) = try Self.openRegularFile(path)
        defer { close(descriptor) }
        count = size
        mappedCount = count
        if count == 0 {
            bytes = nil
            return
        }
        // MAP_PRIVATE: the file is never written; pages load lazily and are shared with the page cache.
        let address = mmap(nil, count, PROT_READ, MAP_PRIVATE, descriptor, 0)
        guard let address, address != MAP_FAILED else { throw .unreadable(path: path, reason: Self.reason()) }
        bytes = address
    }

    /// Reads `path` into anonymous memory of its own: a file truncated under a mapping kills the
    /// process (SIGBUS) when a lost page is touched; a copy cannot be truncated. `count` is what
    /// was read, less than the size at the start if the file shrank meanwhile.
    init(readingIntoMemory path: String) throws(ONNXError) {
        let (descriptor, size) = try Self.openRegularFile(path)
        defer { close(descriptor) }
        mappedCount = size
        guard mappedCount > 0 else {
            bytes = nil
            count = 0
            return
        }
        let address = mmap(nil, mappedCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let address, address != MAP_FAILED else { throw .unreadable(path: path, reason: Self.reason()) }
        var done = 0
        while done < mappedCount {
            let got = read(descriptor, address + done, mappedCount - done)
            if got > 0 {
                done += got
            } else if got == 0 {
                break
            } else if errno != EINTR {
                let reason = Self.reason()
                munmap(address, mappedCount)
                throw .unreadable(path: path, reason: reason)
            }
        }
        bytes = address
        count = done
    }

    deinit {
        if let bytes { munmap(bytes, mappedCount) }
    }

    private static func reason() -> String { String(cString: strerror(errno)) }

    /// `path` opened for reading, and its size; throws (closing it) unless it is a regular file.
    private static func openRegularFile(_ path: String) throws(ONNXError) -> (descriptor: Int32, size: Int) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .unreadable(path: path, reason: reason()) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            let failure = reason()
            close(descriptor)
            throw .unreadable(path: path, reason: failure)
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            close(descriptor)
            throw .unreadable(path: path, reason: "not a regular file")
        }
        return (descriptor, Int(status.st_size))
    }

    /// Lets go of the resident pages wholly inside `range` (byte offsets): they stop counting in
    /// this process's memory. A mapped file reads them again if touched; memory read into reads
    /// zeros there from now on. Loading copies each weight out of the file once; without this,
    /// every page of the file stayed resident next to the copies until the file was unmapped.
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
