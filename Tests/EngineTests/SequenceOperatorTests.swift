import Engine
import Tensors
import Testing

/// The sequence and optional operators on small graphs: values against hand-computed ones, the
/// kinds checked at load, and positions, types and kinds from the feeds refused with clear errors.
@Suite struct SequenceOperatorTests {
    static func tensor(_ name: String, _ type: DataType, _ dims: [Int]) -> ValueInfo {
        ValueInfo(name: name, type: TensorType(type, shape: Shape(dims)))
    }

    static func session(_ nodes: [Node], inputs: [ValueInfo], outputs: [ValueInfo], initializers: [String: Tensor] = [:],
                        opset: Int = 17, optimizations: Bool = true) throws -> InferenceSession {
        let graph = Graph(nodes: nodes, inputs: inputs, outputs: outputs, initializers: initializers)
        return try InferenceSession(model: Model(graph: graph, opsets: ["": opset]),
                                    options: .init(intraOpThreads: 1, optimizations: optimizations))
    }

    /// The error `body` throws, which must be an `EngineError`.
    static func engineError(_ body: () throws -> Void) -> EngineError? {
        do {
            try body()
        } catch let error as EngineError {
            return error
        } catch {
            Issue.record("expected an EngineError, got \(error)")
        }
        return nil
    }

    /// True when `error` is `.invalidInput` and its message contains `text`.
    static func isInvalidInput(_ error: EngineError?, containing text: String) -> Bool {
        guard case .invalidInput(let message)? = error else { return false }
        return message.contains(text)
    }

    static func floats(_ value: Value?) -> [Float]? { value?.tensor?.scalars(as: Float.self) }

    /// x [3, 5] (odd sizes) → SplitToSequence(axis 1, split [1, 3, 1]) → length, the last part, and
    /// the parts joined again (axis 1) and stacked (new axis 0).
    @Test(arguments: [true, false])
    func splitReadAndConcatenate(optimizations: Bool) throws {
        let session = try Self.session([
            Node(name: "split", opType: "SplitToSequence", inputs: ["x", "sizes"], outputs: ["parts"], attributes: ["axis": .int(1)]),
            Node(name: "count", opType: "SequenceLength", inputs: ["parts"], outputs: ["n"]),
            Node(name: "last", opType: "SequenceAt", inputs: ["parts", "minus_one"], outputs: ["tail"]),
            Node(name: "join", opType: "ConcatFromSequence", inputs: ["parts"], outputs: ["joined"], attributes: ["axis": .int(1)]),
            Node(name: "ones", opType: "SplitToSequence", inputs: ["x"], outputs: ["rows"], attributes: ["keepdims": .int(0)]),
            Node(name: "stack", opType: "ConcatFromSequence", inputs: ["rows"], outputs: ["stacked"],
                 attributes: ["axis": .int(-1), "new_axis": .int(1)]),
        ], inputs: [Self.tensor("x", .float, [3, 5])],
           outputs: ["n", "tail", "joined", "stacked", "parts"].map { ValueInfo(name: $0, type: nil, kind: nil) },
           initializers: ["sizes": Tensor([1, 3, 1] as [Int64], shape: [3]), "minus_one": Tensor(scalar: Int32(-1))],
           optimizations: optimizations)
        let values = (0..<15).map(Float.init)
        let results = try session.runValues(["x": .tensor(Tensor(values, shape: [3, 5]))])
        #expect(results["n"]?.tensor?.scalars(as: Int64.self) == [3])
        #expect(results["tail"]?.tensor?.shape == [3, 1])
        #expect(Self.floats(results["tail"]) == [4, 9, 14])
        #expect(results["joined"]?.tensor?.shape == [3, 5])
        #expect(Self.floats(results["joined"]) == values)
        // Rows [5] stacked along a new last axis: the transpose, [5, 3].
        #expect(results["stacked"]?.tensor?.shape == [5, 3])
        let transposed: [Float] = (0..<15).map { (index: Int) -> Float in Float((index % 3) * 5 + index / 3) }
        #expect(Self.floats(results["stacked"]) == transposed)
        let parts = try #require(results["parts"]?.sequence)
        #expect(parts.elementType == .float)
        #expect(parts.tensors.map(\.shape) == [[3, 1], [3, 3], [3, 1]])
        #expect(session.outputs.first { $0.name == "parts" }?.kind == .sequence)
        #expect(session.outputs.first { $0.name == "n" }?.kind == .tensor)
    }

