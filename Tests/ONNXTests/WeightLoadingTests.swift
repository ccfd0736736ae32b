import Engine
import Foundation
import ONNX
import Tensors
import Testing

/// Weights in `raw_data` are copied from the model's bytes straight into their tensors (the
/// message is decoded without them); the model loaded must be the one the whole message
/// describes, however the file lays its fields out, from bytes in memory, a mapped file or a file
/// read into memory.
@Suite struct WeightLoadingTests {
    typealias B = ONNXBytes

    private static let count = 301
    private static let a = (0..<count).map { Float($0) * 0.25 - 7 }
    private static let b = (0..<count).map { Float($0 % 17) * -1.5 + 3 }

    /// y = a + b with a and b initializers of `count` floats, written unusually: two `graph`
    /// fields (which merge; b is in the second), a first `raw_data` of a that the second replaces,
    /// unknown fields at each level, and `padding` bytes of doc_string at the end of the model.
    private func model(padding: Int = 0) -> ProtoBytes {
        let tensorA = B.tensor("a", dims: [Int64(Self.count)], raw: [1, 2, 3]).int(100, 5).bytes(9, B.raw(Self.a))
        let first = B.graph(nodes: [B.node("Add", ["a", "b"], ["y"])], outputs: [B.value("y", B.float, [Int64(Self.count)])],
                            initializers: [tensorA]).float(100, 1.5)
        let second = ProtoBytes().message(5, B.tensor("b", dims: [Int64(Self.count)], raw: B.raw(Self.b)))
        return ProtoBytes().int(1, 8).message(8, ProtoBytes().string(1, "").int(2, 13)).message(7, first).int(100, 9)
            .message(7, second).string(6, String(repeating: "d", count: padding))
    }

    private func expectTheModel(_ loaded: Model, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(loaded.graph.initializers["a"]?.scalars(as: Float.self) == Self.a, sourceLocation: sourceLocation)
        #expect(loaded.graph.initializers["b"]?.scalars(as: Float.self) == Self.b, sourceLocation: sourceLocation)
        let session = try InferenceSession(model: loaded, options: .init(intraOpThreads: 1))
        let y = try #require(try session.run([:])["y"], sourceLocation: sourceLocation)
        #expect(y.scalars(as: Float.self) == zip(Self.a, Self.b).map { $0 + $1 }, sourceLocation: sourceLocation)
    }

    @Test func weightsCutFromTheMessageMatchTheWholeMessage() throws {
        // Weights more than half the bytes: read straight from them. Padded past that: the whole
        // message is decoded as it is. Both give the same model.
        try expectTheModel(try ModelLoader.load(model().data, directory: nil))
        try expectTheModel(try ModelLoader.load(model(padding: 8 * Self.count).data, directory: nil))
    }

    @Test func weightsCutFromAFileMatchTheWholeMessage() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("weights-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // Bigger than a few pages, so that pages wholly inside a weight are let go after copying.
        let big = (0..<5000).map { Float($0) / 7 }
        let graph = B.graph(nodes: [B.node("Relu", ["w"], ["y"])], outputs: [B.value("y", B.float, [5000])],
                            initializers: [B.tensor("w", dims: [5000], raw: B.raw(big))])
        let path = directory.appendingPathComponent("model.onnx").path
        try B.model(graph).data.write(to: URL(fileURLWithPath: path))
        let loaded = try ModelLoader.load(contentsOf: path)
        #expect(loaded.graph.initializers["w"]?.scalars(as: Float.self) == big)
        let y = try #require(try InferenceSession(model: loaded, options: .init(intraOpThreads: 1)).run([:])["y"])
        #expect(y.scalars(as: Float.self) == big)
        // Read into memory (the daemon's way): the same weights, copied before their pages went;
        // those pages read zeros now, so the same contents cannot be loaded twice.
        let contents = try ModelFileContents(reading: path)
        let fromMemory = try ModelLoader.load(contents, directory: directory.path, source: path)
        #expect(fromMemory.graph.initializers["w"]?.scalars(as: Float.self) == big)
        #expect(throws: ONNXError.self) { try ModelLoader.load(contents, directory: directory.path, source: path) }
    }

    @Test func truncatedOrMisSizedWeightsAreRefused() {
        let bytes = model().bytes
        for length in [1, bytes.count / 4, bytes.count / 2, bytes.count - 5, bytes.count - 1] {
            do {
                _ = try ModelLoader.load(Data(bytes.prefix(length)), directory: nil)
                Issue.record("a file truncated to \(length) of \(bytes.count) bytes loaded")
            } catch {
                #expect("\(error)".contains("not a valid ONNX file"), "\(error)")
            }
        }
        let wrong = B.model(B.graph(nodes: [B.node("Relu", ["w"], ["y"])], outputs: [B.value("y", B.float, [400])],
                                    initializers: [B.tensor("w", dims: [400], raw: B.raw([Float](repeating: 1, count: 399)))]))
        do {
            _ = try ModelLoader.load(wrong.data, directory: nil)
            Issue.record("399 floats loaded for 400")
        } catch {
            #expect("\(error)".contains("tensor 'w' has 1596 bytes of raw_data"), "\(error)")
            #expect("\(error)".contains("needs 1600"), "\(error)")
        }
    }
}
