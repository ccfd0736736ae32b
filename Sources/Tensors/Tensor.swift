/// A dense, row-major tensor: an element type, a shape and its elements.
///
/// Tensors are values: copies share storage, and storage is written only while a tensor is being
/// produced (by the kernel or decoder that created it), never after it has been handed on. The one
/// exception: a buffer nothing else refers to any more (see `ownsBufferAlone()`) may be handed to
/// the operator that reads it last, which may then produce its output in it.
public struct Tensor: Sendable {
    /// Element type.
    public let dataType: DataType
    /// Dimensions.
    public let shape: Shape
    /// Where the elements live.
    public private(set) var storage: Storage

    /// Element storage: raw bytes for every numeric type and bool, Swift strings for `string`.
    public enum Storage: Sendable {
        case bytes(TensorBuffer)
        case strings([String])
    }

    /// A tensor over existing storage; the storage must hold exactly `shape.elementCount` elements.
    public init(dataType: DataType, shape: Shape, storage: Storage) {
        switch storage {
        case .bytes(let buffer):
            precondition(dataType != .string && buffer.byteCount >= shape.elementCount * dataType.byteSize,
                         "tensor storage too small for \(dataType)\(shape)")
        case .strings(let strings):
            precondition(dataType == .string && strings.count == shape.elementCount,
                         "string tensor holds \(strings.count) values for shape \(shape)")
        }
        self.dataType = dataType
        self.shape = shape
        self.storage = storage
    }

    /// An uninitialised numeric tensor (string tensors start as empty strings), from `pool` if given.
    public init(uninitialized dataType: DataType, shape: Shape, pool: BufferPool? = nil) {
        if dataType == .string {
            self.init(dataType: .string, shape: shape, storage: .strings(Array(repeating: "", count: shape.elementCount)))
        } else {
            let buffer = TensorBuffer.allocate(byteCount: shape.elementCount * dataType.byteSize, pool: pool)
            self.init(dataType: dataType, shape: shape, storage: .bytes(buffer))
        }
    }

    /// A tensor of zeros (false, empty strings).
    public init(zeros dataType: DataType, shape: Shape, pool: BufferPool? = nil) {
        self.init(uninitialized: dataType, shape: shape, pool: pool)
        if case .bytes(let buffer) = storage {
            buffer.baseAddress.initializeMemory(as: UInt8.self, repeating: 0, count: buffer.byteCount)
        }
    }

    /// A tensor holding `values` in row-major order.
    public init<T: TensorElement>(_ values: [T], shape: Shape) {
        precondition(values.count == shape.elementCount, "\(values.count) values for shape \(shape)")
        self.init(uninitialized: T.dataType, shape: shape)
        values.withUnsafeBufferPointer { source in
            mutablePointer(as: T.self).update(from: source.baseAddress!, count: source.count)
        }
    }

    /// A rank-0 tensor.
    public init<T: TensorElement>(scalar: T) { self.init([scalar], shape: []) }

    /// A string tensor.
    public init(strings: [String], shape: Shape) {
        self.init(dataType: .string, shape: shape, storage: .strings(strings))
    }

    /// Number of elements.
    public var elementCount: Int { shape.elementCount }

    /// Number of bytes of element data (0 for strings).
    public var byteCount: Int { elementCount * dataType.byteSize }

    /// The byte buffer; traps for string tensors.
    public var buffer: TensorBuffer {
        guard case .bytes(let buffer) = storage else { preconditionFailure("string tensor has no byte buffer") }
        return buffer
    }

    /// True when this tensor is the only holder of its buffer and the buffer's memory is ours (not
    /// borrowed from a file or a request): then nobody else can read the elements, and whoever
    /// holds this tensor may overwrite them. Always false for strings.
    public mutating func ownsBufferAlone() -> Bool {
        guard case .bytes(var buffer) = storage, buffer.ownsMemory else { return false }
        // Drop the storage's own reference while asking, so that only `buffer` counts.
        storage = .strings([])
        defer { storage = .bytes(buffer) }
        return isKnownUniquelyReferenced(&buffer)
    }

    /// The strings of a string tensor; traps for other types.
    public var strings: [String] {
        guard case .strings(let strings) = storage else { preconditionFailure("\(dataType) tensor has no strings") }
        return strings
    }

    /// Start of the elements. Valid while this tensor (or a copy) is alive.
    public var rawPointer: UnsafeMutableRawPointer { buffer.baseAddress }