    /// A scalar split cuts parts of that size, the last one shorter; a split that does not add up
    /// or is not positive is refused.
    @Test func splitSizes() throws {
        let session = try Self.session([
            Node(name: "split", opType: "SplitToSequence", inputs: ["x", "split"], outputs: ["parts"]),
        ], inputs: [Self.tensor("x", .float, [7]), ValueInfo(name: "split", type: nil)],
           outputs: [ValueInfo(name: "parts", type: nil, kind: .sequence)])
        let x = Value.tensor(Tensor((0..<7).map(Float.init), shape: [7]))
        let parts = try session.runValues(["x": x, "split": .tensor(Tensor(scalar: Int64(3)))])["parts"]?.sequence
        #expect(parts?.tensors.map(\.shape) == [[3], [3], [1]])
        #expect(parts?.tensors.last?.scalars(as: Float.self) == [6])
        let uneven = Self.engineError { _ = try session.runValues(["x": x, "split": .tensor(Tensor([3, 3] as [Int64], shape: [2]))]) }
        #expect(Self.isInvalidInput(uneven, containing: "does not cut an axis of 7"))
        let zero = Self.engineError { _ = try session.runValues(["x": x, "split": .tensor(Tensor(scalar: Int64(0)))]) }
        #expect(Self.isInvalidInput(zero, containing: "must be positive"))
    }

    /// SequenceEmpty, SequenceInsert (at the end, at the front, at a negative position) and
    /// SequenceErase, checked against the list a Python user would expect.
    @Test func insertAndErase() throws {
        let session = try Self.session([
            Node(name: "empty", opType: "SequenceEmpty", inputs: [], outputs: ["s0"], attributes: ["dtype": .int(Int(DataType.int64.rawValue))]),
            Node(name: "append_a", opType: "SequenceInsert", inputs: ["s0", "a"], outputs: ["s1"]),
            Node(name: "front_b", opType: "SequenceInsert", inputs: ["s1", "b", "zero"], outputs: ["s2"]),
            Node(name: "before_last_c", opType: "SequenceInsert", inputs: ["s2", "c", "minus_one"], outputs: ["s3"]),
            Node(name: "erase_first", opType: "SequenceErase", inputs: ["s3", "zero"], outputs: ["s4"]),
            Node(name: "erase_last", opType: "SequenceErase", inputs: ["s3"], outputs: ["s5"]),
        ], inputs: [Self.tensor("a", .int64, [1]), Self.tensor("b", .int64, [2]), Self.tensor("c", .int64, [])],
           outputs: ["s3", "s4", "s5"].map { ValueInfo(name: $0, type: nil, kind: .sequence) },
           initializers: ["zero": Tensor(scalar: Int64(0)), "minus_one": Tensor(scalar: Int64(-1))])
        let results = try session.runValues([
            "a": .tensor(Tensor([1] as [Int64], shape: [1])), "b": .tensor(Tensor([2, 2] as [Int64], shape: [2])),
            "c": .tensor(Tensor(scalar: Int64(3))),
        ])
        func lists(_ name: String) -> [[Int64]]? { results[name]?.sequence?.tensors.map { $0.scalars(as: Int64.self) } }
        #expect(lists("s3") == [[2, 2], [3], [1]])
        #expect(lists("s4") == [[3], [1]])
        #expect(lists("s5") == [[2, 2], [3]])
        #expect(results["s3"]?.sequence?.elementType == .int64)
    }

