import Kernels
import Tensors

/// RNN, GRU and LSTM (every opset): forward, reverse or bidirectional, `sequence_lens`, initial
/// states, peepholes, `linear_before_reset`, `layout` 0/1, `clip` and the activations ONNX lists.
/// Float16 and double run in float. The work is `Recurrence.run`, one direction at a time, or with
/// two threads both directions of a bidirectional layer at once (`concurrentDirections`).
enum RecurrentOperators {
    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("RNN", versions: [1, 7, 14, 22], contract: contract(cellState: false)) { try RecurrentOperator(.rnn, $0) },
        // GRU 1 declared Y_h required.
        OperatorDefinition("GRU", versions: [1, 3, 7, 14, 22], contracts: { version in
            contract(cellState: false, stateRequired: version == 1)
        }) {
            try RecurrentOperator(.gru(linearBeforeReset: try $0.int("linear_before_reset", default: 0) != 0), $0)
        },
        OperatorDefinition("LSTM", versions: [1, 7, 14, 22], contract: contract(cellState: true)) {
            try RecurrentOperator(.lstm(inputForget: try $0.int("input_forget", default: 0) != 0), $0)
        },
    ]

    /// X, W, R and the optional B, sequence_lens (int32), initial_h (and LSTM's initial_c and
    /// peepholes P) of one floating-point type T, to the optional Y, Y_h (and Y_c).
    static func contract(cellState: Bool, stateRequired: Bool = false) -> OperatorContract {
        let inputs: [OperatorContract.Parameter] = [
            .init("X", "T"), .init("W", "T"), .init("R", "T"), .init("B", "T", .optional), .init("sequence_lens", "T1", .optional),
            .init("initial_h", "T", .optional),
        ]
        let outputs: [OperatorContract.Parameter] = [.init("Y", "T", .optional), .init("Y_h", "T", stateRequired ? .required : .optional)]
        return OperatorContract(inputs: inputs + (cellState ? [.init("initial_c", "T", .optional), .init("P", "T", .optional)] : []),
                                outputs: outputs + (cellState ? [.init("Y_c", "T", .optional)] : []),
                                types: ["T": ElementTypes.floatingPoint, "T1": [.int32]])
    }
}

struct RecurrentOperator: Operator, WorkingMemoryProfile {
    let cell: RecurrentCell
    let hiddenSize: Int?
    /// One entry per direction: true when it runs backwards.
    let directions: [Bool]
    /// Activations of each direction (f, g, h as the cell uses them).
    let activations: [[RecurrentActivation]]
    let clip: Float?
    /// 0: X [seq, batch, input], Y [seq, dirs, batch, hidden], states [dirs, batch, hidden];
    /// 1: X [batch, seq, input], Y [batch, seq, dirs, hidden], states [batch, dirs, hidden].
    let batchFirst: Bool
    /// Which outputs (Y, Y_h, Y_c) the graph uses.
    let used: [Bool]
    /// R packed for `Recurrence.run` once, at load, when R is a float constant of a shape the layer
    /// accepts (every direction, one after another), with the shape it was packed from; otherwise
    /// each run packs R into its scratch.
    let packedR: (shape: Shape, weights: Tensor)?
    /// W packed for `Recurrence.run`'s input projection, likewise (at load when W is a float constant).
    let packedW: (shape: Shape, weights: Tensor)?

    /// Most time steps, batch rows, or units of a layer: far beyond any real model, small enough
    /// that every product of two of them fits an Int.
    static let maximumSize = 1 << 24

    /// True when a run with `threads` threads steps both directions at once, each on one thread
    /// with scratch of its own, instead of one after the other with each step split over the
    /// threads: at two threads that saves a hand-over per step of each direction (at batch 1 a
    /// step is a few microseconds of work). With more threads the directions still take turns, so
    /// that each step can use them all.
    static func concurrentDirections(_ directions: Int, threads: Int) -> Bool { directions == 2 && threads == 2 }

