import Kernels
import Tensors
internal import Synchronization

/// Matrix products: Gemm, MatMul, and FusedGemm (a Gemm whose bias and activation run in its
/// epilogue; made by the fusion passes). Float runs the threaded sgemm; other numeric types a
/// plain loop.
enum MatrixOperators {
    /// The element types of Gemm's and MatMul's T.
    static let productTypes: Set<DataType> = [.float, .double, .float16, .int32, .int64, .uint32, .uint64]

    /// A, B and C (optional from 11) of T, to Y of T.
    static func gemmContract(cOptional: Bool) -> OperatorContract {
        OperatorContract(inputs: [.init("A", "T"), .init("B", "T"), .init("C", "T", cOptional ? .optional : .required)],
                         outputs: [.init("Y", "T")], types: ["T": productTypes])
    }

    static let definitions: [OperatorDefinition] = [
        // C became optional in 11.
        OperatorDefinition("Gemm", versions: [1, 6, 7, 9, 11, 13], contracts: { version in gemmContract(cOptional: version >= 11) }) {
            try GemmOperator($0, fused: false)
        },
        OperatorDefinition("MatMul", versions: [1, 9, 13], contract: OperatorContract(
            inputs: [.init("A", "T"), .init("B", "T")], outputs: [.init("Y", "T")], types: ["T": productTypes])) { _ in MatMul() },
        OperatorDefinition("MatMulInteger", versions: [10], contract: OperatorContract(
            inputs: [.init("A", "T1"), .init("B", "T2"), .init("a_zero_point", "T1", .optional), .init("b_zero_point", "T2", .optional)],
            outputs: [.init("Y", "T3")], types: ["T1": [.int8, .uint8], "T2": [.int8, .uint8], "T3": [.int32]])) { try MatMulInteger($0) },
        OperatorDefinition("FusedGemm", domain: OperatorRegistry.internalDomain, versions: [1], contract: gemmContract(cOptional: true)) {
            try GemmOperator($0, fused: true)
        },
    ]

    /// Applies `activation` to every element (the non-float paths; Float fuses it into the epilogue).
    static func activate(_ tensor: Tensor, _ activation: Activation) throws {
        struct Visitor: NumericVisitor {
            let tensor: Tensor, activation: Activation
            func visit<T: NumericElement>(_ type: T.Type) {
                let values = tensor.mutablePointer(as: T.self)
                for i in 0..<tensor.elementCount {
                    values[i] = T(converting: Double(activation(Float(values[i].doubleValue))))
                }
            }
        }
        _ = try tensor.dataType.visit(Visitor(tensor: tensor, activation: activation))
    }

    /// `C = op(A) · op(B) (+ C when accumulate)` for one product in a numeric type without BLAS.
    static func referenceProduct(_ a: Tensor, _ b: Tensor, into c: Tensor, m: Int, n: Int, k: Int,
                                 transposeA: Bool, transposeB: Bool, alpha: Double, beta: Double,
                                 offsets: [(a: Int, b: Int, c: Int)]) throws {
        struct Visitor: ArithmeticVisitor {
            let a: Tensor, b: Tensor, c: Tensor, m: Int, n: Int, k: Int, transposeA: Bool, transposeB: Bool
            let alpha: Double, beta: Double, offsets: [(a: Int, b: Int, c: Int)]
            func visit<T: ArithmeticElement>(_ type: T.Type) {
                for offset in offsets {
                    Gemm.reference(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                                   alpha: T(converting: alpha), a: a.pointer(as: T.self) + offset.a, lda: transposeA ? m : k,
                                   b: b.pointer(as: T.self) + offset.b, ldb: transposeB ? k : n,
                                   beta: T(converting: beta), c: c.mutablePointer(as: T.self) + offset.c, ldc: n)
                }
            }
        }
        guard try a.dataType.visit(Visitor(a: a, b: b, c: c, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB,
                                           alpha: alpha, beta: beta, offsets: offsets)) != nil else {
            throw OpError("element type \(a.dataType) has no arithmetic")
        }
    }
}

/// ONNX Gemm, `Y = alpha · op(A) · op(B) + beta · C`, and FusedGemm (the same plus `activation`).
/// FusedGemm also takes an A of any rank when not transposed (rows = all leading axes), so that
/// MatMul + Add over a batch of rows becomes one FusedGemm.
struct GemmOperator: Operator {
    let transposeA: Bool
    let transposeB: Bool
    let alpha: Float
    let beta: Float
    let activation: Activation?
    let fused: Bool
    /// B packed for `PanelProduct` when B is a float constant, made by the first run of a 2-D A
    /// with at most `panelRows` rows: a model that never runs one (a transformer's rank-3 products)
    /// keeps B once.
    let panels: PackedPanels?

