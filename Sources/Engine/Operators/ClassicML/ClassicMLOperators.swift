import Foundation
import Kernels
import Tensors

/// The `ai.onnx.ml` domain: what scikit-learn (skl2onnx), LightGBM, XGBoost (onnxmltools) emit.
/// One line per operator; the versions are every `since_version` of the domain's schemas we follow.
package enum ClassicMLOperators {
    package static let domain = "ai.onnx.ml"

    static let definitions: [OperatorDefinition] = [
        OperatorDefinition("TreeEnsembleClassifier", domain: domain, versions: [1, 3], contract: classifier) {
            try TreeEnsembleClassifier($0)
        },
        OperatorDefinition("TreeEnsembleRegressor", domain: domain, versions: [1, 3], contract: regressor) { try TreeEnsembleRegressor($0) },
        OperatorDefinition("TreeEnsemble", domain: domain, versions: [5], contract: OperatorContract(
            inputs: [.init("X", "T")], outputs: [.init("Y", "T")], types: ["T": TreeEnsemble.types])) { try TreeEnsemble($0) },
        OperatorDefinition("LinearClassifier", domain: domain, versions: [1], contract: classifier) { try LinearClassifier($0) },
        OperatorDefinition("LinearRegressor", domain: domain, versions: [1], contract: regressor) { try LinearRegressor($0) },
        OperatorDefinition("SVMClassifier", domain: domain, versions: [1], contract: classifier) { try SVMClassifier($0) },
        OperatorDefinition("SVMRegressor", domain: domain, versions: [1], contract: regressor) { try SVMRegressor($0) },
        OperatorDefinition("Scaler", domain: domain, versions: [1], contract: .unary(FeatureRows.types, result: .float)) { try Scaler($0) },
        OperatorDefinition("Normalizer", domain: domain, versions: [1], contract: .unary(FeatureRows.types, result: .float)) {
            try Normalizer($0)
        },
        OperatorDefinition("Binarizer", domain: domain, versions: [1], contract: .unary(FeatureRows.types)) { try Binarizer($0) },
        OperatorDefinition("Imputer", domain: domain, versions: [1], contract: .unary(FeatureRows.types)) { try Imputer($0) },
        OperatorDefinition("OneHotEncoder", domain: domain, versions: [1], contract: OperatorContract(
            inputs: [.init("X", "T")], outputs: [.init("Y", .float)], types: ["T": [.string, .int64, .int32, .float, .double]])) {
            try OneHotEncoder($0)
        },
        // The input's type must also be the keys' (attributes), which the operator checks.
        OperatorDefinition("LabelEncoder", domain: domain, versions: [1, 2, 4], contracts: { version in
            let types: Set<DataType> = switch version {
            case 1: [.int64, .string]
            case 2: [.int64, .string, .float]
            default: [.int64, .string, .float, .double, .int16, .int32]
            }
            return OperatorContract(inputs: [.init("X", "T1")], outputs: [.init("Y", "T2")], types: ["T1": types, "T2": types])
        }) { try LabelEncoder($0) },
        OperatorDefinition("CategoryMapper", domain: domain, versions: [1], contract: OperatorContract(
            inputs: [.init("X", "T1")], outputs: [.init("Y", "T2")], types: ["T1": [.int64, .string], "T2": [.int64, .string]])) {
            try CategoryMapper($0)
        },
        OperatorDefinition("ArrayFeatureExtractor", domain: domain, versions: [1], contract: OperatorContract(
            inputs: [.init("X", "T"), .init("Y", .int64)], outputs: [.init("Z", "T")],
            types: ["T": [.float, .double, .int32, .int64, .string]])) { _ in ArrayFeatureExtractor() },
        // Each input of its own type.
        OperatorDefinition("FeatureVectorizer", domain: domain, versions: [1], contract: OperatorContract(
            inputs: [.init("X", "T1", .variadic(min: 1), homogeneous: false)], outputs: [.init("Y", .float)],
            types: ["T1": FeatureRows.types])) { try FeatureVectorizer($0) },
        // Its output, ONNX's seq(map(K, float)), is carried as the float tensor of the maps' values
        // (a graph output only, see InferenceSession+MapOutputs): T lists no type of ours.
        OperatorDefinition("ZipMap", domain: domain, versions: [1], contract: OperatorContract(
            inputs: [.init("X", .float)], outputs: [.init("Z", "T")], types: ["T": []])) { try ZipMap($0) },
        OperatorDefinition("CastMap", domain: domain, versions: [1], contract: OperatorContract(
            inputs: [.init("X", "T1")], outputs: [.init("Y", "T2")], types: ["T2": [.float, .int64, .string]],
            valueTypes: ["T1": OperatorContract.ValueType.all([.map(key: .int64)], [.float, .string])])) { try CastMap($0) },
        // The key type is the vocabulary's (the operator's check).
        OperatorDefinition("DictVectorizer", domain: domain, versions: [1], contract: OperatorContract(
            inputs: [.init("X", "T1")], outputs: [.init("Y", "T2")], types: ["T2": [.double, .float, .int64, .string]],
            valueTypes: ["T1": OperatorContract.ValueType.all([.map(key: .int64)], [.string, .float, .double])
                .union(OperatorContract.ValueType.all([.map(key: .string)], [.int64, .float, .double]))])) { try DictVectorizer($0) },
    ]

    /// `since_version`s of every `ai.onnx.ml` schema (onnx 1.23), for the version in effect under
    /// an imported opset of the domain.
    package static let history: [String: [Int]] = [
        "ArrayFeatureExtractor": [1], "Binarizer": [1], "CastMap": [1], "CategoryMapper": [1],
        "DictVectorizer": [1], "FeatureVectorizer": [1], "Imputer": [1], "LabelEncoder": [1, 2, 4],
        "LinearClassifier": [1], "LinearRegressor": [1], "Normalizer": [1], "OneHotEncoder": [1],
        "SVMClassifier": [1], "SVMRegressor": [1], "Scaler": [1], "TreeEnsemble": [5],
        "TreeEnsembleClassifier": [1, 3, 5], "TreeEnsembleRegressor": [1, 3, 5], "ZipMap": [1],
    ]

    /// Feature rows X of T1 to labels Y (int64 or string, as the attributes give them) and float
    /// scores Z; the shape rules are the operators'.
    static let classifier = OperatorContract(inputs: [.init("X", "T1")], outputs: [.init("Y", "T2"), .init("Z", .float)],
                                             types: ["T1": FeatureRows.types, "T2": [.int64, .string]])
    /// Feature rows X of T to float predictions Y.
    static let regressor = OperatorContract(inputs: [.init("X", "T")], outputs: [.init("Y", .float)], types: ["T": FeatureRows.types])
}