    /// Positions from the feeds: out of range for SequenceAt, SequenceInsert and SequenceErase,
    /// erasing from an empty sequence, and a position that is not one integer.
    @Test func positionsOutOfRangeAreRefused() throws {
        let session = try Self.session([
            Node(name: "make", opType: "SequenceConstruct", inputs: ["a", "a"], outputs: ["s"]),
            Node(name: "at", opType: "SequenceAt", inputs: ["s", "p"], outputs: ["y"]),
        ], inputs: [Self.tensor("a", .float, [2]), ValueInfo(name: "p", type: nil)], outputs: [ValueInfo(name: "y", type: nil)])
        let a = Tensor([1, 2] as [Float], shape: [2])
        #expect(try session.run(["a": a, "p": Tensor(scalar: Int64(-2))])["y"]?.scalars(as: Float.self) == [1, 2])
        for position: Int64 in [2, -3, .max, .min] {
            let error = Self.engineError { _ = try session.run(["a": a, "p": Tensor(scalar: position)]) }
            #expect(Self.isInvalidInput(error, containing: "position \(position) is out of range for a sequence of 2 tensors"))
        }
        let notOne = Self.engineError { _ = try session.run(["a": a, "p": Tensor([0, 1] as [Int64], shape: [2])]) }
        #expect(Self.isInvalidInput(notOne, containing: "position must be one value, not int64[2]"))
        // p is untyped: SequenceAt's contract is checked when it runs.
        let float = Self.engineError { _ = try session.run(["a": a, "p": Tensor(scalar: Float(0))]) }
        #expect(Self.isInvalidInput(float, containing: "SequenceAt 'at': input 'position' has element type float; I must be one of: int32, int64"))

        let edits = try Self.session([
            Node(name: "insert", opType: "SequenceInsert", inputs: ["s", "a", "p"], outputs: ["inserted"]),
            Node(name: "erase", opType: "SequenceErase", inputs: ["s", "p"], outputs: ["erased"]),
        ], inputs: [ValueInfo(name: "s", type: TensorType(.float, nil), kind: .sequence), Self.tensor("a", .float, [2]),
                    Self.tensor("p", .int64, [])],
           outputs: ["inserted", "erased"].map { ValueInfo(name: $0, type: nil, kind: .sequence) })
        let one = Value.sequence(TensorSequence(elementType: .float, tensors: [a]))
        // Inserting may go one past the end; erasing may not.
        let atEnd = Self.engineError { _ = try edits.runValues(["s": one, "a": .tensor(a), "p": .tensor(Tensor(scalar: Int64(1)))]) }
        #expect(Self.isInvalidInput(atEnd, containing: "position 1 is out of range for a sequence of 1 tensors (-1...0)"))
        let inserted = try edits.runValues(["s": one, "a": .tensor(a), "p": .tensor(Tensor(scalar: Int64(1)))], outputs: ["inserted"])
        #expect(inserted["inserted"]?.sequence?.tensors.count == 2)
        let tooFar = Self.engineError {
            _ = try edits.runValues(["s": one, "a": .tensor(a), "p": .tensor(Tensor(scalar: Int64(2)))], outputs: ["inserted"])
        }
        #expect(Self.isInvalidInput(tooFar, containing: "position 2 is out of range for a sequence of 1 tensors (-1...1)"))
        let empty = Value.sequence(TensorSequence(elementType: .float, tensors: []))
        let eraseEmpty = Self.engineError {
            _ = try edits.runValues(["s": empty, "a": .tensor(a), "p": .tensor(Tensor(scalar: Int64(0)))], outputs: ["erased"])
        }
        #expect(Self.isInvalidInput(eraseEmpty, containing: "cannot erase from an empty sequence"))
    }