    init(_ cell: RecurrentCell, _ context: OperatorContext) throws {
        self.cell = cell
        hiddenSize = try context.int("hidden_size")
        if let hiddenSize, hiddenSize <= 0 || hiddenSize > Self.maximumSize {
            throw OpError("hidden_size \(hiddenSize) is out of range")
        }
        switch try context.string("direction", default: "forward") {
        case "forward": directions = [false]
        case "reverse": directions = [true]
        case "bidirectional": directions = [false, true]
        case let other: throw OpError("direction '\(other)' is not forward, reverse or bidirectional")
        }
        clip = try context.float("clip")
        if let clip, !(clip > 0) { throw OpError("clip must be positive, not \(clip)") }
        let layout = try context.int("layout", default: 0)
        guard layout == 0 || layout == 1 else { throw OpError("layout must be 0 or 1, not \(layout)") }
        batchFirst = layout == 1
        used = (0..<3).map { context.hasOutput($0) }
        if case .gru(true) = cell, context.version < 3 { throw OpError("linear_before_reset needs GRU opset 3 or later") }

        let count = cell.activationCount
        let defaults = switch cell {
        case .rnn: ["Tanh"]
        case .gru: ["Sigmoid", "Tanh"]
        case .lstm: ["Sigmoid", "Tanh", "Tanh"]
        }
        var names = try context.strings("activations") ?? []
        if names.isEmpty { names = defaults }
        if names.count == count && directions.count == 2 { names += names }
        guard names.count == count * directions.count else {
            throw OpError("activations lists \(names.count) functions; \(count * directions.count) are needed (\(count) per direction)")
        }
        var alphas = (try context.floats("activation_alpha") ?? [])[...]
        var betas = (try context.floats("activation_beta") ?? [])[...]
        let parsed = try names.map { try Self.activation($0, alphas: &alphas, betas: &betas) }
        activations = directions.indices.map { Array(parsed[($0 * count)..<(($0 + 1) * count)]) }
        let (hiddenSize, dirs) = (hiddenSize, directions.count)
        packedR = context.constant(2).flatMap { r in
            guard r.dataType == .float else { return nil }
            return Self.packedCount(cell, hiddenSize: hiddenSize, directions: dirs, r: r.shape).map { count in
                let packed = Tensor(uninitialized: .float, shape: [count])
                Self.pack(cell, r, into: packed.mutablePointer(as: Float.self), directions: dirs)
                return (r.shape, packed)
            }
        }
        packedW = context.constant(1).flatMap { w in
            guard w.dataType == .float else { return nil }
            return Self.packedInputCount(cell, hiddenSize: hiddenSize, directions: dirs, w: w.shape).map { count in
                let packed = Tensor(uninitialized: .float, shape: [count])
                Self.packInputs(cell, w, into: packed.mutablePointer(as: Float.self), directions: dirs)
                return (w.shape, packed)
            }
        }
    }

    /// Floats of W packed for every direction, when W is [directions, gates · hidden, input] with
    /// the given hidden size (or any, when the attribute is absent); nil otherwise, or when the
    /// count overflows.
    private static func packedInputCount(_ cell: RecurrentCell, hiddenSize: Int?, directions: Int, w: Shape) -> Int? {
        guard w.rank == 3, w[0] == directions, w[1] % cell.gates == 0 else { return nil }
        let hidden = w[1] / cell.gates, input = w[2]
        guard hiddenSize == nil || hiddenSize == hidden, hidden <= maximumSize, input <= maximumSize,
              let perDirection = Recurrence.packedInputWeightCount(cell, hidden: hidden, input: input) else { return nil }
        let (total, overflow) = perDirection.multipliedReportingOverflow(by: directions)
        return overflow ? nil : total
    }

