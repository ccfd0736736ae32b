import Engine
import Tensors
import Testing

/// Operator contracts (`OperatorContract`): the checker's rules at load and at run time, when the
/// run-time check happens, and every contract against the ONNX schemas (`ONNXSchemas`).
@Suite struct OperatorContractTests {
    /// X of T (float or double), optional scale of T, variadic rest (at least 1) of I (int64 or int32),
    /// outputs Y of T and mask of bool; Y broadcast.
    static let contract = OperatorContract(
        inputs: [.init("X", "T"), .init("scale", "T", .optional), .init("rest", "I", .variadic(min: 1))],
        outputs: [.init("Y", "T"), .init("mask", .bool)],
        types: ["T": [.float, .double], "I": [.int64, .int32]], shape: .broadcast)

    static func type(_ dataType: DataType, _ dims: [Int]) -> TensorType { TensorType(dataType, dims.map { .fixed($0) }) }

    /// The load-time check's error message, or nil when it passes.
    static func loadError(_ types: [TensorType?], present: [Bool]? = nil) -> String? {
        do {
            _ = try contract.check(types, present: present ?? types.map { _ in true })
            return nil
        } catch let error as OpError {
            #expect(error.kind == .failure)
            return error.message
        } catch {
            return "unexpected \(error)"
        }
    }

