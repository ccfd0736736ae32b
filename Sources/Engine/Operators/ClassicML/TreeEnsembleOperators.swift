import Kernels
import Tensors

// MARK: The compiled ensemble

/// Decision trees in flat arrays, checked when the model loads: every child and weight refers to a
/// node that exists, no tree loops back on itself, every target index is in range. Evaluating a
/// row therefore always ends at a leaf.
struct DecisionForest: Sendable {
    enum Mode: UInt8 { case leq, lt, gte, gt, eq, neq, member, leaf }

    struct Node: Sendable {
        var mode: Mode
        var missingTracksTrue: Bool
        var feature: Int32
        /// Split value; for `member`, the index of the node's set in `memberSets`.
        var threshold: Double
        /// Children (node indices); for a leaf, its weights `weightStart..<weightStart+weightCount`.
        var trueChild: Int32
        var falseChild: Int32
    }

    var nodes: [Node]
    var roots: [Int32]
    var weightTargets: [Int32]
    var weightValues: [Double]
    var memberSets: [Set<Double>]
    let targetCount: Int
    /// One more than the largest feature index a split reads (0 for a forest of leaves).
    var featureCount: Int
    /// The mode of every split, when they all have one (set by `prepare`).
    var uniformMode: Mode? = nil
    /// Per tree, the most splits on a path from its root to a leaf, when the forest can be walked
    /// `lanes` rows at a time (every split ≤ or every split <, and at least one feature read); else
    /// empty (set by `prepare`).
    var depths: [Int] = []

    /// Rows walked down one tree together by `leaves`.
    static let lanes = 8

    /// Rows evaluated together, each tree over all of them in turn.
    static let rowBlock = 128

    /// A mode name of `TreeEnsembleClassifier`/`Regressor`.
    static func mode(named name: String) throws -> Mode {
        switch name {
        case "BRANCH_LEQ": .leq
        case "BRANCH_LT": .lt
        case "BRANCH_GTE": .gte
        case "BRANCH_GT": .gt
        case "BRANCH_EQ": .eq
        case "BRANCH_NEQ": .neq
        case "LEAF": .leaf
        default: throw OpError("unknown node mode '\(name)'")
        }
    }

    /// Checks that no tree reaches a node twice on one path (a cycle), so that evaluation ends.
    func checkAcyclic() throws {
        // 0 unvisited, 1 on the current path, 2 done.
        var state = [UInt8](repeating: 0, count: nodes.count)
        var stack: [(node: Int, expanded: Bool)] = []
        for root in roots {
            stack.append((Int(root), false))
            while let (node, expanded) = stack.popLast() {
                if expanded { state[node] = 2; continue }
                if state[node] == 2 { continue }
                if state[node] == 1 { throw OpError("tree node \(node) is its own descendant (the trees have a cycle)") }
                state[node] = 1
                stack.append((node, true))
                let element = nodes[node]
                guard element.mode != .leaf else { continue }
                for child in [Int(element.trueChild), Int(element.falseChild)] {
                    if state[child] == 1 { throw OpError("tree node \(child) is its own descendant (the trees have a cycle)") }
                    if state[child] == 0 { stack.append((child, false)) }
                }
            }
        }
    }

    /// Checks the trees (see `checkAcyclic`) and notes whether every split uses one comparison.
    mutating func prepare() throws {
        try checkAcyclic()
        let modes = Set(nodes.lazy.map(\.mode).filter { $0 != .leaf })
        uniformMode = modes.count == 1 ? modes.first : nil
        // `leaves` reads a leaf's feature too (and ignores it): feature 0, which every row has.
        for index in nodes.indices where nodes[index].mode == .leaf { nodes[index].feature = 0 }
        if uniformMode == .leq || uniformMode == .lt, featureCount > 0 {
            depths = roots.map(depth)
        }
    }

    /// Splits on the longest path from `root` to a leaf (the tree is acyclic).
    private func depth(_ root: Int32) -> Int {
        var deepest = 0
        var stack: [(node: Int, depth: Int)] = [(Int(root), 0)]
        while let (node, depth) = stack.popLast() {
            let element = nodes[node]
            guard element.mode != .leaf else {
                deepest = max(deepest, depth)
                continue
            }
            stack.append((Int(element.trueChild), depth + 1))
            stack.append((Int(element.falseChild), depth + 1))
        }
        return deepest
    }

