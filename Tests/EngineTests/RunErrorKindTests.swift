import Engine
import Tensors
import Testing

/// A failed run says whose fault it was: values or shapes the caller fed (`invalidInput`, which
/// servers answer with 400) or something else (`runtime`, a 500).
@Suite struct RunErrorKindTests {
    /// data [1, 4] (constant) expanded to the fed `shape`.
    static let expand = Model(
        graph: Graph(nodes: [Node(name: "grow", opType: "Expand", inputs: ["data", "shape"], outputs: ["y"])],
                     inputs: [ValueInfo(name: "shape", type: TensorType(.int64, [.fixed(2)]))],
                     outputs: [ValueInfo(name: "y", type: nil)],
                     initializers: ["data": Tensor([1, 2, 3, 4] as [Float], shape: [1, 4])]),
        opsets: ["": 13])

    @Test func tokenIdPastTheVocabularyIsTheCallersMistake() throws {
        let session = try InferenceSession(model: EncoderModel.model())
        let ids = Tensor([3, 100, 7] as [Int64], shape: [1, 3])
        #expect(throws: EngineError.invalidInput("Gather 'x': index 100 is out of range for a dimension of 100")) {
            try session.run(["ids": ids])
        }
        #expect(throws: EngineError.invalidInput("Gather 'x': index -101 is out of range for a dimension of 100")) {
            try session.run(["ids": Tensor([-101] as [Int64], shape: [1, 1])])
        }
    }

    @Test func emptySequenceRuns() throws {
        let session = try InferenceSession(model: EncoderModel.model())
        #expect(try session.run(["ids": Tensor([Int64](), shape: [2, 0])])["y"]?.shape == [2, 0, 16])
    }

    @Test func shapesThatDoNotBroadcastAreTheCallersMistake() throws {
        let session = try InferenceSession(model: Self.expand)
        #expect(try session.run(["shape": Tensor([3, 1] as [Int64], shape: [2])])["y"]?.shape == [3, 4])
        #expect(throws: EngineError.invalidInput("Expand 'grow': cannot expand [1, 4] to [1, 5]")) {
            try session.run(["shape": Tensor([1, 5] as [Int64], shape: [2])])
        }
        #expect(throws: EngineError.invalidInput("Expand 'grow': shape [1099511627776, 1099511627776] is too large")) {
            try session.run(["shape": Tensor([1 << 40, 1 << 40] as [Int64], shape: [2])])
        }
    }

    @Test func failureNotCausedByTheFeedsStaysInternal() throws {
        // Dropout in training mode with a non-zero ratio is an engine limitation, whatever is fed.
        let model = Model(
            graph: Graph(nodes: [Node(name: "drop", opType: "Dropout", inputs: ["x", "ratio", "training"], outputs: ["y"])],
                         inputs: [ValueInfo(name: "x", type: TensorType(.float, [.fixed(2)]))],
                         outputs: [ValueInfo(name: "y", type: nil)],
                         initializers: ["ratio": Tensor(scalar: Float(0.5)), "training": Tensor(scalar: true)]),
            opsets: ["": 13])
        let session = try InferenceSession(model: model, options: .init(optimizations: false))
        #expect(throws: EngineError.runtime(node: "Dropout 'drop'", message: "training mode with ratio 0.5 is not supported at inference")) {
            try session.run(["x": Tensor([1, 2] as [Float], shape: [2])])
        }
    }
}
