import Glibc

/// How the daemon asks glibc's malloc to hand memory back.
enum HeapPolicy {
    /// Allocations of at least 1 MiB are mapped from the kernel and unmapped when freed. Without
    /// this, glibc raises its mmap threshold to the largest block freed (up to 32 MiB) and keeps
    /// later blocks below it in its heaps: each model version loaded and unloaded (weights, the
    /// file's bytes, protobuf copies) left RSS higher, 237 -> 613 MiB over 100 reloads of a
    /// ResNet-50; with the fixed threshold it stays flat (benchmarks/reload_memory.py).
    static func mapLargeAllocations() {
        // mallopt is not in Swift's Glibc module; M_MMAP_THRESHOLD is -3 in <malloc.h>.
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
        _ = mallopt(-3, 1 << 20)
    }
}