    /// A 2-D product of at most this many rows (a classifier's batch) against a constant B runs as
    /// `PanelProduct` against B packed once, not through OpenBLAS, which packs all of B at every
    /// call: 77% of a [8, 1024] × [1024, 1000]ᵀ product's time was that packing (perf).
    /// Single-Gemm models (transB 1, K 1024 and 2048, N 1000), wall median ms per run, 2 threads,
    /// sgemm / panels / ONNX Runtime: 8 rows 0.408 / 0.102 / 0.091 and 0.810 / 0.194 / 0.166;
    /// 16 rows 0.481 / 0.162 / 0.176; 32 rows 0.644 / 0.322 / 0.341; 64 rows 0.970 / 0.603 / 0.674
    /// and 1.952 / 1.196 / 1.334; one row is OpenBLAS's small-matrix kernel either way (0.031).
    /// At one thread the panels stay ahead up to 128 rows (2.36 against 3.04 ms); the limit is
    /// 64, a server's largest usual batch, beyond which OpenBLAS's own kernel is the design.
    static let panelRows = 64

    init(_ context: OperatorContext, fused: Bool) throws {
        transposeA = try context.int("transA", default: 0) != 0
        transposeB = try context.int("transB", default: 0) != 0
        alpha = try context.float("alpha", default: 1)
        beta = try context.float("beta", default: 1)
        activation = fused ? try Activation(fusedAttributesOf: context) : nil
        self.fused = fused
        if let b = context.constant(1), b.dataType == .float, b.shape.rank == 2, !transposeA, alpha.isFinite {
            panels = PackedPanels()
        } else {
            panels = nil
        }
    }

    /// Whether A may have a rank other than 2.
    private var flattensA: Bool { fused && !transposeA }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let a = inputs.first ?? nil else { return [] }
        let b = inputs.count > 1 ? inputs[1] : nil
        let columns: Dim = b?.dims.flatMap { $0.count == 2 ? $0[transposeB ? 0 : 1] : nil } ?? .unknown
        guard let dims = a.dims else { return [TensorType(a.dataType, nil)] }
        if flattensA {
            guard dims.count >= 1 else { throw OpError("A must have rank 1 or more") }
            return [TensorType(a.dataType, Array(dims.dropLast()) + [columns])]
        }
        guard dims.count == 2 else { throw OpError("A must have rank 2, not \(dims.count)") }
        return [TensorType(a.dataType, [dims[transposeA ? 1 : 0], columns])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        guard let a = inputs.first ?? nil, let b = inputs.count > 1 ? inputs[1] : nil else {
            throw OpError("Gemm needs inputs A and B")
        }
        guard b.shape.rank == 2, flattensA ? a.shape.rank >= 1 : a.shape.rank == 2 else {
            throw OpError.invalidArgument("A \(a.shape) and B \(b.shape) must be matrices")
        }
        let k = transposeA ? a.shape[0] : a.shape[a.shape.rank - 1]
        let m = transposeA ? a.shape[1] : a.shape.dims.dropLast().reduce(1, *)
        let n = transposeB ? b.shape[0] : b.shape[1]
        guard (transposeB ? b.shape[1] : b.shape[0]) == k else {
            throw OpError.invalidArgument("A \(a.shape) and B \(b.shape) do not fit (transA \(transposeA ? 1 : 0), transB \(transposeB ? 1 : 0))")
        }
        let shape = flattensA ? Shape(Array(a.shape.dims.dropLast()) + [n]) : Shape([m, n])
        let c = inputs.count > 2 && beta != 0 ? inputs[2] : nil
        if let c {
            guard Shape.broadcast(c.shape, [m, n]) == [m, n] else { throw OpError.invalidArgument("C \(c.shape) does not broadcast to [\(m), \(n)]") }
        }
        let y = try context.allocate(a.dataType, shape)
        if y.elementCount == 0 { return [y] }
        guard a.dataType == .float else {
            if let c { try BroadcastCopy.copy(c, to: [m, n], into: y.rawPointer) }
            try MatrixOperators.referenceProduct(a, b, into: y, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB,
                                                 alpha: Double(alpha), beta: c == nil ? 0 : Double(beta), offsets: [(0, 0, 0)])
            if let activation { try MatrixOperators.activate(y, activation) }
            return [y]
        }
        // C as a bias along rows or columns when it has that shape; otherwise copied into Y first.
        var bias: Tensor? = nil, accumulate = false
        var epilogue = Epilogue(activation: activation)
        if let c {
            let dims = c.shape.dims, rowVector = dims.count == 2 && dims[0] == m && dims[1] == 1 && n > 1
            if c.elementCount == 1 || (dims.last == n && c.elementCount == n) || rowVector {
                let length = rowVector ? m : n
                let scaled = try context.allocate(.float, [length])
                let source = c.pointer(as: Float.self), target = scaled.mutablePointer(as: Float.self)
                for i in 0..<length { target[i] = beta * source[c.elementCount == 1 ? 0 : i] }
                bias = scaled
                epilogue.bias = rowVector ? .perRow(UnsafePointer(target)) : .perColumn(UnsafePointer(target))
            } else {
                try BroadcastCopy.copy(c, to: [m, n], into: y.rawPointer)
                accumulate = true
            }
        }
        if let panels, !accumulate, a.shape.rank == 2, m <= Self.panelRows, k > 0,
           let packed = panels.packed(b, columns: n, depth: k, transposed: transposeB, scale: alpha) {
            withExtendedLifetime((bias, packed)) {
                let c = y.mutablePointer(as: Float.self)
                PanelProduct.multiply(m: m, n: n, k: k, a: a.pointer(as: Float.self), lda: k, packed: packed.pointer(as: Float.self),
                                      c: c, ldc: n, parallelism: context.parallelism)
                epilogue.apply(c, offset: 0, ld: n, rows: 0..<m, columns: 0..<n)
            }
            return [y]
        }
        withExtendedLifetime(bias) {
            Gemm.multiply(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                          a: a.pointer(as: Float.self), lda: transposeA ? m : k, b: b.pointer(as: Float.self),
                          ldb: transposeB ? k : n, beta: accumulate ? beta : 0, c: y.mutablePointer(as: Float.self), ldc: n,
                          epilogue: epilogue, parallelism: context.parallelism)
        }
        return [y]
    }
}

