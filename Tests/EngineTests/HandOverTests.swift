import Engine
import Kernels
import Synchronization
import Tensors
import Testing

/// Inputs handed over to the operator that reads them last (`ExecutionContext.handedOverInputs`),
/// and the convolution that then makes its output in its residual's buffer: only values nothing
/// else can read are handed over, and results are the same as without it.
@Suite struct HandOverTests {
    typealias T = ConvTestSupport

    /// Records the hand-over bits it sees and outputs a new tensor (or, as a view, its first input
    /// reshaped: the same buffer under another tensor).
    final class Probe: Operator {
        let seen = Mutex<[UInt64]>([])
        let isView: Bool

        init(isView: Bool) { self.isView = isView }

        func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
            seen.withLock { $0.append(context.handedOverInputs) }
            let first = inputs[0]!
            if isView { return [first.reshaped(Shape([first.elementCount]))] }
            return [Tensor(zeros: .float, shape: [2], pool: context.pool)]
        }
    }

    /// A plan of `steps` (op index, input slots, output slot) over `slots` values, of which `input`
    /// is fed and `constant` is a constant; runs it once and returns the bits each step saw.
    static func handOvers(_ steps: [(inputs: [Int?], output: Int, view: Bool)], slots: Int, input: Int, constant: Int,
                          outputs: [Int]) throws -> [UInt64] {
        let probes = steps.map { Probe(isView: $0.view) }
        let plan = ExecutionPlan(
            steps: steps.enumerated().map { index, step in
                ExecutionPlan.Step(op: probes[index], label: "step\(index)", opType: "Probe", inputs: step.inputs,
                                   outputs: [step.output])
            },
            slotNames: (0..<slots).map { "v\($0)" }, constants: [(constant, Tensor([1, 2] as [Float], shape: [2]))],
            inputSlots: ["v\(input)": input], outputOrder: outputs.map { "v\($0)" },
            outputSlots: Dictionary(uniqueKeysWithValues: outputs.map { ("v\($0)", $0) }), slotTypes: [])
        let feed = Tensor([3, 4] as [Float], shape: [2])
        var values = [Value?](repeating: nil, count: slots)
        values[constant] = .tensor(plan.constants[0].tensor)
        values[input] = .tensor(feed)
        try plan.execute(plan.fullSchedule, values: &values,
                         context: ExecutionContext(pool: BufferPool(), parallelism: .serial))
        withExtendedLifetime(feed) {}
        return probes.map { $0.seen.withLock { $0.first ?? .max } }
    }

    @Test func onlyLastReadsOfValuesHeldNowhereElseAreHandedOver() throws {
        // Slots: 0 graph input, 1 constant, 2…8 made by the steps; 6 and 8 are graph outputs.
        let seen = try Self.handOvers([
            ([0], 2, false),            // a = P(x): x is fed, so the caller holds it
            ([2, 1], 3, false),         // b = P(a, k): a is read again later; k is a constant
            ([2, 3, 3], 4, false),      // c = P(a, b, b): a's last read, handed over; b read twice here
            ([4], 5, true),             // v = view of c: c's last read, handed over (v keeps its buffer)
            ([5, nil], 6, false),       // o = P(v, omitted): v's last read, nobody else holds the buffer
            ([6], 7, true),             // w = view of o (a graph output): o is kept, never handed over
            ([7], 8, false),            // p = P(w): w's buffer is also the output o's
        ], slots: 9, input: 0, constant: 1, outputs: [6, 8])
        #expect(seen == [0, 0, 0b001, 0b1, 0b01, 0, 0])
    }

    @Test func aBufferStillHeldByALiveViewIsNotHandedOver() throws {
        let seen = try Self.handOvers([
            ([0], 2, false),            // a = P(x)
            ([2], 3, true),             // v = view of a: a is read again below
            ([2], 4, false),            // P(a): a's last read, but v still holds its buffer
            ([3, 4], 5, false),         // P(v, b): both last reads, both held alone now
        ], slots: 6, input: 0, constant: 1, outputs: [5])
        #expect(seen == [0, 0, 0, 0b11])
    }

    static let x = T.random([1, 8, 5, 6], seed: 31)
    static let w1 = T.random([8, 8, 1, 1], seed: 32)
    static let w3 = T.random([8, 8, 3, 3], seed: 33)
    static let bias = T.random([8], seed: 34)
    static let pads: [String: AttributeValue] = ["pads": .ints([1, 1, 1, 1])]

    /// c1 = Conv1×1(x); y = Relu(Conv(x) + c1), with the second conv 1×1 (pointwise) or 3×3 (im2col).
    static func residualModel(kernel: Int, outputs: [String], extra: [Node] = []) -> Model {
        T.model([
            Node(name: "c1", opType: "Conv", inputs: ["x", "w1", "b"], outputs: ["c1"]),
            Node(name: "c2", opType: "Conv", inputs: ["x", kernel == 1 ? "w1" : "w3", "b"], outputs: ["c2"],
                 attributes: kernel == 1 ? [:] : pads),
            Node(name: "add", opType: "Add", inputs: ["c2", "c1"], outputs: ["a"]),
            Node(name: "relu", opType: "Relu", inputs: ["a"], outputs: ["y"]),
        ] + extra, inputs: [("x", Self.x.shape)], outputs: outputs,
                initializers: ["w1": Self.w1, "w3": Self.w3, "b": Self.bias])
    }

    /// Same outputs with optimisations (fused, residual made in place where allowed) and without.
    static func expectSameResults(_ model: Model, _ feeds: [String: Tensor], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let optimized = try T.run(model, feeds, optimize: true), plain = try T.run(model, feeds, optimize: false)
        #expect(optimized.count == plain.count, sourceLocation: sourceLocation)
        for (fused, reference) in zip(optimized, plain) {
            #expect(fused.shape == reference.shape, sourceLocation: sourceLocation)
            #expect(T.isClose(fused.scalars(as: Float.self), reference.scalars(as: Float.self)), sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: [1, 3])
    func residualConvolutionsGiveTheSameResults(kernel: Int) throws {
        // The residual c1 is read last by the fused conv: made in place.
        try Self.expectSameResults(Self.residualModel(kernel: kernel, outputs: ["y"]), ["x": Self.x])
        // c1 is also a graph output: it must come back untouched.
        try Self.expectSameResults(Self.residualModel(kernel: kernel, outputs: ["y", "c1"]), ["x": Self.x])
        // c1 is read again after the fused conv (by a node that needs y first).
        let later = Node(name: "mul", opType: "Mul", inputs: ["y", "c1"], outputs: ["z"])
        try Self.expectSameResults(Self.residualModel(kernel: kernel, outputs: ["z"], extra: [later]), ["x": Self.x])
    }

    @Test func aFedResidualIsNeverWritten() throws {
        let skip = T.random([1, 8, 5, 6], seed: 35)
        let before = skip.scalars(as: Float.self)
        let model = T.model([
            Node(name: "c", opType: "Conv", inputs: ["x", "w1"], outputs: ["c"]),
            Node(name: "add", opType: "Add", inputs: ["c", "s"], outputs: ["y"]),
        ], inputs: [("x", Self.x.shape), ("s", skip.shape)], outputs: ["y"], initializers: ["w1": Self.w1])
        try Self.expectSameResults(model, ["x": Self.x, "s": skip])
        #expect(skip.scalars(as: Float.self) == before)
    }
}
