import Kernels
import Testing
import TestSupport

@Suite struct AttentionTests {
    /// One random problem: sizes, layout, masking; run through the fused kernel and its naive twin.
    struct Problem {
        var batch = 1, qHeads = 1, kvHeads = 1, queries = 1, keys = 1, headSize = 1, valueSize = 1
        /// Q, K, V and Y as [B, S, H·D] (true) or [B, H, S, D].
        var packed = false
        var softcap: Float = 0
        var masking = Attention.Masking()
        var mask: [Float] = []
        var stage: Attention.ScoreStage?
        /// Q, K, V and the mask hold bfloat16 values.
        var bfloat16Values = false

        enum Kernel { case fused, reference, roundingToBFloat16 }

        func operand(_ values: UnsafeMutablePointer<Float>, heads: Int, length: Int, size: Int) -> Attention.Operand {
            packed
                ? Attention.Operand(base: values, batchStride: length * heads * size, headStride: size, rowStride: heads * size)
                : Attention.Operand(base: values, batchStride: heads * length * size, headStride: length * size, rowStride: size)
        }

        /// Outputs (Y, scores) of `kernel`.
        func run(_ kernel: Kernel, seed: UInt64) -> ([Float], [Float]) {
            var generator = SeededGenerator(seed: seed)
            let values: ([Float]) -> [Float] = { bfloat16Values ? $0.map(BFloat16Rounding.round) : $0 }
            var q = values(generator.floats(batch * qHeads * queries * headSize, in: -2...2))
            var k = values(generator.floats(batch * kvHeads * keys * headSize, in: -2...2))
            var v = values(generator.floats(batch * kvHeads * keys * valueSize))
            let mask = values(mask)
            var y = [Float](repeating: .nan, count: batch * qHeads * queries * valueSize)
            var scores = [Float](repeating: .nan, count: stage == nil ? 0 : batch * qHeads * queries * keys)
            q.withUnsafeMutableBufferPointer { q in
                k.withUnsafeMutableBufferPointer { k in
                    v.withUnsafeMutableBufferPointer { v in
                        y.withUnsafeMutableBufferPointer { y in
                            scores.withUnsafeMutableBufferPointer { scores in
                                mask.withUnsafeBufferPointer { mask in
                                    var masking = masking
                                    masking.mask = mask.isEmpty ? nil : mask.baseAddress
                                    let operands = (
                                        operand(q.baseAddress!, heads: qHeads, length: queries, size: headSize),
                                        operand(k.baseAddress!, heads: kvHeads, length: keys, size: headSize),
                                        operand(v.baseAddress!, heads: kvHeads, length: keys, size: valueSize),
                                        operand(y.baseAddress!, heads: qHeads, length: queries, size: valueSize))
                                    let scoreOutput = stage.map { (scores.baseAddress!, $0) }
                                    switch kernel {
                                    case .fused:
                                        Attention.attention(
                                            q: operands.0, k: operands.1, v: operands.2, y: operands.3, batch: batch,
                                            qHeads: qHeads, kvHeads: kvHeads, queries: queries, keys: keys,
                                            headSize: headSize, valueSize: valueSize, scale: 0.37, softcap: softcap,
                                            masking: masking, scores: scoreOutput, parallelism: Parallelism(threads: 2))
                                    case .reference:
                                        Attention.reference(
                                            q: operands.0, k: operands.1, v: operands.2, y: operands.3, batch: batch,
                                            qHeads: qHeads, kvHeads: kvHeads, queries: queries, keys: keys,
                                            headSize: headSize, valueSize: valueSize, scale: 0.37, softcap: softcap,
                                            masking: masking, scores: scoreOutput)
                                    case .roundingToBFloat16:
                                        Attention.roundingToBFloat16(
                                            q: operands.0, k: operands.1, v: operands.2, y: operands.3, batch: batch,
                                            qHeads: qHeads, kvHeads: kvHeads, queries: queries, keys: keys,
                                            headSize: headSize, valueSize: valueSize, scale: 0.37, softcap: softcap,
                                            masking: masking, scores: scoreOutput, parallelism: Parallelism(threads: 2))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            return (y, scores)
        }
    }

    static func randomProblem(_ generator: inout SeededGenerator, trial: Int) -> Problem {
        var p = Problem()
        p.batch = Int.random(in: 1...3, using: &generator)
        p.kvHeads = Int.random(in: 1...3, using: &generator)
        p.qHeads = p.kvHeads * Int.random(in: 1...3, using: &generator)
        // Past the block sizes (64 queries, 128 keys) on some trials, so several tiles and a ragged one meet.
        p.queries = Int.random(in: 1...(trial % 3 == 0 ? 150 : 9), using: &generator)
        p.keys = Int.random(in: 1...(trial % 2 == 0 ? 300 : 11), using: &generator)
        p.headSize = Int.random(in: 1...13, using: &generator)
        p.valueSize = Int.random(in: 1...11, using: &generator)
        p.packed = trial % 4 >= 2
        if trial % 5 == 1 { p.softcap = 1.5 }
        p.masking.causal = trial % 3 == 1
        if trial % 7 == 2 { p.masking.leftWindow = Int.random(in: 0...5, using: &generator) }
        if trial % 7 == 3 { p.masking.rightWindow = Int.random(in: 0...5, using: &generator) }
        if trial % 6 == 4 {
            p.masking.queryOffsets = (0..<p.batch).map { _ in Int.random(in: -3...p.keys, using: &generator) }
            p.masking.keyLimits = (0..<p.batch).map { _ in Int.random(in: 0...p.keys + 2, using: &generator) }
        }
        if trial % 4 == 1 {
            // A mask over [B, 1, queries, columns] with a few −∞ and columns possibly short of the keys.
            let columns = Int.random(in: 1...p.keys, using: &generator)
            p.mask = (0..<p.batch * p.queries * columns).map { _ in
                Int.random(in: 0..<6, using: &generator) == 0 ? -.infinity : Float.random(in: -1...1, using: &generator)
            }
            p.masking.maskColumns = columns
            p.masking.maskStrides = (p.queries * columns, 0, columns)
        }
        p.stage = [nil, .product, .biased, .softmax][trial % 4]
        return p
    }

    @Test func fusedMatchesNaiveOverOddSizes() {
        var generator = SeededGenerator(seed: 11)
        for trial in 0..<60 {
            let problem = Self.randomProblem(&generator, trial: trial)
            let (y, scores) = problem.run(.fused, seed: UInt64(trial))
            let (expectedY, expectedScores) = problem.run(.reference, seed: UInt64(trial))
            let label = "trial \(trial): B \(problem.batch), heads \(problem.qHeads)/\(problem.kvHeads), "
                + "queries \(problem.queries), keys \(problem.keys), sizes \(problem.headSize)/\(problem.valueSize)"
            #expect(worstError(y, expectedY, rtol: 1e-4, atol: 1e-5).excess <= 0, "\(label)")
            #expect(worstError(scores, expectedScores, rtol: 1e-4, atol: 1e-5).excess <= 0, "\(label)")
        }
    }

    @Test func bfloat16RoundingFollowsTheNaiveFormulaOverOddSizes() {
        // Rounding every step to bfloat16 stays within a few bfloat16 steps of the exact result, with
        // every masking, grouping and score stage of the fused kernel's test (exactness against
        // onnx.reference is the conformance node tests' part).
        var generator = SeededGenerator(seed: 12)
        for trial in 0..<60 {
            var problem = Self.randomProblem(&generator, trial: trial)
            problem.bfloat16Values = true
            let (y, scores) = problem.run(.roundingToBFloat16, seed: UInt64(trial))
            let (expectedY, expectedScores) = problem.run(.reference, seed: UInt64(trial))
            let label = "trial \(trial): B \(problem.batch), heads \(problem.qHeads)/\(problem.kvHeads), "
                + "queries \(problem.queries), keys \(problem.keys), sizes \(problem.headSize)/\(problem.valueSize)"
            #expect(worstError(y, expectedY, rtol: 5e-2, atol: 2e-2).excess <= 0, "\(label)")
            #expect(worstError(scores, expectedScores, rtol: 5e-2, atol: 2e-2).excess <= 0, "\(label)")
        }
    }

    @Test func fullyMaskedRowsAreZero() {
        var problem = Problem()
        problem.queries = 3
        problem.keys = 4
        problem.headSize = 2
        problem.valueSize = 2
        problem.masking.keyLimits = [0]
        problem.stage = .softmax
        let (y, scores) = problem.run(.fused, seed: 1)
        #expect(y == [Float](repeating: 0, count: 6))
        #expect(scores == [Float](repeating: 0, count: 12))
    }

    @Test func causalRowsSeeOnlyEarlierKeys() {
        // The softmax of a causal row is zero past the diagonal and sums to one.
        var problem = Problem()
        problem.queries = 5
        problem.keys = 5
        problem.headSize = 3
        problem.valueSize = 1
        problem.masking.causal = true
        problem.stage = .softmax
        let (_, scores) = problem.run(.fused, seed: 3)
        for i in 0..<5 {
            let row = scores[(i * 5)..<(i * 5 + 5)]
            #expect(row.dropFirst(i + 1).allSatisfy { $0 == 0 })
            #expect(abs(row.reduce(0, +) - 1) < 1e-5)
        }
    }
}