/// A constant B packed for `PanelProduct` once, by the first run that asks (under a lock, so
/// concurrent runs pack it once); at most B's size, rounded up to whole panels of 16 columns.
final class PackedPanels: Sendable {
    private let packed = Mutex<Tensor?>(nil)

    // Shapes: b as Gemm's B ([n × k] when `transposed`, else [k × n]).
    /// B packed, or nil when its packed size would overflow (then the caller uses sgemm).
    func packed(_ b: Tensor, columns n: Int, depth k: Int, transposed: Bool, scale: Float) -> Tensor? {
        packed.withLock { stored in
            if let stored { return stored }
            guard let count = PanelProduct.packedCount(rows: n, depth: k) else { return nil }
            let tensor = Tensor(uninitialized: .float, shape: [count])
            withExtendedLifetime(b) {
                // B's rows are the product's columns when transposed ([n × k]); else its columns are ([k × n]).
                PanelProduct.pack(b.pointer(as: Float.self), ldb: transposed ? k : 1, depthStride: transposed ? 1 : n, rows: n, depth: k,
                                  scale: scale, into: tensor.mutablePointer(as: Float.self))
            }
            stored = tensor
            return tensor
        }
    }
}

/// ONNX MatMul: numpy matmul semantics (1-D operands promoted and their axis dropped again,
/// batch axes broadcast).
struct MatMul: Operator {
    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard inputs.count >= 2, let a = inputs[0], let b = inputs[1] else { return [] }
        guard let aDims = a.dims, let bDims = b.dims else { return [TensorType(a.dataType, nil)] }
        guard !aDims.isEmpty, !bDims.isEmpty else { throw OpError("MatMul operands must have rank 1 or more") }
        let aBatch = aDims.count > 2 ? Array(aDims.dropLast(2)) : []
        let bBatch = bDims.count > 2 ? Array(bDims.dropLast(2)) : []
        let rank = Swift.max(aBatch.count, bBatch.count)
        let left = Array(repeating: Dim.fixed(1), count: rank - aBatch.count) + aBatch
        let right = Array(repeating: Dim.fixed(1), count: rank - bBatch.count) + bBatch
        var dims = zip(left, right).map { x, y -> Dim in
            if x == y || y == .fixed(1) { return x }
            if x == .fixed(1) { return y }
            return .unknown
        }
        if aDims.count >= 2 { dims.append(aDims[aDims.count - 2]) }
        if bDims.count >= 2 { dims.append(bDims[bDims.count - 1]) }
        return [TensorType(a.dataType, dims)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        guard inputs.count >= 2, let a = inputs[0], let b = inputs[1] else { throw OpError("MatMul needs inputs A and B") }
        let shapes = try Geometry(a.shape, b.shape)
        let y = try context.allocate(a.dataType, shapes.output)
        if y.elementCount == 0 { return [y] }
        let (rows, n, k, items, offsets) = (shapes.rows, shapes.n, shapes.k, shapes.items, shapes.offsets())
        guard a.dataType == .float else {
            try MatrixOperators.referenceProduct(a, b, into: y, m: rows, n: n, k: k, transposeA: false, transposeB: false,
                                                 alpha: 1, beta: 0, offsets: offsets)
            return [y]
        }
        Gemm.multiply(m: rows, n: n, k: k, a: a.pointer(as: Float.self), lda: k, b: b.pointer(as: Float.self), ldb: n,
                      c: y.mutablePointer(as: Float.self), ldc: n, batch: items, batchOffsets: { offsets[$0] },
                      parallelism: context.parallelism)
        return [y]
    }