    // Shapes: rows: `lanes` pointers to rows of at least `featureCount` values; into: `lanes` node indices.
    /// The leaves that `lanes` rows reach in tree `tree`, walked together in step: each level, every
    /// row moves one node down (a row at a leaf stays), choosing its child by arithmetic instead of
    /// a branch, so the rows' chains of dependent loads overlap instead of each waiting for the
    /// last and a mispredicted branch at every node. Only when `depths` is set; the leaves are
    /// those `leaf` reaches.
    @inline(__always)
    func leaves(tree: Int, _ rows: UnsafePointer<UnsafePointer<Double>>, _ nodes: UnsafePointer<Node>,
                into indices: UnsafeMutablePointer<Int32>) {
        let root = roots[tree], strict = uniformMode == .lt
        for lane in 0..<Self.lanes { indices[lane] = root }
        for _ in 0..<depths[tree] {
            for lane in 0..<Self.lanes {
                let index = indices[lane], node = nodes[Int(index)]
                let x = rows[lane][Int(node.feature)]
                let compared: Int32 = (strict ? x < node.threshold : x <= node.threshold) ? 1 : 0
                let missing: Int32 = node.missingTracksTrue && x.isNaN ? 1 : 0
                let goesTrue = compared | missing
                let isLeaf: Int32 = node.mode == .leaf ? 1 : 0
                let child = node.falseChild &+ (node.trueChild &- node.falseChild) &* goesTrue
                indices[lane] = child &+ (index &- child) &* isLeaf
            }
        }
    }

    /// The leaf `row` reaches in the tree rooted at `root`. Forests whose splits all compare one
    /// way (scikit-learn and LightGBM: ≤, XGBoost: <) walk without choosing the comparison per node.
    @inline(__always)
    func leaf(_ root: Int32, _ row: UnsafePointer<Double>, _ nodes: UnsafePointer<Node>) -> Node {
        switch uniformMode {
        case .leq?: walk(root, row, nodes, threshold: { $0 <= $1 })
        case .lt?: walk(root, row, nodes, threshold: { $0 < $1 })
        default: walk(root, row, nodes, split)
        }
    }

    @inline(__always)
    private func walk(_ root: Int32, _ row: UnsafePointer<Double>, _ nodes: UnsafePointer<Node>,
                      _ goesTrue: (Double, Node) -> Bool) -> Node {
        var node = nodes[Int(root)]
        while node.mode != .leaf {
            let x = row[Int(node.feature)]
            node = nodes[Int(goesTrue(x, node) || (node.missingTracksTrue && x.isNaN) ? node.trueChild : node.falseChild)]
        }
        return node
    }

    @inline(__always)
    private func walk(_ root: Int32, _ row: UnsafePointer<Double>, _ nodes: UnsafePointer<Node>,
                      threshold compare: (Double, Double) -> Bool) -> Node {
        walk(root, row, nodes) { (x: Double, node: Node) -> Bool in compare(x, node.threshold) }
    }

    /// Whether `x` goes to the true branch of split `node`, for any mode.
    private func split(_ x: Double, _ node: Node) -> Bool {
        let t = node.threshold
        switch node.mode {
        case .leq: return x <= t
        case .lt: return x < t
        case .gte: return x >= t
        case .gt: return x > t
        case .eq: return x == t
        case .neq: return x != t
        case .member: return memberSets[Int(t)].contains(x)
        case .leaf: return false
        }
    }
}

/// How leaf weights of the trees combine into a row's scores.
enum TreeAggregate: Sendable {
    case sum, average, minimum, maximum

    init(name: String) throws {
        switch name {
        case "SUM": self = .sum
        case "AVERAGE": self = .average
        case "MIN": self = .minimum
        case "MAX": self = .maximum
        default: throw OpError("unknown aggregate_function '\(name)' (expected SUM, AVERAGE, MIN or MAX)")
        }
    }