// MARK: Inputs

/// The rows of a classic-ML input as doubles: [N, F] (a rank-1 input is one row; higher ranks keep
/// the first axis as rows, as ONNX Runtime does).
struct FeatureRows {
    let count: Int
    let width: Int
    let values: [Double]

    /// Element types of the features (the classifiers' and regressors' contracts).
    static let types: Set<DataType> = [.float, .double, .int64, .int32]

    /// The rows of `x`, whose element type the operator's contract checked.
    init(_ x: Tensor) throws {
        switch x.shape.rank {
        case 0: throw OpError.invalidArgument("input must have at least one dimension, got a scalar")
        case 1: (count, width) = (1, x.shape[0])
        default:
            count = x.shape[0]
            width = count == 0 ? 0 : x.elementCount / count
        }
        values = x.doubles()
    }

    /// The row shape ONNX Runtime gives outputs with one value per row: [N].
    var rowShape: Shape { [count] }
}

// MARK: Attributes

extension OperatorContext {
    /// A float-list attribute or its `<name>_as_tensor` double twin, as doubles (nil when neither is set).
    func reals(_ name: String) throws -> [Double]? {
        if let tensor = try tensor(name + "_as_tensor") {
            guard tensor.dataType.isNumeric else { throw OpError("attribute '\(name)_as_tensor' must be numeric, not \(tensor.dataType)") }
            return tensor.doubles()
        }
        return try floats(name)?.map(Double.init)
    }

    /// Class labels from `<prefix>_int64s`/`<prefix>_ints` or `<prefix>_strings` (exactly one).
    func classLabels(ints intName: String, strings stringName: String) throws -> ClassLabels {
        let ints = try ints(intName) ?? [], strings = try strings(stringName) ?? []
        if !ints.isEmpty && !strings.isEmpty { throw OpError("set only one of '\(intName)' and '\(stringName)'") }
        return strings.isEmpty ? .integers(ints.map(Int64.init)) : .strings(strings)
    }
}

/// The labels a classifier picks from.
enum ClassLabels: Sendable {
    case integers([Int64])
    case strings([String])

    var count: Int {
        switch self {
        case .integers(let values): values.count
        case .strings(let values): values.count
        }
    }

    var dataType: DataType {
        if case .strings = self { return .string }
        return .int64
    }

    /// A label tensor from label indices (nil index: `fallback(positive)`, ONNX Runtime's literal
    /// 1/0 when a binary decision is made without two labels).
    func tensor(_ picks: [LabelPick], _ shape: Shape) -> Tensor {
        switch self {
        case .integers(let labels):
            return Tensor(picks.map { (pick) -> Int64 in
                switch pick {
                case .index(let index): index < labels.count ? labels[index] : 0
                case .literal(let positive): positive ? 1 : 0
                }
            }, shape: shape)
        case .strings(let labels):
            return Tensor(strings: picks.map { (pick) -> String in
                switch pick {
                case .index(let index): index < labels.count ? labels[index] : ""
                case .literal(let positive): positive ? "1" : "0"
                }
            }, shape: shape)
        }
    }
}

