import Engine
import Kernels
import Tensors
import Testing
import TestSupport

/// Builds and runs one `ai.onnx.ml` node (inputs x0, x1, ...).
private func runML(_ opType: String, _ inputs: [Tensor], _ attributes: [String: AttributeValue], outputs: Int = 1,
                   opset: Int = 3, threads: Int = 1) throws -> [Tensor] {
    let node = Node(name: "node", opType: opType, domain: "ai.onnx.ml", inputs: inputs.indices.map { "x\($0)" },
                    outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes)
    let op = try OperatorRegistry.compile(node, opsets: ["": 17, "ai.onnx.ml": opset], constants: inputs.map { _ in nil })
    return try op.run(inputs, ExecutionContext(pool: BufferPool(), parallelism: Parallelism(threads: threads)))
}

/// Two trees over two features: tree 0 splits x0 ≤ 0.5 (NaN goes true), tree 1 splits x1 < 2.
private func twoTrees(missingTrue: Int = 1) -> [String: AttributeValue] {
    [
        "nodes_treeids": .ints([0, 0, 0, 1, 1, 1]),
        "nodes_nodeids": .ints([0, 1, 2, 0, 1, 2]),
        "nodes_featureids": .ints([0, 0, 0, 1, 0, 0]),
        "nodes_modes": .strings(["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LT", "LEAF", "LEAF"]),
        "nodes_values": .floats([0.5, 0, 0, 2, 0, 0]),
        "nodes_truenodeids": .ints([1, 0, 0, 1, 0, 0]),
        "nodes_falsenodeids": .ints([2, 0, 0, 2, 0, 0]),
        "nodes_missing_value_tracks_true": .ints([missingTrue, 0, 0, 0, 0, 0]),
        "target_treeids": .ints([0, 0, 1, 1]),
        "target_nodeids": .ints([1, 2, 1, 2]),
        "target_ids": .ints([0, 0, 0, 0]),
        "target_weights": .floats([1, 10, 100, 1000]),
    ]
}

@Suite struct ClassicMLOperatorTests {
    @Test func treeRegressorAggregatesAndSendsMissingValuesTheTrackedWay() throws {
        let x = Tensor([0.2, 1, 0.9, 5, Float.nan, 3] as [Float], shape: [3, 2])
        let sum = try runML("TreeEnsembleRegressor", [x], twoTrees())[0]
        #expect(sum.shape == [3, 1] && sum.floats == [101, 1010, 1001])
        let average = try runML("TreeEnsembleRegressor", [x], twoTrees().merging(["aggregate_function": .string("AVERAGE"),
                                                                                 "base_values": .floats([0.5])]) { $1 })[0]
        #expect(average.floats == [51, 505.5, 501])
        let maximum = try runML("TreeEnsembleRegressor", [x], twoTrees(missingTrue: 0).merging(["aggregate_function": .string("MAX")]) { $1 })[0]
        #expect(maximum.floats == [100, 1000, 1000])
        // Rows in blocks (1001: a partial last block) and over threads, against the trees by hand.
        var values: [Float] = []
        for index in 0..<2002 {
            let half: Float = index % 5 == 0 ? 0.5 : 0
            values.append(Float(index % 7) - 3 + half)
        }
        let many = Tensor(values, shape: [1001, 2])
        var expected: [Float] = []
        for row in 0..<1001 {
            let first: Float = values[2 * row] <= 0.5 ? 1 : 10
            let second: Float = values[2 * row + 1] < 2 ? 100 : 1000
            expected.append(first + second)
        }
        #expect(try runML("TreeEnsembleRegressor", [many], twoTrees())[0].floats == expected)
        #expect(try runML("TreeEnsembleRegressor", [many], twoTrees(), threads: 3)[0].floats == expected)
    }

