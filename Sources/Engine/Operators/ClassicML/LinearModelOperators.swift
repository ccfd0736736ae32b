import Foundation
import Kernels
import Tensors

/// The row dimension of a classic-ML input type ([F] is one row).
func rowDim(_ x: TensorType?) -> Dim {
    guard let dims = x?.dims else { return .unknown }
    return dims.count == 1 ? .fixed(1) : dims.first ?? .unknown
}

/// `rows` × `weights`ᵀ as floats, ONNX Runtime's way for these operators (inputs cast to float).
/// rows: [N, F], weights: [T, F] → [N, T].
private func dotProducts(_ rows: FeatureRows, _ weights: [Float], targets: Int) -> [Float] {
    var output = [Float](repeating: 0, count: rows.count * targets)
    let width = rows.width
    for row in 0..<rows.count {
        for target in 0..<targets {
            var sum: Float = 0
            for feature in 0..<width { sum += Float(rows.values[row * width + feature]) * weights[target * width + feature] }
            output[row * targets + target] = sum
        }
    }
    return output
}

// MARK: Linear models

/// LinearClassifier (ai.onnx.ml 1): scores = X · coefficientsᵀ + intercepts [N, classes]; the label
/// is the best class, or with one score and two labels the sign decides and the scores become
/// [1 - s, s] (as ONNX Runtime).
struct LinearClassifier: Operator {
    let coefficients: [Float]
    let intercepts: [Float]
    let labels: ClassLabels
    let transform: ScoreTransform
    let classCount: Int

    init(_ context: OperatorContext) throws {
        coefficients = try context.required("coefficients", context.floats)
        intercepts = try context.floats("intercepts") ?? []
        labels = try context.classLabels(ints: "classlabels_ints", strings: "classlabels_strings")
        transform = try ScoreTransform(context)
        classCount = intercepts.count
        guard classCount >= 1, coefficients.count % classCount == 0 else {
            throw OpError("\(coefficients.count) coefficients do not divide into \(classCount) classes (one intercept per class)")
        }
        guard classCount == 1 || labels.count >= classCount else {
            throw OpError("\(classCount) classes but \(labels.count) class labels")
        }
    }

    /// Two score columns for one coefficient row and two labels.
    var addsSecondClass: Bool { classCount == 1 && labels.count == 2 }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        let rows = rowDim(inputs.type(0))
        return [TensorType(labels.dataType, [rows]), TensorType(.float, [rows, .fixed(addsSecondClass ? 2 : classCount)])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let rows = try FeatureRows(try inputs.required(0))
        guard rows.width * classCount == coefficients.count else {
            throw OpError.invalidArgument("the input has \(rows.width) features per row; the model has \(coefficients.count / classCount)")
        }
        var scores = dotProducts(rows, coefficients, targets: classCount)
        for row in 0..<rows.count { for k in 0..<classCount { scores[row * classCount + k] += intercepts[k] } }
        var picks: [LabelPick] = []
        picks.reserveCapacity(rows.count)
        for row in 0..<rows.count {
            if classCount == 1 {
                let positive = scores[row] > 0
                picks.append(labels.count == 2 ? .index(positive ? 1 : 0) : .literal(positive: positive))
            } else {
                var best = 0
                for k in 1..<classCount where scores[row * classCount + k] > scores[row * classCount + best] { best = k }
                picks.append(.index(best))
            }
        }
        let width = addsSecondClass ? 2 : classCount
        let z = try context.allocate(.float, [rows.count, width])
        let output = z.mutablePointer(as: Float.self)
        if addsSecondClass {
            for row in 0..<rows.count {
                let (a, b) = transform.binaryScores(scores[row], mode: 1)
                output[row * 2] = a
                output[row * 2 + 1] = b ?? 0
            }
        } else {
            scores.withUnsafeBufferPointer { output.update(from: $0.baseAddress!, count: $0.count) }
            transform.apply(rows: output, count: rows.count, width: width)
        }
        return [labels.tensor(picks, rows.rowShape), z]
    }
}

