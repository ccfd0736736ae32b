import Engine
import Tensors
import Testing

/// CastMap and DictVectorizer (ai.onnx.ml) on one-node graphs with a map input: values against
/// hand-computed ones (ONNX Runtime's, where its Python binding can feed the map), edge cases
/// (empty maps, keys past `max_map`, duplicate vocabulary words, keys outside the vocabulary), and
/// bad maps and attributes refused with the error that names them.
@Suite struct MapOperatorTests {
    static func session(_ node: Node, key: DataType, values: DataType) throws -> InferenceSession {
        let graph = Graph(nodes: [node], inputs: [ValueInfo(name: "m", type: TensorType(values, nil), kind: .map(key: key))],
                          outputs: [ValueInfo(name: "y", type: nil)])
        return try InferenceSession(model: Model(graph: graph, opsets: ["": 17, ClassicMLOperators.domain: 1]),
                                    options: .init(intraOpThreads: 1))
    }

    static func castMap(_ values: DataType, _ attributes: [String: AttributeValue]) throws -> InferenceSession {
        try session(Node(name: "cast", opType: "CastMap", domain: ClassicMLOperators.domain, inputs: ["m"], outputs: ["y"],
                         attributes: attributes), key: .int64, values: values)
    }

    static func vectorizer(_ vocabulary: AttributeValue, key: DataType, values: DataType) throws -> InferenceSession {
        let name = key == .string ? "string_vocabulary" : "int64_vocabulary"
        return try session(Node(name: "vectorize", opType: "DictVectorizer", domain: ClassicMLOperators.domain, inputs: ["m"],
                                outputs: ["y"], attributes: [name: vocabulary]), key: key, values: values)
    }

    static func map(_ keys: Tensor, _ values: Tensor) throws -> Value {
        .map(try TensorMap.checked(keys: keys, values: values).get())
    }

    static func run(_ session: InferenceSession, _ value: Value) throws -> Tensor {
        try #require(try session.runValues(["m": value])["y"]?.tensor)
    }

    /// The error a run throws, which must be an `EngineError`.
    static func runError(_ session: InferenceSession, _ value: Value) -> EngineError? {
        do {
            _ = try session.runValues(["m": value])
            Issue.record("the run succeeded")
        } catch {
            return error
        }
        return nil
    }

    static func isInvalidInput(_ error: EngineError?, _ fragment: String) -> Bool {
        guard case .invalidInput(let message)? = error else { return false }
        return message.contains(fragment)
    }

    static let floatMap: (keys: [Int64], values: [Float]) = ([3, 0, 7, 1], [1.5, -2.75, 1e10, .nan])

    // MARK: CastMap

    @Test func denseOrdersByKeyAndConverts() throws {
        let value = try Self.map(Tensor(Self.floatMap.keys, shape: [4]), Tensor(Self.floatMap.values, shape: [4]))
        let floats = try Self.run(try Self.castMap(.float, [:]), value)
        #expect(floats.shape == [1, 4])
        let got = floats.scalars(as: Float.self)
        #expect(got[0] == -2.75 && got[1].isNaN && got[2] == 1.5 && got[3] == 1e10)
        let integers = try Self.run(try Self.castMap(.float, ["cast_to": .string("TO_INT64")]), value)
        #expect(integers.scalars(as: Int64.self) == [-2, .min, 1, 10_000_000_000])
        let strings = try Self.run(try Self.castMap(.float, ["cast_to": .string("TO_STRING")]), value)
        #expect(strings.strings == ["-2.750000", "nan", "1.500000", "10000000000.000000"])
    }

    @Test func sparsePadsAndDropsKeysPastTheEnd() throws {
        let value = try Self.map(Tensor(Self.floatMap.keys, shape: [4]), Tensor(Self.floatMap.values, shape: [4]))
        let floats = try Self.run(try Self.castMap(.float, ["map_form": .string("SPARSE"), "max_map": .int(5)]), value)
        #expect(floats.shape == [1, 5])
        let got = floats.scalars(as: Float.self)
        #expect(got[0] == -2.75 && got[1].isNaN && got[2] == 0 && got[3] == 1.5 && got[4] == 0)
        let strings = try Self.run(try Self.castMap(.float, ["map_form": .string("SPARSE"), "max_map": .int(3), "cast_to": .string("TO_STRING")]), value)
        #expect(strings.strings == ["-2.750000", "nan", "0.f"])
        // max_map's default is 1.
        let first = try Self.run(try Self.castMap(.float, ["map_form": .string("SPARSE"), "cast_to": .string("TO_INT64")]), value)
        #expect(first.shape == [1, 1] && first.scalars(as: Int64.self) == [-2])
    }

