import Kernels
import Testing
import TestSupport

/// `Recurrence.run` (the input projection in slabs of rows, a `PanelProduct` per step, the fused
/// LSTM step) against its naive twin, over odd sizes, both layouts' strides, ragged sequence
/// lengths and every cell option.
@Suite struct RecurrenceTests {
    static let cells: [RecurrentCell] = [.rnn, .gru(linearBeforeReset: false), .gru(linearBeforeReset: true),
                                         .lstm(inputForget: false), .lstm(inputForget: true)]

    /// Small sizes (partial panels everywhere), sizes past a panel and a four-row block, sizes
    /// whose steps are split over the threads (the fused LSTM step per block of units), and
    /// batches of 9 to 13 whose fused LSTM splits the rows (2 or 3 parts, each projecting its own
    /// rows, gathered across time steps, in slabs). On two threads, three on odd trials. Up to 11
    /// steps of 9 rows: projections of one slab, of two, and of two and a part.
    @Test(arguments: cells, [(1...11, 1...5), (15...37, 4...9), (61...75, 5...7), (17...40, 9...13)])
    func matchesNaiveTwin(cell: RecurrentCell, sizes: (hidden: ClosedRange<Int>, batch: ClosedRange<Int>)) {
        var generator = SeededGenerator(seed: 41)
        for trial in 0..<12 {
            let sequence = Int.random(in: 1...11, using: &generator), batch = Int.random(in: sizes.batch, using: &generator)
            let input = Int.random(in: 1...13, using: &generator), hidden = Int.random(in: sizes.hidden, using: &generator)
            let batchFirst = trial % 2 == 1, reverse = trial % 3 == 1
            // Options: clip, peepholes, a bias and other activations; trial 1 has peepholes and a
            // bias with the default activations (the fused LSTM step with peepholes).
            let withOptions = trial % 4 >= 2, withPeepholes = withOptions || trial == 1
            let width = cell.gates * hidden
            let lengths = (0..<batch).map { b in b == 0 ? sequence : Int.random(in: 0...sequence, using: &generator) }
            let activations: [RecurrentActivation] = withOptions
                ? [.pointwise(.hardSigmoid(alpha: 0.3, beta: 0.4)), .scaledTanh(alpha: 1.5, beta: 0.7), .affine(alpha: 0.8, beta: 0.1)]
                : [.pointwise(.sigmoid), .pointwise(.tanh), .pointwise(.tanh)]
            let layer = RecurrentLayer(cell: cell, sequence: sequence, batch: batch, input: input, hidden: hidden,
                                       activations: Array(activations.prefix(cell.activationCount)),
                                       clip: withOptions ? 0.9 : nil, reverse: reverse, lengths: lengths)
            let x = generator.floats(sequence * batch * input), w = generator.floats(width * input)
            let r = generator.floats(width * hidden), bias = generator.floats(2 * width)
            let peepholes = generator.floats(3 * hidden)
            var packedR = [Float](repeating: .nan, count: Recurrence.packedWeightCount(cell, hidden: hidden)!)
            packedR.withUnsafeMutableBufferPointer { Recurrence.packWeights(cell, hidden: hidden, r: r, into: $0.baseAddress!) }
            var packedW = [Float](repeating: .nan, count: Recurrence.packedInputWeightCount(cell, hidden: hidden, input: input)!)
            packedW.withUnsafeMutableBufferPointer {
                Recurrence.packInputWeights(cell, hidden: hidden, input: input, w: w, into: $0.baseAddress!)
            }
            // States and Y rows sit at strides larger than `hidden`, as in a bidirectional output.
            let stateStride = hidden + 3
            let initialH = generator.floats(batch * stateStride), initialC = generator.floats(batch * stateStride)
            let yStrides = batchFirst ? (time: hidden + 2, batch: sequence * (hidden + 2)) : (time: batch * (hidden + 1), batch: hidden + 1)
            let yCount = batchFirst ? batch * sequence * (hidden + 2) : sequence * batch * (hidden + 1)

            func outputs(_ body: (RecurrentOperands) -> Void) -> (y: [Float], h: [Float], c: [Float]) {
                var y = [Float](repeating: 7, count: yCount)
                var h = [Float](repeating: 7, count: batch * stateStride), c = h
                x.withUnsafeBufferPointer { x in w.withUnsafeBufferPointer { w in r.withUnsafeBufferPointer { r in
                packedR.withUnsafeBufferPointer { packedR in packedW.withUnsafeBufferPointer { packedW in
                bias.withUnsafeBufferPointer { bias in peepholes.withUnsafeBufferPointer { peepholes in
                initialH.withUnsafeBufferPointer { initialH in initialC.withUnsafeBufferPointer { initialC in
                y.withUnsafeMutableBufferPointer { y in h.withUnsafeMutableBufferPointer { h in c.withUnsafeMutableBufferPointer { c in
                    body(RecurrentOperands(
                        x: x.baseAddress!, xRows: batchFirst ? (time: 1, batch: sequence) : (time: batch, batch: 1),
                        w: w.baseAddress!, r: r.baseAddress!, packedR: packedR.baseAddress!, packedW: packedW.baseAddress!,
                        bias: withPeepholes ? bias.baseAddress! : nil, peepholes: withPeepholes ? peepholes.baseAddress! : nil,
                        initialH: trial % 3 == 2 ? nil : initialH.baseAddress!, initialC: withOptions ? initialC.baseAddress! : nil,
                        initialStride: stateStride, y: y.baseAddress!, yStrides: yStrides,
                        finalH: h.baseAddress!, finalC: c.baseAddress!, finalStride: stateStride))
                } } } } } } } } } } } }
                return (y, h, c)
            }
            let fast = outputs { operands in
                let threads = trial % 2 == 0 ? 2 : 3
                var scratch = [Float](repeating: .nan, count: layer.scratchCount(threads: threads)!)
                scratch.withUnsafeMutableBufferPointer {
                    Recurrence.run(layer, operands, scratch: $0.baseAddress!, parallelism: Parallelism(threads: threads))
                }
            }
            let naive = outputs { Recurrence.reference(layer, $0) }
            let label = "\(cell) trial \(trial): seq \(sequence) batch \(batch) input \(input) hidden \(hidden) lengths \(lengths)"
            #expect(worstError(fast.y, naive.y).excess <= 0, "Y, \(label)")
            #expect(worstError(fast.h, naive.h).excess <= 0, "Y_h, \(label)")
            if cell.hasCellState { #expect(worstError(fast.c, naive.c).excess <= 0, "Y_c, \(label)") }
            // Gaps between rows are never written.
            #expect(fast.h.enumerated().allSatisfy { $0.offset % stateStride < hidden || $0.element == 7 }, "\(label)")
        }
    }

    /// `run` gives the same floats, bit for bit, on 1, 2 and 3 threads: the projection split by
    /// W's columns (wide gates) or by rows (gates of one block), in one slab or several, and the
    /// steps split by blocks of units or (an LSTM with four or more batch rows per thread) by batch
    /// rows, in parts of unequal sizes, each projecting its own rows (each sum is formed in the
    /// same order whoever computes it); and it writes nothing past `scratchCount(threads:)`.
    @Test(arguments: cells, [(hidden: 70, batch: 7, sequence: 11, input: 13), (hidden: 3, batch: 9, sequence: 40, input: 13),
                             (hidden: 37, batch: 1, sequence: 100, input: 29), (hidden: 37, batch: 14, sequence: 9, input: 5),
                             (hidden: 21, batch: 13, sequence: 23, input: 11)])
    func sameResultOnAnyNumberOfThreads(cell: RecurrentCell, size: (hidden: Int, batch: Int, sequence: Int, input: Int)) {
        var generator = SeededGenerator(seed: 7)
        let (hidden, batch, sequence, input) = size, width = cell.gates * hidden
        let layer = RecurrentLayer(cell: cell, sequence: sequence, batch: batch, input: input, hidden: hidden,
                                   activations: Array([RecurrentActivation.pointwise(.sigmoid), .pointwise(.tanh), .pointwise(.tanh)].prefix(cell.activationCount)),
                                   clip: nil, reverse: false, lengths: (0..<batch).map { $0 == 1 ? sequence / 2 : sequence })
        let x = generator.floats(sequence * batch * input), w = generator.floats(width * input)
        // R small enough that 100 steps do not amplify rounding differences past the tolerance.
        let r = generator.floats(width * hidden, in: -0.3...0.3), bias = generator.floats(2 * width)
        var packedR = [Float](repeating: .nan, count: Recurrence.packedWeightCount(cell, hidden: hidden)!)
        packedR.withUnsafeMutableBufferPointer { Recurrence.packWeights(cell, hidden: hidden, r: r, into: $0.baseAddress!) }
        var packedW = [Float](repeating: .nan, count: Recurrence.packedInputWeightCount(cell, hidden: hidden, input: input)!)
        packedW.withUnsafeMutableBufferPointer { Recurrence.packInputWeights(cell, hidden: hidden, input: input, w: w, into: $0.baseAddress!) }
        func outputs(threads: Int?) -> [Float] {
            var y = [Float](repeating: 7, count: sequence * batch * hidden), h = [Float](repeating: 7, count: batch * hidden), c = h
            // Past the scratch the run may use, floats it must leave alone.
            let scratchCount = layer.scratchCount(threads: threads ?? 1)!
            var scratch = [Float](repeating: .nan, count: scratchCount + 64)
            for i in scratchCount..<scratch.count { scratch[i] = 12_345 }
            x.withUnsafeBufferPointer { x in w.withUnsafeBufferPointer { w in r.withUnsafeBufferPointer { r in bias.withUnsafeBufferPointer { bias in
            packedR.withUnsafeBufferPointer { packedR in packedW.withUnsafeBufferPointer { packedW in
            y.withUnsafeMutableBufferPointer { y in h.withUnsafeMutableBufferPointer { h in c.withUnsafeMutableBufferPointer { c in
                let operands = RecurrentOperands(
                    x: x.baseAddress!, xRows: (time: batch, batch: 1), w: w.baseAddress!, r: r.baseAddress!,
                    packedR: packedR.baseAddress!, packedW: packedW.baseAddress!, bias: bias.baseAddress!, peepholes: nil,
                    initialH: nil, initialC: nil, initialStride: hidden, y: y.baseAddress!, yStrides: (time: batch * hidden, batch: hidden),
                    finalH: h.baseAddress!, finalC: c.baseAddress!, finalStride: hidden)
                if let threads {
                    scratch.withUnsafeMutableBufferPointer { Recurrence.run(layer, operands, scratch: $0.baseAddress!, parallelism: Parallelism(threads: threads)) }
                } else {
                    Recurrence.reference(layer, operands)
                }
            } } } } } } } } }
            #expect(scratch[scratchCount...].allSatisfy { $0 == 12_345 }, "\(cell) \(size) on \(threads ?? 0) threads: scratch overrun")
            return y + h + c
        }
        let one = outputs(threads: 1)
        #expect(worstError(one, outputs(threads: nil)).excess <= 0, "\(cell) \(size)")
        for threads in [2, 3] {
            for _ in 0..<3 {
                let many = outputs(threads: threads)
                #expect(many.elementsEqual(one) { $0.bitPattern == $1.bitPattern }, "\(cell) \(size) on \(threads) threads")
            }
        }
    }

    /// The sizes `sameResultOnAnyNumberOfThreads` uses reach both ways of splitting an LSTM's
    /// steps: by batch rows from four rows a thread (batch 13 and 14 on 2 and 3 threads, 9 on 2),
    /// by units below that (batch 7 or 1).
    @Test func lstmStepsSplitByRowsFromFourRowsAThread() {
        #expect(Recurrence.batchParts(batch: 14, threads: 2) == 2 && Recurrence.batchParts(batch: 14, threads: 3) == 3)
        #expect(Recurrence.batchParts(batch: 9, threads: 2) == 2 && Recurrence.batchParts(batch: 9, threads: 3) == 2)
        #expect(Recurrence.batchParts(batch: 7, threads: 2) == 1 && Recurrence.batchParts(batch: 1, threads: 3) == 1)
        #expect(Recurrence.batchParts(batch: 16, threads: 1) == 1 && Recurrence.batchParts(batch: 16, threads: 2) == 2)
        #expect(Recurrence.batchParts(batch: 13, threads: 2) == 2 && Recurrence.batchParts(batch: 13, threads: 3) == 3)
    }

    @Test func rnnStepByHand() {
        // One unit, tanh(x·w + h·r + wb + rb): x = [1, 2] over two steps, w 0.5, r 2, biases 0.1 and 0.2.
        let layer = RecurrentLayer(cell: .rnn, sequence: 2, batch: 1, input: 1, hidden: 1, activations: [.pointwise(.tanh)],
                                   clip: nil, reverse: false, lengths: [2])
        var y = [Float](repeating: 0, count: 2), h: [Float] = [0]
        var scratch = [Float](repeating: 0, count: layer.scratchCount(threads: 1)!)
        let x: [Float] = [1, 2], w: [Float] = [0.5], r: [Float] = [2], bias: [Float] = [0.1, 0.2]
        var packedR = [Float](repeating: .nan, count: Recurrence.packedWeightCount(.rnn, hidden: 1)!)
        packedR.withUnsafeMutableBufferPointer { Recurrence.packWeights(.rnn, hidden: 1, r: r, into: $0.baseAddress!) }
        var packedW = [Float](repeating: .nan, count: Recurrence.packedInputWeightCount(.rnn, hidden: 1, input: 1)!)
        packedW.withUnsafeMutableBufferPointer { Recurrence.packInputWeights(.rnn, hidden: 1, input: 1, w: w, into: $0.baseAddress!) }
        x.withUnsafeBufferPointer { x in w.withUnsafeBufferPointer { w in r.withUnsafeBufferPointer { r in bias.withUnsafeBufferPointer { bias in
        packedR.withUnsafeBufferPointer { packedR in packedW.withUnsafeBufferPointer { packedW in y.withUnsafeMutableBufferPointer { y in h.withUnsafeMutableBufferPointer { h in scratch.withUnsafeMutableBufferPointer { scratch in
            Recurrence.run(layer, RecurrentOperands(x: x.baseAddress!, xRows: (1, 1), w: w.baseAddress!, r: r.baseAddress!,
                                                    packedR: packedR.baseAddress!, packedW: packedW.baseAddress!, bias: bias.baseAddress!, peepholes: nil, initialH: nil, initialC: nil, initialStride: 1,
                                                    y: y.baseAddress!, yStrides: (1, 1), finalH: h.baseAddress!, finalC: nil, finalStride: 1),
                           scratch: scratch.baseAddress!, parallelism: .serial)
        } } } } } } } } }
        let first = Float.tanh(0.5 + 0.3), second = Float.tanh(1 + 2 * first + 0.3)
        #expect(abs(y[0] - first) < 1e-6 && abs(y[1] - second) < 1e-6 && h == [y[1]])
    }
}