/// A classifier's decision for one row: a label index, or ONNX Runtime's literal positive/negative
/// label (1 or 0, "1" or "0") used when a binary decision has no second label to name.
enum LabelPick: Sendable, Equatable {
    case index(Int)
    case literal(positive: Bool)
}

// MARK: Score transforms

/// What a classic-ML operator applies to its scores (`post_transform`).
enum ScoreTransform: Sendable {
    case none, logistic, softmax, softmaxZero, probit

    init(name: String) throws {
        switch name {
        case "NONE": self = .none
        case "LOGISTIC": self = .logistic
        case "SOFTMAX": self = .softmax
        case "SOFTMAX_ZERO": self = .softmaxZero
        case "PROBIT": self = .probit
        default: throw OpError("unknown post_transform '\(name)' (expected NONE, LOGISTIC, SOFTMAX, SOFTMAX_ZERO or PROBIT)")
        }
    }

    /// The integer codes of `TreeEnsemble` (opset 5).
    init(code: Int) throws {
        switch code {
        case 0: self = .none
        case 1: self = .softmax
        case 2: self = .logistic
        case 3: self = .softmaxZero
        case 4: self = .probit
        default: throw OpError("unknown post_transform \(code) (expected 0 to 4)")
        }
    }

    init(_ context: OperatorContext) throws { try self.init(name: try context.string("post_transform", default: "NONE")) }

    /// Applies the transform to a row of two or more scores (ONNX Runtime's `write_scores`).
    func apply(_ scores: UnsafeMutableBufferPointer<Float>) {
        switch self {
        case .none: break
        case .logistic: for index in scores.indices { scores[index] = MLMath.logistic(scores[index]) }
        case .probit: for index in scores.indices { scores[index] = MLMath.probit(scores[index]) }
        case .softmax: MLMath.softmax(scores)
        case .softmaxZero: MLMath.softmaxZero(scores)
        }
    }

    /// Applies the transform to every row of `scores` when rows have two or more scores; with one
    /// score per row only PROBIT applies (ONNX Runtime's `batched_update_scores_inplace`).
    func apply(rows scores: UnsafeMutablePointer<Float>, count: Int, width: Int) {
        guard width > 0 else { return }
        if width == 1 {
            if self == .probit { for index in 0..<count { scores[index] = MLMath.probit(scores[index]) } }
            return
        }
        for row in 0..<count { apply(UnsafeMutableBufferPointer(start: scores + row * width, count: width)) }
    }

    /// The two scores ONNX Runtime writes for a binary decision held in one score `score`
    /// (`write_binary_scores`); `mode` says how the weights and the winner look (-1: one score).
    func binaryScores(_ score: Float, mode: Int) -> (Float, Float?) {
        if self == .probit { return (MLMath.probit(score), nil) }
        switch mode {
        case 0, 1: return (1 - score, score)
        case 2: return self == .logistic ? (MLMath.logistic(-score), MLMath.logistic(score)) : (-score, score)
        case 3: return self == .logistic ? (MLMath.logistic(-score), MLMath.logistic(score)) : (score, -score)
        default: return (score, nil)
        }
    }
}

/// ONNX Runtime's float formulas for the classic-ML transforms (its probit uses an approximate
/// inverse error function, which we copy so that results agree).
enum MLMath {
    static func logistic(_ value: Float) -> Float {
        let v = 1 / (1 + Foundation.exp(-Swift.abs(value)))
        return value < 0 ? 1 - v : v
    }

    static func erfInv(_ value: Float) -> Float {
        let sign: Float = value < 0 ? -1 : 1
        let x = (1 - value) * (1 + value)
        let lnx = Foundation.log(x)
        let v = 2 / (3.14159 * 0.147) + 0.5 * lnx
        let v2 = 1 / 0.147 * lnx
        let v3 = -v + (v * v - v2).squareRoot()
        return sign * v3.squareRoot()
    }

    static func probit(_ value: Float) -> Float { 1.41421356 * erfInv(2 * value - 1) }

    static func softmax(_ values: UnsafeMutableBufferPointer<Float>) {
        var maximum = -Float.greatestFiniteMagnitude
        for value in values where value > maximum { maximum = value }
        var sum: Float = 0
        for index in values.indices {
            values[index] = Foundation.exp(values[index] - maximum)
            sum += values[index]
        }
        for index in values.indices { values[index] /= sum }
    }

    /// Softmax that leaves zeros (|x| ≤ 1e-7) out of the sum, as ONNX Runtime's SOFTMAX_ZERO.
    static func softmaxZero(_ values: UnsafeMutableBufferPointer<Float>) {
        var maximum = -Float.greatestFiniteMagnitude
        for value in values where value > maximum { maximum = value }
        let scale = Foundation.exp(-maximum)
        var sum: Float = 0
        for index in values.indices {
            let value = values[index]
            if value > 0.0000001 || value < -0.0000001 {
                values[index] = Foundation.exp(value - maximum)
                sum += values[index]
            } else {
                values[index] = value * scale
            }
        }
        for index in values.indices { values[index] /= sum }
    }
}
