import Tensors

extension InferenceSession {
    /// The keys of graph outputs made by ZipMap, which the engine carries as the float tensor of
    /// map values (one row per map). A ZipMap output that another node reads is refused: no
    /// operator we run takes a sequence of maps.
    static func mapOutputKeys(_ graph: Graph) throws(EngineError) -> [String: Tensor] {
        var keys: [String: Tensor] = [:]
        let zipMaps = graph.nodes.filter { $0.opType == "ZipMap" && $0.domain == ClassicMLOperators.domain }
        guard !zipMaps.isEmpty else { return keys }
        let read = Set(graph.nodes.flatMap(\.inputs))
        for node in zipMaps {
            guard let output = node.outputs.first, !output.isEmpty else { continue }
            if read.contains(output) {
                throw .unsupportedOperator(opType: "ZipMap", domain: ClassicMLOperators.domain, version: 1,
                                           node: "\(node.label) (its sequence of maps feeds another node; onnx-serve supports ZipMap only as a graph output)")
            }
            let labels: ClassLabels
            do {
                labels = try OperatorContext(node: node, version: 1, constants: []).classLabels(ints: "classlabels_int64s", strings: "classlabels_strings")
            } catch {
                throw .invalidGraph("\(node.label): \(error)")
            }
            switch labels {
            case .integers(let values): keys[output] = Tensor(values, shape: [values.count])
            case .strings(let values): keys[output] = Tensor(strings: values, shape: [values.count])
            }
        }
        return keys
    }
}