    /// The integer codes of `TreeEnsemble` (opset 5).
    init(code: Int) throws {
        switch code {
        case 0: self = .average
        case 1: self = .sum
        case 2: self = .minimum
        case 3: self = .maximum
        default: throw OpError("unknown aggregate_function \(code) (expected 0 to 3)")
        }
    }
}

extension DecisionForest {
    /// A forest from the node and weight attributes of `TreeEnsembleClassifier`/`Regressor`
    /// (`weightPrefix` "class" or "target"). A tree's root is its first node in attribute order.
    init(_ context: OperatorContext, weightPrefix: String, targetCount: Int) throws {
        let treeIDs = try context.required("nodes_treeids", context.ints)
        let nodeIDs = try context.required("nodes_nodeids", context.ints)
        let featureIDs = try context.required("nodes_featureids", context.ints)
        let modes = try context.required("nodes_modes", context.strings)
        let values = try context.reals("nodes_values") ?? []
        let trueIDs = try context.ints("nodes_truenodeids") ?? []
        let falseIDs = try context.ints("nodes_falsenodeids") ?? []
        let missing = try context.ints("nodes_missing_value_tracks_true") ?? []
        let count = treeIDs.count
        for (name, size) in [("nodes_nodeids", nodeIDs.count), ("nodes_featureids", featureIDs.count), ("nodes_modes", modes.count),
                             ("nodes_values", values.count), ("nodes_truenodeids", trueIDs.count), ("nodes_falsenodeids", falseIDs.count)]
        where size != count {
            throw OpError("'\(name)' has \(size) entries; 'nodes_treeids' has \(count)")
        }
        guard missing.isEmpty || missing.count == count else {
            throw OpError("'nodes_missing_value_tracks_true' has \(missing.count) entries; 'nodes_treeids' has \(count)")
        }
        guard count < Int(Int32.max) else { throw OpError("too many tree nodes (\(count))") }
        var index: [NodeKey: Int] = [:]
        index.reserveCapacity(count)
        var roots: [Int32] = []
        var seenTrees = Set<Int>()
        for position in 0..<count {
            let key = NodeKey(tree: treeIDs[position], node: nodeIDs[position])
            guard index.updateValue(position, forKey: key) == nil else {
                throw OpError("tree \(key.tree) has node id \(key.node) twice")
            }
            if seenTrees.insert(key.tree).inserted { roots.append(Int32(position)) }
        }
        var nodes: [Node] = []
        nodes.reserveCapacity(count)
        var featureCount = 0
        for position in 0..<count {
            let mode = try Self.mode(named: modes[position])
            var node = Node(mode: mode, missingTracksTrue: !missing.isEmpty && missing[position] != 0, feature: 0,
                            threshold: values[position], trueChild: 0, falseChild: 0)
            if mode != .leaf {
                let feature = featureIDs[position]
                guard feature >= 0 && feature < Int(Int32.max) else { throw OpError("tree node \(position) reads feature \(feature)") }
                node.feature = Int32(feature)
                featureCount = max(featureCount, feature + 1)
                for (child, isTrue) in [(trueIDs[position], true), (falseIDs[position], false)] {
                    guard let target = index[NodeKey(tree: treeIDs[position], node: child)] else {
                        throw OpError("tree \(treeIDs[position]) node \(nodeIDs[position]) has child \(child), which is not a node of the tree")
                    }
                    if isTrue { node.trueChild = Int32(target) } else { node.falseChild = Int32(target) }
                }
            }
            nodes.append(node)
        }
        // Weights, grouped by leaf.
        let weightTrees = try context.ints(weightPrefix + "_treeids") ?? []
        let weightNodes = try context.ints(weightPrefix + "_nodeids") ?? []
        let weightIDs = try context.ints(weightPrefix + "_ids") ?? []
        let weights = try context.reals(weightPrefix + "_weights") ?? []
        guard weightNodes.count == weightTrees.count, weightIDs.count == weightTrees.count, weights.count == weightTrees.count else {
            throw OpError("'\(weightPrefix)_treeids', '_nodeids', '_ids' and '_weights' must have one length, got \(weightTrees.count), \(weightNodes.count), \(weightIDs.count) and \(weights.count)")
        }
        var byLeaf = [[(Int32, Double)]](repeating: [], count: count)
        for entry in 0..<weightTrees.count {
            guard let leaf = index[NodeKey(tree: weightTrees[entry], node: weightNodes[entry])] else {
                throw OpError("weight \(entry) is for tree \(weightTrees[entry]) node \(weightNodes[entry]), which does not exist")
            }
            guard nodes[leaf].mode == .leaf else {
                throw OpError("weight \(entry) is for tree \(weightTrees[entry]) node \(weightNodes[entry]), which is not a leaf")
            }
            let target = weightIDs[entry]
            guard target >= 0 && target < targetCount else {
                throw OpError("weight \(entry) is for target \(target); the model has \(targetCount)")
            }
            byLeaf[leaf].append((Int32(target), weights[entry]))
        }
        var weightTargets: [Int32] = [], weightValues: [Double] = []
        for position in 0..<count where nodes[position].mode == .leaf {
            nodes[position].trueChild = Int32(weightTargets.count)
            nodes[position].falseChild = Int32(byLeaf[position].count)
            for (target, value) in byLeaf[position] {
                weightTargets.append(target)
                weightValues.append(value)
            }
        }
        self.init(nodes: nodes, roots: roots, weightTargets: weightTargets, weightValues: weightValues, memberSets: [],
                  targetCount: targetCount, featureCount: featureCount)
        try prepare()
    }

