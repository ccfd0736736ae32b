#if canImport(Glibc)
import Glibc
#endif
import Tensors

/// The optimisers of domain `ai.onnx.preview.training` (opset 1), run as inference-time operators:
/// one update step, as onnx.reference computes it. A node updates N tensors at once: its inputs are
/// the learning rate R and the update count T (scalars), then N tensors X, their N gradients G and
/// N accumulators of each kind (Adagrad: H; Momentum: V; Adam: V, then H); its outputs are the N
/// new X, then the N new accumulators of each kind.
enum TrainingOperators {
    static let domain = "ai.onnx.preview.training"

    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("Adagrad", versions: [1], contract: contract) { try OptimizerStep(adagrad: $0) },
        OperatorDefinition("Adam", versions: [1], contract: contract) { try OptimizerStep(adam: $0) },
        OperatorDefinition("Momentum", versions: [1], contract: contract) { try OptimizerStep(momentum: $0) },
    ]

    /// R (float or double), T (int64), then the tensors and their state, each float or double
    /// (heterogeneous: one type per tensor, which its gradient and state share; the operator checks that).
    static let contract = OperatorContract(
        inputs: [.init("R", "T1"), .init("T", "T2"), .init("inputs", "T3", .variadic(min: 1), homogeneous: false)],
        outputs: [.init("outputs", "T3", .variadic(min: 1), homogeneous: false)],
        types: ["T1": [.float, .double], "T2": [.int64], "T3": [.float, .double]])
}

/// One step of Adagrad, Adam or Momentum over N tensors (see `TrainingOperators`). Values compute
/// in double; X, G and the accumulators are float or double, one shape per tensor and its state.
struct OptimizerStep: Operator {
    enum Rule {
        /// `r' = r / (1 + t·decay)`, `g' = norm·x + g`, `h' = h + g'²`, `x' = x − r'·g' / (√h' + ε)`.
        case adagrad(decay: Double, epsilon: Double, norm: Double)
        /// `g' = norm·x + g`, `v' = α·v + (1 − α)·g'`, `h' = β·h + (1 − β)·g'²`,
        /// `r' = r·√(1 − βᵗ) / (1 − αᵗ)` when t > 0 (else r), `x' = (1 − normPost)·(x − r'·v' / (√h' + ε))`.
        case adam(alpha: Double, beta: Double, epsilon: Double, norm: Double, normPost: Double)
        /// `g' = norm·x + g`, `v' = α·v + β'·g'` with β' = β when t > 0 (else 1), and
        /// `x' = x − r·v'` (standard) or `x' = x − r·(g' + α·v')` (Nesterov).
        case momentum(alpha: Double, beta: Double, norm: Double, nesterov: Bool)

        /// Accumulators per tensor.
        var accumulators: Int {
            switch self {
            case .adagrad, .momentum: 1
            case .adam: 2
            }
        }
    }

    let rule: Rule
    /// N, the tensors the node updates.
    let tensors: Int

    init(adagrad context: OperatorContext) throws {
        try self.init(.adagrad(decay: Double(try context.float("decay_factor", default: 0)),
                               epsilon: Double(try context.float("epsilon", default: 1e-6)),
                               norm: Double(try context.float("norm_coefficient", default: 0))), context)
    }

    init(adam context: OperatorContext) throws {
        try self.init(.adam(alpha: Double(try context.float("alpha", default: 0.9)),
                            beta: Double(try context.float("beta", default: 0.999)),
                            epsilon: Double(try context.float("epsilon", default: 1e-6)),
                            norm: Double(try context.float("norm_coefficient", default: 0)),
                            normPost: Double(try context.float("norm_coefficient_post", default: 0))), context)
    }

    init(momentum context: OperatorContext) throws {
        let mode = try context.required("mode", context.string)
        guard mode == "standard" || mode == "nesterov" else {
            throw OpError.invalidArgument("mode must be \"standard\" or \"nesterov\", got \"\(mode)\"")
        }
        try self.init(.momentum(alpha: Double(try context.required("alpha", context.float)),
                                beta: Double(try context.required("beta", context.float)),
                                norm: Double(try context.required("norm_coefficient", context.float)),
                                nesterov: mode == "nesterov"), context)
    }

    private init(_ rule: Rule, _ context: OperatorContext) throws {
        self.rule = rule
        let perTensor = 2 + rule.accumulators
        let variadic = context.inputCount - 2
        guard variadic > 0, variadic % perTensor == 0 else {
            throw OpError.invalidArgument("expected R, T and \(perTensor) inputs per updated tensor, got \(context.inputCount) inputs")
        }
        tensors = variadic / perTensor
        guard context.node.outputs.count == tensors * (1 + rule.accumulators) else {
            throw OpError.invalidArgument("\(tensors) updated tensors need \(tensors * (1 + rule.accumulators)) outputs, "
                                          + "got \(context.node.outputs.count)")
        }
        for index in 0..<context.inputCount where !context.hasInput(index) {
            throw OpError.invalidArgument("input \(index) is missing: every input is required")
        }
    }

