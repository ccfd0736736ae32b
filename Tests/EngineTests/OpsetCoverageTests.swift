import Engine
import Testing

/// Opset coverage: an operator the engine implements accepts every version of its schema that ONNX
/// lists (onnx 1.23's history, generated into `OpsetHistory` and `ClassicMLOperators.history`), so a
/// model exported at an old opset (PyTorch's converters still write opset 9–13) loads.
struct OpsetCoverageTests {
    /// Versions ONNX marks deprecated (`OpSchema.deprecated`; the checker refuses models using them).
    static let deprecated: [String: Set<Int>] = [
        "GroupNormalization": [18], "Upsample": [10], "Scatter": [11],
        "TreeEnsembleClassifier": [5], "TreeEnsembleRegressor": [5],
    ]

    /// Operators of the two ONNX domains the engine does not run at all. Each one is refused at load
    /// with `unsupportedOperator`; the list may only shrink.
    static let notImplemented: Set<String> = []

    /// ONNX Runtime contrib operators that its optimiser writes in the default domain.
    static let runtimeOperatorsInDefaultDomain: Set<String> = ["SimplifiedLayerNormalization"]

    private static func history(_ domain: String) -> [String: [Int]]? {
        switch domain {
        case "": OpsetHistory.versions
        case ClassicMLOperators.domain: ClassicMLOperators.history
        default: nil
        }
    }

    /// (Versions beyond the history are allowed: LayerNormalization also takes the opset 1–16 form
    /// ONNX Runtime's optimiser writes.)
    @Test func everyImplementedOperatorAcceptsEveryVersionOfItsSchema() {
        var lacking: [String] = [], unknown: [String] = []
        for definition in OperatorRegistry.definitions.values {
            guard let history = Self.history(definition.domain) else { continue }
            guard let versions = history[definition.opType] else {
                if definition.domain.isEmpty && Self.runtimeOperatorsInDefaultDomain.contains(definition.opType) { continue }
                unknown.append("\(definition.domain)::\(definition.opType)")
                continue
            }
            let missing = Set(versions).subtracting(definition.versions).subtracting(Self.deprecated[definition.opType] ?? [])
            if !missing.isEmpty { lacking.append("\(definition.opType) \(missing.sorted())") }
        }
        #expect(lacking.sorted() == [])
        #expect(unknown.sorted() == [])
    }

    @Test func onlyTheListedOperatorsAreMissing() {
        for domain in ["", ClassicMLOperators.domain] {
            let names = Set(Self.history(domain)?.keys.map { $0 } ?? [])
            let implemented = Set(OperatorRegistry.definitions.values.filter { $0.domain == domain }.map(\.opType))
            let missing = names.subtracting(implemented)
            #expect(missing.isSubset(of: Self.notImplemented), "\(missing.subtracting(Self.notImplemented).sorted())")
        }
    }
}