    private struct NodeKey: Hashable {
        let tree: Int
        let node: Int
    }
}

// MARK: Evaluation

/// Scores every row of `rows` with `forest`, in parallel over rows: `finish` turns one row's
/// aggregated scores (and which targets any leaf reached) into its outputs. Rows go in blocks,
/// each tree over the whole block before the next, so that a tree stays in cache while it is used
/// (each row still adds its trees' leaves in tree order). Forests that allow it walk `lanes` rows
/// of the block down a tree together (`DecisionForest.leaves`); the rows left over walk alone.
func evaluate(_ forest: DecisionForest, _ rows: FeatureRows, aggregate: TreeAggregate, _ parallelism: Parallelism,
              finish: (_ row: Int, _ scores: UnsafeMutableBufferPointer<Double>, _ reached: UnsafeMutableBufferPointer<Bool>) -> Void) throws {
    guard forest.featureCount <= rows.width else {
        throw OpError.invalidArgument("the trees read feature \(forest.featureCount - 1); the input has \(rows.width) features per row")
    }
    let targets = forest.targetCount
    let width = rows.width
    let block = DecisionForest.rowBlock, lanes = DecisionForest.lanes
    rows.values.withUnsafeBufferPointer { values in
        forest.nodes.withUnsafeBufferPointer { nodes in
            forest.weightTargets.withUnsafeBufferPointer { weightTargets in
                forest.weightValues.withUnsafeBufferPointer { weightValues in
                    parallelism.forEachChunk(rows.count, minimumChunk: max(1, 2048 / max(1, forest.roots.count))) { range in
                        let scores = UnsafeMutableBufferPointer<Double>.allocate(capacity: block * targets)
                        let reached = UnsafeMutableBufferPointer<Bool>.allocate(capacity: block * targets)
                        let rowPointers = UnsafeMutableBufferPointer<UnsafePointer<Double>>.allocate(capacity: lanes)
                        let leafIndices = UnsafeMutableBufferPointer<Int32>.allocate(capacity: lanes)
                        defer { scores.deallocate(); reached.deallocate(); rowPointers.deallocate(); leafIndices.deallocate() }
                        for blockStart in stride(from: range.lowerBound, to: range.upperBound, by: block) {
                            let count = min(block, range.upperBound - blockStart)
                            scores.initialize(repeating: 0)
                            reached.initialize(repeating: false)
                            // Leaf weights of one row's leaf, in tree order per row.
                            @inline(__always) func add(_ leaf: DecisionForest.Node, item: Int) {
                                let start = Int(leaf.trueChild), base = item * targets
                                for entry in start..<(start + Int(leaf.falseChild)) {
                                    let target = base + Int(weightTargets[entry]), value = weightValues[entry]
                                    switch aggregate {
                                    case .sum, .average: scores[target] += value
                                    case .minimum: if !reached[target] || value < scores[target] { scores[target] = value }
                                    case .maximum: if !reached[target] || value > scores[target] { scores[target] = value }
                                    }
                                    reached[target] = true
                                }
                            }
                            let together = forest.depths.isEmpty ? 0 : count - count % lanes
                            for (tree, root) in forest.roots.enumerated() {
                                var item = 0
                                while item < together {
                                    for lane in 0..<lanes { rowPointers[lane] = values.baseAddress! + (blockStart + item + lane) * width }
                                    forest.leaves(tree: tree, rowPointers.baseAddress!, nodes.baseAddress!, into: leafIndices.baseAddress!)
                                    for lane in 0..<lanes { add(nodes[Int(leafIndices[lane])], item: item + lane) }
                                    item += lanes
                                }
                                for item in together..<count {
                                    add(forest.leaf(root, values.baseAddress! + (blockStart + item) * width, nodes.baseAddress!), item: item)
                                }
                            }
                            for item in 0..<count {
                                finish(blockStart + item, UnsafeMutableBufferPointer(rebasing: scores[(item * targets)..<((item + 1) * targets)]),
                                       UnsafeMutableBufferPointer(rebasing: reached[(item * targets)..<((item + 1) * targets)]))
                            }
                        }
                    }
                }
            }
        }
    }
}

