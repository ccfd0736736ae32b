import Kernels
import Tensors

/// Recognises element-wise chains that exporters write out op by op and replaces each with one
/// node that runs it in one pass:
/// - `Mul(x, Sigmoid(x))` (SiLU/Swish) and `Mul(x, HardSigmoid(x))` with alpha 1/6, beta 1/2
///   (HardSwish before opset 14) become an internal `Activation` node, which `ActivationFusion`
///   can then merge into the convolution or Gemm before it;
/// - GELU written with Erf, `Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5)` (or `Mul(x, 1/√2)`, or
///   the 0.5 applied to x first), becomes an `Activation` node too;
/// - LayerNorm over the last axis written as ReduceMean, Sub, Pow 2, ReduceMean, Add ε, Sqrt, Div,
///   then Mul by a scale and Add of a bias (both constant), becomes an internal
///   `LayerNormalization` node (the standard operator only exists from opset 17).
/// Every value a chain makes inside itself must have no reader outside the chain.
struct ChainRecognition: GraphPass {
    var name: String { "chain-recognition" }

    func run(_ graph: inout Graph, opsets: [String: Int]) throws(EngineError) {
        var rewrite = Rewrite(graph: graph)
        for index in graph.nodes.indices {
            if rewrite.removed.contains(index) { continue }
            if rewrite.gateActivation(at: index) { continue }
            if rewrite.gelu(at: index) { continue }
            _ = rewrite.layerNorm(at: index)
        }
        graph = rewrite.graph
        graph.removeNodes(rewrite.removed)
        graph.removeUnusedInitializers()
    }

    /// The graph being rewritten, with the lookups the patterns share.
    private struct Rewrite {
        var graph: Graph
        var removed = Set<Int>()
        let producers: [String: Int]
        let uses: [String: Int]
        let outputs: Set<String>

        init(graph: Graph) {
            self.graph = graph
            producers = graph.producers
            uses = graph.useCounts
            outputs = graph.outputNames
        }

        /// The standard node of type `opType` producing `value`, when its only reader is the chain.
        func inner(_ value: String, _ opType: String) -> (index: Int, node: Node)? {
            guard let index = producers[value], !removed.contains(index), graph.nodes[index].isStandard(opType),
                  graph.hasSingleReader(value, uses: uses, outputs: outputs) else { return nil }
            return (index, graph.nodes[index])
        }

        /// The float scalar a constant value holds.
        func scalar(_ value: String) -> Float? {
            guard let tensor = graph.initializers[value], tensor.dataType == .float, tensor.elementCount == 1 else { return nil }
            return tensor.scalars(as: Float.self)[0]
        }

        /// For a two-input node, the input that is not the constant `value` (within `tolerance`).
        func other(than value: Float, in node: Node, tolerance: Float = 1e-6) -> String? {
            guard node.inputs.count == 2 else { return nil }
            for side in 0..<2 {
                if let constant = scalar(node.inputs[side]), abs(constant - value) <= tolerance * abs(value) {
                    return node.inputs[1 - side]
                }
            }
            return nil
        }

        /// Replaces node `index` by an `Activation` node reading `input`, and drops `chain`.
        mutating func replace(_ index: Int, input: String, activation: Activation, chain: [Int]) {
            let node = graph.nodes[index]
            graph.nodes[index] = Node(name: node.name, opType: "Activation", domain: OperatorRegistry.internalDomain,
                                      inputs: [input], outputs: node.outputs, attributes: activation.fusedAttributes())
            removed.formUnion(chain)
        }

        /// `Mul(x, Sigmoid(x))` → SiLU, `Mul(x, HardSigmoid(x))` (alpha 1/6, beta 1/2) → HardSwish.
        mutating func gateActivation(at index: Int) -> Bool {
            let mul = graph.nodes[index]
            guard mul.isStandard("Mul"), mul.inputs.count == 2, mul.outputs.count == 1 else { return false }
            for side in 0..<2 {
                let x = mul.inputs[1 - side]
                if let (gate, node) = inner(mul.inputs[side], "Sigmoid"), node.inputs == [x] {
                    replace(index, input: x, activation: .silu, chain: [gate])
                    return true
                }
                if let (gate, node) = inner(mul.inputs[side], "HardSigmoid"), node.inputs == [x],
                   case .float(let alpha)? = node.attributes["alpha"], abs(alpha - 1.0 / 6) < 1e-6,
                   case .float(0.5)? = node.attributes["beta"] ?? .float(0.5) {
                    replace(index, input: x, activation: .hardSwish, chain: [gate])
                    return true
                }
            }
            return false
        }

