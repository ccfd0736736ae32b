import Engine
import Foundation
import ONNX
import Tensors
import Testing

/// Truncated, corrupted and hostile `.onnx` files: each is refused with one line naming the
/// problem, and nothing is allocated from a declared size the file's data does not back.
@Suite struct HostileModelTests {
    typealias B = ONNXBytes

    /// The one-line error loading `model` and building its session gives, or nil when it loads.
    private func loadError(_ model: ProtoBytes, directory: String? = nil) -> String? {
        do {
            let loaded = try ModelLoader.load(model.data, directory: directory)
            _ = try InferenceSession(model: loaded, options: .init(intraOpThreads: 1))
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// Expects loading to fail with one line containing every fragment.
    private func expectRefused(_ model: ProtoBytes, directory: String? = nil, _ fragments: String...,
                               sourceLocation: SourceLocation = #_sourceLocation) {
        guard let message = loadError(model, directory: directory) else {
            Issue.record("the model loaded", sourceLocation: sourceLocation)
            return
        }
        #expect(!message.contains("\n"), "\(message)", sourceLocation: sourceLocation)
        for fragment in fragments {
            #expect(message.contains(fragment), "\(message)", sourceLocation: sourceLocation)
        }
    }

    /// y = relu(k) for an initializer `k`, plus x as an unused input.
    private func model(initializer: ProtoBytes? = nil, sparse: ProtoBytes? = nil) -> ProtoBytes {
        B.model(B.graph(nodes: [B.node("Relu", ["k"], ["y"])], inputs: [B.value("x", B.float, [2])],
                        outputs: [B.value("y", B.float, [2])],
                        initializers: initializer.map { [$0] } ?? [], sparseInitializers: sparse.map { [$0] } ?? []))
    }

    @Test func wellFormedModelLoads() {
        #expect(loadError(model(initializer: B.tensor("k", dims: [2], raw: B.raw([Float](arrayLiteral: -1, 2))))) == nil)
    }

    @Test func truncatedFilesAreMalformed() {
        let bytes = model(initializer: B.tensor("k", dims: [2], raw: B.raw([Float](arrayLiteral: -1, 2)))).bytes
        for length in [1, bytes.count / 3, bytes.count / 2, bytes.count - 1] {
            do {
                _ = try ModelLoader.load(Data(bytes.prefix(length)), directory: nil)
                Issue.record("a file truncated to \(length) of \(bytes.count) bytes loaded")
            } catch {
                #expect("\(error)".contains("not a valid ONNX file"), "\(error)")
            }
        }
    }

    @Test func hugeDimensionsAreRefusedBeforeAnyAllocation() {
        expectRefused(model(initializer: B.tensor("k", dims: [1 << 31, 1 << 31, 1 << 31], raw: [0, 0, 0, 0])),
                      "tensor 'k'", "too many elements")
        expectRefused(model(initializer: B.tensor("k", dims: [-1, 2], raw: [])), "tensor 'k'", "invalid dimensions")
        expectRefused(model(initializer: B.tensor("k", dims: [Int64.max], raw: [])), "tensor 'k'", "invalid dimensions")
        // No elements, but strides over these dimensions would overflow.
        expectRefused(model(initializer: B.tensor("k", dims: [0, 1 << 30, 1 << 30, 1 << 30], raw: [])),
                      "tensor 'k'", "too many elements")
    }

    @Test func rawDataOfTheWrongSizeIsRefused() {
        expectRefused(model(initializer: B.tensor("k", dims: [1 << 20], raw: [0, 0, 0, 0])), "tensor 'k'", "4 bytes of raw_data", "needs 4194304")
        expectRefused(model(initializer: B.tensor("k", dims: [2], raw: B.raw([Float](arrayLiteral: 1, 2, 3)))), "tensor 'k'", "12 bytes")
        // Typed fields: a float tensor with fewer values than its shape.
        expectRefused(model(initializer: B.tensor("k", dims: [1 << 30]).float(4, 1)), "tensor 'k'", "1 values in float_data")
    }

    @Test func declaredInputShapesThatCannotBeCountedAreRefused() {
        let graph = B.graph(nodes: [B.node("Relu", ["x"], ["y"])], inputs: [B.value("x", B.float, [1 << 31, 1 << 31, 1 << 31])],
                            outputs: [B.value("y", B.float, [2])])
        expectRefused(B.model(graph), "input 'x'", "more elements than onnx-serve can count")
        let wide = B.graph(nodes: [B.node("Relu", ["x"], ["y"])], inputs: [B.value("x", B.float, [1 << 62])],
                           outputs: [B.value("y", B.float, [2])])
        expectRefused(B.model(wide), "input 'x'", "declares dimension 4611686018427387904")
    }

    // MARK: External data

    private func externalModel(_ entries: [(String, String)]) -> ProtoBytes {
        var tensor = B.tensor("k", dims: [2]).int(14, 1)
        for (key, value) in entries { tensor = tensor.message(13, ProtoBytes().string(1, key).string(2, value)) }
        return model(initializer: tensor)
    }

    private func withWeights(_ body: (String) throws -> Void) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder + "/inner", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Data(B.raw([Float](arrayLiteral: 1, -2, 3, -4))).write(to: URL(fileURLWithPath: folder + "/weights.bin"))
        try body(folder)
    }

    @Test func externalDataReferencesAreChecked() throws {
        try withWeights { folder in
            #expect(loadError(externalModel([("location", "weights.bin"), ("offset", "8")]), directory: folder) == nil)
            expectRefused(externalModel([("location", "weights.bin"), ("offset", "\(Int.max)")]), directory: folder,
                          "tensor 'k'", "8 bytes from offset \(Int.max)", "which has 16")
            expectRefused(externalModel([("location", "weights.bin"), ("offset", "12")]), directory: folder, "which has 16")
            expectRefused(externalModel([("location", "weights.bin"), ("offset", "-4")]), directory: folder, "invalid offset '-4'")
            expectRefused(externalModel([("location", "weights.bin"), ("offset", "1e3")]), directory: folder, "invalid offset '1e3'")
            expectRefused(externalModel([("location", "weights.bin"), ("length", "\(UInt64.max)")]), directory: folder,
                          "has length 18446744073709551615", "8 bytes")
            expectRefused(externalModel([("location", "../weights.bin")]), directory: folder + "/inner", "outside the model's folder")
            expectRefused(externalModel([("location", "/etc/passwd")]), directory: folder, "absolute path")
            expectRefused(externalModel([("location", ".")]), directory: folder, "outside the model's folder")
            expectRefused(externalModel([("offset", "0")]), directory: folder, "has no 'location'")
            expectRefused(externalModel([("location", "weights.bin")]), directory: nil, "not allowed here")
        }
    }

    // MARK: Sparse initializers

    /// A `SparseTensorProto` named `k` of shape `dims` with `values` at `indices`.
    private func sparse(dims: [Int64], values: [Float], indices: [Int64], indexDims: [Int64]? = nil,
                        indexType: Int64 = B.int64) -> ProtoBytes {
        let indexBytes = indexType == B.int64 ? B.raw(indices) : B.raw(indices.map { Float($0) })
        var proto = ProtoBytes()
            .message(1, B.tensor("k", dims: [Int64(values.count)], raw: B.raw(values)))
            .message(2, B.tensor("k_indices", indexType, dims: indexDims ?? [Int64(indices.count)], raw: indexBytes))
        for dim in dims { proto = proto.int(3, dim) }
        return proto
    }

    @Test func sparseInitializersAreDensifiedWithinTheFilesMeans() {
        #expect(loadError(model(sparse: sparse(dims: [2], values: [5], indices: [1]))) == nil)
        expectRefused(model(sparse: sparse(dims: [1 << 30, 1 << 30], values: [1], indices: [0])), "sparse tensor 'k'", "too many elements")
        expectRefused(model(sparse: sparse(dims: [1 << 33], values: [1], indices: [0])), "sparse tensor 'k'", "more than the file can justify")
        expectRefused(model(sparse: sparse(dims: [4], values: [1], indices: [4])), "sparse tensor 'k'", "index 4 outside shape [4]")
        expectRefused(model(sparse: sparse(dims: [4], values: [1], indices: [-1])), "sparse tensor 'k'", "outside shape")
        expectRefused(model(sparse: sparse(dims: [2, 2], values: [1], indices: [Int64.max / 2, 3], indexDims: [1, 2])),
                      "sparse tensor 'k'", "outside shape")
        expectRefused(model(sparse: sparse(dims: [4], values: [1], indices: [1], indexType: B.float)), "float indices")
        expectRefused(model(sparse: sparse(dims: [4], values: [1, 2], indices: [1, 2, 3])), "3 indices for 2 values")
    }

    // MARK: Graph structure

    @Test func cyclesUndefinedInputsAndDuplicateProducersAreRefused() {
        let cycle = B.graph(nodes: [B.node("Add", ["x", "b"], ["a"], name: "first"), B.node("Relu", ["a"], ["b"], name: "second"),
                                    B.node("Relu", ["a"], ["y"], name: "third")],
                            inputs: [B.value("x", B.float, [2])], outputs: [B.value("y", B.float, [2])])
        expectRefused(B.model(cycle), "cycle")
        let selfLoop = B.graph(nodes: [B.node("Relu", ["y"], ["y"], name: "self")],
                               inputs: [B.value("x", B.float, [2])], outputs: [B.value("y", B.float, [2])])
        expectRefused(B.model(selfLoop), "cycle")
        let ghost = B.graph(nodes: [B.node("Relu", ["ghost"], ["y"], name: "reader")],
                            inputs: [B.value("x", B.float, [2])], outputs: [B.value("y", B.float, [2])])
        expectRefused(B.model(ghost), "'ghost'", "no node, graph input or initializer produces")
        let twice = B.graph(nodes: [B.node("Relu", ["x"], ["y"], name: "one"), B.node("Relu", ["x"], ["y"], name: "two")],
                            inputs: [B.value("x", B.float, [2])], outputs: [B.value("y", B.float, [2])])
        expectRefused(B.model(twice), "produced by both")
        let missing = B.graph(nodes: [B.node("Relu", ["x"], ["y"])], inputs: [B.value("x", B.float, [2])],
                              outputs: [B.value("z", B.float, [2])])
        expectRefused(B.model(missing), "graph output 'z' is not produced")
    }

    @Test func typeAndOpsetConfusionIsRefused() {
        let relu = B.graph(nodes: [B.node("Relu", ["x"], ["y"], name: "r")], inputs: [B.value("x", B.float, [2])],
                           outputs: [B.value("y", B.float, [2])])
        expectRefused(B.model(relu, opset: 99), "opset 99")
        expectRefused(B.model(relu, opset: -5), "Relu")
        let text = B.graph(nodes: [B.node("Relu", ["x"], ["y"], name: "r")], inputs: [B.value("x", 8, [2])],
                           outputs: [B.value("y", 8, [2])])
        expectRefused(B.model(text), "r")
        let unknownType = B.graph(nodes: [B.node("Relu", ["x"], ["y"])], inputs: [B.value("x", 14, [2])],
                                  outputs: [B.value("y", B.float, [2])])
        expectRefused(B.model(unknownType), "input 'x'", "complex64")
        let badType = B.graph(nodes: [B.node("Relu", ["x"], ["y"])], inputs: [B.value("x", 12345, [2])],
                              outputs: [B.value("y", B.float, [2])])
        expectRefused(B.model(badType), "input 'x'", "code 12345")
    }

    // MARK: Absurd attributes and constants

    /// y = `opType`(x, k) for a constant second input `k` and x float [4].
    private func withConstant(_ opType: String, _ constant: ProtoBytes, attributes: [ProtoBytes] = []) -> ProtoBytes {
        B.model(B.graph(nodes: [B.node(opType, ["x", "k"], ["y"], name: "op", attributes: attributes)],
                        inputs: [B.value("x", B.float, [4])], outputs: [B.value("y", B.float, [])], initializers: [constant]))
    }

    @Test func constantsThatOverflowShapesAreRefused() {
        // Fuzzer find (Tests/Fuzz/Corpus/modelloader/regression-tile-repeats-overflow): the inferred
        // size 4 × 2^62 overflowed.
        expectRefused(withConstant("Tile", B.tensor("k", B.int64, dims: [1], raw: B.raw([Int64(1) << 62]))), "op", "too large")
        expectRefused(withConstant("Tile", B.tensor("k", B.int64, dims: [1], raw: B.raw([Int64(-1)]))), "op", "must not be negative")
    }

    @Test func nonIntegerShapeConstantsAreTypeErrorsNotTraps() throws {
        // Float shapes and repeats holding NaN or 1e30 used to be converted to Int (a trap) when the
        // operator was built. The contracts of Reshape, Expand and Tile refuse them at load.
        for bad: Float in [.nan, 1e30, -.infinity] {
            let constant = B.tensor("k", B.float, dims: [1], raw: B.raw([bad]))
            expectRefused(withConstant("Reshape", constant), "op", "input 'shape' has element type float; it must be int64")
            expectRefused(withConstant("Expand", constant), "op", "input 'shape' has element type float; it must be int64")
            expectRefused(withConstant("Tile", constant), "op", "input 'repeats' has element type float; T1 must be one of: int64")
        }
    }

    @Test func foldingIsBoundedByWhatTheFileHolds() throws {
        // ConstantOfShape of 2^27 floats (512 MiB) from 8 bytes of file is left to run time; a
        // small one folds.
        for (count, folds) in [(Int64(1) << 27, false), (4, true)] {
            let graph = B.graph(nodes: [B.node("ConstantOfShape", ["dims"], ["filled"]), B.node("Add", ["x", "filled"], ["y"])],
                                inputs: [B.value("x", B.float, [1])], outputs: [B.value("y", B.float, [])],
                                initializers: [B.tensor("dims", B.int64, dims: [1], raw: B.raw([count]))])
            let model = try ModelLoader.load(B.model(graph).data, directory: nil)
            let optimized = try GraphOptimizer.optimize(model.graph, opsets: model.opsets)
            #expect(optimized.nodes.contains { $0.opType == "ConstantOfShape" } == !folds, "\(count)")
            #expect((optimized.initializers["filled"] != nil) == folds, "\(count)")
        }
    }
}