    @Test func stringValues() throws {
        let value = try Self.map(Tensor([5, -1, 2] as [Int64], shape: [3]), Tensor(strings: ["7", "-12", "0.5"], shape: [3]))
        #expect(try Self.run(try Self.castMap(.string, [:]), value).scalars(as: Float.self) == [-12, 0.5, 7])
        #expect(try Self.run(try Self.castMap(.string, ["cast_to": .string("TO_STRING")]), value).strings == ["-12", "0.5", "7"])
        let error = Self.runError(try Self.castMap(.string, ["cast_to": .string("TO_INT64")]), value)
        #expect(Self.isInvalidInput(error, "map value '0.5' is not an int64"), "\(String(describing: error))")
        let sparse = try Self.castMap(.string, ["map_form": .string("SPARSE"), "max_map": .int(3)])
        #expect(Self.isInvalidInput(Self.runError(sparse, value), "CastMap SPARSE takes keys from 0; the map has key -1"))
    }

    @Test func emptyMaps() throws {
        let empty = try Self.map(Tensor([] as [Int64], shape: [0]), Tensor([] as [Float], shape: [0]))
        #expect(try Self.run(try Self.castMap(.float, [:]), empty).shape == [1, 0])
        let padded = try Self.run(try Self.castMap(.float, ["map_form": .string("SPARSE"), "max_map": .int(3), "cast_to": .string("TO_STRING")]), empty)
        #expect(padded.strings == ["0.f", "0.f", "0.f"])
    }

    /// x86's truncating conversion, which ONNX Runtime's static_cast compiles to.
    @Test(arguments: [(Float.nan, Int64.min), (.infinity, .min), (-.infinity, .min), (-1e30, .min), (0x1p63, .min),
                      (-0x1p63, .min), (-3.9, -3), (3.9, 3), (-0.0, 0), (0x1p62, 1 << 62)])
    func truncation(value: Float, expected: Int64) {
        #expect(ClassicMLOperators.truncated(value) == expected)
    }

    @Test func badAttributes() {
        func loadError(_ attributes: [String: AttributeValue]) -> String {
            do {
                _ = try Self.castMap(.float, attributes)
                return "loaded"
            } catch {
                return "\(error)"
            }
        }
        #expect(loadError(["cast_to": .string("TO_DOUBLE")]).contains("cast_to must be TO_FLOAT, TO_STRING or TO_INT64"))
        #expect(loadError(["map_form": .string("PACKED")]).contains("map_form must be DENSE or SPARSE"))
        #expect(loadError(["map_form": .string("SPARSE"), "max_map": .int(0)]).contains("max_map must be positive"))
        #expect(loadError(["map_form": .string("SPARSE"), "max_map": .int(1 << 40)]).contains("max_map 1099511627776 is more than"))
        // DENSE ignores max_map.
        #expect(loadError(["max_map": .int(-5)]) == "loaded")
    }

    /// A string output of max_map entries counts against the run's working-memory budget: refused
    /// by the estimate, before anything is allocated.
    @Test func hugeSparseStringOutputIsRefused() throws {
        let graph = Graph(nodes: [Node(name: "cast", opType: "CastMap", domain: ClassicMLOperators.domain, inputs: ["m"], outputs: ["y"],
                                       attributes: ["map_form": .string("SPARSE"), "max_map": .int(1 << 30), "cast_to": .string("TO_STRING")])],
                          inputs: [ValueInfo(name: "m", type: TensorType(.float, nil), kind: .map(key: .int64))], outputs: [ValueInfo(name: "y", type: nil)])
        let session = try InferenceSession(model: Model(graph: graph, opsets: ["": 17, ClassicMLOperators.domain: 1]),
                                           options: .init(intraOpThreads: 1, workingMemoryBudget: 1 << 20))
        let value = try Self.map(Tensor([1] as [Int64], shape: [1]), Tensor([1] as [Float], shape: [1]))
        guard case .resourceExhausted(let message)? = Self.runError(session, value) else {
            Issue.record("expected resourceExhausted")
            return
        }
        #expect(message.contains("the run needs an estimated 16384 MiB of working memory"), "\(message)")
    }

    // MARK: DictVectorizer

