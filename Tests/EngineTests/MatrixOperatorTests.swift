import Engine
import Kernels
import Tensors
import Testing

@Suite struct MatrixOperatorTests {
    typealias T = ConvTestSupport

    /// Plain-loop numpy matmul of 2-D slices (row-major), the expectation for the cases below.
    static func product(_ a: [Float], _ b: [Float], m: Int, k: Int, n: Int) -> [Float] {
        (0..<(m * n)).map { at in (0..<k).reduce(Float(0)) { $0 + a[at / n * k + $1] * b[$1 * n + at % n] } }
    }

    @Test func matMulBroadcastsBatchAxes() throws {
        let a = T.random([2, 1, 3, 4], seed: 1), b = T.random([3, 4, 5], seed: 2)
        let y = try T.runNode("MatMul", [a, b])[0]
        #expect(y.shape == [2, 3, 3, 5])
        let aValues = a.scalars(as: Float.self), bValues = b.scalars(as: Float.self)
        var expected: [Float] = []
        for i in 0..<2 {
            for j in 0..<3 {
                expected += Self.product(Array(aValues[(i * 12)..<(i * 12 + 12)]), Array(bValues[(j * 20)..<(j * 20 + 20)]), m: 3, k: 4, n: 5)
            }
        }
        #expect(T.isClose(y.scalars(as: Float.self), expected))
        // A batch of rows against one matrix (folded into one product).
        let rows = T.random([2, 3, 4], seed: 3), matrix = T.random([4, 5], seed: 4)
        let folded = try T.runNode("MatMul", [rows, matrix])[0]
        #expect(T.isClose(folded.scalars(as: Float.self), Self.product(rows.scalars(as: Float.self), matrix.scalars(as: Float.self), m: 6, k: 4, n: 5)))
    }

    @Test func matMulVectors() throws {
        let v = Tensor([1, 2, 3] as [Float], shape: [3]), m = T.iota([3, 2])
        #expect(try T.runNode("MatMul", [v, m])[0].shape == [2])
        #expect(try T.runNode("MatMul", [v, m])[0].scalars(as: Float.self) == [16, 22])
        #expect(try T.runNode("MatMul", [T.iota([2, 3]), v])[0].scalars(as: Float.self) == [8, 26])
        let dot = try T.runNode("MatMul", [v, v])[0]
        #expect(dot.shape == [])
        #expect(dot.scalars(as: Float.self) == [14])
        #expect(throws: (any Error).self) { try T.runNode("MatMul", [v, T.iota([2, 2])]) }
    }

    @Test func matMulIntegers() throws {
        let a = Tensor([1, 2, 3, 4, 5, 6] as [Int32], shape: [2, 3]), b = Tensor([1, 0, -1, 2, 3, 1] as [Int32], shape: [3, 2])
        let y = try T.runNode("MatMul", [a, b])[0]
        #expect(y.scalars(as: Int32.self) == [8, 7, 17, 16])
    }

