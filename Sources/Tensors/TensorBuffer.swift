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
        /// Memory of `capacity` bytes from `Memory.allocate`.
        case free(capacity: Int)
        case pool(BufferPool, capacity: Int, meter: WorkingMemoryMeter?)
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
        let capacity = max(byteCount, 1)
        return TensorBuffer(baseAddress: Memory.allocate(capacity), byteCount: byteCount, release: .free(capacity: capacity))
    }

    /// Bytes that belong to `owner` (kept alive until this buffer is gone). The caller promises the
    /// memory stays valid while `owner` lives and is not written through any other path.
    public static func borrowing(_ pointer: UnsafeMutableRawPointer, byteCount: Int, owner: AnyObject) -> TensorBuffer {
        TensorBuffer(baseAddress: pointer, byteCount: byteCount, release: .owner(owner))
    }

    deinit {
        switch release {
        case .free(let capacity): Memory.deallocate(baseAddress, capacity: capacity)
        case .pool(let pool, let capacity, let meter):
            meter?.release(capacity)
            pool.give(baseAddress, capacity: capacity)
        case .owner: break
        }
    }
}

/// Where buffer memory comes from: the kernel's pages for large buffers (given back the moment
/// they are freed), malloc for the rest.
enum Memory {
    static func allocate(_ capacity: Int) -> UnsafeMutableRawPointer {
        guard capacity >= SystemMemory.mappingThreshold else {
            return UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: TensorBuffer.alignment)
        }
        // As malloc does when it cannot get memory: there is no way on.
        guard let pointer = SystemMemory.map(byteCount: capacity) else { fatalError("out of memory: cannot map \(capacity) bytes") }
        return pointer
    }

    /// Frees memory from `allocate(capacity)`.
    static func deallocate(_ pointer: UnsafeMutableRawPointer, capacity: Int) {
        if capacity >= SystemMemory.mappingThreshold {
            SystemMemory.unmap(pointer, byteCount: capacity)
        } else {
            pointer.deallocate()
        }
    }
}

/// Recycles tensor memory between runs so that a warm request allocates nothing big.
///
/// Buffers return here when their last tensor is released. Sizes are rounded up to classes spaced
/// at most 25% apart, so a request that needs slightly less than a free buffer still reuses it.
///
/// How much free memory it keeps: while a run is in progress (between `beginRun` and `endRun`), up
/// to `retainLimit` bytes, so the run reuses what its earlier steps freed. Between runs, only as
/// much as the model's usual runs need: twice the median footprint (the most bytes allocated
/// through the pool at once, in use or free) of the last `footprintHistory` runs, capped by
/// `retainLimit`. A run far larger than usual (a huge batch) therefore gives its memory back when
/// it ends, large buffers straight to the kernel, while a steady workload keeps every buffer it
/// reuses. Thread-safe.
public final class BufferPool: Sendable {
    private struct State {
        /// Free buffers by size class (`classIndex`), as address bit patterns (pointers are not
        /// Sendable). An array, not a dictionary keyed by capacity: a dictionary's nested modify
        /// accessors allocated their coroutine frames on the heap, three mallocs per `take`.
        var free = [[Int]](repeating: [], count: BufferPool.classCount)
        var retainedBytes = 0
        var allocatedBytes = 0
        var peakAllocatedBytes = 0
        var activeRuns = 0
        /// Most bytes allocated at once since runs last started (while `activeRuns > 0`).
        var runFootprint = 0
        /// Footprints of the most recent runs (of runs that overlapped: together), oldest first,
        /// and the same sorted.
        var recentFootprints: [Int] = []
        var sortedFootprints: [Int] = []
        /// Free bytes kept between runs, from `recentFootprints` (nil before the first run ends).
        var idleLimit: Int?

        /// Adds a run's footprint to the history (in place: no allocation once it is full).
        mutating func record(footprint: Int) {
            recentFootprints.append(footprint)
            sortedFootprints.insert(footprint, at: sortedFootprints.firstIndex { $0 > footprint } ?? sortedFootprints.count)
            guard recentFootprints.count > BufferPool.footprintHistory else { return }
            let oldest = recentFootprints.removeFirst()
            if let index = sortedFootprints.firstIndex(of: oldest) { sortedFootprints.remove(at: index) }
        }
    }
    private let state = Mutex(State())
    /// Most free bytes kept for reuse.
    public let retainLimit: Int

