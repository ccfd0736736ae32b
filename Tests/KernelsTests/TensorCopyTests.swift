import Kernels
import Testing
import TestSupport

@Suite struct TensorCopyTests {
    /// Random bytes to copy from, and two targets that start out different from them.
    private struct Buffers {
        let source: UnsafeMutableRawPointer
        let fast: UnsafeMutableRawPointer
        let reference: UnsafeMutableRawPointer
        let sourceBytes: Int
        let targetBytes: Int

        init(sourceBytes: Int, targetBytes: Int, random: inout SeededGenerator) {
            self.sourceBytes = sourceBytes
            self.targetBytes = targetBytes
            source = .allocate(byteCount: max(sourceBytes, 1), alignment: 64)
            fast = .allocate(byteCount: max(targetBytes, 1), alignment: 64)
            reference = .allocate(byteCount: max(targetBytes, 1), alignment: 64)
            for index in 0..<sourceBytes { source.storeBytes(of: UInt8.random(in: 0...255, using: &random), toByteOffset: index, as: UInt8.self) }
            fast.initializeMemory(as: UInt8.self, repeating: 0xAB, count: max(targetBytes, 1))
            reference.initializeMemory(as: UInt8.self, repeating: 0xAB, count: max(targetBytes, 1))
        }

        var targetsMatch: Bool {
            UnsafeRawBufferPointer(start: fast, count: targetBytes).elementsEqual(UnsafeRawBufferPointer(start: reference, count: targetBytes))
        }

        func free() {
            source.deallocate()
            fast.deallocate()
            reference.deallocate()
        }
    }

    private static let elementSizes = [1, 2, 3, 4, 8, 16]

    @Test(arguments: [1, 2])
    func transposesMatchTheReference(threads: Int) {
        var random = SeededGenerator(seed: 7)
        for trial in 0..<300 {
            let rank = Int.random(in: 1...5, using: &random)
            var shape = (0..<rank).map { _ in [1, 2, 3, 5, 7, 16, 17, 33].randomElement(using: &random)! }
            // Keep each case small enough for debug builds.
            while shape.reduce(1, *) > 20_000, let largest = shape.indices.max(by: { shape[$0] < shape[$1] }) { shape[largest] /= 2 }
            let perm = Array(0..<rank).shuffled(using: &random)
            let elementSize = Self.elementSizes[trial % Self.elementSizes.count]
            let count = shape.reduce(1, *)
            let inputStrides = Self.contiguousStrides(shape)
            let outputShape = perm.map { shape[$0] }
            let buffers = Buffers(sourceBytes: count * elementSize, targetBytes: count * elementSize, random: &random)
            defer { buffers.free() }
            TensorCopy.strided(shape: outputShape, elementSize: elementSize, source: buffers.source,
                               sourceStrides: perm.map { inputStrides[$0] }, target: buffers.fast,
                               targetStrides: Self.contiguousStrides(outputShape), parallelism: Parallelism(threads: threads))
            TensorCopy.stridedReference(shape: outputShape, elementSize: elementSize, source: buffers.source,
                                        sourceStrides: perm.map { inputStrides[$0] }, target: buffers.reference,
                                        targetStrides: Self.contiguousStrides(outputShape))
            #expect(buffers.targetsMatch, "shape \(shape) perm \(perm) element \(elementSize)")
        }
    }