    @Test func stringVocabulary() throws {
        let session = try Self.vectorizer(.strings(["b", "a", "c", "a"]), key: .string, values: .float)
        let value = try Self.map(Tensor(strings: ["a", "zz", "c"], shape: [3]), Tensor([1.5, 9, -2] as [Float], shape: [3]))
        let y = try Self.run(session, value)
        #expect(y.shape == [1, 4])
        #expect(y.scalars(as: Float.self) == [0, 1.5, -2, 1.5])
        let empty = try Self.map(Tensor(strings: [], shape: [0]), Tensor([] as [Float], shape: [0]))
        #expect(try Self.run(session, empty).scalars(as: Float.self) == [0, 0, 0, 0])
        let integers = try Self.vectorizer(.strings(["x", "y"]), key: .string, values: .int64)
        let counts = try Self.map(Tensor(strings: ["y"], shape: [1]), Tensor([Int64.min] as [Int64], shape: [1]))
        #expect(try Self.run(integers, counts).scalars(as: Int64.self) == [0, .min])
    }

    @Test func integerVocabulary() throws {
        let value = try Self.map(Tensor([5, 40, -1] as [Int64], shape: [3]), Tensor(strings: ["five", "forty", "minus"], shape: [3]))
        let strings = try Self.run(try Self.vectorizer(.ints([-1, 2, 5]), key: .int64, values: .string), value)
        #expect(strings.shape == [1, 3] && strings.strings == ["minus", "", "five"])
        let doubles = try Self.map(Tensor([7] as [Int64], shape: [1]), Tensor([1e-300] as [Double], shape: [1]))
        #expect(try Self.run(try Self.vectorizer(.ints([7, 8]), key: .int64, values: .double), doubles).scalars(as: Double.self) == [1e-300, 0])
    }

    /// Pairs outside the spec's list (string keys to strings, int64 keys to int64s) are refused.
    @Test func valueTypesOutsideTheSpec() throws {
        let session = try Self.vectorizer(.strings(["a"]), key: .string, values: .string)
        let value = try Self.map(Tensor(strings: ["a"], shape: [1]), Tensor(strings: ["x"], shape: [1]))
        #expect(Self.isInvalidInput(Self.runError(session, value), "input 'X' has type map(string, string); T1 must be one of: map(int64, double), map(int64, float), map(int64, string), map(string, double), map(string, float), map(string, int64)"))
    }

    @Test func vocabularyMustBeOneKind() {
        for attributes: [String: AttributeValue] in [[:], ["string_vocabulary": .strings(["a"]), "int64_vocabulary": .ints([1])]] {
            let node = Node(name: "vectorize", opType: "DictVectorizer", domain: ClassicMLOperators.domain, inputs: ["m"], outputs: ["y"],
                            attributes: attributes)
            #expect(throws: EngineError.self) { try Self.session(node, key: .string, values: .float) }
        }
    }

    // MARK: Feeds

    @Test func feedsOfTheWrongKindOrTypesAreRefused() throws {
        let session = try Self.vectorizer(.strings(["a"]), key: .string, values: .float)
        let integerKeys = try Self.map(Tensor([1] as [Int64], shape: [1]), Tensor([1] as [Float], shape: [1]))
        #expect(Self.isInvalidInput(Self.runError(session, integerKeys), "is a map with int64 keys; the model expects string keys"))
        let doubles = try Self.map(Tensor(strings: ["a"], shape: [1]), Tensor([1] as [Double], shape: [1]))
        #expect(Self.isInvalidInput(Self.runError(session, doubles), "is a map of double values; the model expects float"))
        #expect(Self.isInvalidInput(Self.runError(session, .tensor(Tensor([1] as [Float], shape: [1]))), "is a tensor; the model expects a map(string)"))
        #expect(throws: EngineError.invalidInput("missing input 'm'")) { try session.runValues([:]) }
    }

    @Test func mapsAreChecked() {
        func reason(_ keys: Tensor, _ values: Tensor) -> String? {
            if case .failure(let error) = TensorMap.checked(keys: keys, values: values) { return error.description }
            return nil
        }
        #expect(reason(Tensor(strings: ["a", "b", "a"], shape: [3]), Tensor([1, 2, 3] as [Float], shape: [3])) == "key 'a' is given twice")
        #expect(reason(Tensor([4, 4] as [Int64], shape: [2]), Tensor([1, 2] as [Float], shape: [2])) == "key 4 is given twice")
        #expect(reason(Tensor([4] as [Int32], shape: [1]), Tensor([1] as [Float], shape: [1])) == "map keys must be int64 or string, not int32")
        #expect(reason(Tensor([4, 5] as [Int64], shape: [2]), Tensor([1] as [Float], shape: [1]))?.contains("one value per key") == true)
        #expect(reason(Tensor([4] as [Int64], shape: [1, 1]), Tensor([1] as [Float], shape: [1]))?.contains("one value per key") == true)
        #expect(reason(Tensor([4, 5] as [Int64], shape: [2]), Tensor([1, 2] as [Float], shape: [2])) == nil)
    }
}