    /// Element types that do not match: an insertion of another type, a construction from mixed
    /// types, and feeds whose sequence or kind is not the declared one.
    @Test func mismatchedTypesAndKindsAreRefused() throws {
        let session = try Self.session([
            Node(name: "insert", opType: "SequenceInsert", inputs: ["s", "t"], outputs: ["out"]),
        ], inputs: [ValueInfo(name: "s", type: TensorType(.float, nil), kind: .sequence), ValueInfo(name: "t", type: nil)],
           outputs: [ValueInfo(name: "out", type: nil, kind: .sequence)])
        let floats = Value.sequence(TensorSequence(elementType: .float, tensors: [Tensor([1] as [Float], shape: [1])]))
        let wrongTensor = Self.engineError { _ = try session.runValues(["s": floats, "t": .tensor(Tensor(scalar: Int64(1)))]) }
        #expect(Self.isInvalidInput(wrongTensor, containing: "cannot insert a int64 tensor into a sequence of float"))
        let ints = Value.sequence(TensorSequence(elementType: .int64, tensors: []))
        let wrongSequence = Self.engineError { _ = try session.runValues(["s": ints, "t": .tensor(Tensor(scalar: Int64(1)))]) }
        #expect(Self.isInvalidInput(wrongSequence, containing: "input 's' is a sequence of int64; the model expects float"))
        let notSequence = Self.engineError {
            _ = try session.runValues(["s": .tensor(Tensor(scalar: Float(1))), "t": .tensor(Tensor(scalar: Float(1)))])
        }
        #expect(Self.isInvalidInput(notSequence, containing: "input 's' is a tensor; the model expects a sequence"))
        let missing = Self.engineError { _ = try session.runValues(["t": .tensor(Tensor(scalar: Float(1)))]) }
        #expect(Self.isInvalidInput(missing, containing: "missing input 's'"))
        // A sequence output asked for through the tensor entry point.
        let throughTensors = Self.engineError { _ = try session.run(["t": Tensor(scalar: Float(1))]) }
        #expect(Self.isInvalidInput(throughTensors, containing: "missing input 's'"))

        let mixed = try Self.session([
            Node(name: "make", opType: "SequenceConstruct", inputs: ["a", "b"], outputs: ["s"]),
        ], inputs: [ValueInfo(name: "a", type: nil), ValueInfo(name: "b", type: nil)],
           outputs: [ValueInfo(name: "s", type: nil, kind: .sequence)])
        let mixedError = Self.engineError {
            _ = try mixed.runValues(["a": .tensor(Tensor(scalar: Float(1))), "b": .tensor(Tensor(scalar: Int64(1)))])
        }
        #expect(Self.isInvalidInput(mixedError, containing: "inputs 'inputs[0]' and 'inputs[1]' must have one element type (T), got float and int64"))
        let sequenceOutput = Self.engineError { _ = try mixed.run(["a": Tensor(scalar: Float(1)), "b": Tensor(scalar: Float(2))]) }
        #expect(Self.isInvalidInput(sequenceOutput, containing: "output 's' is a sequence, not a tensor"))
    }

    /// Kinds known at load: a tensor operator reading a sequence, and a sequence operator reading
    /// a tensor, are refused before anything runs.
    @Test func kindsAreCheckedAtLoad() throws {
        let reluOfSequence = Self.engineError {
            _ = try Self.session([
                Node(name: "make", opType: "SequenceConstruct", inputs: ["x"], outputs: ["s"]),
                Node(name: "relu", opType: "Relu", inputs: ["s"], outputs: ["y"]),
            ], inputs: [Self.tensor("x", .float, [2])], outputs: [ValueInfo(name: "y", type: nil)])
        }
        #expect(reluOfSequence == .invalidGraph("Relu 'relu' reads 's', a sequence; Relu takes tensors only"))
        let atOfTensor = Self.engineError {
            _ = try Self.session([
                Node(name: "at", opType: "SequenceAt", inputs: ["x", "zero"], outputs: ["y"]),
            ], inputs: [Self.tensor("x", .float, [2])], outputs: [ValueInfo(name: "y", type: nil)],
               initializers: ["zero": Tensor(scalar: Int64(0))])
        }
        guard case .invalidGraph(let message)? = atOfTensor else {
            Issue.record("expected invalidGraph, got \(String(describing: atOfTensor))")
            return
        }
        #expect(message.hasPrefix("SequenceAt 'at': input 'input_sequence' has type tensor(float); S must be one of: seq(tensor(bool)), "))
    }

