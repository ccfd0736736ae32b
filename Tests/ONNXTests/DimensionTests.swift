import Engine
import ONNX
import Tensors
import Testing

/// Dynamic dimensions: unnamed ones ("", "?" or no field at all) are each a size of their own; a
/// named one takes one size across all inputs.
@Suite struct DimensionTests {
    typealias B = ONNXBytes

    /// a → Relu → ra, b → Relu → rb, with the given declared dimensions for a and b.
    private func session(a: [String], b: [String]) throws -> InferenceSession {
        let graph = B.graph(nodes: [B.node("Relu", ["a"], ["ra"], name: "ra"), B.node("Relu", ["b"], ["rb"], name: "rb")],
                            inputs: [B.value("a", dims: a), B.value("b", dims: b)],
                            outputs: [B.value("ra", dims: a), B.value("rb", dims: b)])
        return try InferenceSession(model: ModelLoader.load(B.model(graph).data, directory: nil), options: .init(intraOpThreads: 1))
    }

    private func feeds(_ a: Shape, _ b: Shape) -> [String: Tensor] {
        ["a": Tensor(zeros: .float, shape: a), "b": Tensor(zeros: .float, shape: b)]
    }

    @Test func questionMarksAndUnsetDimensionsAreUnknown() throws {
        let session = try self.session(a: ["?", "2", "?", "?"], b: ["", "batch"])
        #expect(session.inputs.map(\.type) == [TensorType(.float, [.unknown, .fixed(2), .unknown, .unknown]),
                                               TensorType(.float, [.unknown, .symbolic("batch")])])
    }

    @Test func unnamedDimensionsTakeTheirOwnSizes() throws {
        // PaddleOCR's classifier: x is [?, 3, ?, ?] and is fed [1, 3, 48, 192].
        let session = try self.session(a: ["?", "2", "?", "?"], b: ["?", ""])
        let results = try session.run(feeds([1, 2, 48, 192], [5, 7]))
        #expect(results["ra"]?.shape == [1, 2, 48, 192])
        #expect(results["rb"]?.shape == [5, 7])
    }

    @Test func aNamedDimensionMustAgreeAcrossInputs() throws {
        let session = try self.session(a: ["n", "2"], b: ["n", "?"])
        #expect(try session.run(feeds([3, 2], [3, 9]))["rb"]?.shape == [3, 9])
        #expect(throws: EngineError.invalidInput("dimension 'n' is 3 in input 'a' but 4 in input 'b'")) {
            try session.run(feeds([3, 2], [4, 9]))
        }
    }

    @Test func aNamedDimensionMustAgreeWithinAnInput() throws {
        let session = try self.session(a: ["n", "n"], b: ["?"])
        #expect(try session.run(feeds([3, 3], [1]))["ra"]?.shape == [3, 3])
        #expect(throws: EngineError.invalidInput("dimension 'n' is 3 in input 'a' but 4 in input 'a'")) {
            try session.run(feeds([3, 4], [1]))
        }
    }
}