    /// Runs whose footprints decide how much memory is kept between runs.
    public static let footprintHistory = 16

    /// Freed bytes after which `endRun` also asks malloc to return its free heap memory.
    static let heapTrimThreshold = 64 << 20

    /// A pool that keeps at most `retainLimit` free bytes.
    public init(retainLimit: Int = 1 << 30) { self.retainLimit = retainLimit }

    /// The size class that `byteCount` rounds up to: the bytes a buffer of that size holds.
    public static func sizeClass(_ byteCount: Int) -> Int {
        if byteCount <= 256 { return 256 }
        // Four classes per power of two: 1, 1.25, 1.5, 1.75 × 2^k.
        let top = Int.bitWidth - 1 - (byteCount - 1).leadingZeroBitCount
        let quarter = 1 << (top - 2)
        return (byteCount + quarter - 1) / quarter * quarter
    }

    /// Size classes there are (of at most `Int.max` bytes): 256 bytes, then four per power of two.
    package static let classCount = 4 * (Int.bitWidth - 8)

    /// Position of a size class (a value of `sizeClass`) among all of them, in increasing order.
    package static func classIndex(_ capacity: Int) -> Int {
        let top = Int.bitWidth - 1 - capacity.leadingZeroBitCount
        return (top - 8) * 4 + (capacity >> (top - 2)) - 4
    }

    /// The size class at position `index` (inverse of `classIndex`).
    package static func capacity(ofClass index: Int) -> Int { (4 + index % 4) << (index / 4 + 6) }

    /// A buffer of `byteCount` bytes counted by `meter` while it lives; nil, allocating nothing,
    /// when that would take the meter past its budget.
    public func take(byteCount: Int, meter: WorkingMemoryMeter) -> TensorBuffer? {
        let capacity = Self.sizeClass(byteCount)
        guard meter.reserve(capacity) else { return nil }
        return take(byteCount: byteCount, capacity: capacity, meter: meter)
    }

    func take(byteCount: Int) -> TensorBuffer {
        take(byteCount: byteCount, capacity: Self.sizeClass(byteCount), meter: nil)
    }

    private func take(byteCount: Int, capacity: Int, meter: WorkingMemoryMeter?) -> TensorBuffer {
        let reused: Int? = state.withLock { state in
            if let address = state.free[Self.classIndex(capacity)].popLast() {
                state.retainedBytes -= capacity
                return address
            }
            state.allocatedBytes += capacity
            state.peakAllocatedBytes = max(state.peakAllocatedBytes, state.allocatedBytes)
            state.runFootprint = max(state.runFootprint, state.allocatedBytes)
            return nil
        }
        let pointer = reused.flatMap(UnsafeMutableRawPointer.init(bitPattern:)) ?? Memory.allocate(capacity)
        return TensorBuffer(baseAddress: pointer, byteCount: byteCount, release: .pool(self, capacity: capacity, meter: meter))
    }

    fileprivate func give(_ pointer: UnsafeMutableRawPointer, capacity: Int) {
        let address = Int(bitPattern: pointer)
        let keep = state.withLock { state in
            guard state.retainedBytes + capacity <= limit(state) else {
                state.allocatedBytes -= capacity
                return false
            }
            state.free[Self.classIndex(capacity)].append(address)
            state.retainedBytes += capacity
            return true
        }
        if !keep { Memory.deallocate(pointer, capacity: capacity) }
    }

    /// Free bytes the pool may keep now.
    private func limit(_ state: State) -> Int {
        state.activeRuns > 0 ? retainLimit : state.idleLimit ?? retainLimit
    }

    /// Marks the start of a run that takes buffers from this pool.
    public func beginRun() {
        state.withLock { state in
            if state.activeRuns == 0 { state.runFootprint = state.allocatedBytes }
            state.activeRuns += 1
        }
    }