/// LinearRegressor (ai.onnx.ml 1): Y = X · coefficientsᵀ + intercepts, float [N, targets].
struct LinearRegressor: Operator {
    let coefficients: [Float]
    let intercepts: [Float]
    let targets: Int
    let transform: ScoreTransform

    init(_ context: OperatorContext) throws {
        coefficients = try context.floats("coefficients") ?? []
        intercepts = try context.floats("intercepts") ?? []
        targets = try context.int("targets", default: 1)
        transform = try ScoreTransform(context)
        guard targets >= 1, coefficients.count % targets == 0 else {
            throw OpError("\(coefficients.count) coefficients do not divide into \(targets) targets")
        }
        guard intercepts.isEmpty || intercepts.count == targets else {
            throw OpError("\(intercepts.count) intercepts for \(targets) targets")
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        [TensorType(.float, [rowDim(inputs.type(0)), .fixed(targets)])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let rows = try FeatureRows(try inputs.required(0))
        guard rows.width * targets == coefficients.count else {
            throw OpError.invalidArgument("the input has \(rows.width) features per row; the model has \(coefficients.count / targets)")
        }
        let scores = dotProducts(rows, coefficients, targets: targets)
        let y = try context.allocate(.float, [rows.count, targets])
        let output = y.mutablePointer(as: Float.self)
        for row in 0..<rows.count {
            for k in 0..<targets { output[row * targets + k] = scores[row * targets + k] + (intercepts.isEmpty ? 0 : intercepts[k]) }
        }
        transform.apply(rows: output, count: rows.count, width: targets)
        return [y]
    }
}

// MARK: Support vector machines

/// The kernel of an SVM (`kernel_type`, `kernel_params` = [gamma, coef0, degree]).
struct SVMKernel: Sendable {
    enum Kind: Sendable { case linear, poly, rbf, sigmoid }
    var kind: Kind
    var gamma: Float = 0, coef0: Float = 0, degree: Float = 0

    init(_ context: OperatorContext) throws {
        switch try context.string("kernel_type", default: "LINEAR") {
        case "LINEAR": kind = .linear
        case "POLY": kind = .poly
        case "RBF": kind = .rbf
        case "SIGMOID": kind = .sigmoid
        case let other: throw OpError("unknown kernel_type '\(other)'")
        }
        let parameters = try context.floats("kernel_params") ?? []
        if !parameters.isEmpty {
            guard parameters.count == 3 else { throw OpError("kernel_params must hold gamma, coef0 and degree, got \(parameters.count) values") }
            (gamma, coef0, degree) = (parameters[0], parameters[1], parameters[2])
        }
    }

    /// k(x, v) for one row `x` and one vector `v` of `width` features; `bias` is added to a linear
    /// kernel (ONNX Runtime's `batched_kernel_dot`).
    func callAsFunction(_ x: UnsafePointer<Float>, _ v: UnsafePointer<Float>, width: Int, bias: Float = 0) -> Float {
        if kind == .rbf {
            var sum: Float = 0
            for feature in 0..<width {
                let difference = x[feature] - v[feature]
                sum += difference * difference
            }
            return Foundation.exp(-gamma * sum)
        }
        var dot: Float = 0
        for feature in 0..<width { dot += x[feature] * v[feature] }
        switch kind {
        case .linear: return dot + bias
        case .poly:
            let value = gamma * dot + coef0
            return degree == 2 ? value * value : degree == 3 ? value * value * value : Foundation.pow(value, degree)
        case .sigmoid: return Foundation.tanh(gamma * dot + coef0)
        case .rbf: return 0
        }
    }
}

/// SVMClassifier (ai.onnx.ml 1): libsvm's one-against-one SVC (support vectors) or a linear SVM
/// (coefficients only), with Platt probabilities when `prob_a`/`prob_b` are given. Labels and
/// scores follow ONNX Runtime, including its layout of the binary cases.
struct SVMClassifier: Operator {
    let kernel: SVMKernel
    let labels: ClassLabels
    let classCount: Int
    let vectorsPerClass: [Int]
    let vectorStarts: [Int]
    let vectorCount: Int
    let featureCount: Int
    let supportVectors: [Float]
    let coefficients: [Float]
    let rho: [Float]
    let probA: [Float]
    let probB: [Float]
    let transform: ScoreTransform
    /// Support vectors (SVC) rather than one coefficient row per class (linear).
    let usesVectors: Bool
    let weightsArePositive: Bool

    init(_ context: OperatorContext) throws {
        var kernel = try SVMKernel(context)
        labels = try context.classLabels(ints: "classlabels_ints", strings: "classlabels_strings")
        classCount = labels.count
        guard classCount >= 1 && classCount < 65536 else { throw OpError("the classifier needs between 1 and 65535 class labels, got \(classCount)") }
        vectorsPerClass = try context.ints("vectors_per_class") ?? []
        supportVectors = try context.floats("support_vectors") ?? []
        coefficients = try context.required("coefficients", context.floats)
        rho = try context.required("rho", context.floats)
        probA = try context.floats("prob_a") ?? []
        probB = try context.floats("prob_b") ?? []
        transform = try ScoreTransform(context)
        guard probA.count == probB.count else { throw OpError("prob_a has \(probA.count) values and prob_b \(probB.count)") }
        guard !coefficients.isEmpty else { throw OpError("coefficients are empty") }
        var starts: [Int] = [], total = 0
        for count in vectorsPerClass {
            guard count >= 0 && count <= supportVectors.count else { throw OpError("vectors_per_class has \(count)") }
            starts.append(total)
            total += count
        }
        vectorStarts = starts
        vectorCount = total
        usesVectors = total > 0
        let classifiers = classCount * (classCount - 1) / 2
        if usesVectors {
            guard vectorsPerClass.count == classCount else {
                throw OpError("vectors_per_class has \(vectorsPerClass.count) entries for \(classCount) classes")
            }
            guard supportVectors.count % total == 0 else { throw OpError("\(supportVectors.count) support vector values do not divide into \(total) vectors") }
            featureCount = supportVectors.count / total
            guard coefficients.count >= (classCount - 1) * total else {
                throw OpError("\(coefficients.count) coefficients; the model needs \((classCount - 1) * total)")
            }
            guard rho.count >= classifiers else { throw OpError("rho has \(rho.count) values; the model needs \(classifiers)") }
            guard probA.isEmpty || probA.count >= classifiers else { throw OpError("prob_a has \(probA.count) values; the model needs \(classifiers)") }
        } else {
            kernel.kind = .linear
            guard coefficients.count % classCount == 0 else { throw OpError("\(coefficients.count) coefficients do not divide into \(classCount) classes") }
            featureCount = coefficients.count / classCount
            guard !rho.isEmpty else { throw OpError("rho must have at least one value") }
        }
        self.kernel = kernel
        weightsArePositive = coefficients.allSatisfy { $0 >= 0 }
    }

    var classifierCount: Int { classCount * (classCount - 1) / 2 }
    var hasProbabilities: Bool { !probA.isEmpty }

    /// Columns of Z.
    var scoreWidth: Int {
        guard usesVectors && !hasProbabilities else { return classCount }
        return classCount > 2 ? classifierCount : 2
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        let rows = rowDim(inputs.type(0))
        return [TensorType(labels.dataType, [rows]), TensorType(.float, [rows, .fixed(scoreWidth)])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let rows = try FeatureRows(try inputs.required(0))
        guard rows.width == featureCount else {
            throw OpError.invalidArgument("the input has \(rows.width) features per row; the model has \(featureCount)")
        }
        let width = scoreWidth
        let z = try context.allocate(.float, [rows.count, width])
        let output = z.mutablePointer(as: Float.self)
        let x = rows.values.map(Float.init)
        var picks = [LabelPick](repeating: .index(0), count: rows.count)
        x.withUnsafeBufferPointer { x in
            picks.withUnsafeMutableBufferPointer { picks in
                context.parallelism.forEachChunk(rows.count, minimumChunk: 64) { range in
                    for row in range {
                        picks[row] = classify(x.baseAddress! + row * featureCount,
                                              into: UnsafeMutableBufferPointer(start: output + row * width, count: width))
                    }
                }
            }
        }
        return [labels.tensor(picks, rows.rowShape), z]
    }

    /// One row: its label, and its scores written to `z`.
    private func classify(_ x: UnsafePointer<Float>, into z: UnsafeMutableBufferPointer<Float>) -> LabelPick {
        var maxClass = 0
        var maxWeight: Float = 0
        var scoreCount = classCount
        var mode = -1
        if !usesVectors {
            coefficients.withUnsafeBufferPointer { coefficients in
                for k in 0..<classCount { z[k] = kernel(x, coefficients.baseAddress! + k * featureCount, width: featureCount, bias: rho[0]) }
            }
            for k in 1..<max(classCount, 1) where z[k] > z[maxClass] { maxClass = k }
            maxWeight = z[maxClass]
        } else {
            let kernels: [Float] = supportVectors.withUnsafeBufferPointer { vectors in
                (0..<vectorCount).map { kernel(x, vectors.baseAddress! + $0 * featureCount, width: featureCount) }
            }
            var votes = [Int](repeating: 0, count: classCount)
            var pairScores = [Float](repeating: 0, count: classifierCount)
            var index = 0
            for i in 0..<(classCount - 1) {
                for j in (i + 1)..<classCount {
                    var sum = 0.0
                    for m in 0..<vectorsPerClass[i] {
                        sum += Double(coefficients[(j - 1) * vectorCount + vectorStarts[i] + m] * kernels[vectorStarts[i] + m])
                    }
                    for m in 0..<vectorsPerClass[j] {
                        sum += Double(coefficients[i * vectorCount + vectorStarts[j] + m] * kernels[vectorStarts[j] + m])
                    }
                    sum += Double(rho[index])
                    pairScores[index] = Float(sum)
                    votes[sum > 0 ? i : j] += 1
                    index += 1
                }
            }
            for k in 1..<classCount where votes[k] > votes[maxClass] { maxClass = k }
            if hasProbabilities {
                let probabilities = pairwiseProbabilities(pairScores)
                for k in 0..<classCount { z[k] = probabilities[k] }
            } else {
                scoreCount = classifierCount
                for k in 0..<classifierCount { z[k] = pairScores[k] }
                if classCount <= 2 { mode = transform == .none ? 2 : 0 }
            }
        }
        let pick: LabelPick
        if classifierCount == 1 {
            if !hasProbabilities && ((weightsArePositive && maxWeight >= 0.5) || (maxWeight > 0 && !weightsArePositive)) {
                pick = .index(1)
            } else {
                pick = .index(maxClass)
            }
        } else {
            pick = .index(maxClass)
        }
        if scoreCount == 1 {
            if transform == .probit {
                z[0] = MLMath.probit(z[0])
            } else if mode >= 0 {
                let (a, b) = transform.binaryScores(z[0], mode: mode)
                z[0] = a
                if z.count > 1 { z[1] = b ?? 0 }
            }
        } else if scoreCount > 1 {
            transform.apply(UnsafeMutableBufferPointer(rebasing: z[0..<scoreCount]))
        }
        return pick
    }

    /// Class probabilities from the pairwise decision values (Platt scaling, then libsvm's
    /// `multiclass_probability`), in float as ONNX Runtime computes them.
    private func pairwiseProbabilities(_ scores: [Float]) -> [Float] {
        let k = classCount
        var r = [Float](repeating: 0, count: k * k)
        var index = 0
        for i in 0..<(k - 1) {
            for j in (i + 1)..<k {
                let value = 1 - MLMath.logistic(scores[index] * probA[index] + probB[index])
                let clipped = min(max(value, 1e-7), 1 - 1e-7)
                r[i * k + j] = clipped
                r[j * k + i] = 1 - clipped
                index += 1
            }
        }
        var q = [Float](repeating: 0, count: k * k), qp = [Float](repeating: 0, count: k)
        var p = [Float](repeating: 1 / Float(k), count: k)
        let eps = 0.005 / Float(k)
        for i in 0..<k {
            for j in 0..<i {
                q[i * k + i] += r[j * k + i] * r[j * k + i]
                q[i * k + j] = q[j * k + i]
            }
            for j in (i + 1)..<k {
                q[i * k + i] += r[j * k + i] * r[j * k + i]
                q[i * k + j] = -r[j * k + i] * r[i * k + j]
            }
        }
        for _ in 0..<100 {
            var pqp: Float = 0
            for i in 0..<k {
                qp[i] = 0
                for j in 0..<k { qp[i] += q[i * k + j] * p[j] }
                pqp += p[i] * qp[i]
            }
            var maxError: Float = 0
            for i in 0..<k { maxError = max(maxError, Swift.abs(qp[i] - pqp)) }
            if maxError < eps { break }
            for i in 0..<k {
                let diff = (-qp[i] + pqp) / q[i * k + i]
                p[i] += diff
                pqp = (pqp + diff * (diff * q[i * k + i] + 2 * qp[i])) / (1 + diff) / (1 + diff)
                for j in 0..<k {
                    qp[j] = (qp[j] + diff * q[i * k + j]) / (1 + diff)
                    p[j] /= (1 + diff)
                }
            }
        }
        return p
    }
}

/// SVMRegressor (ai.onnx.ml 1): Σ coefficients · k(x, support vectors) + rho, or a linear
/// model without support vectors; `one_class` gives ±1.
struct SVMRegressor: Operator {
    let kernel: SVMKernel
    let supportVectors: [Float]
    let coefficients: [Float]
    let rho: Float
    let vectorCount: Int
    let featureCount: Int
    let oneClass: Bool
    let transform: ScoreTransform

    init(_ context: OperatorContext) throws {
        var kernel = try SVMKernel(context)
        supportVectors = try context.floats("support_vectors") ?? []
        coefficients = try context.required("coefficients", context.floats)
        let rho = try context.floats("rho") ?? []
        guard let first = rho.first else { throw OpError("rho must have one value") }
        self.rho = first
        vectorCount = try context.int("n_supports", default: 0)
        oneClass = try context.int("one_class", default: 0) != 0
        transform = try ScoreTransform(context)
        if vectorCount > 0 {
            guard supportVectors.count % vectorCount == 0 else { throw OpError("\(supportVectors.count) support vector values do not divide into \(vectorCount) vectors") }
            guard coefficients.count >= vectorCount else { throw OpError("\(coefficients.count) coefficients for \(vectorCount) support vectors") }
            featureCount = supportVectors.count / vectorCount
        } else {
            guard vectorCount == 0 else { throw OpError("n_supports is \(vectorCount)") }
            kernel.kind = .linear
            featureCount = coefficients.count
        }
        self.kernel = kernel
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        [TensorType(.float, [rowDim(inputs.type(0)), .fixed(1)])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let rows = try FeatureRows(try inputs.required(0))
        guard rows.width == featureCount else {
            throw OpError.invalidArgument("the input has \(rows.width) features per row; the model has \(featureCount)")
        }
        let x = rows.values.map(Float.init)
        let y = try context.allocate(.float, [rows.count, 1])
        let output = y.mutablePointer(as: Float.self)
        x.withUnsafeBufferPointer { x in
            supportVectors.withUnsafeBufferPointer { vectors in
                coefficients.withUnsafeBufferPointer { coefficients in
                    for row in 0..<rows.count {
                        let features = x.baseAddress! + row * featureCount
                        var value: Float
                        if vectorCount > 0 {
                            var sum: Float = 0
                            for v in 0..<vectorCount { sum += coefficients[v] * kernel(features, vectors.baseAddress! + v * featureCount, width: featureCount) }
                            value = sum + rho
                        } else {
                            value = kernel(features, coefficients.baseAddress!, width: featureCount, bias: rho)
                        }
                        if oneClass { value = value > 0 ? 1 : -1 }
                        output[row] = transform == .probit ? MLMath.probit(value) : value
                    }
                }
            }
        }
        return [y]
    }
}
