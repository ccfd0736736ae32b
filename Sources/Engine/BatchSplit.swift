import Kernels
package import Tensors

/// Whether a model's batch can be cut into sub-batches that run apart (each part on one thread,
/// from the first node to the last) and whose outputs, joined on axis 0, are the batch's.
///
/// That holds when no node mixes images: every value is either *batched* (axis 0 is the batch and
/// row i depends on image i alone), *invariant* (the same whatever the batch: constants and what is
/// computed from them), or a small integer *size list* that holds the batch size at known places
/// (`Shape` of a batched value, and `Gather`, `Unsqueeze`, `Concat`, `Cast`, `Squeeze` of it), so
/// that ShuffleNet's `Shape → Gather → Concat → Reshape` channel shuffle, which rebuilds
/// `[N, g, C/g, H, W]`, reads each part's own N. The analysis runs at load on the optimised graph.
///
/// Inputs: every graph input is a tensor whose axis 0 is not fixed (one symbolic name for all of
/// them, or unnamed: the run then checks that all have the same size there). Outputs: all batched.
/// Nodes (a node whose inputs are all invariant is invariant; otherwise, per op):
/// - element-wise, one input: Relu, LeakyRelu, PRelu (slope invariant), Clip (bounds invariant),
///   Sigmoid, HardSigmoid, HardSwish, Tanh, Elu, Selu, Celu, Softplus, Softsign, Gelu, Mish, Erf,
///   Exp, Log, Sqrt, Reciprocal, Abs, Neg, Floor, Ceil, Round, Sign, Sin, Cos, Not, Identity,
///   Dropout (output 0), Cast; ours: Activation, QuantizeDequantize (scale, zero point invariant);
/// - element-wise with broadcasting: Add, Sub, Mul, Div, Pow, Max, Min, Sum, Mean, Mod, Equal,
///   Less, LessOrEqual, Greater, GreaterOrEqual, And, Or, Xor, Where: every batched operand has the
///   output's rank, every invariant one a lower rank or a fixed 1 on axis 0;
/// - Conv, ConvTranspose, MaxPool, AveragePool, LpPool, GlobalAveragePool, GlobalMaxPool,
///   GlobalLpPool, BatchNormalization (inference), InstanceNormalization, LRN, DepthToSpace,
///   SpaceToDepth: data batched, weights and statistics invariant; ours: FusedConv (its residual
///   and per-image scale batched or invariant), FusedBatchNormalization;
/// - LayerNormalization, GroupNormalization and our LayerNormalization: normalised axes not 0;
/// - Gemm (transA 0) and our FusedGemm: A batched, B invariant, C invariant of rank < 2 or a fixed
///   1 on axis 0; MatMul: A batched of rank >= 2, B invariant: a matrix or vector, or stacked with
///   a rank below A's or a fixed 1 on axis 0; or A and B both batched at the same rank of 3 or more
///   (attention's per-image products);
/// - Flatten with axis >= 1; Transpose with perm[0] = 0; Squeeze / Unsqueeze with axes given and not
///   0; Concat, Split, Softmax, LogSoftmax, Hardmax, ArgMax, ArgMin, Reduce* not on axis 0 (a
///   Reduce* without axes reduces them all: refused unless `noop_with_empty_axes`); Slice with
///   constant axes not containing 0; Gather with invariant indices not on axis 0, or invariant data
///   and batched indices of rank >= 1 on axis 0;
/// - Reshape of batched data to a constant target whose axis 0 is 0 (keep) or -1 with the other
///   entries fixed and positive and their product the image's element count, or to a size list
///   with the batch at place 0 only;
/// - Shape, Gather, Unsqueeze, Squeeze, Concat, Cast on size lists, as above; Reshape of a size
///   list to [-1] or its own length; Shape of a size list (its length, a constant);
/// - PyTorch's `expand` (`Reshape(sizes, [-1])`, `Equal(sizes, ConstantOfShape(Shape(sizes)) · -1)`,
///   `Where(that, ones, sizes)`, `Expand(x, ...)`, which ViT's class token and BERT's token types
///   take): Equal of a size list with a constant below 1 at every batch place is a *mask*, false
///   there whatever the batch; Where(mask, invariant, sizes) is the size list again when the mask
///   is false at all of its batch places; Expand of an invariant value (axis 0 absent or 1) or a
///   batched one of the list's length, to a size list with the batch at place 0 only, is batched;
/// - invariant nodes (all inputs invariant) of the listed types and ConstantOfShape, Expand,
///   GatherElements, Range; the small ones whose inputs are constants are evaluated (Shape of a
///   size list, ConstantOfShape, Mul, ...) so that a later Equal sees the values it compares with.
/// Everything else (control flow, sequences, random generators, a Reshape or Reduce* that folds the
/// batch, a size list used in arithmetic) makes the model not separable.
package enum BatchSplit {
    /// The analysis's answer.
    package enum Verdict: Sendable, Equatable, CustomStringConvertible {
        case separable
        /// Why not (the first node or value that breaks the rule).
        case notSeparable(String)

        package var description: String {
            switch self {
            case .separable: "yes"
            case .notSeparable(let reason): "no (\(reason))"
            }
        }
    }

    /// What a value is to the batch.
    private enum Role: Equatable {
        case invariant
        case batched
        /// A rank-0 (`scalar`) or rank-1 integer tensor with the batch size at the true places and
        /// batch-independent values elsewhere (at least one place is the batch).
        case sizes([Bool], scalar: Bool)
        /// A rank-1 boolean tensor made by comparing a size list with constants below 1 at its batch
        /// places (the true places here): false there whatever the batch, batch-independent elsewhere.
        case mask([Bool])
    }

    private struct Refusal: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// Decides for `graph` (optimised), whose values have the inferred `types`.
    package static func analyse(_ graph: Graph, types: [String: TensorType], opsets: [String: Int]) -> Verdict {
        do {
            var analysis = Analysis(graph: graph, types: types, opsets: opsets)
            try analysis.run()
            return .separable
        } catch let refusal as Refusal {
            return .notSeparable(refusal.reason)
        } catch {
            return .notSeparable("\(error)")
        }
    }

    private struct Analysis {
        let graph: Graph
        let types: [String: TensorType]
        let opsets: [String: Int]
        var roles: [String: Role] = [:]
        /// Constant tensors: initializers and Constant nodes' values.
        var constants: [String: Tensor]

        init(graph: Graph, types: [String: TensorType], opsets: [String: Int]) {
            self.graph = graph
            self.types = types
            self.opsets = opsets
            constants = graph.initializers
        }

        mutating func run() throws {
            guard !graph.inputs.isEmpty else { throw Refusal("the model has no inputs") }
            var symbol: String??
            for input in graph.inputs {
                guard input.kind == .tensor else { throw Refusal("input '\(input.name)' is not a tensor") }
                guard graph.initializers[input.name] == nil else { throw Refusal("input '\(input.name)' has a default") }
                guard let dims = input.type?.dims, let first = dims.first else {
                    throw Refusal("input '\(input.name)' has no declared axis 0")
                }
                let name: String?
                switch first {
                case .fixed: throw Refusal("input '\(input.name)' has a fixed axis 0")
                case .symbolic(let given): name = given
                case .unknown: name = nil
                }
                if let symbol, symbol != name { throw Refusal("inputs differ in their axis 0") }
                symbol = name
                roles[input.name] = .batched
            }
            for name in graph.initializers.keys { roles[name] = .invariant }
            for index in try GraphOrder.sorted(graph) {
                let node = graph.nodes[index]
                let outputs = try roles(of: node)
                for (output, role) in zip(node.outputs, outputs) where !output.isEmpty { roles[output] = role }
            }
            for output in graph.outputs where roles[output.name] != .batched {
                throw Refusal("output '\(output.name)' does not have the batch on axis 0")
            }
        }

        // MARK: Lookups

        func role(_ name: String) throws -> Role? {
            if name.isEmpty { return nil }
            guard let role = roles[name] else { throw Refusal("value '\(name)' is unknown") }
            return role
        }

        func rank(_ name: String) -> Int? { types[name]?.rank }

        func dims(_ name: String) -> [Dim]? { types[name]?.dims }

        func integers(_ name: String) -> [Int]? {
            guard let tensor = constants[name], tensor.dataType.isInteger else { return nil }
            return tensor.integers()
        }

        func int(_ node: Node, _ attribute: String) -> Int? {
            if case .int(let value)? = node.attributes[attribute] { return value }
            return nil
        }

        func ints(_ node: Node, _ attribute: String) -> [Int]? {
            if case .ints(let values)? = node.attributes[attribute] { return values }
            return nil
        }

        /// `axis` made non-negative for `rank`, nil when out of range.
        func normalized(_ axis: Int, rank: Int) -> Int? {
            let value = axis < 0 ? axis + rank : axis
            return (0..<max(rank, 1)).contains(value) ? value : nil
        }

        /// Refuses unless `axis` of a rank-`rank` value is known and not 0 (a negative axis needs the rank;
        /// an axis past the rank fails when the node runs, split or not).
        func requireNotBatchAxis(_ axis: Int?, rank: Int?, _ node: Node) throws {
            guard let axis, axis != 0 else { throw Refusal("\(node.label) works on axis 0 (or one not known at load)") }
            if axis > 0 { return }
            guard let rank, let value = normalized(axis, rank: rank), value != 0 else {
                throw Refusal("\(node.label) works on axis 0 (or one not known at load)")
            }
        }

        // MARK: Rules

        /// The roles of a node's outputs, or a refusal.
        mutating func roles(of node: Node) throws -> [Role] {
            let count = node.outputs.count
            if node.isStandard("Constant") {
                if case .tensor(let value)? = node.attributes["value"], let output = node.outputs.first { constants[output] = value }
                return Array(repeating: .invariant, count: count)
            }
            guard node.isStandard || node.domain == OperatorRegistry.internalDomain else {
                throw Refusal("\(node.label) of domain '\(node.domain)' is not on the list")
            }
            guard !node.attributes.values.contains(where: \.holdsGraphs) else { throw Refusal("\(node.label) has subgraphs") }
            let inputs = try node.inputs.map { try role($0) }
            let present = inputs.compactMap { $0 }
            let sizeLists = present.contains {
                switch $0 {
                case .sizes, .mask: true
                case .invariant, .batched: false
                }
            }
            if !sizeLists, !present.contains(.batched) {
                guard Self.rules.contains(node.opType) || Self.invariantOnly.contains(node.opType) else {
                    throw Refusal("\(node.label) is not on the list")
                }
                evaluate(node)
                return Array(repeating: .invariant, count: count)
            }
            // Reshape reads a size list as its target (a Reshape of a size list is one of the size
            // rules); other readers of one compute with it.
            if sizeLists {
                var target = node.opType == "Reshape"
                if target, case .sizes? = inputs.first { target = false }
                if !target { return try sizeRoles(node, inputs) }
            }
            let batched = Array(repeating: Role.batched, count: count)
            /// Refuses unless the inputs from `first` on are invariant (or omitted).
            func invariant(from first: Int) throws {
                for position in inputs.indices where position >= first {
                    if let role = inputs[position], role != .invariant {
                        throw Refusal("\(node.label) reads the batch in input \(position)")
                    }
                }
            }
            func batchedFirst() throws {
                guard inputs.first == .batched else { throw Refusal("\(node.label) reads the batch in a parameter") }
            }
            switch node.opType {
            case "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "Celu", "Softplus",
                 "Softsign", "Gelu", "Mish", "Erf", "Exp", "Log", "Sqrt", "Reciprocal", "Abs", "Neg", "Floor", "Ceil",
                 "Round", "Sign", "Sin", "Cos", "Not", "Identity", "Cast", "Activation", "PRelu", "Clip",
                 "QuantizeDequantize", "Dropout":
                try batchedFirst()
                try invariant(from: 1)
                // A slope or bound is broadcast against the data: it must leave axis 0 alone.
                if node.opType == "PRelu" || node.opType == "Clip" { try broadcastRule(node, inputs) }
                // Dropout's mask (output 1) is batched too: same shape as its data.
                return batched
            case "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Mod", "Equal", "Less", "LessOrEqual",
                 "Greater", "GreaterOrEqual", "And", "Or", "Xor", "Where":
                try broadcastRule(node, inputs)
                return batched
            case "Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool",
                 "GlobalLpPool", "BatchNormalization", "FusedBatchNormalization", "InstanceNormalization", "LRN",
                 "DepthToSpace", "SpaceToDepth":
                try batchedFirst()
                try invariant(from: 1)
                // Batch statistics (training mode), and MaxPool's indices, which count across images.
                if node.opType.hasSuffix("BatchNormalization") || node.opType == "MaxPool",
                   int(node, "training_mode") == 1 || node.outputs.dropFirst().contains(where: { !$0.isEmpty }) {
                    throw Refusal("\(node.label) has an output that spans the batch")
                }
                return batched
            case "FusedConv":
                // X, W, B, residual Z, per-image scale: Z and the scale follow the broadcast rule.
                try batchedFirst()
                for position in [1, 2] where position < inputs.count && inputs[position] != nil && inputs[position] != .invariant {
                    throw Refusal("\(node.label) reads the batch in input \(position)")
                }
                try broadcastRule(node, inputs, operands: [0, 3, 4])
                return batched
            case "LayerNormalization", "GroupNormalization":
                try batchedFirst()
                try invariant(from: 1)
                if node.opType == "LayerNormalization" && node.isStandard {
                    try requireNotBatchAxis(int(node, "axis") ?? -1, rank: rank(node.inputs[0]), node)
                } else if node.opType == "LayerNormalization", (rank(node.inputs[0]) ?? 0) < 2 {
                    throw Refusal("\(node.label) normalises axis 0")
                }
                return batched
            case "Gemm", "FusedGemm":
                try batchedFirst()
                try invariant(from: 1)
                guard (int(node, "transA") ?? 0) == 0 else { throw Refusal("\(node.label) transposes its batched A") }
                if node.opType == "Gemm", rank(node.inputs[0]) != 2 { throw Refusal("\(node.label): A's rank is not known to be 2") }
                if node.inputs.count > 2, !node.inputs[2].isEmpty, !leavesBatchAxis(node.inputs[2], outputRank: 2) {
                    throw Refusal("\(node.label) adds a C with rows of its own")
                }
                return batched
            case "MatMul":
                // Attention's products (Q·Kᵀ, weights·V): both batched at one rank of 3 or more, so
                // axis 0 is the batch in both and image i multiplies its own matrices.
                if inputs.count == 2, inputs[0] == .batched, inputs[1] == .batched {
                    guard let rankA = rank(node.inputs[0]), rankA >= 3, rank(node.inputs[1]) == rankA else {
                        throw Refusal("\(node.label) multiplies two batched values of different or unknown ranks")
                    }
                    return batched
                }
                guard inputs[0] == .batched, inputs.count == 2, inputs[1] == .invariant else {
                    throw Refusal("\(node.label) multiplies by a batched B")
                }
                guard let rankA = rank(node.inputs[0]), rankA >= 2 else { throw Refusal("\(node.label): A's rank is below 2 or unknown") }
                // A matrix (or vector) B multiplies every row; a stacked B broadcasts over A's leading axes.
                guard let rankB = rank(node.inputs[1]), rankB <= 2 || rankB < rankA || leavesBatchAxis(node.inputs[1], outputRank: rankA),
                      rankB <= rankA else {
                    throw Refusal("\(node.label) has a B with a batch axis of its own")
                }
                return batched
            case "Flatten":
                try batchedFirst()
                try requireNotBatchAxis(int(node, "axis") ?? 1, rank: rank(node.inputs[0]), node)
                return batched
            case "Transpose":
                try batchedFirst()
                // Without perm the axes are reversed: axis 0 moves unless the rank is 1.
                guard let perm = ints(node, "perm") ?? rank(node.inputs[0]).map({ Array((0..<$0).reversed()) }), perm.first == 0 else {
                    throw Refusal("\(node.label) moves axis 0")
                }
                return batched
            case "Squeeze", "Unsqueeze":
                try batchedFirst()
                let axes = try axesList(node, inputPosition: 1)
                guard let axes, !axes.isEmpty else { throw Refusal("\(node.label) has no axes given") }
                let rank = rank(node.inputs[0]).map { node.opType == "Squeeze" ? $0 : $0 + axes.count }
                for axis in axes { try requireNotBatchAxis(axis, rank: rank, node) }
                return batched
            case "Concat":
                guard inputs.allSatisfy({ $0 == .batched }) else { throw Refusal("\(node.label) joins batched and invariant values") }
                try requireNotBatchAxis(int(node, "axis"), rank: rank(node.inputs[0]), node)
                return batched
            case "Split":
                try batchedFirst()
                try invariant(from: 1)
                try requireNotBatchAxis(int(node, "axis") ?? 0, rank: rank(node.inputs[0]), node)
                return batched
            case "Softmax", "LogSoftmax", "Hardmax":
                try batchedFirst()
                // The default axis is -1 from opset 13 and 1 (rows of [N, rest]) before: neither is 0
                // for a rank of 2 or more, which the rule requires.
                let axis = node.attributes["axis"] == nil ? -1 : int(node, "axis")
                try requireNotBatchAxis(axis, rank: rank(node.inputs[0]), node)
                return batched
            case "ArgMax", "ArgMin":
                try batchedFirst()
                try requireNotBatchAxis(int(node, "axis") ?? 0, rank: rank(node.inputs[0]), node)
                return batched
            case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                 "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare":
                try batchedFirst()
                try invariant(from: 1)
                let axes = try axesList(node, inputPosition: 1)
                guard let axes, !axes.isEmpty else {
                    if int(node, "noop_with_empty_axes") == 1 { return batched }
                    throw Refusal("\(node.label) reduces every axis")
                }
                for axis in axes { try requireNotBatchAxis(axis, rank: rank(node.inputs[0]), node) }
                return batched
            case "Slice":
                try batchedFirst()
                try invariant(from: 1)
                guard node.inputs.count >= 4, let axes = integers(node.inputs[3]) else {
                    throw Refusal("\(node.label) has no constant axes")
                }
                for axis in axes { try requireNotBatchAxis(axis, rank: rank(node.inputs[0]), node) }
                return batched
            case "Gather":
                let axis = int(node, "axis") ?? 0
                if inputs.first == .batched {
                    try invariant(from: 1)
                    try requireNotBatchAxis(axis, rank: rank(node.inputs[0]), node)
                } else {
                    guard let rank = rank(node.inputs[1]), rank >= 1, normalized(axis, rank: self.rank(node.inputs[0]) ?? 0) == 0 else {
                        throw Refusal("\(node.label) indexes by batched values of unknown shape")
                    }
                }
                return batched
            case "Reshape":
                try batchedFirst()
                try reshapeRule(node, target: inputs.count > 1 ? inputs[1] : nil)
                return batched
            case "Shape":
                try batchedFirst()
                guard let rank = rank(node.inputs[0]) else { throw Refusal("\(node.label): rank unknown") }
                let start = normalizedClamped(int(node, "start") ?? 0, rank: rank)
                let end = normalizedClamped(int(node, "end") ?? rank, rank: rank)
                let places = (start..<max(start, end)).map { $0 == 0 }
                return [places.contains(true) ? .sizes(places, scalar: false) : .invariant]
            default:
                throw Refusal("\(node.label) is not on the list")
            }
        }

        /// The clamped axis of Shape's start and end.
        func normalizedClamped(_ axis: Int, rank: Int) -> Int { min(max(axis < 0 ? axis + rank : axis, 0), rank) }

        /// True when a value broadcast against an output of rank `outputRank` leaves axis 0 alone: a
        /// lower rank, or a fixed size 1 there.
        func leavesBatchAxis(_ name: String, outputRank: Int) -> Bool {
            guard let dims = dims(name) else { return false }
            return dims.count < outputRank || dims.first == .fixed(1)
        }

        /// Element-wise with broadcasting: batched operands at the output's rank, invariant ones off axis 0.
        func broadcastRule(_ node: Node, _ inputs: [Role?], operands: [Int]? = nil) throws {
            let positions = operands ?? Array(inputs.indices)
            guard let outputRank = node.outputs.first.flatMap(rank) else { throw Refusal("\(node.label): rank unknown") }
            for position in positions where position < inputs.count {
                switch inputs[position] {
                case nil: continue
                case .batched?:
                    guard rank(node.inputs[position]) == outputRank else {
                        throw Refusal("\(node.label) broadcasts a batched operand to another rank")
                    }
                case .invariant?:
                    guard leavesBatchAxis(node.inputs[position], outputRank: outputRank) else {
                        throw Refusal("\(node.label) broadcasts an operand with a batch axis of its own")
                    }
                case .sizes?, .mask?:
                    throw Refusal("\(node.label) computes with the batch size")
                }
            }
        }

        /// The axes of a Squeeze, Unsqueeze or Reduce*: the attribute, or a constant input (opset 13/18).
        func axesList(_ node: Node, inputPosition: Int) throws -> [Int]? {
            if let axes = ints(node, "axes") { return axes }
            guard inputPosition < node.inputs.count, !node.inputs[inputPosition].isEmpty else { return nil }
            guard let axes = integers(node.inputs[inputPosition]) else { throw Refusal("\(node.label) has axes not known at load") }
            return axes
        }

        /// Reshape keeps the batch on axis 0 (see the type's comment).
        func reshapeRule(_ node: Node, target: Role?) throws {
            if case .sizes(let places, scalar: false)? = target {
                guard places.first == true, !places.dropFirst().contains(true) else {
                    throw Refusal("\(node.label) moves the batch size off axis 0")
                }
                return
            }
            guard target == .invariant, let shape = integers(node.inputs[1]), let first = shape.first else {
                throw Refusal("\(node.label) has a target not known at load")
            }
            let allowZero = int(node, "allowzero") ?? 0
            if first == 0 && allowZero == 0 { return }
            guard first == -1, !shape.dropFirst().isEmpty, shape.dropFirst().allSatisfy({ $0 > 0 }),
                  let dims = dims(node.inputs[0]), dims.count >= 1 else {
                throw Refusal("\(node.label) folds the batch (target \(shape))")
            }
            var image = 1, rest = 1
            for dim in dims.dropFirst() {
                guard let size = dim.value else { throw Refusal("\(node.label): image shape not known at load") }
                image = image.multipliedReportingOverflow(by: size).partialValue
            }
            for size in shape.dropFirst() { rest = rest.multipliedReportingOverflow(by: size).partialValue }
            guard image == rest else { throw Refusal("\(node.label) folds the batch (target \(shape))") }
        }

        /// Nodes on size lists: Shape's result picked, extended, joined or converted.
        mutating func sizeRoles(_ node: Node, _ inputs: [Role?]) throws -> [Role] {
            func refuse() -> Refusal { Refusal("\(node.label) computes with the batch size") }
            if node.isStandard("Concat"), (int(node, "axis") ?? 0) == 0 || int(node, "axis") == -1 {
                var joined: [Bool] = []
                for (position, input) in inputs.enumerated() {
                    switch input {
                    case .sizes(let more, scalar: false)?: joined += more
                    case .invariant?:
                        guard let dims = dims(node.inputs[position]), dims.count == 1, let length = dims[0].value else { throw refuse() }
                        joined += Array(repeating: false, count: length)
                    default: throw refuse()
                    }
                }
                return [.sizes(joined, scalar: false)]
            }
            if node.isStandard("Where"), inputs.count == 3, case .mask(let falsePlaces)? = inputs[0], inputs[1] == .invariant,
               case .sizes(let places, scalar: false)? = inputs[2], places.count == falsePlaces.count,
               places.indices.allSatisfy({ !places[$0] || falsePlaces[$0] }) {
                // False wherever the list holds the batch: those places take the list's own value.
                return [.sizes(places, scalar: false)]
            }
            if node.isStandard("Expand"), inputs.count == 2, case .sizes(let places, scalar: false)? = inputs[1],
               places.first == true, !places.dropFirst().contains(true), let dataRank = rank(node.inputs[0]) {
                switch inputs[0] {
                case .invariant? where dataRank <= places.count && leavesBatchAxis(node.inputs[0], outputRank: places.count):
                    return [.batched]
                case .batched? where dataRank == places.count:
                    return [.batched]
                default:
                    let shape = dims(node.inputs[0]).map { "\($0)" } ?? "unknown"
                    throw Refusal("\(node.label) expands a value (shape \(shape)) whose axis 0 would not be the batch")
                }
            }
            guard node.isStandard, case .sizes(let places, let scalar)? = inputs.first else { throw refuse() }
            switch node.opType {
            case "Cast", "Identity":
                return [.sizes(places, scalar: scalar)]
            case "Shape" where node.outputs.count == 1:
                // The list's length: known at load.
                let shape = scalar ? [Int]() : [places.count]
                let start = normalizedClamped(int(node, "start") ?? 0, rank: shape.count)
                let end = normalizedClamped(int(node, "end") ?? shape.count, rank: shape.count)
                let picked = Array(shape[start..<max(start, end)])
                constants[node.outputs[0]] = Tensor(picked.map(Int64.init), shape: [picked.count])
                return [.invariant]
            case "Reshape" where !scalar && inputs.count == 2 && inputs[1] == .invariant:
                guard let target = integers(node.inputs[1]), target == [-1] || target == [places.count] else { throw refuse() }
                return [.sizes(places, scalar: false)]
            case "Equal" where !scalar && inputs.count == 2 && inputs[1] == .invariant:
                // Compared with values no batch can have (a part has at least one image), the
                // batch places are false for the whole batch and for every part.
                guard let compared = integers(node.inputs[1]), compared.count == places.count || compared.count == 1,
                      places.indices.allSatisfy({ !places[$0] || compared[compared.count == 1 ? 0 : $0] < 1 }) else {
                    throw refuse()
                }
                return [.mask(places)]
            case "Gather" where !scalar && inputs.count == 2 && inputs[1] == .invariant && (int(node, "axis") ?? 0) == 0:
                guard let indices = integers(node.inputs[1]), let indexTensor = constants[node.inputs[1]] else { throw refuse() }
                var picked: [Bool] = []
                for index in indices {
                    let position = index < 0 ? index + places.count : index
                    guard places.indices.contains(position) else { throw refuse() }
                    picked.append(places[position])
                }
                return [picked.contains(true) ? .sizes(picked, scalar: indexTensor.shape.rank == 0) : .invariant]
            case "Unsqueeze" where scalar:
                let axes = try axesList(node, inputPosition: 1)
                guard axes == [0] || axes == [-1] else { throw refuse() }
                return [.sizes(places, scalar: false)]
            case "Squeeze" where !scalar && places.count == 1:
                let axes = try axesList(node, inputPosition: 1)
                guard axes == nil || axes == [0] || axes == [-1] else { throw refuse() }
                return [.sizes(places, scalar: true)]
            default:
                throw refuse()
            }
        }

        /// Op types allowed when every input is invariant (no rule above takes them otherwise).
        static let invariantOnly: Set<String> = ["ConstantOfShape", "Expand", "GatherElements", "Range"]

        /// Op types `evaluate` runs, and the most elements each input and output may have.
        static let evaluated: Set<String> = ["ConstantOfShape", "Mul", "Add", "Sub", "Neg", "Cast", "Identity",
                                              "Unsqueeze", "Squeeze", "Concat", "Gather", "Reshape"]
        static let evaluatedElements = 64

        /// Records the value of an invariant node of `evaluated`'s types whose inputs are small
        /// constants (as constant folding would; the optimiser does not fold values computed from a
        /// Shape), so that the rules that need values (Equal on a size list) can read them.
        mutating func evaluate(_ node: Node) {
            guard Self.evaluated.contains(node.opType), node.isStandard, node.outputs.count == 1 else { return }
            var values: [Tensor?] = []
            for name in node.inputs {
                if name.isEmpty { values.append(nil); continue }
                guard let value = constants[name], value.shape.elementCount <= Self.evaluatedElements else { return }
                values.append(value)
            }
            if node.opType == "ConstantOfShape" {
                guard let dims = values.first??.integers(), dims.allSatisfy({ $0 >= 0 }) else { return }
                var count = 1
                for dim in dims {
                    let (product, overflow) = count.multipliedReportingOverflow(by: dim)
                    guard !overflow, product <= Self.evaluatedElements else { return }
                    count = product
                }
            }
            let context = ExecutionContext(pool: BufferPool(retainLimit: 0), parallelism: .serial)
            guard let compiled = try? OperatorRegistry.compile(node, opsets: opsets, constants: values),
                  let results = try? compiled.run(values, context), let result = results.first,
                  result.shape.elementCount <= Self.evaluatedElements else { return }
            constants[node.outputs[0]] = result
        }

        /// Every op type a rule above knows (an invariant node of another type is refused too).
        static let rules: Set<String> = [
            "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "Celu", "Softplus",
            "Softsign", "Gelu", "Mish", "Erf", "Exp", "Log", "Sqrt", "Reciprocal", "Abs", "Neg", "Floor", "Ceil",
            "Round", "Sign", "Sin", "Cos", "Not", "Identity", "Cast", "Activation", "PRelu", "Clip", "QuantizeDequantize",
            "Dropout", "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Mod", "Equal", "Less",
            "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor", "Where", "Conv", "ConvTranspose", "MaxPool",
            "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "BatchNormalization",
            "FusedBatchNormalization", "InstanceNormalization", "LRN", "DepthToSpace", "SpaceToDepth", "FusedConv",
            "LayerNormalization", "GroupNormalization", "Gemm", "FusedGemm", "MatMul", "Flatten", "Transpose",
            "Squeeze", "Unsqueeze", "Concat", "Split", "Softmax", "LogSoftmax", "Hardmax", "ArgMax", "ArgMin",
            "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
            "ReduceLogSumExp", "ReduceSumSquare", "Slice", "Gather", "Reshape", "Shape",
        ]
    }
}
