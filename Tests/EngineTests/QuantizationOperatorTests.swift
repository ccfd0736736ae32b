import Engine
import Kernels
import Tensors
import Testing

@Suite struct QuantizationOperatorTests {
    typealias T = ConvTestSupport

    /// Deterministic pseudo-random integers in `range` (a linear congruential generator).
    static func integers(_ count: Int, _ range: ClosedRange<Int>, seed: UInt64) -> [Int] {
        var state = seed &* 6364136223846793005 &+ 1442695040888963407
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return range.lowerBound + Int((state >> 33) % UInt64(range.count))
        }
    }

    /// Naive integer matmul of `a` [m, k] − aZero and `b` [k, n] − bZero[column]: the twin the
    /// float (sgemm) and double paths of the integer products are checked against.
    static func integerProduct(_ a: [Int], _ b: [Int], m: Int, k: Int, n: Int, aZero: Int, bZero: [Int]) -> [Int32] {
        (0..<(m * n)).map { at in
            let (row, column) = (at / n, at % n)
            let sum = (0..<k).reduce(0) { $0 + (a[row * k + $1] - aZero) * (b[$1 * n + column] - bZero[bZero.count == 1 ? 0 : column]) }
            return Int32(truncatingIfNeeded: sum)
        }
    }

    @Test(arguments: [(3, 5, 7), (1, 1, 1), (4, 300, 3), (2, 2000, 5)])
    func matMulIntegerMatchesTheNaiveProduct(m: Int, k: Int, n: Int) throws {
        // uint8 A (zero point 3) against int8 B with one zero point per column. K = 300 and 2000
        // pass 2^24 in the worst case and take the double path for full-range values.
        let a = Self.integers(m * k, 0...255, seed: UInt64(m * k)), b = Self.integers(k * n, -128...127, seed: UInt64(k + n))
        let bZero = Self.integers(n, -5...5, seed: 9)
        let y = try T.runNode("MatMulInteger", [Tensor(a.map(UInt8.init), shape: [m, k]), Tensor(b.map(Int8.init), shape: [k, n]),
                                                Tensor(scalar: UInt8(3)), Tensor(bZero.map(Int8.init), shape: [n])], opset: 10)[0]
        #expect(y.dataType == .int32)
        #expect(y.scalars(as: Int32.self) == Self.integerProduct(a, b, m: m, k: k, n: n, aZero: 3, bZero: bZero))
    }

    /// How `matMulIntegerWithConstantWeights` fills its operands.
    enum IntegerOperands: CaseIterable {
        /// Random full-range values and zero points.
        case random
        /// A all 255 with zero point 0 against B all −128 with zero point 127: (255)·(−255) in
        /// every term, the largest partial sums there are.
        case extremeNegative
        /// A all 0 with zero point 255 against B all 127 with zero point −128: (−255)·(255).
        case extremePositive
    }

    // A constant B as in a model (prepared once when the node is made), a batch of two A
    // matrices over it, against the naive twin; at K ≥ 259 the extremes need several sgemm chunks.
    @Test(arguments: [(3, 5, 7), (1, 1, 1), (4, 1000, 3), (2, 3001, 5), (9, 517, 33)], IntegerOperands.allCases)
    func matMulIntegerWithConstantWeights(size: (m: Int, k: Int, n: Int), operands: IntegerOperands) throws {
        let (m, k, n) = size
        let (a, b, aZero, bZero): ([Int], [Int], Int, [Int]) = switch operands {
        case .random: (Self.integers(2 * m * k, 0...255, seed: UInt64(m + k)), Self.integers(k * n, -128...127, seed: UInt64(k * n)),
                       131, Self.integers(n, -128...127, seed: 3))
        case .extremeNegative: (Array(repeating: 255, count: 2 * m * k), Array(repeating: -128, count: k * n), 0, [127])
        case .extremePositive: (Array(repeating: 0, count: 2 * m * k), Array(repeating: 127, count: k * n), 255, [-128])
        }
        let inputs: [Tensor?] = [Tensor(a.map(UInt8.init), shape: [2, m, k]), Tensor(b.map(Int8.init), shape: [k, n]),
                                 Tensor(scalar: UInt8(aZero)),
                                 bZero.count == 1 ? Tensor(scalar: Int8(bZero[0])) : Tensor(bZero.map(Int8.init), shape: [n])]
        let op = try makeNode("MatMulInteger", inputCount: 4, attributes: [:], opset: 10, outputs: 1,
                              constants: [nil, inputs[1], nil, inputs[3]])
        let y = try op.run(inputs, ExecutionContext(pool: BufferPool(), parallelism: Parallelism(threads: 2)))[0]
        #expect(y.dataType == .int32)
        #expect(y.shape == [2, m, n])
        #expect(y.scalars(as: Int32.self) == Self.integerProduct(a, b, m: 2 * m, k: k, n: n, aZero: aZero, bZero: bZero))
    }

    // DynamicQuantizeLinear's 16-lane loops against a scalar twin over odd sizes: the extremes in
    // the lanes and in the tail, a NaN, negative zero, and inputs all positive or all negative
    // (zero points 0 and 255).
    @Test(arguments: [1, 2, 15, 16, 17, 33, 100], [Float(-20), 0, 20])
    func dynamicQuantizeLinearMatchesTheScalarTwin(count: Int, offset: Float) throws {
        var values = (0..<count).map { Float($0 % 23) * 0.37 - 3.1 + offset }
        values[Swift.min(5, count - 1)] = offset - 4.25
        values[count - 1] = offset + 9.5
        if count > 2 { values[count / 2] = .nan }
        values[0] = -0.0
        let outputs = try T.runNode("DynamicQuantizeLinear", [Tensor(values, shape: [count])], opset: 11, outputs: 3)
        var low: Float = 0, high: Float = 0
        for value in values where !value.isNaN {
            low = Swift.min(low, value)
            high = Swift.max(high, value)
        }
        let scale = (high == low ? 1 : high - low) / 255
        let zero = Swift.min(Swift.max(0 - low / scale, 0), 255).rounded(.toNearestOrEven)
        let expected = values.map { value -> UInt8 in
            let q = (value / scale).rounded(.toNearestOrEven) + zero
            return q.isNaN ? 0 : UInt8(Swift.min(Swift.max(q, 0), 255))
        }
        #expect(outputs[0].scalars(as: UInt8.self) == expected)
        #expect(outputs[1].scalars(as: Float.self) == [scale])
        #expect(outputs[2].scalars(as: UInt8.self) == [UInt8(zero)])
    }

    @Test func convIntegerMatchesTheNaiveConvolution() throws {
        // 64 input channels of 3×3 full-range values pass 2^24 (the double path); 3 channels do not.
        for channels in [3, 64] {
            let (h, w, m) = (5, 4, 3)
            let x = Self.integers(channels * h * w, 0...255, seed: 1), weights = Self.integers(m * channels * 9, -128...127, seed: 2)
            let y = try T.runNode("ConvInteger", [Tensor(x.map(UInt8.init), shape: [1, channels, h, w]),
                                                  Tensor(weights.map(Int8.init), shape: [m, channels, 3, 3]), Tensor(scalar: UInt8(7))],
                                  attributes: ["pads": .ints([1, 1, 1, 1])], opset: 10)[0]
            var expected: [Int32] = []
            for o in 0..<m {
                for i in 0..<h {
                    for j in 0..<w {
                        var sum = 0
                        for c in 0..<channels {
                            for di in 0..<3 {
                                for dj in 0..<3 {
                                    let (r, s) = (i + di - 1, j + dj - 1)
                                    guard r >= 0, r < h, s >= 0, s < w else { continue }
                                    sum += (x[(c * h + r) * w + s] - 7) * weights[((o * channels + c) * 3 + di) * 3 + dj]
                                }
                            }
                        }
                        expected.append(Int32(sum))
                    }
                }
            }
            #expect(y.shape == [1, m, h, w])
            #expect(y.scalars(as: Int32.self) == expected)
        }
    }

    @Test func quantizeAndDequantizePerAxisAndBlocked() throws {
        let x = Tensor([-1.5, 0, 0.5, 2.5, 3, 100, -100, 7] as [Float], shape: [2, 4])
        // Per axis 0: scales 0.5 and 2, zero points 10 and -3 (int8).
        let perAxis = try T.runNode("QuantizeLinear", [x, Tensor([0.5, 2] as [Float], shape: [2]), Tensor([10, -3] as [Int8], shape: [2])],
                                    attributes: ["axis": .int(0)], opset: 13)[0]
        #expect(perAxis.scalars(as: Int8.self) == [7, 10, 11, 15, -1, 47, -53, 1])
        let back = try T.runNode("DequantizeLinear", [perAxis, Tensor([0.5, 2] as [Float], shape: [2]), Tensor([10, -3] as [Int8], shape: [2])],
                                 attributes: ["axis": .int(0)], opset: 13)[0]
        #expect(back.scalars(as: Float.self) == [-1.5, 0, 0.5, 2.5, 4, 100, -100, 8])
        // Blocks of 3 along axis 1: two blocks per row (the last one short).
        let scales = Tensor([1, 2, 4, 0.5] as [Float], shape: [2, 2])
        let blocked = try T.runNode("QuantizeLinear", [x, scales, Tensor(zeros: .uint8, shape: [2, 2])],
                                    attributes: ["axis": .int(1), "block_size": .int(3)], opset: 21)[0]
        #expect(blocked.scalars(as: UInt8.self) == [0, 0, 0, 1, 1, 25, 0, 14])
    }

    @Test func hostileScalesAreTypedErrors() throws {
        let x = Tensor([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3])
        let cases: [([Tensor?], [String: AttributeValue])] = [
            ([x, Tensor([1, 2] as [Float], shape: [2])], ["axis": .int(1)]),               // wrong length for the axis
            ([x, Tensor([1, 2, 3] as [Float], shape: [3])], ["axis": .int(5)]),            // axis out of range
            ([x, Tensor([1, 2, 3] as [Float], shape: [3, 1])], ["block_size": .int(2)]),   // blocked shape wrong
            ([x, Tensor([1, 2, 3] as [Float], shape: [3]), Tensor([1, 2] as [UInt8], shape: [2])], [:]), // zero point shape
        ]
        for (inputs, attributes) in cases {
            #expect(throws: OpError.self) { try T.runNode("QuantizeLinear", inputs, attributes: attributes, opset: 21) }
        }
        #expect(throws: OpError.self) {
            try T.runNode("DequantizeLinear", [Tensor([1] as [UInt8], shape: [1]), Tensor(scalar: Float(1)), Tensor(scalar: Int8(0))], opset: 21)
        }
        #expect(throws: OpError.self) {
            try T.runNode("QLinearMatMul", [Tensor([1, 2] as [UInt8], shape: [1, 2]), Tensor(scalar: Float(1)), Tensor(scalar: UInt8(0)),
                                            Tensor([1, 2, 3] as [UInt8], shape: [3, 1]), Tensor(scalar: Float(1)), Tensor(scalar: UInt8(0)),
                                            Tensor(scalar: Float(1)), Tensor(scalar: UInt8(0))], opset: 10)
        }
    }

    @Test func lowPrecisionConversions() {
        // bfloat16 rounds to nearest even and keeps NaN.
        #expect(BFloat16(narrowing: 1.00390625).widened == 1)          // 1 + 2^-8: a tie, to even
        #expect(BFloat16(narrowing: 1.01171875).widened == 1.015625)   // 1 + 3·2^-8: a tie, to even (up)
        #expect(BFloat16(narrowing: .nan).widened.isNaN)
        // float8 E4M3FN: largest 448; beyond it NaN unless saturating.
        #expect(Float8E4M3FN(narrowing: 460, saturate: false).widened == 448)
        #expect(Float8E4M3FN(narrowing: 470, saturate: false).widened.isNaN)
        #expect(Float8E4M3FN(narrowing: 1e6, saturate: true).widened == 448)
        #expect(Float8E4M3FN(narrowing: -0.40625, saturate: true).widened == -0.40625)
        // E5M2 overflows to infinity; the FNUZ formats have no negative zero.
        #expect(Float8E5M2(narrowing: 65536, saturate: false).widened == .infinity)
        #expect(Float8E5M2FNUZ(narrowing: -1e-9, saturate: true).bitPattern == 0)
        #expect(Float4E2M1(narrowing: 100, saturate: false).widened == 6)
        #expect(Float4E2M1(narrowing: 2.5, saturate: false).widened == 2)
        // Every float8 code converts back to itself.
        for code in 0...255 {
            let value = Float8E4M3FN(bitPattern: UInt8(code))
            guard !value.widened.isNaN else { continue }
            #expect(Float8E4M3FN(narrowing: value.widened, saturate: false).bitPattern == UInt8(code))
        }
        // 4-bit integers keep their low bits; packing round-trips over odd counts.
        #expect(Int4(narrowing: 9).widened == -7)
        #expect(UInt4(narrowing: 0x1F).widened == 15)
        for count in [1, 2, 5, 7] {
            let values = (0..<count).map { Int8(($0 * 5) % 16) - 8 }
            let tensor = Tensor(values.map { Int4(narrowing: $0) }, shape: [count])
            let packed = LowPrecision.pack(tensor)
            #expect(packed.count == (count + 1) / 2)
            let unpacked = Tensor(uninitialized: .int4, shape: [count])
            packed.withUnsafeBytes { LowPrecision.unpack($0, count: count, dataType: .int4, into: unpacked.rawPointer) }
            #expect(unpacked.scalars(as: Int4.self).map(\.widened) == values)
        }
    }

    @Test func lowPrecisionInputsWidenAroundOperators() throws {
        // A bfloat16 Relu: the plan casts to float, runs Relu, casts back.
        let node = Node(name: "relu", opType: "Relu", inputs: ["x"], outputs: ["y"])
        let graph = Graph(name: "bf16", nodes: [node], inputs: [ValueInfo(name: "x", type: TensorType(.bfloat16, shape: [4]))],
                          outputs: [ValueInfo(name: "y", type: nil)], initializers: [:])
        let session = try InferenceSession(model: Model(graph: graph, opsets: ["": 17]))
        let x = Tensor([-1.5, 2.25, -0.0, 3] .map { BFloat16(narrowing: Float($0)) }, shape: [4])
        let y = try #require(try session.run(["x": x])["y"])
        #expect(y.dataType == .bfloat16)
        #expect(y.scalars(as: BFloat16.self).map(\.widened) == [0, 2.25, 0, 3])
    }
}