    @Test func gemmAttributesAndBiasShapes() throws {
        let a = T.random([4, 3], seed: 5), b = T.random([5, 4], seed: 6)
        // Y = 0.5 · Aᵀ · Bᵀ + 2 · C for C of each broadcastable shape.
        let aT = (0..<12).map { a.scalars(as: Float.self)[($0 % 4) * 3 + $0 / 4] }
        let bT = (0..<20).map { b.scalars(as: Float.self)[($0 % 5) * 4 + $0 / 5] }
        let base = Self.product(aT, bT, m: 3, k: 4, n: 5).map { 0.5 * $0 }
        for cShape: Shape in [[5], [1, 5], [3, 1], [3, 5], [], [1, 1]] {
            let c = T.random(cShape, seed: 7)
            let values = c.scalars(as: Float.self)
            let expected = base.indices.map { at -> Float in
                let (row, column) = (at / 5, at % 5)
                let cValue: Float = switch cShape.dims {
                case [3, 1]: values[row]
                case [3, 5]: values[at]
                case [5], [1, 5]: values[column]
                default: values[0]
                }
                return base[at] + 2 * cValue
            }
            let y = try T.runNode("Gemm", [a, b, c], attributes: ["transA": .int(1), "transB": .int(1), "alpha": .float(0.5),
                                                                  "beta": .float(2)])[0]
            #expect(y.shape == [3, 5])
            #expect(T.isClose(y.scalars(as: Float.self), expected), "C \(cShape)")
        }
        let noBias = try T.runNode("Gemm", [T.iota([2, 3]), T.iota([3, 2])], opset: 13)[0]
        #expect(noBias.scalars(as: Float.self) == [10, 13, 28, 40])
        let doubles = try T.runNode("Gemm", [Tensor([1, 2] as [Double], shape: [1, 2]), Tensor([3, 4] as [Double], shape: [2, 1]),
                                             Tensor([0.5] as [Double], shape: [1])])[0]
        #expect(doubles.scalars(as: Double.self) == [11.5])
        #expect(throws: (any Error).self) { try T.runNode("Gemm", [T.iota([2, 3]), T.iota([2, 3])]) }
        #expect(throws: (any Error).self) { try T.runNode("Gemm", [T.iota([2, 3]), T.iota([3, 2]), T.iota([3])]) }
    }

    @Test func fusedGemmFlattensRowsAndActivates() throws {
        let a = T.random([2, 3, 4], seed: 8), b = T.random([4, 6], seed: 9), c = T.random([6], seed: 10)
        let y = try T.runNode("FusedGemm", [a, b, c], attributes: ["activation": .string("Relu")],
                              domain: OperatorRegistry.internalDomain)[0]
        #expect(y.shape == [2, 3, 6])
        let product = Self.product(a.scalars(as: Float.self), b.scalars(as: Float.self), m: 6, k: 4, n: 6)
        let expected = product.indices.map { max(0, product[$0] + c.scalars(as: Float.self)[$0 % 6]) }
        #expect(T.isClose(y.scalars(as: Float.self), expected))
    }

    /// A Gemm whose B is a constant runs products of up to `panelRows` rows against B packed once
    /// (`PanelProduct`), others through sgemm: both against the naive product, over odd sizes
    /// (partial panels, every remainder of the six-row blocks), both layouts of B, alpha, each
    /// bias shape (a full C accumulates, through sgemm), a fused activation, 1-3 threads, and one
    /// compiled node run at several row counts (B packed by the first, reused by the rest).
    @Test(arguments: [false, true])
    func gemmAgainstAConstantBMatchesTheNaiveProduct(transposeB: Bool) throws {
        let (n, k) = (37, 19)
        let b = T.random(transposeB ? [n, k] : [k, n], seed: 11)
        let bValues = b.scalars(as: Float.self)
        let plainB = transposeB ? (0..<(k * n)).map { bValues[($0 % n) * k + $0 / n] } : bValues
        for (opType, alpha, biasShape) in [("Gemm", Float(1), nil), ("Gemm", 0.5, [n]), ("FusedGemm", 1, []), ("Gemm", 2, [1, n]),
                                           ("FusedGemm", 0.25, [n])] as [(String, Float, Shape?)] {
            for threads in [1, 2, 3] {
                var attributes: [String: AttributeValue] = ["transB": .int(transposeB ? 1 : 0), "alpha": .float(alpha)]
                if opType == "FusedGemm" { attributes["activation"] = .string("Relu") }
                let bias = biasShape.map { T.random($0, seed: 12) }
                let node = Node(name: "gemm", opType: opType, domain: opType == "Gemm" ? "" : OperatorRegistry.internalDomain,
                                inputs: bias == nil ? ["a", "b"] : ["a", "b", "c"], outputs: ["y"], attributes: attributes)
                let op = try OperatorRegistry.compile(node, opsets: ["": 13], constants: [nil, b, nil])
                let context = ExecutionContext(pool: BufferPool(), parallelism: Parallelism(threads: threads))
                for m in [1, 2, 5, 6, 7, 13, 64, 65, 3] {
                    let a = T.random([m, k], seed: UInt64(m))
                    let y = try op.run([a, b] + (bias.map { [$0] } ?? []), context)[0]
                    let product = Self.product(a.scalars(as: Float.self), plainB, m: m, k: k, n: n)
                    let biasValues = bias?.scalars(as: Float.self)
                    let expected = product.indices.map { at -> Float in
                        let value = alpha * product[at] + (biasValues.map { $0.count == 1 ? $0[0] : $0[at % n] } ?? 0)
                        return opType == "FusedGemm" ? max(0, value) : value
                    }
                    #expect(y.shape == [m, n])
                    #expect(T.isClose(y.scalars(as: Float.self), expected), "\(opType) alpha \(alpha) bias \(String(describing: biasShape)) m \(m) threads \(threads)")
                }
            }
        }
        // A full C is added through sgemm's beta; the constant B's panels are not used.
        let a = T.random([3, k], seed: 13), c = T.random([3, n], seed: 14)
        let op = try OperatorRegistry.compile(Node(name: "gemm", opType: "Gemm", inputs: ["a", "b", "c"], outputs: ["y"],
                                                   attributes: ["transB": .int(transposeB ? 1 : 0), "beta": .float(3)]),
                                              opsets: ["": 13], constants: [nil, b, nil])
        let y = try op.run([a, b, c], ExecutionContext(pool: BufferPool(), parallelism: Parallelism(threads: 2)))[0]
        let product = Self.product(a.scalars(as: Float.self), plainB, m: 3, k: k, n: n)
        #expect(T.isClose(y.scalars(as: Float.self), product.indices.map { product[$0] + 3 * c.scalars(as: Float.self)[$0] }))
    }

