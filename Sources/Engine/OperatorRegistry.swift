public import Tensors

/// How to build an operator from a node, for the schema versions whose semantics it follows.
public struct OperatorDefinition: Sendable {
    /// Domain ("" for default ONNX).
    public let domain: String
    /// Operator type.
    public let opType: String
    /// The schema versions (`since_version`s) this implementation follows.
    public let versions: Set<Int>
    /// Builds the operator; throws `OpError` for bad attributes.
    public let make: @Sendable (OperatorContext) throws -> any Operator
    /// What passes must know about the operator beyond its type rules.
    public let traits: Traits
    /// The type rules for a schema version (nil: the operator checks its inputs itself).
    package let contract: @Sendable (Int) -> OperatorContract?

    /// Properties of an operator that graph passes act on.
    public struct Traits: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        /// Its outputs may differ between runs on the same inputs (random draws): never folded at load.
        public static let random = Traits(rawValue: 1)
        /// It runs graphs held in its attributes (control flow): never run at load, where a
        /// Loop's body could run for long.
        public static let subgraphs = Traits(rawValue: 2)
    }

    public init(_ opType: String, domain: String = "", versions: [Int], traits: Traits = [],
                make: @escaping @Sendable (OperatorContext) throws -> any Operator) {
        self.init(opType, domain: domain, versions: versions, traits: traits, contracts: { _ in nil }, make: make)
    }

    /// A definition whose type rules are `contract` in every version.
    package init(_ opType: String, domain: String = "", versions: [Int], traits: Traits = [], contract: OperatorContract,
                 make: @escaping @Sendable (OperatorContext) throws -> any Operator) {
        self.init(opType, domain: domain, versions: versions, traits: traits, contracts: { _ in contract }, make: make)
    }

    /// A definition whose type rules depend on the schema version.
    package init(_ opType: String, domain: String = "", versions: [Int], traits: Traits = [],
                 contracts: @escaping @Sendable (Int) -> OperatorContract?,
                 make: @escaping @Sendable (OperatorContext) throws -> any Operator) {
        self.domain = domain
        self.opType = opType
        self.versions = Set(versions)
        self.traits = traits
        self.contract = contracts
        self.make = make
    }

    /// The same definition in `domain`.
    func inDomain(_ domain: String) -> OperatorDefinition {
        OperatorDefinition(opType, domain: domain, versions: versions.sorted(), traits: traits, contracts: contract, make: make)
    }
}

/// Every operator the engine can run, from one table per domain (one line per operator, grouped by
/// family; see OperatorTable.swift).
public enum OperatorRegistry {
    /// Domain of the fused operators our optimisation passes create.
    public static let internalDomain = "org.onnx-serve"

    /// Newest default-domain opset we know the history of.
    public static var latestOpset: Int { OpsetHistory.latestOpset }

    package static let definitions: [String: OperatorDefinition] = {
        var table: [String: OperatorDefinition] = [:]
        let other = domainDefinitions.flatMap { domain, definitions in definitions.map { $0.inDomain(domain) } }
        for definition in allDefinitions + other {
            let key = Self.key(definition.domain, definition.opType)
            precondition(table[key] == nil, "operator \(key) registered twice")
            table[key] = definition
        }
        return table
    }()

    private static func key(_ domain: String, _ opType: String) -> String {
        (domain == "ai.onnx" ? "" : domain) + "::" + opType
    }

    /// The schema version in effect for `opType` under an imported opset (default domain and
    /// `ai.onnx.ml`; other domains use the imported version as is). Nil when ONNX has no such operator.
    public static func effectiveVersion(opType: String, domain: String, opset: Int) -> Int? {
        if domain == ClassicMLOperators.domain {
            return ClassicMLOperators.history[opType].map { history in history.last { $0 <= opset } ?? opset } ?? opset
        }
        guard domain.isEmpty || domain == "ai.onnx" else { return opset }
        guard let history = OpsetHistory.versions[opType] else { return nil }
        return history.last { $0 <= opset }
    }

    /// The definition and schema version for a node, or the error that says why it cannot run.
    public static func resolve(_ node: Node, opsets: [String: Int]) -> Result<(OperatorDefinition, Int), EngineError> {
        let domain = node.domain == "ai.onnx" ? "" : node.domain
        // A com.microsoft node without the domain's import is version 1, as ONNX Runtime takes it:
        // onnxruntime.transformers.optimizer writes such models.
        let opset = opsets[domain] ?? opsets["ai.onnx"] ?? (domain == internalDomain || domain == "com.microsoft" ? 1 : 0)
        let version = effectiveVersion(opType: node.opType, domain: domain, opset: opset) ?? opset
        guard let definition = definitions[key(domain, node.opType)], definition.versions.contains(version) else {
            return .failure(.unsupportedOperator(opType: node.opType, domain: domain, version: version, node: node.label))
        }
        return .success((definition, version))
    }

    /// Builds the operator for a node, naming the node in any error.
    public static func make(_ node: Node, opsets: [String: Int], constants: [Tensor?]) throws(EngineError) -> any Operator {
        try compile(node, opsets: opsets, constants: constants).op
    }

    /// Builds the operator for a node, with its definition's contract for the node's version
    /// (nil when the operator checks its inputs itself), naming the node in any error.
    package static func compile(_ node: Node, opsets: [String: Int], constants: [Tensor?]) throws(EngineError) -> CompiledOperator {
        let (definition, version) = try resolve(node, opsets: opsets).get()
        do {
            let op = try definition.make(OperatorContext(node: node, version: version, constants: constants, opsets: opsets))
            var contract = definition.contract(version)
            if case .strings(let captures)? = node.attributes[SubgraphBinding.capturesAttribute] {
                contract = contract?.covering(first: node.inputs.count - captures.count)
            }
            return CompiledOperator(op: op, contract: contract)
        } catch let error as OpError {
            throw .invalidGraph("\(node.label): \(error.message)")
        } catch let error as EngineError {
            throw error
        } catch {
            throw .invalidGraph("\(node.label): \(error)")
        }
    }
}
