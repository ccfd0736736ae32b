import Kernels
import Tensors
import Testing
import TestSupport

/// Random shapes that broadcast together: each operand drops leading axes and sets some to 1.
private func broadcastableShapes(_ count: Int, using generator: inout SeededGenerator) -> [Shape] {
    let rank = Int.random(in: 0...4, using: &generator)
    let output = (0..<rank).map { _ in Int.random(in: 1...5, using: &generator) }
    return (0..<count).map { _ in
        let dropped = Int.random(in: 0...rank, using: &generator)
        return Shape(output.dropFirst(dropped).map { Bool.random(using: &generator) ? 1 : $0 })
    }
}

private struct TwiceMinus: BinaryElementFunction { func callAsFunction(_ a: Float, _ b: Float) -> Float { a * 2 - b } }
private struct Sum: BinaryElementFunction { func callAsFunction(_ a: Float, _ b: Float) -> Float { a + b } }
private struct SelectPositive: TernaryElementFunction {
    func callAsFunction(_ a: Float, _ b: Float, _ c: Float) -> Float { a > 0 ? b : c }
}
private struct Increment: UnaryElementFunction { func callAsFunction(_ x: Float) -> Float { x + 1 } }

@Suite struct BroadcastTests {
    @Test func binaryMatchesNaiveOverRandomShapes() {
        var generator = SeededGenerator(seed: 1)
        for trial in 0..<300 {
            let shapes = broadcastableShapes(2, using: &generator)
            guard let layout = BroadcastLayout(shapes) else { Issue.record("\(shapes) should broadcast"); continue }
            let a = generator.floats(shapes[0].elementCount), b = generator.floats(shapes[1].elementCount)
            var c = [Float](repeating: .nan, count: layout.count)
            // Tiny grains so the chunk boundaries land mid-row.
            let parallelism = Parallelism(threads: trial % 2 == 0 ? 1 : 3)
            c.withUnsafeMutableBufferPointer { c in
                layout.binary(a, b, into: c.baseAddress!, parallelism: parallelism, grain: 1 + trial % 5, TwiceMinus())
            }
            let expected = BroadcastLayout.naive([a, b], shapes: shapes, output: layout.shape) { $0[0] * 2 - $0[1] }
            #expect(c == expected, "shapes \(shapes)")
        }
    }

    @Test func ternaryAndMapMatchNaive() {
        var generator = SeededGenerator(seed: 2)
        for trial in 0..<200 {
            let shapes = broadcastableShapes(3, using: &generator)
            guard let layout = BroadcastLayout(shapes) else { Issue.record("\(shapes) should broadcast"); continue }
            let values = shapes.map { generator.floats($0.elementCount) }
            var d = [Float](repeating: .nan, count: layout.count)
            d.withUnsafeMutableBufferPointer { d in
                layout.ternary(values[0], values[1], values[2], into: d.baseAddress!, parallelism: Parallelism(threads: 2),
                               grain: 1 + trial % 3, SelectPositive())
            }
            #expect(d == BroadcastLayout.naive(values, shapes: shapes, output: layout.shape) { $0[0] > 0 ? $0[1] : $0[2] })

            guard let expand = BroadcastLayout(output: layout.shape, operands: [shapes[0]]) else {
                Issue.record("\(shapes[0]) should expand to \(layout.shape)"); continue
            }
            var e = [Float](repeating: .nan, count: layout.count)
            e.withUnsafeMutableBufferPointer { e in
                expand.map(values[0], into: e.baseAddress!, parallelism: Parallelism(threads: 2), grain: 2, Increment())
            }
            #expect(e == BroadcastLayout.naive([values[0]], shapes: [shapes[0]], output: layout.shape) { $0[0] + 1 })
        }
    }

    /// Operands of one shape take a shortcut, which must give the layout the general merging gives.
    @Test(arguments: [[Shape]]([[[64], [64]], [[], []], [[1, 1], [1, 1]], [[2, 1, 3], [2, 1, 3], [2, 1, 3]], [[0, 3], [0, 3]],
                                [[4, 0], [4, 0]], [[7]], [[1, 5, 1], [1, 5, 1]]]))
    func sameShapesMatchTheGeneralLayout(shapes: [Shape]) {
        #expect(BroadcastLayout(shapes) == BroadcastLayout(output: shapes[0], operands: shapes))
        #expect(BroadcastLayout(shapes) != nil)
    }

    @Test func mergesDimensionsAndRejectsMismatches() {
        #expect(BroadcastLayout([[2, 3], [3, 2]]) == nil)
        #expect(BroadcastLayout(output: [2, 3], operands: [[2, 3, 1]]) == nil)
        #expect(BroadcastLayout(output: [2, 3], operands: [[3, 3]]) == nil)
        #expect(BroadcastLayout([[4, 1, 5], [4, 1, 5]])?.count == 20)
        #expect(BroadcastLayout([[0, 3], [1, 3]])?.count == 0)
        // Per-channel bias on NCHW: contiguous rows of H·W with the bias constant along each.
        let bias = BroadcastLayout([[2, 3, 4, 5], [3, 1, 1]])!
        let a = (0..<120).map(Float.init), b: [Float] = [100, 200, 300]
        var c = [Float](repeating: 0, count: 120)
        c.withUnsafeMutableBufferPointer { bias.binary(a, b, into: $0.baseAddress!, parallelism: .serial, Sum()) }
        #expect(c[0] == 100 && c[19] == 119 && c[20] == 220 && c[60] == 160 && c[119] == 419)
    }
}
