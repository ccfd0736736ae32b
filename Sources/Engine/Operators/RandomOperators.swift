import Foundation
import Kernels
import Tensors

/// The random generators: RandomUniform, RandomNormal and their *Like forms, Bernoulli and
/// Multinomial. Constant folding never folds them (`ConstantFolding.nondeterministic`).
///
/// `seed` makes a node reproducible: with it, every run of the node draws the same numbers for the
/// same output shape (a generator seeded from the seed's bits at each run), so a served model gives
/// the same answer to the same request whether or not it was batched with others of the same
/// shape. Without it each run draws from a fresh system-random seed. (ONNX leaves the sequence
/// to the implementation: no runtime matches another's numbers, only their distribution.)
enum RandomOperators {
    /// No input; an output of a floating-point T.
    static let generatorContract = OperatorContract(inputs: [], outputs: [.init("output", "T")], types: ["T": ElementTypes.floatingPoint])
    /// An input of any T1 (its shape is taken); an output of a floating-point T2.
    static let likeContract = OperatorContract(inputs: [.init("input", "T1")], outputs: [.init("output", "T2")],
                                               types: ["T1": ElementTypes.allOfOpset13, "T2": ElementTypes.floatingPoint])

    static let definitions: [OperatorDefinition] = [
        // The output's element type comes from `dtype` (or the input's, for the *Like forms), checked
        // by the operator.
        OperatorDefinition("RandomUniform", versions: [1, 22], traits: .random, contract: generatorContract) {
            try RandomTensor($0, .uniform, like: false)
        },
        OperatorDefinition("RandomNormal", versions: [1, 22], traits: .random, contract: generatorContract) {
            try RandomTensor($0, .normal, like: false)
        },
        OperatorDefinition("RandomUniformLike", versions: [1, 22], traits: .random, contract: likeContract) {
            try RandomTensor($0, .uniform, like: true)
        },
        OperatorDefinition("RandomNormalLike", versions: [1, 22], traits: .random, contract: likeContract) {
            try RandomTensor($0, .normal, like: true)
        },
        OperatorDefinition("Bernoulli", versions: [15, 22], traits: .random, contract: OperatorContract(
            inputs: [.init("input", "T1")], outputs: [.init("output", "T2")],
            types: ["T1": ElementTypes.floatingPoint, "T2": bernoulliTypes])) { try Bernoulli($0) },
        OperatorDefinition("Multinomial", versions: [7, 22], traits: .random, contract: OperatorContract(
            inputs: [.init("input", "T1")], outputs: [.init("output", "T2")],
            types: ["T1": ElementTypes.floatingPoint, "T2": [.int32, .int64]])) { try Multinomial($0) },
    ]

    /// Element types the generators write.
    static let outputTypes: Set<DataType> = [.float16, .float, .double]

    /// Element types Bernoulli writes (its `dtype`).
    static let bernoulliTypes = ElementTypes.numeric.union([.bool])

    /// The `dtype` attribute as a type in `allowed`, or nil when absent.
    static func dataType(_ context: OperatorContext, allowed: Set<DataType>) throws -> DataType? {
        guard let code = try context.int("dtype") else { return nil }
        guard let type = Int32(exactly: code).flatMap(DataType.init(rawValue:)), allowed.contains(type) else {
            throw OpError("dtype \(code) is not one of: \(ElementTypes.names(allowed))")
        }
        return type
    }
}

/// Where a random node's numbers come from: its `seed` attribute, or the system's generator.
struct RandomSource: Sendable {
    let seed: UInt64?

    init(_ context: OperatorContext) throws {
        seed = try context.float("seed").map { UInt64($0.bitPattern) }
    }

    func generator() -> SplitMix64 { SplitMix64(seed: seed ?? UInt64.random(in: .min ... .max)) }
}

/// SplitMix64 (Steele, Lea and Flood 2014): a small, fast generator with a 64-bit state, enough for
/// sampling (not for cryptography).
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1), with 53 random bits.
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Standard normal (Box–Muller).
    mutating func normal() -> Double {
        let u = 1 - unit()  // (0, 1]: the logarithm stays finite
        return (-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * Double.pi * unit())
    }
}

/// RandomUniform (`low`, `high`) and RandomNormal (`mean`, `scale`) of the `shape` attribute, or,
/// for the *Like forms, of the input's shape (and by default its type).
struct RandomTensor: Operator {
    enum Distribution { case uniform, normal }
    let distribution: Distribution
    let like: Bool
    let shape: Shape?
    let dataType: DataType?
    let a: Double
    let b: Double
    let source: RandomSource

