internal import Synchronization

/// Bytes behind a tensor: 64-byte aligned memory that is freed, returned to a pool, or kept
/// alive by an owner (a memory-mapped file, say) when the last tensor using it goes away.
public final class TensorBuffer: @unchecked Sendable {
    /// Start of the bytes; valid while this buffer is alive.
    public let baseAddress: UnsafeMutableRawPointer
    /// Number of meaningful bytes.
    public let byteCount: Int
    private let release: Release

    enum Release {
        case free
        case pool(BufferPool, capacity: Int)
        case owner(AnyObject)
    }

    /// Alignment of every buffer we allocate: a cache line and an AVX-512 register.
    public static let alignment = 64

    init(baseAddress: UnsafeMutableRawPointer, byteCount: Int, release: Release) {
        self.baseAddress = baseAddress
        self.byteCount = byteCount
        self.release = release
    }

    /// True when the memory was allocated for this buffer (not borrowed from an owner).
    public var ownsMemory: Bool {
        if case .owner = release { return false }
        return true
    }

    /// A new uninitialised buffer of `byteCount` bytes, from `pool` when one is given.
    public static func allocate(byteCount: Int, pool: BufferPool? = nil) -> TensorBuffer {
        if let pool { return pool.take(byteCount: byteCount) }
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: alignment)
        return TensorBuffer(baseAddress: pointer, byteCount: byteCount, release: .free)
    }

    /// Bytes that belong to `owner` (kept alive until this buffer is gone). The caller promises the
    /// memory stays valid while `owner` lives and is not written through any other path.
    public static func borrowing(_ pointer: UnsafeMutableRawPointer, byteCount: Int, owner: AnyObject) -> TensorBuffer {
        TensorBuffer(baseAddress: pointer, byteCount: byteCount, release: .owner(owner))
    }

    deinit {
        switch release {
        case .free: baseAddress.deallocate()
        case .pool(let pool, let capacity): pool.give(baseAddress, capacity: capacity)
        case .owner: break
        }
    }
}

/// Recycles tensor memory between runs so that a warm request allocates nothing big.
///
/// Buffers return here when their last tensor is released. Sizes are rounded up to classes spaced
/// at most 25% apart, so a request that needs slightly less than a free buffer still reuses it.
/// Free memory above `retainLimit` bytes is given back to the system. Thread-safe.
public final class BufferPool: Sendable {
    private struct State {
        /// Free buffers by size class, as address bit patterns (pointers are not Sendable).
        var free: [Int: [Int]] = [:]
        var retainedBytes = 0
        var allocatedBytes = 0
        var peakAllocatedBytes = 0
    }
    private let state = Mutex(State())
    /// Most free bytes kept for reuse.
    public let retainLimit: Int

    /// A pool that keeps at most `retainLimit` free bytes.
    public init(retainLimit: Int = 1 << 30) { self.retainLimit = retainLimit }

    /// The size class that `byteCount` rounds up to.
    static func sizeClass(_ byteCount: Int) -> Int {
        if byteCount <= 256 { return 256 }
        // Four classes per power of two: 1, 1.25, 1.5, 1.75 × 2^k.
        let top = Int.bitWidth - 1 - (byteCount - 1).leadingZeroBitCount
        let quarter = 1 << (top - 2)
        return (byteCount + quarter - 1) / quarter * quarter
    }

    func take(byteCount: Int) -> TensorBuffer {
        let capacity = Self.sizeClass(byteCount)
        let reused: Int? = state.withLock { state in
            if let address = state.free[capacity]?.popLast() {
                state.retainedBytes -= capacity
                return address
            }
            state.allocatedBytes += capacity
            state.peakAllocatedBytes = max(state.peakAllocatedBytes, state.allocatedBytes)
            return nil
        }
        let pointer = reused.flatMap(UnsafeMutableRawPointer.init(bitPattern:)) ?? UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: TensorBuffer.alignment)
        return TensorBuffer(baseAddress: pointer, byteCount: byteCount, release: .pool(self, capacity: capacity))
    }

    fileprivate func give(_ pointer: UnsafeMutableRawPointer, capacity: Int) {
        let address = Int(bitPattern: pointer)
        let keep = state.withLock { state in
            guard state.retainedBytes + capacity <= retainLimit else {
                state.allocatedBytes -= capacity
                return false
            }
            state.free[capacity, default: []].append(address)
            state.retainedBytes += capacity
            return true
        }
        if !keep { pointer.deallocate() }
    }

    /// Bytes currently held for reuse.
    public var retainedBytes: Int { state.withLock { $0.retainedBytes } }

    /// Most bytes ever allocated through this pool at one time (in use or held).
    public var peakAllocatedBytes: Int { state.withLock { $0.peakAllocatedBytes } }

    deinit {
        // Buffers still in use hold a reference to the pool, so only free ones remain here.
        let addresses = state.withLock { $0.free.values.flatMap { $0 } }
        for address in addresses { UnsafeMutableRawPointer(bitPattern: address)?.deallocate() }
    }
}
