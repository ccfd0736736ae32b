#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// The machine's memory, and memory handed straight to and from the kernel, so that large buffers
/// go back to the system the moment they are freed instead of staying in malloc's heap.
public enum SystemMemory {
    /// Bytes of physical memory (0 when the system does not say).
    public static let physicalBytes: Int = {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, size > 0 else { return 0 }
        let (bytes, overflow) = pages.multipliedReportingOverflow(by: size)
        return overflow ? .max : bytes
    }()

    /// Buffers of at least this many bytes are mapped from the kernel (`mmap`) rather than taken
    /// from malloc: unmapping returns them at once, where glibc would keep a freed block of up to
    /// 32 MiB in its heap (its mmap threshold grows to the largest block freed), often for good.
    public static let mappingThreshold = 1 << 20

    /// `byteCount` bytes of zeroed, page-aligned memory from the kernel; nil when it refuses.
    static func map(byteCount: Int) -> UnsafeMutableRawPointer? {
        let pointer = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let pointer, pointer != MAP_FAILED else { return nil }
        return pointer
    }

    /// Returns memory from `map` to the kernel.
    static func unmap(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        munmap(pointer, byteCount)
    }

    /// Asks malloc to give the free memory at the top of its heaps, and whole free pages inside
    /// them, back to the kernel (glibc's `malloc_trim`; nothing elsewhere). It walks every arena,
    /// so call it after large frees, not after every run.
    public static func returnFreeHeapMemory() {
        _ = mallocTrim?(0)
    }

    /// glibc's `malloc_trim` (not in Swift's Glibc module: looked up by name), nil elsewhere.
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        #else
        return nil
        #endif
    }()
}