    init(_ context: OperatorContext, _ distribution: Distribution, like: Bool) throws {
        self.distribution = distribution
        self.like = like
        dataType = try RandomOperators.dataType(context, allowed: RandomOperators.outputTypes)
        switch distribution {
        case .uniform: (a, b) = (Double(try context.float("low", default: 0)), Double(try context.float("high", default: 1)))
        case .normal: (a, b) = (Double(try context.float("mean", default: 0)), Double(try context.float("scale", default: 1)))
        }
        source = try RandomSource(context)
        if like {
            shape = nil
        } else {
            guard let dims = try context.ints("shape") else { throw OpError("attribute 'shape' is required") }
            shape = try Layout.checkedShape(dims, "shape")
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        if !like { return [TensorType(dataType ?? .float, shape.map { $0.dims.map { .fixed($0) } })] }
        guard let x = inputs.type(0) else { return [] }
        let type = dataType ?? x.dataType
        try checkElementType(type, RandomOperators.outputTypes, role: "output")
        return [TensorType(type, x.dims)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let outputShape: Shape, type: DataType
        if like {
            let x = try inputs.required(0)
            (outputShape, type) = (x.shape, dataType ?? x.dataType)
            try checkElementType(type, RandomOperators.outputTypes, role: "output")
        } else {
            guard let shape else { throw OpError("attribute 'shape' is required") }
            (outputShape, type) = (shape, dataType ?? .float)
        }
        let y = try context.allocate(.double, outputShape)
        let values = y.mutablePointer(as: Double.self)
        var generator = source.generator()
        switch distribution {
        case .uniform: for i in 0..<y.elementCount { values[i] = a + (b - a) * generator.unit() }
        case .normal: for i in 0..<y.elementCount { values[i] = a + b * generator.normal() }
        }
        return [try convert(y, to: type, context)]
    }
}

/// Bernoulli (15, 22): 1 with probability `input[i]`, else 0, in `dtype` (default the input's type).
struct Bernoulli: Operator {
    let dataType: DataType?
    let source: RandomSource

    init(_ context: OperatorContext) throws {
        dataType = try RandomOperators.dataType(context, allowed: RandomOperators.bernoulliTypes)
        source = try RandomSource(context)
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(dataType ?? x.dataType, x.dims)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let probabilities = x.doubles()
        let y = try context.allocate(.double, x.shape)
        let values = y.mutablePointer(as: Double.self)
        var generator = source.generator()
        for (i, p) in probabilities.enumerated() {
            guard p >= 0 && p <= 1 else { throw OpError.invalidArgument("probability \(p) at element \(i) is not in [0, 1]") }
            values[i] = generator.unit() < p ? 1 : 0
        }
        return [try convert(y, to: dataType ?? x.dataType, context)]
    }
}

/// Multinomial (7, 22): for each row of unnormalised log-probabilities [batch, classes],
/// `sample_size` class indices drawn with probability proportional to exp(input), in `dtype`
/// (int32, the default, or int64).
struct Multinomial: Operator {
    let samples: Int
    let dataType: DataType
    let source: RandomSource

    init(_ context: OperatorContext) throws {
        samples = try context.int("sample_size", default: 1)
        guard samples >= 0 && samples <= Layout.maximumElementCount else { throw OpError("sample_size \(samples) is out of range") }
        dataType = try RandomOperators.dataType(context, allowed: [.int32, .int64]) ?? .int32
        source = try RandomSource(context)
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(dataType, x.dims.map { [$0.first ?? .unknown, .fixed(samples)] })]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        guard x.shape.rank == 2 else { throw OpError.invalidArgument("input must be [batch, classes], got \(x.shape)") }
        let batch = x.shape[0], classes = x.shape[1]
        guard classes > 0 || batch == 0 else { throw OpError.invalidArgument("input has no classes to draw from") }
        let y = try context.allocate(.int64, try Layout.checkedShape([batch, samples]))
        let output = y.mutablePointer(as: Int64.self)
        let logits = x.doubles()
        var generator = source.generator()
        var cumulative = [Double](repeating: 0, count: classes)
        for row in 0..<batch {
            let base = row * classes
            let largest = logits[base..<(base + classes)].max() ?? 0
            var total = 0.0
            for c in 0..<classes {
                total += Foundation.exp(logits[base + c] - largest)
                cumulative[c] = total
            }
            guard total.isFinite && total > 0 else { throw OpError.invalidArgument("row \(row) holds no finite log-probabilities") }
            for s in 0..<samples {
                let draw = generator.unit() * total
                // The first class whose running total passes the draw (binary search).
                var low = 0, high = classes - 1
                while low < high {
                    let middle = (low + high) / 2
                    if cumulative[middle] > draw { high = middle } else { low = middle + 1 }
                }
                output[row * samples + s] = Int64(low)
            }
        }
        return [try convert(y, to: dataType, context)]
    }
}