    /// Marks the end of a run started with `beginRun`. When no other run is in progress, records
    /// the runs' footprint, frees the free buffers beyond what the recent runs needed, largest
    /// first, and after a large release also asks malloc to return its free memory.
    public func endRun() {
        let released: [(address: Int, capacity: Int)] = state.withLock { state in
            state.activeRuns -= 1
            guard state.activeRuns == 0 else { return [] }
            state.record(footprint: state.runFootprint)
            let median = state.sortedFootprints[state.sortedFootprints.count / 2]
            let (twice, overflow) = median.multipliedReportingOverflow(by: 2)
            state.idleLimit = overflow ? retainLimit : min(retainLimit, twice)
            let limit = limit(state)
            var released: [(Int, Int)] = []
            for index in state.free.indices.reversed() where state.retainedBytes > limit && !state.free[index].isEmpty {
                let capacity = Self.capacity(ofClass: index)
                while state.retainedBytes > limit, let address = state.free[index].popLast() {
                    released.append((address, capacity))
                    state.retainedBytes -= capacity
                    state.allocatedBytes -= capacity
                }
                if state.free[index].isEmpty { state.free[index] = [] }
            }
            return released
        }
        var releasedBytes = 0
        for (address, capacity) in released {
            if let pointer = UnsafeMutableRawPointer(bitPattern: address) { Memory.deallocate(pointer, capacity: capacity) }
            releasedBytes += capacity
        }
        if releasedBytes >= Self.heapTrimThreshold { SystemMemory.returnFreeHeapMemory() }
    }

    /// Bytes currently held for reuse.
    public var retainedBytes: Int { state.withLock { $0.retainedBytes } }

    /// Bytes allocated through this pool now (in use or held).
    public var allocatedBytes: Int { state.withLock { $0.allocatedBytes } }

    /// Most bytes ever allocated through this pool at one time (in use or held).
    public var peakAllocatedBytes: Int { state.withLock { $0.peakAllocatedBytes } }

    deinit {
        // Buffers still in use hold a reference to the pool, so only free ones remain here.
        let buffers = state.withLock { state in
            state.free.indices.flatMap { index in state.free[index].map { ($0, Self.capacity(ofClass: index)) } }
        }
        for (address, capacity) in buffers {
            if let pointer = UnsafeMutableRawPointer(bitPattern: address) { Memory.deallocate(pointer, capacity: capacity) }
        }
    }
}

/// The bytes one run holds from a pool at once, against a budget: the backstop behind the working
/// memory a run is estimated to need before it starts. Buffers taken through
/// `BufferPool.take(byteCount:meter:)` count (with their size class's capacity) until they are
/// freed, even after the run. Thread-safe.
public final class WorkingMemoryMeter: Sendable {
    /// Most bytes the meter lets be held at once.
    public let budget: Int
    private let held = Atomic<Int>(0)
    private let peak = Atomic<Int>(0)

    /// A meter that refuses to go past `budget` bytes (`Int.max`: only measures).
    public init(budget: Int = .max) { self.budget = budget }

    /// Counts `bytes` more as held, when that keeps the total within the budget.
    func reserve(_ bytes: Int) -> Bool {
        var current = held.load(ordering: .relaxed)
        while true {
            let (total, overflow) = current.addingReportingOverflow(bytes)
            guard !overflow, total <= budget else { return false }
            let (exchanged, original) = held.compareExchange(expected: current, desired: total, ordering: .relaxed)
            if exchanged {
                _ = peak.max(total, ordering: .relaxed)
                return true
            }
            current = original
        }
    }

    func release(_ bytes: Int) { _ = held.subtract(bytes, ordering: .relaxed) }

    /// Runs `body` with `bytes` more counted as held, for memory a run uses outside the pool (a C
    /// library's own buffers, such as an image decoder's), or returns nil without running it when
    /// that would take the meter past its budget.
    public func withReservation<Result>(_ bytes: Int, _ body: () throws -> Result) rethrows -> Result? {
        guard bytes >= 0, reserve(bytes) else { return nil }
        defer { release(bytes) }
        return try body()
    }

    /// Bytes held now.
    public var heldBytes: Int { held.load(ordering: .relaxed) }

    /// Most bytes held at once so far.
    public var peakBytes: Int { peak.load(ordering: .relaxed) }
}