        /// GELU with Erf: the last Mul of `x · (1 + erf(x / √2)) · 0.5`, in either association.
        mutating func gelu(at index: Int) -> Bool {
            let last = graph.nodes[index]
            guard last.isStandard("Mul"), last.inputs.count == 2, last.outputs.count == 1 else { return false }
            // (x · (1 + erf)) · 0.5
            if let product = other(than: 0.5, in: last), let (productIndex, productNode) = inner(product, "Mul") {
                for side in 0..<2 {
                    if let chain = erfChain(productNode.inputs[side], x: productNode.inputs[1 - side]) {
                        replace(index, input: productNode.inputs[1 - side], activation: .gelu, chain: chain + [productIndex])
                        return true
                    }
                }
            }
            // (0.5 · x) · (1 + erf)
            for side in 0..<2 {
                if let (halfIndex, halfNode) = inner(last.inputs[side], "Mul"), let x = other(than: 0.5, in: halfNode),
                   let chain = erfChain(last.inputs[1 - side], x: x) {
                    replace(index, input: x, activation: .gelu, chain: chain + [halfIndex])
                    return true
                }
            }
            return false
        }

        /// The nodes of `1 + erf(x / √2)` ending at `value`, when it is that.
        func erfChain(_ value: String, x: String) -> [Int]? {
            guard let (addIndex, add) = inner(value, "Add"), let erfValue = other(than: 1, in: add),
                  let (erfIndex, erf) = inner(erfValue, "Erf"), erf.inputs.count == 1 else { return nil }
            if let (scaleIndex, scale) = inner(erf.inputs[0], "Div"), scale.inputs.count == 2, scale.inputs[0] == x,
               let divisor = scalar(scale.inputs[1]), abs(divisor - 1.4142135) < 1e-5 {
                return [addIndex, erfIndex, scaleIndex]
            }
            if let (scaleIndex, scale) = inner(erf.inputs[0], "Mul"), other(than: 0.70710678, in: scale, tolerance: 1e-5) == x {
                return [addIndex, erfIndex, scaleIndex]
            }
            return nil
        }

        /// LayerNorm over the last axis: the final Add of `(x − mean) / sqrt(var + ε) · γ + β`.
        mutating func layerNorm(at index: Int) -> Bool {
            let add = graph.nodes[index]
            guard add.isStandard("Add"), add.inputs.count == 2, add.outputs.count == 1 else { return false }
            for side in 0..<2 {
                let beta = add.inputs[1 - side]
                guard let (mulIndex, mul) = inner(add.inputs[side], "Mul"),
                      mul.inputs.count == 2 else { continue }
                for gammaSide in 0..<2 {
                    let gamma = mul.inputs[gammaSide]
                    guard graph.initializers[gamma]?.shape.rank == 1, graph.initializers[beta]?.shape.rank == 1,
                          let (divIndex, div) = inner(mul.inputs[1 - gammaSide], "Div"),
                          div.inputs.count == 2, let (sqrtIndex, sqrt) = inner(div.inputs[1], "Sqrt"),
                          let (epsilonIndex, epsilonAdd) = inner(sqrt.inputs[0], "Add"),
                          let (varianceIndex, variance) = lastAxisMean(of: epsilonAdd),
                          let epsilon = epsilonAdd.inputs.first(where: { $0 != variance.outputs[0] }).flatMap(scalar),
                          let (powIndex, pow) = inner(variance.inputs[0], "Pow"), pow.inputs.count == 2,
                          scalar(pow.inputs[1]) == 2, pow.inputs[0] == div.inputs[0] else { continue }
                    // The centred values feed both Pow and Div: two readers, both in the chain.
                    let centred = div.inputs[0]
                    guard let subIndex = producers[centred], !removed.contains(subIndex),
                          graph.nodes[subIndex].isStandard("Sub"), uses[centred] == 2, !outputs.contains(centred) else { continue }
                    let sub = graph.nodes[subIndex]
                    guard sub.inputs.count == 2, let (meanIndex, mean) = inner(sub.inputs[1], "ReduceMean"),
                          mean.inputs.first == sub.inputs[0], Self.isLastAxisMean(mean) else { continue }
                    let x = sub.inputs[0]
                    graph.nodes[index] = Node(name: add.name, opType: "LayerNormalization", domain: OperatorRegistry.internalDomain,
                                              inputs: [x, gamma, beta], outputs: add.outputs,
                                              attributes: ["axis": .int(-1), "epsilon": .float(epsilon)])
                    removed.formUnion([mulIndex, divIndex, sqrtIndex, epsilonIndex, varianceIndex, powIndex, subIndex, meanIndex])
                    return true
                }
            }
            return false
        }

        /// The ReduceMean over the last axis that is one input of the two-input `node` (whose other
        /// input is then a constant).
        func lastAxisMean(of node: Node) -> (Int, Node)? {
            guard node.inputs.count == 2 else { return nil }
            for side in 0..<2 where scalar(node.inputs[1 - side]) != nil {
                if let (index, mean) = inner(node.inputs[side], "ReduceMean"), Self.isLastAxisMean(mean) { return (index, mean) }
            }
            return nil
        }

        /// ReduceMean over axis −1 only, keeping dims (axes as an attribute: opsets before 18).
        static func isLastAxisMean(_ node: Node) -> Bool {
            guard node.inputs.count == 1, case .int(1)? = node.attributes["keepdims"] ?? .int(1) else { return false }
            switch node.attributes["axes"] {
            case .ints([-1])?, .int(-1)?: return true
            default: return false
            }
        }
    }
}