// MARK: Regression

/// How a regressor's aggregated scores become its outputs, as ONNX Runtime finalises them: one
/// target adds the single base value and applies only PROBIT; several targets add the base values
/// (when there is one per target) and apply any transform.
struct RegressionFinish: Sendable {
    let aggregate: TreeAggregate
    let baseValues: [Double]
    let transform: ScoreTransform
    let treeCount: Int

    func callAsFunction(_ scores: UnsafeMutableBufferPointer<Double>, _ reached: UnsafeMutableBufferPointer<Bool>,
                        into output: UnsafeMutableBufferPointer<Float>) {
        let targets = scores.count
        let trees = Double(max(treeCount, 1))
        if targets == 1 {
            let origin = baseValues.count == 1 ? baseValues[0] : 0
            var value: Double
            switch aggregate {
            case .sum: value = scores[0] + origin
            case .average: value = scores[0] / trees + origin
            case .minimum, .maximum: value = reached[0] ? scores[0] + origin : origin
            }
            output[0] = transform == .probit ? MLMath.probit(Float(value)) : Float(value)
            return
        }
        let useBase = baseValues.count == targets
        for target in 0..<targets {
            let base = useBase ? baseValues[target] : 0
            let value: Double
            switch aggregate {
            case .sum: value = scores[target] + base
            case .average: value = scores[target] / trees + base
            case .minimum, .maximum: value = base + (reached[target] ? scores[target] : 0)
            }
            output[target] = Float(value)
        }
        transform.apply(output)
    }
}

/// TreeEnsembleRegressor (ai.onnx.ml 1, 3): X [N, F] → Y float [N, n_targets].
struct TreeEnsembleRegressor: Operator {
    let forest: DecisionForest
    let aggregate: TreeAggregate
    let finish: RegressionFinish

    init(_ context: OperatorContext) throws {
        let targets = try context.int("n_targets", default: 1)
        guard targets >= 1 && targets <= 1 << 20 else { throw OpError("n_targets must be between 1 and 2^20, got \(targets)") }
        forest = try DecisionForest(context, weightPrefix: "target", targetCount: targets)
        aggregate = try TreeAggregate(name: try context.string("aggregate_function", default: "SUM"))
        finish = RegressionFinish(aggregate: aggregate, baseValues: try context.reals("base_values") ?? [],
                                  transform: try ScoreTransform(context), treeCount: forest.roots.count)
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [TensorType(.float, nil)] }
        return [TensorType(.float, [x.dims?.count == 1 ? .fixed(1) : x.dims?.first ?? .unknown, .fixed(forest.targetCount)])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let rows = try FeatureRows(try inputs.required(0))
        let y = try context.allocate(.float, [rows.count, forest.targetCount])
        let output = y.mutablePointer(as: Float.self), targets = forest.targetCount
        try evaluate(forest, rows, aggregate: aggregate, context.parallelism) { row, scores, reached in
            finish(scores, reached, into: UnsafeMutableBufferPointer(start: output + row * targets, count: targets))
        }
        return [y]
    }
}