    /// Forests whose splits all compare one way walk eight rows down a tree together; against the
    /// trees walked by hand, row by row: random unbalanced trees, ≤ and <, values on thresholds and
    /// NaN (going true at the splits that say so, else false), row counts around the eight lanes and
    /// the 128-row block, threads.
    @Test(arguments: ["BRANCH_LEQ", "BRANCH_LT"])
    func treesWalkedInStepMatchTheTreesByHand(mode: String) throws {
        var generator = SeededGenerator(seed: 7)
        struct Split { var feature: Int, threshold: Float, trueChild: Int, falseChild: Int, missingTrue: Bool }
        var attributes: [String: [Int]] = [:]
        var modes: [String] = [], thresholds: [Float] = [], weights: [Float] = []
        var trees: [[Split?]] = []  // nil: a leaf
        var leafWeights: [[Float]] = []
        for tree in 0..<6 {
            var splits: [Split?] = [], leaves: [Float] = []
            // Pre-order: a node splits with a probability that falls with its depth (up to 7 deep).
            func grow(_ depth: Int) -> Int {
                let id = splits.count
                splits.append(nil)
                leaves.append(Float(Int.random(in: 1...1000, using: &generator)) / 8)
                if depth < 7 && (depth == 0 || Int.random(in: 0..<10, using: &generator) < 7) {
                    let feature = Int.random(in: 0..<3, using: &generator), threshold = Float(Int.random(in: -4...4, using: &generator)) / 2
                    let missingTrue = Bool.random(using: &generator)
                    let trueChild = grow(depth + 1), falseChild = grow(depth + 1)
                    splits[id] = Split(feature: feature, threshold: threshold, trueChild: trueChild, falseChild: falseChild,
                                       missingTrue: missingTrue)
                }
                return id
            }
            _ = grow(0)
            for (id, split) in splits.enumerated() {
                attributes["nodes_treeids", default: []].append(tree)
                attributes["nodes_nodeids", default: []].append(id)
                attributes["nodes_featureids", default: []].append(split?.feature ?? 0)
                attributes["nodes_truenodeids", default: []].append(split?.trueChild ?? 0)
                attributes["nodes_falsenodeids", default: []].append(split?.falseChild ?? 0)
                attributes["nodes_missing_value_tracks_true", default: []].append(split?.missingTrue == true ? 1 : 0)
                modes.append(split == nil ? "LEAF" : mode)
                thresholds.append(split?.threshold ?? 0)
                if split == nil {
                    attributes["target_treeids", default: []].append(tree)
                    attributes["target_nodeids", default: []].append(id)
                    attributes["target_ids", default: []].append(0)
                    weights.append(leaves[id])
                }
            }
            trees.append(splits)
            leafWeights.append(leaves)
        }
        var forest = attributes.mapValues { AttributeValue.ints($0) }
        forest["nodes_modes"] = .strings(modes)
        forest["nodes_values"] = .floats(thresholds)
        forest["target_weights"] = .floats(weights)
        for rows in [1, 7, 8, 9, 23, 133, 261] {
            let values = (0..<(rows * 3)).map { _ in
                Int.random(in: 0..<15, using: &generator) == 0 ? Float.nan : Float(Int.random(in: -10...10, using: &generator)) / 4
            }
            let expected = (0..<rows).map { row in
                var sum: Double = 0
                for tree in trees.indices {
                    let splits = trees[tree], leaves = leafWeights[tree]
                    var node = 0
                    while let split = splits[node] {
                        let x = values[row * 3 + split.feature]
                        let goesTrue = (mode == "BRANCH_LT" ? x < split.threshold : x <= split.threshold) || (split.missingTrue && x.isNaN)
                        node = goesTrue ? split.trueChild : split.falseChild
                    }
                    sum += Double(leaves[node])
                }
                return Float(sum)
            }
            let x = Tensor(values, shape: [rows, 3])
            #expect(try runML("TreeEnsembleRegressor", [x], forest)[0].floats == expected, "\(rows) rows")
            #expect(try runML("TreeEnsembleRegressor", [x], forest, threads: 2)[0].floats == expected, "\(rows) rows, 2 threads")
        }
    }