    /// MatMul's shapes for operands of shapes `a` and `b` (numpy's rules: a rank-1 A is one row, a
    /// rank-1 B one column, the batch axes broadcast), and the products that compute it: `items`
    /// products of `rows` × `n` over depth `k`, at `offsets` (a batch of A against a single B is
    /// one taller product).
    struct Geometry {
        let m: Int, k: Int, n: Int
        let output: Shape
        let aBatch: Shape, bBatch: Shape, batch: Shape
        /// A batch of A against one B, run as a single product of `batch · m` rows.
        var folded: Bool { bBatch.elementCount == 1 && aBatch.elementCount == batch.elementCount }
        var items: Int { folded ? 1 : batch.elementCount }
        var rows: Int { folded ? batch.elementCount * m : m }

        init(_ a: Shape, _ b: Shape) throws {
            guard a.rank >= 1, b.rank >= 1 else { throw OpError.invalidArgument("MatMul operands must have rank 1 or more") }
            let aDims = a.rank == 1 ? [1] + a.dims : a.dims
            let bDims = b.rank == 1 ? b.dims + [1] : b.dims
            (m, k, n) = (aDims[aDims.count - 2], aDims[aDims.count - 1], bDims[bDims.count - 1])
            guard bDims[bDims.count - 2] == k else { throw OpError.invalidArgument("A \(a) and B \(b) do not fit") }
            (aBatch, bBatch) = (Shape(Array(aDims.dropLast(2))), Shape(Array(bDims.dropLast(2))))
            guard let batch = Shape.broadcast(aBatch, bBatch) else {
                throw OpError.invalidArgument("the batch axes of A \(a) and B \(b) do not broadcast")
            }
            self.batch = batch
            var dims = batch.dims
            if a.rank > 1 { dims.append(m) }
            if b.rank > 1 { dims.append(n) }
            output = Shape(dims)
        }

        /// Element offsets of A's, B's and the output's matrix for each product.
        func offsets() -> [(a: Int, b: Int, c: Int)] {
            let aOffsets = folded ? [0] : MatMul.offsets(batch, aBatch, matrix: m * k)
            let bOffsets = folded ? [0] : MatMul.offsets(batch, bBatch, matrix: k * n)
            return (0..<items).map { (a: aOffsets[$0], b: bOffsets[$0], c: $0 * rows * n) }
        }
    }

    /// Element offset of each output batch item's matrix in an operand with batch shape `operand`
    /// (broadcast axes repeat the same matrix).
    static func offsets(_ batch: Shape, _ operand: Shape, matrix: Int) -> [Int] {
        let missing = batch.rank - operand.rank
        let strides = operand.strides
        return (0..<batch.elementCount).map { item in
            var rest = item, offset = 0
            for axis in stride(from: batch.rank - 1, through: 0, by: -1) {
                let index = rest % batch[axis]
                rest /= batch[axis]
                if axis >= missing && operand[axis - missing] != 1 { offset += index * strides[axis - missing] }
            }
            return offset * matrix
        }
    }
}

/// MatMulInteger: `(A − a_zero_point) · (B − b_zero_point)` on 8-bit integers, into int32, with
/// MatMul's shapes. Zero points are scalars, or per row of A ([M] or [..., M, 1]) and per column
/// of B ([N] or [..., 1, N]).
struct MatMulInteger: Operator {
    /// A constant B (and zero point) prepared at load time.
    let weights: IntegerWeights?

    init(_ context: OperatorContext) throws { weights = try IntegerWeights(context, b: 1, zeroPoint: 3) }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        return try MatMul().outputTypes(inputs.prefix(2).map { $0.map { TensorType(.int32, $0.dims) } })
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        guard inputs.count >= 2, let a = inputs[0], let b = inputs[1] else { throw OpError("MatMulInteger needs inputs A and B") }
        // A vector of zero points runs along A's rows (second-to-last axis) and B's columns (last axis).
        return [try IntegerProduct.matMul(a, zeroPoint: inputs.optional(2), b, zeroPoint: inputs.optional(3), weights: weights, context)]
    }
}