// MARK: Classification

/// TreeEnsembleClassifier (ai.onnx.ml 1, 3): X [N, F] → labels [N] (int64 or string) and scores
/// float [N, classes], with ONNX Runtime's rules for base values and the binary cases.
struct TreeEnsembleClassifier: Operator {
    let forest: DecisionForest
    let labels: ClassLabels
    let baseValues: [Double]
    let transform: ScoreTransform
    /// Two classes and every weight for one of them: the score is one number, the other derived.
    let binaryCase: Bool
    let weightsArePositive: Bool

    init(_ context: OperatorContext) throws {
        labels = try context.classLabels(ints: "classlabels_int64s", strings: "classlabels_strings")
        guard labels.count >= 1 && labels.count <= 1 << 20 else { throw OpError("the classifier needs between 1 and 2^20 class labels, got \(labels.count)") }
        forest = try DecisionForest(context, weightPrefix: "class", targetCount: labels.count)
        baseValues = try context.reals("base_values") ?? []
        transform = try ScoreTransform(context)
        let classIDs = Set(try context.ints("class_ids") ?? [])
        binaryCase = labels.count == 2 && classIDs.count == 1
        weightsArePositive = forest.weightValues.allSatisfy { $0 >= 0 }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        let rows: Dim
        if let x = inputs.type(0) {
            rows = x.dims?.count == 1 ? .fixed(1) : x.dims?.first ?? .unknown
        } else {
            rows = .unknown
        }
        return [TensorType(labels.dataType, [rows]), TensorType(.float, [rows, .fixed(labels.count)])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let rows = try FeatureRows(try inputs.required(0))
        let classes = labels.count
        let z = try context.allocate(.float, [rows.count, classes])
        let output = z.mutablePointer(as: Float.self)
        var picks = [LabelPick](repeating: .index(0), count: rows.count)
        try picks.withUnsafeMutableBufferPointer { picks in
            try evaluate(forest, rows, aggregate: .sum, context.parallelism) { row, scores, reached in
                picks[row] = finish(scores, reached, into: UnsafeMutableBufferPointer(start: output + row * classes, count: classes))
            }
        }
        return [labels.tensor(picks, rows.rowShape), z]
    }

    /// One row's label and scores (ONNX Runtime's `TreeAggregatorClassifier`).
    func finish(_ s: UnsafeMutableBufferPointer<Double>, _ reached: UnsafeMutableBufferPointer<Bool>,
                into z: UnsafeMutableBufferPointer<Float>) -> LabelPick {
        let classes = s.count
        if classes > 2 {
            for k in 0..<min(baseValues.count, classes) {
                if reached[k] { s[k] += baseValues[k] } else { s[k] = baseValues[k]; reached[k] = true }
            }
            var best = -1, bestWeight = 0.0
            for k in 0..<classes where reached[k] && (best == -1 || s[k] > bestWeight) { (best, bestWeight) = (k, s[k]) }
            for k in 0..<classes { z[k] = Float(s[k]) }
            transform.apply(z)
            return .index(max(best, 0))
        }
        // One or two classes: the binary rules.
        var kept = classes
        var mode = -1
        if classes == 1 {
            if baseValues.count == 2 {
                s[0] += baseValues[1]
                return finishBinary(first: -s[0], second: s[0], hasSecond: true, kept: 2, mode: mode, into: z)
            }
            if baseValues.count == 1 { s[0] += baseValues[0] }
            return finishBinary(first: s[0], second: 0, hasSecond: false, kept: 1, mode: mode, into: z)
        }
        if baseValues.count == 2 {
            if reached[1] {
                s[1] = baseValues[1] + s[0]
                s[0] = -s[1]
            } else {
                s[1] += baseValues[1]
                s[0] += baseValues[0]
            }
        } else if baseValues.count == 1 {
            s[0] += baseValues[0]
            if !reached[1] { kept = 1 }
        } else if baseValues.isEmpty {
            mode = 3
            if !reached[1] { kept = 1 }
        }
        let hasSecond = kept == 2 && reached[1]
        return finishBinary(first: s[0], second: s[1], hasSecond: hasSecond, kept: kept, mode: mode, into: z, firstReached: reached[0])
    }

    private func finishBinary(first: Double, second: Double, hasSecond: Bool, kept: Int, mode: Int,
                              into z: UnsafeMutableBufferPointer<Float>, firstReached: Bool = true) -> LabelPick {
        var mode = mode
        let positiveWeight = hasSecond ? second : (firstReached ? first : 0)
        let pick: LabelPick
        if binaryCase {
            if weightsArePositive {
                (mode, pick) = positiveWeight > 0.5 ? (0, .index(1)) : (1, .index(0))
            } else {
                (mode, pick) = positiveWeight > 0 ? (2, .index(1)) : (3, .index(0))
            }
        } else {
            pick = .literal(positive: positiveWeight > 0)
        }
        if kept == 2 {
            var pair = (Float(first), Float(second))
            withUnsafeMutableBytes(of: &pair) { raw in transform.apply(raw.bindMemory(to: Float.self)) }
            z[0] = pair.0
            if z.count > 1 { z[1] = pair.1 }
        } else {
            let (a, b) = transform.binaryScores(Float(first), mode: mode)
            z[0] = a
            if z.count > 1 { z[1] = b ?? 0 }
        }
        return pick
    }
}

// MARK: TreeEnsemble (opset 5)

/// TreeEnsemble (ai.onnx.ml 5): X [N, F] (float, double, float16) → Y [N, n_targets] of X's type.
/// Leaves are their own arrays; set-membership splits read their sets from `membership_values`.
struct TreeEnsemble: Operator {
    let forest: DecisionForest
    let aggregate: TreeAggregate
    let finish: RegressionFinish