    @Test func hostileTreesAreRefusedWhenTheModelLoads() {
        let x = Tensor([0, 0] as [Float], shape: [1, 2])
        var cycle = twoTrees()
        cycle["nodes_modes"] = .strings(["BRANCH_LEQ", "BRANCH_LEQ", "LEAF", "BRANCH_LT", "LEAF", "LEAF"])
        cycle["nodes_truenodeids"] = .ints([1, 0, 0, 1, 0, 0])
        cycle["target_nodeids"] = .ints([2, 2, 1, 2])
        #expect(failure { try runML("TreeEnsembleRegressor", [x], cycle) }?.isInvalidNode("cycle") == true)
        var missingChild = twoTrees()
        missingChild["nodes_falsenodeids"] = .ints([7, 0, 0, 2, 0, 0])
        #expect(failure { try runML("TreeEnsembleRegressor", [x], missingChild) }?.isInvalidNode("child 7") == true)
        var target = twoTrees()
        target["target_ids"] = .ints([0, 0, 3, 0])
        #expect(failure { try runML("TreeEnsembleRegressor", [x], target) }?.isInvalidNode("target 3") == true)
        var short = twoTrees()
        short["nodes_values"] = .floats([0.5])
        #expect(failure { try runML("TreeEnsembleRegressor", [x], short) }?.isInvalidNode("'nodes_values' has 1 entries") == true)
        var weightOnBranch = twoTrees()
        weightOnBranch["target_nodeids"] = .ints([0, 2, 1, 2])
        #expect(failure { try runML("TreeEnsembleRegressor", [x], weightOnBranch) }?.isInvalidNode("not a leaf") == true)
        // A feature the input does not have is the request's fault.
        #expect(failure { try runML("TreeEnsembleRegressor", [Tensor([0] as [Float], shape: [1, 1])], twoTrees()) }?
            .isInvalidArgument("the input has 1 features") == true)
    }

    @Test func treeEnsembleOpset5RefusesOutOfRangeIndices() {
        let base: [String: AttributeValue] = [
            "n_targets": .int(1), "tree_roots": .ints([0]), "nodes_featureids": .ints([0]),
            "nodes_splits": .tensor(Tensor([0.5] as [Float], shape: [1])), "nodes_modes": .tensor(Tensor([0] as [UInt8], shape: [1])),
            "nodes_truenodeids": .ints([0]), "nodes_falsenodeids": .ints([1]), "nodes_trueleafs": .ints([1]), "nodes_falseleafs": .ints([1]),
            "leaf_targetids": .ints([0, 0]), "leaf_weights": .tensor(Tensor([1, 2] as [Float], shape: [2])),
        ]
        let x = Tensor([0, 1] as [Float], shape: [2, 1])
        #expect((try? runML("TreeEnsemble", [x], base, opset: 5)[0].floats) == [1, 2])
        #expect(failure { try runML("TreeEnsemble", [x], base.merging(["tree_roots": .ints([4])]) { $1 }, opset: 5) }?.isInvalidNode("tree root 4") == true)
        #expect(failure { try runML("TreeEnsemble", [x], base.merging(["nodes_falsenodeids": .ints([9])]) { $1 }, opset: 5) }?.isInvalidNode("leaf child 9") == true)
        #expect(failure { try runML("TreeEnsemble", [x], base.merging(["leaf_targetids": .ints([0, 2])]) { $1 }, opset: 5) }?.isInvalidNode("target 2") == true)
    }

    @Test func classifierPicksLabelsAndRefusesBadClassIDs() throws {
        let attributes: [String: AttributeValue] = [
            "nodes_treeids": .ints([0, 0, 0]), "nodes_nodeids": .ints([0, 1, 2]), "nodes_featureids": .ints([0, 0, 0]),
            "nodes_modes": .strings(["BRANCH_LEQ", "LEAF", "LEAF"]), "nodes_values": .floats([0, 0, 0]),
            "nodes_truenodeids": .ints([1, 0, 0]), "nodes_falsenodeids": .ints([2, 0, 0]),
            "class_treeids": .ints([0, 0, 0, 0, 0, 0]), "class_nodeids": .ints([1, 1, 1, 2, 2, 2]), "class_ids": .ints([0, 1, 2, 0, 1, 2]),
            "class_weights": .floats([0.7, 0.2, 0.1, 0.1, 0.3, 0.6]), "classlabels_strings": .strings(["a", "b", "c"]),
        ]
        let out = try runML("TreeEnsembleClassifier", [Tensor([-1, 1] as [Float], shape: [2, 1])], attributes, outputs: 2)
        #expect(out[0].strings == ["a", "c"] && isClose(out[1].floats, [0.7, 0.2, 0.1, 0.1, 0.3, 0.6]))
        #expect(failure { try runML("TreeEnsembleClassifier", [], attributes.merging(["class_ids": .ints([0, 1, 5, 0, 1, 2])]) { $1 }, outputs: 2) }?
            .isInvalidNode("target 5") == true)
    }

    @Test func encodersAndExtractorsCheckIndicesAndCategories() throws {
        let x = Tensor([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3])
        let picked = try runML("ArrayFeatureExtractor", [x, Tensor([2, 0] as [Int64], shape: [2])], [:])[0]
        #expect(picked.shape == [2, 2] && picked.floats == [3, 1, 6, 4])
        #expect(failure { try runML("ArrayFeatureExtractor", [x, Tensor([3] as [Int64], shape: [1])], [:]) }?.isInvalidArgument("index 3") == true)
        let colours = Tensor(strings: ["b", "x", "a"], shape: [3])
        let encoded = try runML("OneHotEncoder", [colours], ["cats_strings": .strings(["a", "b"])])[0]
        #expect(encoded.shape == [3, 2] && encoded.floats == [0, 1, 0, 0, 1, 0])
        #expect(failure { try runML("OneHotEncoder", [colours], ["cats_strings": .strings(["a", "b"]), "zeros": .int(0)]) }?
            .isInvalidArgument("unknown category") == true)
        let labels = try runML("LabelEncoder", [Tensor([1.5, .nan, 7] as [Float], shape: [3])],
                               ["keys_floats": .floats([1.5, .nan]), "values_strings": .strings(["one and a half", "missing"])], opset: 2)[0]
        #expect(labels.strings == ["one and a half", "missing", "_Unused"])
    }

    @Test func linearAndSVMModelsCheckTheirSizes() throws {
        let x = Tensor([1, 2, 3, 4] as [Float], shape: [2, 2])
        let linear = try runML("LinearRegressor", [x], ["coefficients": .floats([1, -1]), "intercepts": .floats([0.5])], opset: 1)[0]
        #expect(linear.floats == [-0.5, -0.5])
        #expect(failure { try runML("LinearRegressor", [Tensor([1, 2, 3] as [Float], shape: [1, 3])], ["coefficients": .floats([1, -1])], opset: 1) }?
            .isInvalidArgument("3 features") == true)
        #expect(failure {
            try runML("SVMClassifier", [x], ["coefficients": .floats([1]), "rho": .floats([0]), "vectors_per_class": .ints([1, 1]),
                                             "support_vectors": .floats([1, 2, 3, 4]), "classlabels_ints": .ints([0, 1])], outputs: 2, opset: 1)
        }?.isInvalidNode("coefficients") == true)
    }
}