    /// The elements as `T`, which must match `dataType`. Valid while this tensor is alive.
    public func pointer<T: TensorElement>(as type: T.Type) -> UnsafePointer<T> {
        UnsafePointer(mutablePointer(as: type))
    }

    /// Writable elements, for the producer of a tensor only (see the type's documentation).
    public func mutablePointer<T: TensorElement>(as type: T.Type) -> UnsafeMutablePointer<T> {
        precondition(T.dataType == dataType, "reading \(dataType) tensor as \(T.dataType)")
        return buffer.baseAddress.assumingMemoryBound(to: T.self)
    }

    /// The elements as a buffer of `T`.
    public func withUnsafeBufferPointer<T: TensorElement, R>(as type: T.Type, _ body: (UnsafeBufferPointer<T>) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(UnsafeBufferPointer(start: pointer(as: type), count: elementCount)) }
    }

    /// A copy of the elements as an array of `T`.
    public func scalars<T: TensorElement>(as type: T.Type) -> [T] {
        withUnsafeBufferPointer(as: type) { Array($0) }
    }

    /// The same elements under another shape with the same element count; shares storage.
    public func reshaped(_ newShape: Shape) -> Tensor {
        precondition(newShape.elementCount == elementCount, "cannot reshape \(shape) to \(newShape)")
        return Tensor(dataType: dataType, shape: newShape, storage: storage)
    }

    /// Elements converted to `Int` (for integer and bool tensors: shapes, axes, indices). Floating
    /// point elements truncate toward zero and saturate (NaN is 0); uint64 above `Int.max` wraps.
    public func integers() -> [Int] {
        switch dataType {
        case .int64: scalars(as: Int64.self).map { Int($0) }
        case .int32: scalars(as: Int32.self).map { Int($0) }
        case .int16: scalars(as: Int16.self).map { Int($0) }
        case .int8: scalars(as: Int8.self).map { Int($0) }
        case .uint8: scalars(as: UInt8.self).map { Int($0) }
        case .uint16: scalars(as: UInt16.self).map { Int($0) }
        case .uint32: scalars(as: UInt32.self).map { Int($0) }
        case .uint64: scalars(as: UInt64.self).map { Int(truncatingIfNeeded: $0) }
        case .bool: scalars(as: Bool.self).map { $0 ? 1 : 0 }
        case .float: scalars(as: Float.self).map { Int(converting: Double($0)) }
        case .double: scalars(as: Double.self).map { Int(converting: $0) }
        case .float16: scalars(as: Float16.self).map { Int(converting: Double($0)) }
        case .string: strings.map { Int($0) ?? 0 }
        default: doubles().map { Int(converting: $0) }
        }
    }

    /// Elements converted to `Double` (numeric and bool tensors).
    public func doubles() -> [Double] {
        switch dataType {
        case .float: scalars(as: Float.self).map { Double($0) }
        case .double: scalars(as: Double.self)
        case .float16: scalars(as: Float16.self).map { Double($0) }
        case .string: strings.map { Double($0) ?? .nan }
        case .bfloat16: scalars(as: BFloat16.self).map { Double($0.widened) }
        case .float8e4m3fn: scalars(as: Float8E4M3FN.self).map { Double($0.widened) }
        case .float8e4m3fnuz: scalars(as: Float8E4M3FNUZ.self).map { Double($0.widened) }
        case .float8e5m2: scalars(as: Float8E5M2.self).map { Double($0.widened) }
        case .float8e5m2fnuz: scalars(as: Float8E5M2FNUZ.self).map { Double($0.widened) }
        case .float4e2m1: scalars(as: Float4E2M1.self).map { Double($0.widened) }
        case .float8e8m0: scalars(as: Float8E8M0.self).map { Double($0.widened) }
        case .int4: scalars(as: Int4.self).map { Double($0.widened) }
        case .uint4: scalars(as: UInt4.self).map { Double($0.widened) }
        case .int2: scalars(as: Int2.self).map { Double($0.widened) }
        case .uint2: scalars(as: UInt2.self).map { Double($0.widened) }
        default: integers().map { Double($0) }
        }
    }
}

private extension Int {
    /// `value` truncated toward zero, saturated at the ends of `Int`'s range, NaN as 0.
    init(converting value: Double) {
        if value.isNaN { self = 0 }
        else if value >= Double(Int.max) { self = .max }
        else if value <= Double(Int.min) { self = .min }
        else { self.init(value.rounded(.towardZero)) }
    }
}