    @Test(arguments: [1, 2])
    func stepsBroadcastsAndScatteredTargetsMatchTheReference(threads: Int) {
        var random = SeededGenerator(seed: 11)
        for trial in 0..<300 {
            let rank = Int.random(in: 0...4, using: &random)
            let shape = (0..<rank).map { _ in Int.random(in: 1...9, using: &random) }
            let elementSize = Self.elementSizes[trial % Self.elementSizes.count]
            // Source: a larger tensor read with steps (negative ones from the far end) or stride 0.
            let sourceShape = shape.map { $0 * 3 }
            let contiguous = Self.contiguousStrides(sourceShape)
            var sourceStrides: [Int] = [], start = 0
            for axis in 0..<rank {
                switch Int.random(in: 0..<4, using: &random) {
                case 0: sourceStrides.append(0)
                case 1:
                    sourceStrides.append(-2 * contiguous[axis])
                    start += (sourceShape[axis] - 1) * contiguous[axis]
                default: sourceStrides.append(Int.random(in: 1...3, using: &random) * contiguous[axis])
                }
            }
            // Target: a slab of a wider tensor (as Concat writes its parts).
            let targetShape = shape.map { $0 + 2 }
            let targetStrides = Self.contiguousStrides(targetShape)
            let sourceBytes = sourceShape.reduce(1, *) * elementSize
            let buffers = Buffers(sourceBytes: sourceBytes, targetBytes: targetShape.reduce(1, *) * elementSize, random: &random)
            defer { buffers.free() }
            let source = UnsafeRawPointer(buffers.source + start * elementSize)
            TensorCopy.strided(shape: shape, elementSize: elementSize, source: source, sourceStrides: sourceStrides,
                               target: buffers.fast, targetStrides: targetStrides, parallelism: Parallelism(threads: threads))
            TensorCopy.stridedReference(shape: shape, elementSize: elementSize, source: source, sourceStrides: sourceStrides,
                                        target: buffers.reference, targetStrides: targetStrides)
            #expect(buffers.targetsMatch, "shape \(shape) strides \(sourceStrides) element \(elementSize)")
        }
    }

    @Test(arguments: [1, 2])
    func indexedCopiesMatchTheReference(threads: Int) {
        var random = SeededGenerator(seed: 13)
        for trial in 0..<300 {
            let rank = Int.random(in: 0...4, using: &random)
            let shape = (0..<rank).map { _ in Int.random(in: 0...9, using: &random) }
            let elementSize = Self.elementSizes[trial % Self.elementSizes.count]
            var sourceShape = (0..<rank).map { _ in Int.random(in: 1...6, using: &random) }
            // Every fourth case reads whole source rows (the memcpy shortcut).
            let contiguousRows = trial % 4 == 0 && rank > 0
            if contiguousRows { sourceShape[rank - 1] = shape[rank - 1] + 2 }
            let strides = Self.contiguousStrides(sourceShape)
            // Repeated entries exercise the repeated-row shortcut.
            let offsets = (0..<rank).map { axis in
                (0..<shape[axis]).map { index in
                    if contiguousRows && axis == rank - 1 { return (index + 1) * elementSize }
                    return (index % 3 == 1 ? index - 1 : Int.random(in: 0..<sourceShape[axis], using: &random)).clamped(sourceShape[axis]) * strides[axis] * elementSize
                }
            }
            let buffers = Buffers(sourceBytes: sourceShape.reduce(1, *) * elementSize,
                                  targetBytes: shape.reduce(1, *) * elementSize, random: &random)
            defer { buffers.free() }
            TensorCopy.indexed(shape: shape, elementSize: elementSize, source: buffers.source, byteOffsets: offsets,
                               target: buffers.fast, parallelism: Parallelism(threads: threads))
            TensorCopy.indexedReference(shape: shape, elementSize: elementSize, source: buffers.source,
                                        byteOffsets: offsets, target: buffers.reference)
            #expect(buffers.targetsMatch, "shape \(shape) element \(elementSize)")
        }
    }

    @Test func fillRepeatsTheValue() {
        for elementSize in Self.elementSizes {
            let value = (0..<elementSize).map { UInt8($0 + 1) }
            for count in [0, 1, 5, 17] {
                let target = UnsafeMutableRawPointer.allocate(byteCount: max(1, count * elementSize), alignment: 64)
                defer { target.deallocate() }
                value.withUnsafeBytes { TensorCopy.fill(target, count: count, elementSize: elementSize, value: $0.baseAddress!) }
                let bytes = Array(UnsafeRawBufferPointer(start: target, count: count * elementSize))
                #expect(bytes == Array((0..<count).map { _ in value }.joined()))
            }
        }
    }

    private static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in shape.indices.reversed() {
            strides[axis] = running
            running *= shape[axis]
        }
        return strides
    }
}

private extension Int {
    func clamped(_ size: Int) -> Int { Swift.min(Swift.max(self, 0), size - 1) }
}