    /// Optional of a tensor and an empty optional: has-element and get-element, and getting the
    /// element of an empty one fed by the caller.
    @Test func optionals() throws {
        let session = try Self.session([
            Node(name: "wrap", opType: "Optional", inputs: ["x"], outputs: ["some"]),
            Node(name: "none", opType: "Optional", inputs: [], outputs: ["none"],
                 attributes: ["type": .type(.sequence, TensorType(.float, nil))]),
            Node(name: "has_some", opType: "OptionalHasElement", inputs: ["some"], outputs: ["has_some"]),
            Node(name: "has_none", opType: "OptionalHasElement", inputs: ["none"], outputs: ["has_none"]),
            Node(name: "has_fed", opType: "OptionalHasElement", inputs: ["fed"], outputs: ["has_fed"]),
            Node(name: "get", opType: "OptionalGetElement", inputs: ["some"], outputs: ["back"]),
            Node(name: "get_fed", opType: "OptionalGetElement", inputs: ["fed"], outputs: ["fed_back"]),
        ], inputs: [Self.tensor("x", .float, [3]), ValueInfo(name: "fed", type: TensorType(.int32, nil), kind: .optional(.tensor))],
           outputs: ["has_some", "has_none", "has_fed", "back", "none", "fed_back"].map { ValueInfo(name: $0, type: nil, kind: nil) },
           opset: 18)
        let x = Tensor([1, 2, 3] as [Float], shape: [3])
        let fed = Value.optional(.tensor(Tensor(scalar: Int32(7))), kind: .tensor)
        let results = try session.runValues(["x": .tensor(x), "fed": fed])
        #expect(results["has_some"]?.tensor?.scalars(as: Bool.self) == [true])
        #expect(results["has_none"]?.tensor?.scalars(as: Bool.self) == [false])
        #expect(results["has_fed"]?.tensor?.scalars(as: Bool.self) == [true])
        #expect(Self.floats(results["back"]) == [1, 2, 3])
        #expect(results["fed_back"]?.tensor?.scalars(as: Int32.self) == [7])
        guard case .optional(.none, kind: .sequence)? = results["none"] else {
            Issue.record("the empty optional came back as \(String(describing: results["none"]))")
            return
        }
        #expect(session.outputs.first { $0.name == "none" }?.kind == .optional(.sequence))
        let empty = Self.engineError { _ = try session.runValues(["x": .tensor(x), "fed": .optional(nil, kind: .tensor)]) }
        #expect(Self.isInvalidInput(empty, containing: "the optional is empty"))
        let wrongType = Self.engineError {
            _ = try session.runValues(["x": .tensor(x), "fed": .optional(.tensor(Tensor(scalar: Float(1))), kind: .tensor)])
        }
        #expect(wrongType == .invalidInput("input 'fed' has element type float; the model expects int32"))
    }

    /// SequenceMap over two sequences and a tensor: element i of each sequence plus the tensor.
    /// Sequences of different lengths are refused.
    @Test func sequenceMap() throws {
        let body = Graph(nodes: [Node(name: "sum", opType: "Add", inputs: ["a", "b"], outputs: ["ab"]),
                                 Node(name: "plus", opType: "Add", inputs: ["ab", "c"], outputs: ["out"]),
                                 Node(name: "shape", opType: "Shape", inputs: ["a"], outputs: ["dims"])],
                         inputs: [ValueInfo(name: "a", type: nil), ValueInfo(name: "b", type: nil), ValueInfo(name: "c", type: nil)],
                         outputs: [ValueInfo(name: "out", type: nil), ValueInfo(name: "dims", type: nil)])
        let session = try Self.session([
            Node(name: "map", opType: "SequenceMap", inputs: ["s", "t", "c"], outputs: ["sums", "shapes"], attributes: ["body": .graph(body)]),
        ], inputs: [ValueInfo(name: "s", type: TensorType(.float, nil), kind: .sequence),
                    ValueInfo(name: "t", type: TensorType(.float, nil), kind: .sequence), Self.tensor("c", .float, [1])],
           outputs: ["sums", "shapes"].map { ValueInfo(name: $0, type: nil, kind: .sequence) })
        func sequence(_ lists: [[Float]]) -> Value {
            .sequence(TensorSequence(elementType: .float, tensors: lists.map { Tensor($0, shape: [$0.count]) }))
        }
        let results = try session.runValues(["s": sequence([[1], [2, 3], [4, 5, 6]]), "t": sequence([[10], [20, 30], [40, 50, 60]]),
                                             "c": .tensor(Tensor([100] as [Float], shape: [1]))])
        #expect(results["sums"]?.sequence?.tensors.map { $0.scalars(as: Float.self) } == [[111], [122, 133], [144, 155, 166]])
        #expect(results["shapes"]?.sequence?.tensors.map { $0.scalars(as: Int64.self) } == [[1], [2], [3]])
        #expect(results["shapes"]?.sequence?.elementType == .int64)
        let uneven = Self.engineError {
            _ = try session.runValues(["s": sequence([[1]]), "t": sequence([[1], [2]]), "c": .tensor(Tensor([0] as [Float], shape: [1]))])
        }
        #expect(Self.isInvalidInput(uneven, containing: "input sequences differ in length: 1 and 2"))
    }