    // Shapes: w [directions, gates · hidden, input] (float), as `packedInputCount` accepts it;
    //   packed: `packedInputCount` floats.
    private static func packInputs(_ cell: RecurrentCell, _ w: Tensor, into packed: UnsafeMutablePointer<Float>, directions: Int) {
        let width = w.shape[1], hidden = width / cell.gates, input = w.shape[2]
        let perDirection = Recurrence.packedInputWeightCount(cell, hidden: hidden, input: input) ?? 0
        withExtendedLifetime(w) {
            for direction in 0..<directions {
                Recurrence.packInputWeights(cell, hidden: hidden, input: input, w: w.pointer(as: Float.self) + direction * width * input,
                                            into: packed + direction * perDirection)
            }
        }
    }

    /// Floats of R packed for every direction, when R has the shape the layer needs
    /// ([directions, gates · hidden, hidden]); nil otherwise, or when the count overflows.
    private static func packedCount(_ cell: RecurrentCell, hiddenSize: Int?, directions: Int, r: Shape) -> Int? {
        guard r.rank == 3 else { return nil }
        let hidden = hiddenSize ?? r[2]
        guard hidden > 0, hidden <= maximumSize, r == [directions, cell.gates * hidden, hidden],
              let perDirection = Recurrence.packedWeightCount(cell, hidden: hidden) else { return nil }
        let (total, overflow) = perDirection.multipliedReportingOverflow(by: directions)
        return overflow ? nil : total
    }

    // Shapes: r [directions, gates · hidden, hidden] (float); packed: `packedCount` floats.
    private static func pack(_ cell: RecurrentCell, _ r: Tensor, into packed: UnsafeMutablePointer<Float>, directions: Int) {
        let hidden = r.shape[2], width = cell.gates * hidden
        let perDirection = Recurrence.packedWeightCount(cell, hidden: hidden) ?? 0
        withExtendedLifetime(r) {
            for direction in 0..<directions {
                Recurrence.packWeights(cell, hidden: hidden, r: r.pointer(as: Float.self) + direction * width * hidden,
                                       into: packed + direction * perDirection)
            }
        }
    }

    /// The activation named `name`, taking its alpha and beta (when it has them) from the fronts of
    /// the lists, with ONNX Runtime's defaults when the lists run out.
    private static func activation(_ name: String, alphas: inout ArraySlice<Float>, betas: inout ArraySlice<Float>) throws -> RecurrentActivation {
        func alpha(_ defaultValue: Float) -> Float { alphas.popFirst() ?? defaultValue }
        func beta(_ defaultValue: Float) -> Float { betas.popFirst() ?? defaultValue }
        switch name.lowercased() {
        case "relu": return .pointwise(.relu)
        case "tanh": return .pointwise(.tanh)
        case "sigmoid": return .pointwise(.sigmoid)
        case "softsign": return .pointwise(.softsign)
        case "softplus": return .pointwise(.softplus)
        case "leakyrelu": return .pointwise(.leakyRelu(alpha: alpha(0.01)))
        case "thresholdedrelu": return .pointwise(.thresholdedRelu(alpha: alpha(1)))
        case "elu": return .pointwise(.elu(alpha: alpha(1)))
        case "hardsigmoid":
            let a = alpha(0.2)
            return .pointwise(.hardSigmoid(alpha: a, beta: beta(0.5)))
        case "affine":
            let a = alpha(1)
            return .affine(alpha: a, beta: beta(0))
        case "scaledtanh":
            let a = alpha(1)
            return .scaledTanh(alpha: a, beta: beta(1))
        default: throw OpError("activation '\(name)' is not one ONNX defines for recurrent layers")
        }
    }