    /// Input position of the `kind`-th group (0: X, 1: G, 2...: accumulators) for tensor `i`.
    private func position(_ kind: Int, _ i: Int) -> Int { 2 + kind * tensors + i }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        var outputs = [TensorType?](repeating: nil, count: tensors * (1 + rule.accumulators))
        for i in 0..<tensors {
            let x = inputs.type(position(0, i))
            for kind in 0..<(2 + rule.accumulators) {
                guard let type = inputs.type(position(kind, i)) else { continue }
                if let x, type.dataType != x.dataType {
                    throw OpError.invalidArgument("input \(position(kind, i)) is \(type.dataType), its tensor X is \(x.dataType)")
                }
            }
            outputs[i] = x
            for accumulator in 0..<rule.accumulators {
                outputs[(1 + accumulator) * tensors + i] = inputs.type(position(2 + accumulator, i)) ?? x
            }
        }
        return outputs
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let r = try Self.scalar(inputs.required(0), role: "R")
        let t = try Self.scalar(inputs.required(1), role: "T")
        var updated = [Tensor](), accumulated = [Tensor]()
        for i in 0..<tensors {
            let group = try (0..<(2 + rule.accumulators)).map { try inputs.required(position($0, i)) }
            for (kind, tensor) in group.enumerated() {
                guard tensor.dataType == group[0].dataType else {
                    throw OpError.invalidArgument("input \(position(kind, i)) is \(tensor.dataType), its tensor X is \(group[0].dataType)")
                }
                guard tensor.shape.dims == group[0].shape.dims else {
                    throw OpError.invalidArgument("input \(position(kind, i)) has shape \(tensor.shape), its X \(group[0].shape)")
                }
            }
            let outputs = try group.dropFirst(2).map { try context.allocate($0.dataType, $0.shape) }
            let x = try context.allocate(group[0].dataType, group[0].shape)
            step(group, into: [x] + outputs, r: r, t: t)
            updated.append(x)
            accumulated += outputs
        }
        // Outputs: every new X, then every tensor's first accumulator, then its second.
        let perKind = (0..<rule.accumulators).flatMap { kind in (0..<tensors).map { accumulated[$0 * rule.accumulators + kind] } }
        return updated + perKind
    }

    /// The one value of a scalar (or one-element) tensor, as a double.
    private static func scalar(_ tensor: Tensor, role: String) throws -> Double {
        guard tensor.elementCount == 1 else { throw OpError.invalidArgument("\(role) must be a scalar, got shape \(tensor.shape)") }
        return switch tensor.dataType {
        case .float: Double(tensor.scalars(as: Float.self)[0])
        case .double: tensor.scalars(as: Double.self)[0]
        default: Double(tensor.scalars(as: Int64.self)[0])
        }
    }

    /// One update of `inputs` (X, G, accumulators) into `outputs` (X', accumulators'), of one type.
    private func step(_ inputs: [Tensor], into outputs: [Tensor], r: Double, t: Double) {
        let values = inputs.map { $0.dataType == .float ? $0.scalars(as: Float.self).map(Double.init) : $0.scalars(as: Double.self) }
        var results = [[Double]](repeating: [Double](repeating: 0, count: values[0].count), count: outputs.count)
        for e in values[0].indices {
            let x = values[0][e], g = values[1][e]
            switch rule {
            case let .adagrad(decay, epsilon, norm):
                let rate = r / (1 + t * decay), gradient = norm * x + g
                let h = values[2][e] + gradient * gradient
                results[0][e] = x - rate * gradient / (h.squareRoot() + epsilon)
                results[1][e] = h
            case let .adam(alpha, beta, epsilon, norm, normPost):
                let gradient = norm * x + g
                let v = alpha * values[2][e] + (1 - alpha) * gradient
                let h = beta * values[3][e] + (1 - beta) * gradient * gradient
                let rate = t > 0 ? r * (1 - pow(beta, t)).squareRoot() / (1 - pow(alpha, t)) : r
                results[0][e] = (1 - normPost) * (x - rate * (v / (h.squareRoot() + epsilon)))
                results[1][e] = v
                results[2][e] = h
            case let .momentum(alpha, beta, norm, nesterov):
                let gradient = norm * x + g
                let v = alpha * values[2][e] + (t > 0 ? beta : 1) * gradient
                results[0][e] = nesterov ? x - r * (gradient + alpha * v) : x - r * v
                results[1][e] = v
            }
        }
        for (output, result) in zip(outputs, results) {
            if output.dataType == .float {
                let target = output.mutablePointer(as: Float.self)
                for (e, value) in result.enumerated() { target[e] = Float(value) }
            } else {
                let target = output.mutablePointer(as: Double.self)
                for (e, value) in result.enumerated() { target[e] = value }
            }
        }
    }
}