    /// A Loop that carries a sequence (one insertion per iteration) and an If whose branches
    /// make sequences, with and without optimisations.
    @Test(arguments: [true, false])
    func loopAndIfCarrySequences(optimizations: Bool) throws {
        let body = Graph(nodes: [Node(name: "keep", opType: "Identity", inputs: ["cond_in"], outputs: ["cond_out"]),
                                 Node(name: "cast", opType: "Cast", inputs: ["i"], outputs: ["i_float"],
                                      attributes: ["to": .int(Int(DataType.float.rawValue))]),
                                 Node(name: "scale", opType: "Mul", inputs: ["i_float", "x"], outputs: ["scaled"]),
                                 Node(name: "push", opType: "SequenceInsert", inputs: ["seq_in", "scaled"], outputs: ["seq_out"])],
                         inputs: [Self.tensor("i", .int64, []), Self.tensor("cond_in", .bool, []),
                                  ValueInfo(name: "seq_in", type: TensorType(.float, nil), kind: .sequence)],
                         outputs: [Self.tensor("cond_out", .bool, []), ValueInfo(name: "seq_out", type: nil, kind: .sequence)])
        let thenBranch = Graph(nodes: [Node(name: "both", opType: "SequenceConstruct", inputs: ["x", "x"], outputs: ["pair"])],
                               inputs: [], outputs: [ValueInfo(name: "pair", type: nil, kind: .sequence)])
        let elseBranch = Graph(nodes: [Node(name: "nothing", opType: "SequenceEmpty", inputs: [], outputs: ["empty"])],
                               inputs: [], outputs: [ValueInfo(name: "empty", type: nil, kind: .sequence)])
        let session = try Self.session([
            Node(name: "start", opType: "SequenceEmpty", inputs: [], outputs: ["initial"]),
            Node(name: "loop", opType: "Loop", inputs: ["m", "", "initial"], outputs: ["collected"], attributes: ["body": .graph(body)]),
            Node(name: "join", opType: "ConcatFromSequence", inputs: ["collected"], outputs: ["joined"], attributes: ["axis": .int(0)]),
            Node(name: "choose", opType: "If", inputs: ["flag"], outputs: ["chosen"],
                 attributes: ["then_branch": .graph(thenBranch), "else_branch": .graph(elseBranch)]),
            Node(name: "count", opType: "SequenceLength", inputs: ["chosen"], outputs: ["chosen_count"]),
        ], inputs: [Self.tensor("x", .float, [2]), Self.tensor("m", .int64, []), Self.tensor("flag", .bool, [])],
           outputs: ["collected", "joined", "chosen_count"].map { ValueInfo(name: $0, type: nil, kind: nil) },
           optimizations: optimizations)
        let x = Value.tensor(Tensor([1, -2] as [Float], shape: [2]))
        let results = try session.runValues(["x": x, "m": .tensor(Tensor(scalar: Int64(3))), "flag": .tensor(Tensor(scalar: true))])
        #expect(results["collected"]?.sequence?.tensors.count == 3)
        #expect(Self.floats(results["joined"]) == [0, 0, 1, -2, 2, -4])
        #expect(results["chosen_count"]?.tensor?.scalars(as: Int64.self) == [2])
        #expect(session.outputs.first { $0.name == "collected" }?.kind == .sequence)
        let none = try session.runValues(["x": x, "m": .tensor(Tensor(scalar: Int64(0))), "flag": .tensor(Tensor(scalar: false))],
                                         outputs: ["collected", "chosen_count"])
        #expect(none["collected"]?.sequence?.tensors.isEmpty == true)
        #expect(none["chosen_count"]?.tensor?.scalars(as: Int64.self) == [0])
    }
}