    @Test func arityRequiredOptionalVariadic() throws {
        let x = Self.type(.float, [2, 3]), i = Self.type(.int64, [3])
        #expect(Self.loadError([x, nil, i]) == nil)
        #expect(Self.loadError([x, nil, i], present: [true, false, true]) == nil)
        #expect(Self.loadError([x, x, i, i, Self.type(.int32, [1])]) != nil)  // the variadic entries share I
        #expect(Self.loadError([x, x, i, i, i]) == nil)
        #expect(Self.loadError([nil, x, i], present: [false, true, true]) == "missing required input 'X'")
        #expect(Self.loadError([x], present: [true]) == "needs at least 1 'rest' inputs, got 0")
        #expect(Self.loadError([x, nil, i, nil, i], present: [true, false, true, false, true])
                == "input 'rest[1]' is omitted; a variadic input takes values only")
        // Trailing omitted inputs do not count.
        #expect(Self.loadError([x, nil, i, nil], present: [true, false, true, false]) == nil)
        let unary = OperatorContract.unary([.float])
        #expect(throws: OpError.self) { try unary.check([x, x], present: [true, true]) }
        do {
            _ = try unary.check([x, x], present: [true, true])
        } catch let error as OpError {
            #expect(error.message == "takes at most 1 inputs (X), got 2")
        }
    }

    @Test func elementTypesAndHomogeneity() throws {
        let x = Self.type(.float, [2, 3]), i = Self.type(.int64, [3])
        #expect(Self.loadError([Self.type(.int8, [1]), nil, i]) == "input 'X' has element type int8; T must be one of: float, double")
        #expect(Self.loadError([x, Self.type(.double, [1]), i])
                == "inputs 'X' and 'scale' must have one element type (T), got float and double")
        #expect(Self.loadError([x, nil, i, Self.type(.int32, [1])])
                == "inputs 'rest[0]' and 'rest[1]' must have one element type (I), got int64 and int32")
        #expect(Self.loadError([x, nil, Self.type(.float, [1])])
                == "input 'rest[0]' has element type float; I must be one of: int32, int64")
    }

    @Test func aHeterogeneousVariadicInputTakesEachOfItsTypesPerPosition() throws {
        // X of T (float or double), then rest: each of its positions any of I (int32, int64, float),
        // none binding I; Y of T.
        let contract = OperatorContract(
            inputs: [.init("X", "T"), .init("rest", "I", .variadic(min: 1), homogeneous: false)], outputs: [.init("Y", "T")],
            types: ["T": [.float, .double], "I": [.int32, .int64, .float]])
        func error(_ types: [DataType]) -> String? {
            do {
                _ = try contract.check(types.map { Self.type($0, [1]) }, present: types.map { _ in true })
                return nil
            } catch let error as OpError {
                return error.message
            } catch {
                return "unexpected \(error)"
            }
        }
        #expect(error([.double, .int32, .int64, .float, .int32]) == nil)
        #expect(error([.double, .int64, .string]) == "input 'rest[1]' has element type string; I must be one of: float, int32, int64")
        #expect(error([.double]) == "needs at least 1 'rest' inputs, got 0")
        // The homogeneous formals still bind: X's T is not rest's business.
        #expect(error([.int32, .int32]) == "input 'X' has element type int32; T must be one of: float, double")
        // At run time too.
        try contract.check([Tensor([1] as [Float], shape: [1]), Tensor([1] as [Int64], shape: [1]), Tensor([1] as [Int32], shape: [1])])
        #expect(throws: OpError.self) { try contract.check([Tensor([1] as [Float], shape: [1]), Tensor([true], shape: [1])]) }
    }

    @Test func outputTypesFollowVariablesFixedTypesAndTheShapeRule() throws {
        let types = try Self.contract.check([Self.type(.double, [2, 1]), nil, Self.type(.int64, [3])], present: [true, false, true])
        #expect(types == [Self.type(.double, [2, 3]), Self.type(.bool, [2, 3])])
        // An unknown input type passes at load: T is unbound, so Y's type is unknown; mask is bool.
        let unknown = try Self.contract.check([nil, nil, Self.type(.int64, [3])], present: [true, false, true])
        #expect(unknown == [nil, TensorType(.bool, nil)])
        #expect(throws: OpError.self) {
            try Self.contract.check([Self.type(.float, [2]), nil, Self.type(.int64, [3])], present: [true, false, true])
        }
        let same = OperatorContract.unary([.float, .double], result: .bool)
        #expect(try same.check([TensorType(.double, [.symbolic("n")])], present: [true]) == [TensorType(.bool, [.symbolic("n")])])
    }

    @Test func runTimeCheckBlamesTheValues() throws {
        let x = Tensor([1, 2] as [Float], shape: [2]), i = Tensor([1] as [Int64], shape: [1])
        try Self.contract.check([x, nil, i, i])
        try Self.contract.check([x, nil, Tensor([1] as [Int32], shape: [1])])
        #expect(throws: OpError.self) { try Self.contract.check([x, nil, i, Tensor([1] as [Int32], shape: [1])]) }
        #expect(throws: OpError.self) { try Self.contract.check([x, Tensor([1] as [Double], shape: [1]), i]) }
        #expect(throws: OpError.self) { try Self.contract.check([x, nil]) }
        do {
            try Self.contract.check([Tensor([1] as [Int8], shape: [1]), nil, i])
            Issue.record("int8 X passed")
        } catch {
            #expect(error.kind == .invalidArgument)
            #expect(error.message == "input 'X' has element type int8; T must be one of: float, double")
        }
    }

    // MARK: Load and run

    /// x → Sigmoid 'act' → y, x declared with `type` (nil: no type), and with `valueInfo`.
    static func sigmoidModel(_ type: TensorType?, relu: Bool = false, valueInfo: [String: TensorType] = [:]) -> Model {
        var nodes = [Node(name: "act", opType: "Sigmoid", inputs: [relu ? "r" : "x"], outputs: ["y"])]
        if relu { nodes.insert(Node(name: "first", opType: "Relu", inputs: ["x"], outputs: ["r"]), at: 0) }
        return Model(graph: Graph(nodes: nodes, inputs: [ValueInfo(name: "x", type: type)], outputs: [ValueInfo(name: "y", type: nil)],
                                  valueInfo: valueInfo),
                     opsets: ["": 17])
    }

    @Test func aTypedModelIsCheckedOnceAtLoad() throws {
        let session = try InferenceSession(model: Self.sigmoidModel(Self.type(.float, [2]), relu: true))
        #expect(session.nodesCheckedAtRun == [])
        #expect(try InferenceSession(model: EncoderModel.model()).nodesCheckedAtRun == [])
        #expect(throws: EngineError.invalidGraph("Sigmoid 'act': input 'X' has element type int32; T must be one of: float, float16, double")) {
            try InferenceSession(model: Self.sigmoidModel(Self.type(.int32, [2])))
        }
        #expect(throws: EngineError.invalidGraph("Add 'add': missing required input 'B'")) {
            try InferenceSession(model: Model(
                graph: Graph(nodes: [Node(name: "add", opType: "Add", inputs: ["x"], outputs: ["y"])],
                             inputs: [ValueInfo(name: "x", type: Self.type(.float, [2]))], outputs: [ValueInfo(name: "y", type: nil)]),
                opsets: ["": 17]))
        }
    }

    @Test func anUnknownInputTypeIsCheckedAtRun() throws {
        let session = try InferenceSession(model: Self.sigmoidModel(nil))
        #expect(session.nodesCheckedAtRun == ["Sigmoid 'act'"])
        let y = try session.run(["x": Tensor([0] as [Float], shape: [1])])["y"]
        #expect(y?.scalars(as: Float.self) == [0.5])
        // The feed's fault: servers answer invalidInput with a 400.
        #expect(throws: EngineError.invalidInput("Sigmoid 'act': input 'X' has element type int32; T must be one of: float, float16, double")) {
            try session.run(["x": Tensor([0] as [Int32], shape: [1])])
        }
    }

    @Test func declaredIntermediateTypesAreNotTrusted() throws {
        // r's float comes from value_info, a claim of the file: Sigmoid still checks at run.
        let session = try InferenceSession(model: Self.sigmoidModel(nil, relu: true, valueInfo: ["r": Self.type(.float, [1])]),
                                           options: .init(optimizations: false))
        #expect(session.nodesCheckedAtRun == ["Relu 'first'", "Sigmoid 'act'"])
        #expect(throws: EngineError.invalidInput("Sigmoid 'act': input 'X' has element type int32; T must be one of: float, float16, double")) {
            try session.run(["x": Tensor([0] as [Int32], shape: [1])])
        }
        // Inferred from a checked feed, it is certain.
        let typed = try InferenceSession(model: Self.sigmoidModel(Self.type(.float, [1]), relu: true), options: .init(optimizations: false))
        #expect(typed.nodesCheckedAtRun == [])
    }

    // MARK: Kinds of values

    /// input_sequence of S (sequences of float or int64), position of I (int64); map of M
    /// (map(int64, float) or map(string, int64)), optional tail of O (optional tensors of float).
    static let valueContract = OperatorContract(
        inputs: [.init("input_sequence", "S"), .init("position", "I"), .init("map", "M", .optional), .init("tail", "O", .optional)],
        outputs: [.init("tensor", "T")], types: ["I": [.int64], "T": [.float, .int64]],
        valueTypes: ["S": OperatorContract.ValueType.all([.sequence], [.float, .int64]),
                     "M": [.init(.map(key: .int64), .float), .init(.map(key: .string), .int64)],
                     "O": OperatorContract.ValueType.all([.optional(.tensor)], [.float])])

    /// The load-time check's message for these types and kinds, or nil when it passes.
    static func kindError(_ types: [TensorType?], _ kinds: [ValueKind?]) -> String? {
        do {
            _ = try valueContract.check(types, present: types.map { _ in true }, kinds: kinds)
            return nil
        } catch let error as OpError {
            return error.message
        } catch {
            return "unexpected \(error)"
        }
    }

    @Test func valueTypesNameONNXsTypeStrings() {
        #expect(OperatorContract.ValueType(.sequence, .float).description == "seq(tensor(float))")
        #expect(OperatorContract.ValueType(.optional(.sequence), .int64).description == "optional(seq(tensor(int64)))")
        #expect(OperatorContract.ValueType(.map(key: .string), .double).description == "map(string, double)")
        #expect(OperatorContract.ValueType(.tensor, .bool).description == "tensor(bool)")
        // A variable's element types include those of its value types.
        #expect(Self.valueContract.types["S"] == [.float, .int64])
    }

    @Test func kindsAreCheckedAtLoadWhereKnown() {
        let float = TensorType(.float, nil), int64 = TensorType(.int64, nil)
        #expect(Self.kindError([float, int64], [.sequence, .tensor]) == nil)
        // Unknown kinds, and unknown element types of known kinds, pass.
        #expect(Self.kindError([nil, int64], [nil, nil]) == nil)
        #expect(Self.kindError([nil, int64], [.sequence, .tensor]) == nil)
        #expect(Self.kindError([float, int64], [.tensor, .tensor])
                == "input 'input_sequence' has type tensor(float); S must be one of: seq(tensor(float)), seq(tensor(int64))")
        #expect(Self.kindError([nil, int64], [.map(key: .int64), .tensor])
                == "input 'input_sequence' has kind map(int64); S must be one of: seq(tensor(float)), seq(tensor(int64))")
        #expect(Self.kindError([TensorType(.double, nil), int64], [.sequence, .tensor])
                == "input 'input_sequence' has type seq(tensor(double)); S must be one of: seq(tensor(float)), seq(tensor(int64))")
        // A formal of a tensor variable takes tensors only.
        #expect(Self.kindError([float, nil], [.sequence, .sequence]) == "input 'position' has kind sequence; it must be a tensor")
        // Maps: the listed pairs of key and value types only.
        #expect(Self.kindError([float, int64, float], [.sequence, .tensor, .map(key: .int64)]) == nil)
        #expect(Self.kindError([float, int64, int64], [.sequence, .tensor, .map(key: .string)]) == nil)
        #expect(Self.kindError([float, int64, int64], [.sequence, .tensor, .map(key: .int64)])
                == "input 'map' has type map(int64, int64); M must be one of: map(int64, float), map(string, int64)")
        // Optionals: the element's kind counts.
        #expect(Self.kindError([float, int64, nil, float], [.sequence, .tensor, nil, .optional(.tensor)]) == nil)
        #expect(Self.kindError([float, int64, nil, float], [.sequence, .tensor, nil, .optional(.sequence)])
                == "input 'tail' has type optional(seq(tensor(float))); O must be one of: optional(tensor(float))")
    }

    /// The run-time check's message for these values, or nil when it passes.
    static func runError(_ values: [Value?]) -> String? {
        do {
            try valueContract.check(values: values)
            return nil
        } catch {
            #expect(error.kind == .invalidArgument)
            return error.message
        }
    }

    @Test func kindsAreCheckedOnValuesAtRun() {
        let sequence = Value.sequence(TensorSequence(elementType: .float, tensors: [Tensor([1] as [Float], shape: [1])]))
        let position = Value.tensor(Tensor(scalar: Int64(0)))
        #expect(Self.runError([sequence, position]) == nil)
        // An empty optional has no element type: its kind alone is checked.
        #expect(Self.runError([sequence, position, nil, .optional(nil, kind: .tensor)]) == nil)
        #expect(Self.runError([sequence, position, nil, .optional(nil, kind: .sequence)])
                == "input 'tail' has kind optional(sequence); O must be one of: optional(tensor(float))")
        #expect(Self.runError([sequence, position, nil, .optional(sequence, kind: .sequence)])
                == "input 'tail' has type optional(seq(tensor(float))); O must be one of: optional(tensor(float))")
        #expect(Self.runError([position, position])
                == "input 'input_sequence' has type tensor(int64); S must be one of: seq(tensor(float)), seq(tensor(int64))")
        #expect(Self.runError([sequence, sequence]) == "input 'position' has kind sequence; it must be a tensor")
    }

    @Test func aControlFlowNodesCapturesAreNotItsFormals() throws {
        let contract = OperatorContract(inputs: [.init("cond", "B")], outputs: [], types: ["B": [.bool]])
        let cond = TensorType(.bool, nil), capture = TensorType(.float, nil)
        #expect(throws: OpError.self) { try contract.check([cond, capture], present: [true, true]) }
        _ = try contract.covering(first: 1).check([cond, capture], present: [true, true])
        // The node's own inputs are still checked.
        do {
            _ = try contract.covering(first: 1).check([capture, capture], present: [true, true])
            Issue.record("a float cond passed")
        } catch let error as OpError {
            #expect(error.message == "input 'cond' has element type float; B must be one of: bool")
        }
    }

    // MARK: Against the ONNX schemas

    /// One schema version of `ONNXSchemas`.
    struct Schema {
        struct Formal {
            let name: String, option: Character, type: String, minArity: Int
        }
        let inputs: [Formal], outputs: [Formal]
        let constraints: [String: Set<String>]

        init(_ fields: [Substring]) {
            func formals(_ field: Substring) -> [Formal] {
                field.isEmpty ? [] : field.split(separator: ",").map { formal in
                    let parts = formal.split(separator: ":", omittingEmptySubsequences: false)
                    return Formal(name: String(parts[0]), option: parts[1].first ?? "?", type: String(parts[2]), minArity: Int(parts[3]) ?? 0)
                }
            }
            inputs = formals(fields[3])
            outputs = formals(fields[4])
            var constraints: [String: Set<String>] = [:]
            for constraint in fields[5].split(separator: ";") {
                let parts = constraint.split(separator: "=", maxSplits: 1)
                // Types are separated by spaces; a map's "map(int64, float)" holds one.
                var types: [String] = []
                for token in parts.count > 1 ? parts[1].split(separator: " ") : [] {
                    if let last = types.last, last.filter({ $0 == "(" }).count > last.filter({ $0 == ")" }).count {
                        types[types.count - 1] += " " + token
                    } else {
                        types.append(String(token))
                    }
                }
                constraints[String(parts[0])] = Set(types)
            }
            self.constraints = constraints
        }

        /// Types a formal's type string allows: its constraint's, or the one type it names.
        func allowed(_ type: String) -> Set<String> { constraints[type] ?? [type] }
    }

    /// Schemas by domain, operator and since-version, from `lines`.
    static func schemas(_ lines: [String]) -> [String: [Int: Schema]] {
        var schemas: [String: [Int: Schema]] = [:]
        for line in lines {
            let fields = line.split(separator: "|", omittingEmptySubsequences: false)
            guard fields.count == 6, let version = Int(fields[2]) else { continue }
            schemas[fields[0] + "::" + fields[1], default: [:]][version] = Schema(fields)
        }
        return schemas
    }

    static let onnxSchemas = schemas(ONNXSchemas.lines)
    /// ONNX Runtime's contrib schemas: com.microsoft, and its own versions of default-domain operators.
    static let ortSchemas = schemas(ORTSchemas.lines)

    /// The schema a definition's contract for `version` answers to: ONNX's of that since-version;
    /// else ONNX Runtime's in effect at that version (its contrib operators have one version,
    /// which every later opset keeps). com.microsoft SimplifiedLayerNormalization, which ONNX
    /// Runtime defines in the default domain only, answers to that one.
    static func schema(domain: String, opType: String, version: Int) -> Schema? {
        if let schema = onnxSchemas[domain + "::" + opType]?[version] { return schema }
        let domain = domain == "com.microsoft" && opType == "SimplifiedLayerNormalization" ? "" : domain
        guard let versions = ortSchemas[domain + "::" + opType],
              let effective = versions.keys.filter({ $0 <= version }).max() else { return nil }
        return versions[effective]
    }

    @Test func everyContractIsTheSchemaWithASubsetOfItsTypes() throws {
        #expect(Self.onnxSchemas.count > 200)
        #expect(Self.ortSchemas.count > 20)
        var checked = 0
        for definition in OperatorRegistry.definitions.values.sorted(by: { ($0.domain, $0.opType) < ($1.domain, $1.opType) }) {
            let name = definition.domain.isEmpty ? definition.opType : "\(definition.domain).\(definition.opType)"
            let contracts = definition.versions.sorted().compactMap { version in definition.contract(version).map { (version, $0) } }
            guard !contracts.isEmpty else { continue }
            // Our own fused operators have no schema.
            if definition.domain == OperatorRegistry.internalDomain { continue }
            // A contract serves all the definition's versions with one set of types: an older version
            // may accept the types a newer one added (as ONNX Runtime's kernels often do), never one
            // that none of them allows.
            var union: [String: Set<String>] = [:]
            for version in definition.versions {
                let schema = Self.schema(domain: definition.domain, opType: definition.opType, version: version)
                for (variable, types) in schema?.constraints ?? [:] { union[variable, default: []].formUnion(types) }
            }
            for (version, contract) in contracts {
                guard let schema = Self.schema(domain: definition.domain, opType: definition.opType, version: version) else {
                    Issue.record("\(name)-\(version): no ONNX \(ONNXSchemas.onnxVersion) or ONNX Runtime \(ORTSchemas.onnxruntimeVersion) schema")
                    continue
                }
                checked += 1
                Self.compare(contract.inputs, schema.inputs, "\(name)-\(version) input", schema: schema, contract: contract)
                Self.compare(contract.outputs, schema.outputs, "\(name)-\(version) output", schema: schema, contract: contract)
                for (variable, types) in contract.types {
                    guard let allowed = union[variable] else {
                        Issue.record("\(name)-\(version): type variable \(variable) is not in the schema")
                        continue
                    }
                    // The schema's strings: a tensor type by its element type, the others whole.
                    let names = contract.valueTypes[variable].map { valueTypes in
                        valueTypes.map { $0.kind == .tensor ? $0.element.name : $0.description }
                    } ?? types.map(\.name)
                    for type in names.sorted() where !allowed.contains(type) && !(Self.beyondSchema[name]?(type) ?? false) {
                        Issue.record("\(name)-\(version): \(variable) accepts \(type), which the schema allows in none of versions \(definition.versions.sorted())")
                    }
                }
            }
        }
        #expect(checked > 100)
    }

    /// The definitions without a contract, each with its reason (the README's list): a new
    /// definition comes with a contract, or joins this list with a reason there.
    @Test func theDefinitionsWithoutAContractAreTheListedOnes() {
        var missing: [String] = []
        for definition in OperatorRegistry.definitions.values {
            let name = definition.domain.isEmpty ? definition.opType : "\(definition.domain).\(definition.opType)"
            for version in definition.versions where definition.contract(version) == nil { missing.append("\(name)-\(version)") }
        }
        #expect(missing.sorted() == Self.withoutContract.sorted())
    }

    static let withoutContract: [String] = []

    /// Types a definition takes beyond its schemas, on purpose: Identity passes maps through (a
    /// graph of a map input and a map output, Tests/Python/test_map_inputs.py).
    static let beyondSchema: [String: @Sendable (String) -> Bool] = ["Identity": { $0.hasPrefix("map(") }]

    /// Contract formals against schema formals: names, arity, type variables.
    static func compare(_ formals: [OperatorContract.Parameter], _ expected: [Schema.Formal], _ what: String,
                        schema: Schema, contract: OperatorContract) {
        guard formals.count == expected.count else {
            Issue.record("\(what)s: \(formals.map(\.name)), the schema has \(expected.map(\.name))")
            return
        }
        for (formal, expected) in zip(formals, expected) {
            #expect(formal.name == expected.name, "\(what) \(formal.name): the schema calls it \(expected.name)")
            let arity: OperatorContract.Arity = switch expected.option {
            case "O": .optional
            case "V": .variadic(min: expected.minArity)
            default: .required
            }
            #expect(formal.arity == arity, "\(what) \(formal.name): \(formal.arity), the schema has \(arity)")
            switch formal.type {
            case .variable(let variable):
                #expect(variable == expected.type, "\(what) \(formal.name): type \(variable), the schema has \(expected.type)")
                #expect(contract.types[variable] != nil, "\(what) \(formal.name): type \(variable) has no types")
            case .fixed(let type):
                #expect(schema.allowed(expected.type).contains(type.name),
                        "\(what) \(formal.name): fixed \(type.name), the schema allows \(schema.allowed(expected.type).sorted())")
            }
        }
    }
}