    // MARK: Types

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        for (index, rank) in [(0, 3), (1, 3), (2, 3), (3, 2), (4, 1), (5, 3), (6, 3), (7, 2)] {
            if let known = inputs.type(index)?.rank, known != rank {
                throw OpError("input \(index) must have rank \(rank), not \(known)")
            }
        }
        let hidden: Dim = hiddenSize.map { .fixed($0) } ?? inputs.type(2)?.dims?[2] ?? .unknown
        let dirs = Dim.fixed(directions.count)
        guard let dims = x.dims else { return [TensorType(x.dataType, nil), TensorType(x.dataType, nil), TensorType(x.dataType, nil)] }
        let (sequence, batch) = batchFirst ? (dims[1], dims[0]) : (dims[0], dims[1])
        let y: [Dim] = batchFirst ? [batch, sequence, dirs, hidden] : [sequence, dirs, batch, hidden]
        let state: [Dim] = batchFirst ? [batch, dirs, hidden] : [dirs, batch, hidden]
        let types = [TensorType(x.dataType, y), TensorType(x.dataType, state), TensorType(x.dataType, state)]
        return Array(types.prefix(cell.hasCellState ? 3 : 2))
    }

    // MARK: Running

    /// Sizes of a run, checked against each other.
    private struct Sizes {
        var sequence: Int, batch: Int, input: Int, hidden: Int
    }

    private func sizes(_ x: Shape, _ w: Shape, _ r: Shape) throws -> Sizes {
        guard x.rank == 3, w.rank == 3, r.rank == 3 else {
            throw OpError.invalidArgument("X \(x), W \(w) and R \(r) must have rank 3")
        }
        let sizes = Sizes(sequence: batchFirst ? x[1] : x[0], batch: batchFirst ? x[0] : x[1], input: x[2], hidden: hiddenSize ?? r[2])
        let gates = cell.gates, dirs = directions.count
        guard [sizes.sequence, sizes.batch, sizes.input, sizes.hidden].allSatisfy({ $0 <= Self.maximumSize }) else {
            throw OpError.invalidArgument("X \(x) or R \(r) is beyond the engine's limit of \(Self.maximumSize) per dimension")
        }
        guard w == [dirs, gates * sizes.hidden, sizes.input] else {
            throw OpError.invalidArgument("W is \(w); [\(dirs), \(gates * sizes.hidden), \(sizes.input)] is needed for X \(x) and hidden size \(sizes.hidden)")
        }
        guard r == [dirs, gates * sizes.hidden, sizes.hidden] else {
            throw OpError.invalidArgument("R is \(r); [\(dirs), \(gates * sizes.hidden), \(sizes.hidden)] is needed")
        }
        return sizes
    }

    private func stateShape(_ sizes: Sizes) -> Shape {
        batchFirst ? [sizes.batch, directions.count, sizes.hidden] : [directions.count, sizes.batch, sizes.hidden]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let original = try inputs.required(0)
        func float(_ index: Int) throws -> Tensor? { try inputs.optional(index).map { try convert($0, to: .float, context) } }
        let x = try convert(original, to: .float, context)
        guard let w = try float(1), let r = try float(2) else { throw OpError("W and R are required") }
        let sizes = try sizes(x.shape, w.shape, r.shape)
        let dirs = directions.count, width = cell.gates * sizes.hidden
        let bias = try float(3), peepholes = cell.hasCellState ? try float(7) : nil
        let initialH = try float(5), initialC = cell.hasCellState ? try float(6) : nil
        if let bias, bias.shape != [dirs, 2 * width] {
            throw OpError.invalidArgument("B is \(bias.shape); [\(dirs), \(2 * width)] is needed")
        }
        if let peepholes, peepholes.shape != [dirs, 3 * sizes.hidden] {
            throw OpError.invalidArgument("P is \(peepholes.shape); [\(dirs), \(3 * sizes.hidden)] is needed")
        }
        let state = stateShape(sizes)
        for (name, tensor) in [("initial_h", initialH), ("initial_c", initialC)] {
            if let tensor, tensor.shape != state { throw OpError.invalidArgument("\(name) is \(tensor.shape); \(state) is needed") }
        }
        var lengths = [Int](repeating: sizes.sequence, count: sizes.batch)
        if let given = inputs.optional(4) {
            guard given.shape == [sizes.batch] else {
                throw OpError.invalidArgument("sequence_lens is \(given.shape); [\(sizes.batch)] is needed")
            }
            lengths = given.integers()
            if let bad = lengths.first(where: { $0 < 0 || $0 > sizes.sequence }) {
                throw OpError.invalidArgument("sequence_lens has \(bad); each length must be in 0...\(sizes.sequence)")
            }
        }

        let yShape: Shape = batchFirst ? [sizes.batch, sizes.sequence, dirs, sizes.hidden] : [sizes.sequence, dirs, sizes.batch, sizes.hidden]
        let y = try context.allocate(.float, used[0] ? yShape : [0])
        let finalH = try context.allocate(.float, used[1] ? state : [0])
        let finalC = try context.allocate(.float, cell.hasCellState && used[2] ? state : [0])
        let layer = { (reverse: Bool, activations: [RecurrentActivation]) in
            RecurrentLayer(cell: cell, sequence: sizes.sequence, batch: sizes.batch, input: sizes.input, hidden: sizes.hidden,
                           activations: activations, clip: clip, reverse: reverse, lengths: lengths)
        }
        let concurrent = Self.concurrentDirections(dirs, threads: context.parallelism.threads)
        guard let scratchCount = layer(false, activations[0]).scratchCount(threads: concurrent ? 1 : context.parallelism.threads),
              case let (scratchTotal, overflow) = scratchCount.multipliedReportingOverflow(by: concurrent ? 2 : 1), !overflow else {
            throw OpError.invalidArgument("X \(x.shape) with hidden size \(sizes.hidden) needs more scratch than the engine can count")
        }
        let scratch = try context.allocate(.float, [scratchTotal])
        let hidden = sizes.hidden
        guard let packedCount = Self.packedCount(cell, hiddenSize: hiddenSize, directions: dirs, r: r.shape),
              let perDirection = Recurrence.packedWeightCount(cell, hidden: hidden) else {
            throw OpError.invalidArgument("R \(r.shape) with hidden size \(hidden) needs more scratch than the engine can count")
        }
        let packedR: Tensor
        if let prepacked = self.packedR, prepacked.shape == r.shape, original.dataType == .float {
            packedR = prepacked.weights
        } else {
            packedR = try context.allocate(.float, [packedCount])
            Self.pack(cell, r, into: packedR.mutablePointer(as: Float.self), directions: dirs)
        }
        // W's shape was checked by `sizes`, so its packed count exists unless it overflows.
        guard let packedInputs = Self.packedInputCount(cell, hiddenSize: hidden, directions: dirs, w: w.shape),
              let inputsPerDirection = Recurrence.packedInputWeightCount(cell, hidden: hidden, input: sizes.input) else {
            throw OpError.invalidArgument("W \(w.shape) needs more scratch than the engine can count")
        }
        let packedW: Tensor
        if let prepacked = self.packedW, prepacked.shape == w.shape, original.dataType == .float {
            packedW = prepacked.weights
        } else {
            packedW = try context.allocate(.float, [packedInputs])
            Self.packInputs(cell, w, into: packedW.mutablePointer(as: Float.self), directions: dirs)
        }
        func run(direction: Int, scratch: UnsafeMutablePointer<Float>, parallelism: Parallelism) {
            let reverse = directions[direction]
            // Offsets and strides of this direction in the layout's Y and state tensors.
            let stateOffset = batchFirst ? direction * hidden : direction * sizes.batch * hidden
            let stateStride = batchFirst ? dirs * hidden : hidden
            let yOffset = batchFirst ? direction * hidden : direction * sizes.batch * hidden
            let yStrides = batchFirst ? (time: dirs * hidden, batch: sizes.sequence * dirs * hidden) : (time: dirs * sizes.batch * hidden, batch: hidden)
            let operands = RecurrentOperands(
                x: x.pointer(as: Float.self), xRows: batchFirst ? (time: 1, batch: sizes.sequence) : (time: sizes.batch, batch: 1),
                w: w.pointer(as: Float.self) + direction * width * sizes.input, r: r.pointer(as: Float.self) + direction * width * hidden,
                packedR: packedR.pointer(as: Float.self) + direction * perDirection,
                packedW: packedW.pointer(as: Float.self) + direction * inputsPerDirection,
                bias: bias.map { $0.pointer(as: Float.self) + direction * 2 * width },
                peepholes: peepholes.map { $0.pointer(as: Float.self) + direction * 3 * hidden },
                initialH: initialH.map { $0.pointer(as: Float.self) + stateOffset },
                initialC: initialC.map { $0.pointer(as: Float.self) + stateOffset }, initialStride: stateStride,
                y: used[0] ? y.mutablePointer(as: Float.self) + yOffset : nil, yStrides: yStrides,
                finalH: used[1] ? finalH.mutablePointer(as: Float.self) + stateOffset : nil,
                finalC: cell.hasCellState && used[2] ? finalC.mutablePointer(as: Float.self) + stateOffset : nil,
                finalStride: stateStride)
            Recurrence.run(layer(reverse, activations[direction]), operands, scratch: scratch, parallelism: parallelism)
        }
        withExtendedLifetime((x, w, r, packedR, packedW, bias, peepholes, initialH, initialC, y, finalH, finalC, scratch)) {
            let base = scratch.mutablePointer(as: Float.self)
            if concurrent {
                // The directions write disjoint parts of Y and the states. When the pool is busy
                // (another run's loop), forEach runs them one after the other on this thread.
                let serial = Parallelism(threads: 1, flushesDenormals: context.parallelism.flushesDenormals)
                context.parallelism.forEach(2) { direction in
                    run(direction: direction, scratch: base + direction * scratchCount, parallelism: serial)
                }
            } else {
                for direction in directions.indices { run(direction: direction, scratch: base, parallelism: context.parallelism) }
            }
        }
        var outputs = [y, finalH]
        if cell.hasCellState { outputs.append(finalC) }
        return try outputs.map { try convert($0, to: original.dataType, context) }
    }

    // MARK: Working memory

    func scratchBytes(_ inputs: [TensorType?], outputs: [TensorType?], threads: Int) -> Int {
        guard let x = inputs.type(0)?.shape, let r = inputs.type(2)?.shape, x.rank == 3, r.rank == 3 else { return 0 }
        let sequence = batchFirst ? x[1] : x[0], batch = batchFirst ? x[0] : x[1], hidden = hiddenSize ?? r[2]
        let layer = RecurrentLayer(cell: cell, sequence: sequence, batch: batch, input: x[2], hidden: hidden,
                                   activations: [], clip: nil, reverse: false, lengths: [])
        let copies = Self.concurrentDirections(directions.count, threads: threads) ? 2 : 1
        guard [sequence, batch, x[2], hidden].allSatisfy({ $0 <= Self.maximumSize }),
              let count = layer.scratchCount(threads: copies == 2 ? 1 : threads), case let (floats, overflow) = count.multipliedReportingOverflow(by: copies), !overflow,
              floats <= ExecutionContext.maximumElementCount else { return 0 }
        // Float16 and double inputs are converted to float, and the outputs back; R is packed
        // unless it was at load.
        let converted = inputs.type(0)?.dataType == .float ? 0 : x.elementCount
        let packing = packedR == nil ? Self.packedCount(cell, hiddenSize: hiddenSize, directions: directions.count, r: r) ?? 0 : 0
        let inputPacking = packedW == nil ? inputs.type(1)?.shape.flatMap {
            Self.packedInputCount(cell, hiddenSize: hiddenSize, directions: directions.count, w: $0)
        } ?? 0 : 0
        guard packing <= ExecutionContext.maximumElementCount, inputPacking <= ExecutionContext.maximumElementCount else { return 0 }
        return 4 * (floats + converted + packing + inputPacking)
    }
}