    init(_ context: OperatorContext) throws {
        let targets = try context.required("n_targets", context.int)
        guard targets >= 1 && targets <= 1 << 20 else { throw OpError("n_targets must be between 1 and 2^20, got \(targets)") }
        let featureIDs = try context.required("nodes_featureids", context.ints)
        let splits = try context.required("nodes_splits", context.tensor).doubles()
        let modes = try context.required("nodes_modes", context.tensor).integers()
        let trueIDs = try context.required("nodes_truenodeids", context.ints)
        let falseIDs = try context.required("nodes_falsenodeids", context.ints)
        let trueLeafs = try context.required("nodes_trueleafs", context.ints)
        let falseLeafs = try context.required("nodes_falseleafs", context.ints)
        let leafTargets = try context.required("leaf_targetids", context.ints)
        let leafWeights = try context.required("leaf_weights", context.tensor).doubles()
        let treeRoots = try context.required("tree_roots", context.ints)
        let missing = try context.ints("nodes_missing_value_tracks_true") ?? []
        let membership = try context.tensor("membership_values")?.doubles()
        let count = featureIDs.count
        for (name, size) in [("nodes_splits", splits.count), ("nodes_modes", modes.count), ("nodes_truenodeids", trueIDs.count),
                             ("nodes_falsenodeids", falseIDs.count), ("nodes_trueleafs", trueLeafs.count), ("nodes_falseleafs", falseLeafs.count)]
        where size != count {
            throw OpError("'\(name)' has \(size) entries; 'nodes_featureids' has \(count)")
        }
        guard missing.isEmpty || missing.count == count else { throw OpError("'nodes_missing_value_tracks_true' has \(missing.count) entries; there are \(count) nodes") }
        guard leafWeights.count == leafTargets.count else { throw OpError("'leaf_weights' has \(leafWeights.count) entries; 'leaf_targetids' has \(leafTargets.count)") }
        let leafCount = leafTargets.count
        guard count + leafCount < Int(Int32.max) else { throw OpError("too many tree nodes") }
        // Nodes first, then one node per leaf.
        var nodes: [DecisionForest.Node] = []
        nodes.reserveCapacity(count + leafCount)
        var memberSets: [Set<Double>] = []
        var membershipValues = (membership ?? [])[...]
        var featureCount = 0
        for position in 0..<count {
            let mode: DecisionForest.Mode
            switch modes[position] {
            case 0: mode = .leq
            case 1: mode = .lt
            case 2: mode = .gte
            case 3: mode = .gt
            case 4: mode = .eq
            case 5: mode = .neq
            case 6: mode = .member
            default: throw OpError("node \(position) has mode \(modes[position]) (expected 0 to 6)")
            }
            let feature = featureIDs[position]
            guard feature >= 0 && feature < Int(Int32.max) else { throw OpError("node \(position) reads feature \(feature)") }
            featureCount = max(featureCount, feature + 1)
            var threshold = splits[position]
            if mode == .member {
                guard membership != nil else { throw OpError("node \(position) is a set-membership split but 'membership_values' is not set") }
                var members = Set<Double>()
                while let value = membershipValues.popFirst(), !value.isNaN { members.insert(value) }
                threshold = Double(memberSets.count)
                memberSets.append(members)
            }
            func child(_ id: Int, leaf: Bool) throws -> Int32 {
                guard id >= 0 && id < (leaf ? leafCount : count) else {
                    throw OpError("node \(position) has \(leaf ? "leaf" : "node") child \(id); there are \(leaf ? leafCount : count)")
                }
                return Int32(leaf ? count + id : id)
            }
            nodes.append(DecisionForest.Node(mode: mode, missingTracksTrue: !missing.isEmpty && missing[position] != 0,
                                             feature: Int32(feature), threshold: threshold,
                                             trueChild: try child(trueIDs[position], leaf: trueLeafs[position] != 0),
                                             falseChild: try child(falseIDs[position], leaf: falseLeafs[position] != 0)))
        }
        var weightTargets: [Int32] = []
        for (leaf, target) in leafTargets.enumerated() {
            guard target >= 0 && target < targets else { throw OpError("leaf \(leaf) is for target \(target); n_targets is \(targets)") }
            weightTargets.append(Int32(target))
            nodes.append(DecisionForest.Node(mode: .leaf, missingTracksTrue: false, feature: 0, threshold: 0,
                                             trueChild: Int32(leaf), falseChild: 1))
        }
        var roots: [Int32] = []
        for root in treeRoots {
            guard root >= 0 && root < count else { throw OpError("tree root \(root) is out of range; there are \(count) nodes") }
            // A tree that is one leaf: both branches name the same leaf.
            let isLeaf = trueLeafs[root] != 0 && falseLeafs[root] != 0 && trueIDs[root] == falseIDs[root]
            roots.append(isLeaf ? nodes[root].trueChild : Int32(root))
        }
        var forest = DecisionForest(nodes: nodes, roots: roots, weightTargets: weightTargets, weightValues: leafWeights,
                                    memberSets: memberSets, targetCount: targets, featureCount: featureCount)
        try forest.prepare()
        self.forest = forest
        aggregate = try TreeAggregate(code: try context.int("aggregate_function", default: 1))
        finish = RegressionFinish(aggregate: aggregate, baseValues: [], transform: try ScoreTransform(code: try context.int("post_transform", default: 0)),
                                  treeCount: roots.count)
    }

    /// Element types of X (and Y).
    static let types: Set<DataType> = [.float, .double, .float16]

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(x.dataType, [x.dims?.count == 1 ? .fixed(1) : x.dims?.first ?? .unknown, .fixed(forest.targetCount)])]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let rows = try FeatureRows(x)
        let targets = forest.targetCount
        var scores = [Float](repeating: 0, count: rows.count * targets)
        try scores.withUnsafeMutableBufferPointer { output in
            try evaluate(forest, rows, aggregate: aggregate, context.parallelism) { row, sums, reached in
                finish(sums, reached, into: UnsafeMutableBufferPointer(rebasing: output[(row * targets)..<((row + 1) * targets)]))
            }
        }
        let y = try context.allocate(x.dataType, [rows.count, targets])
        switch x.dataType {
        case .double:
            let target = y.mutablePointer(as: Double.self)
            for (index, value) in scores.enumerated() { target[index] = Double(value) }
        case .float16:
            let target = y.mutablePointer(as: Float16.self)
            for (index, value) in scores.enumerated() { target[index] = Float16(value) }
        default: scores.withUnsafeBufferPointer { y.mutablePointer(as: Float.self).update(from: $0.baseAddress!, count: $0.count) }
        }
        return [y]
    }
}