    // The ONNX documentation's MatMulInteger example, and per-row / per-column zero points.
    @Test func matMulIntegerSubtractsZeroPoints() throws {
        let a = Tensor([11, 7, 3, 10, 6, 2, 9, 5, 1, 8, 4, 0] as [UInt8], shape: [4, 3])
        let b = Tensor([1, 4, 2, 5, 3, 6] as [UInt8], shape: [3, 2])
        let y = try T.runNode("MatMulInteger", [a, b, Tensor(scalar: UInt8(12)), Tensor(scalar: UInt8(0))], opset: 10)[0]
        #expect(y.dataType == .int32)
        #expect(y.scalars(as: Int32.self) == [-38, -83, -44, -98, -50, -113, -56, -128])
        let rows = try T.runNode("MatMulInteger", [a, b, Tensor([12, 12, 12, 12] as [UInt8], shape: [4]),
                                                   Tensor([1, 0] as [UInt8], shape: [2])], opset: 10)[0]
        let expected: [Int32] = [-23, -83, -26, -98, -29, -113, -32, -128]
        #expect(rows.scalars(as: Int32.self) == expected)
    }

    @Test func outputTypes() throws {
        let matMul = try T.types("MatMul", [TensorType(.float, [.symbolic("B"), .fixed(1), .fixed(7), .fixed(4)]),
                                            TensorType(.float, [.fixed(3), .fixed(4), .symbolic("N")])])
        #expect(matMul.first == TensorType(.float, [.symbolic("B"), .fixed(3), .fixed(7), .symbolic("N")]))
        let gemm = try T.types("Gemm", [TensorType(.float, [.fixed(4), .symbolic("M")]), TensorType(.float, shape: [10, 4])],
                               attributes: ["transA": .int(1), "transB": .int(1)])
        #expect(gemm.first == TensorType(.float, [.symbolic("M"), .fixed(10)]))
        #expect(throws: (any Error).self) {
            try T.types("MatMul", [TensorType(.float, shape: [2, 2]), TensorType(.int64, shape: [2, 2])])
        }
    }
}
