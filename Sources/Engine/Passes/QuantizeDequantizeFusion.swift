import Kernels
import Tensors

/// `DequantizeLinear(QuantizeLinear(x, s, z), s, z)`, per tensor, becomes one internal
/// `QuantizeDequantize(x)` (the `Activation.quantizeDequantize` of s and z): the same values in
/// one pass over x, with no quantized buffer in between. QDQ-format models put such a pair on
/// every activation between float operators; as an activation, the fusion passes after this one
/// can move it into a convolution's epilogue. A pair that rounds a value already on its grid goes.
struct QuantizeDequantizeFusion: GraphPass {
    var name: String { "quantize-dequantize-fusion" }

    func run(_ graph: inout Graph, opsets: [String: Int]) throws(EngineError) {
        let uses = graph.useCounts, outputs = graph.outputNames, producers = graph.producers
        var removed = Set<Int>()
        for index in graph.nodes.indices {
            let dequantize = graph.nodes[index]
            guard dequantize.isStandard("DequantizeLinear"), dequantize.inputs.count >= 2, dequantize.attributes["output_dtype"] == nil,
                  let producer = producers[dequantize.inputs[0]], !removed.contains(producer),
                  graph.hasSingleReader(dequantize.inputs[0], uses: uses, outputs: outputs) else { continue }
            let quantize = graph.nodes[producer]
            guard quantize.isStandard("QuantizeLinear"), quantize.inputs.count >= 2, quantize.attributes["output_dtype"] == nil,
                  let scale = graph.initializers[quantize.inputs[1]], scale.dataType == .float, scale.elementCount == 1,
                  same(quantize.inputs[1], dequantize.inputs[1], graph) else { continue }
            let zeroPoint = quantize.inputs.count > 2 ? quantize.inputs[2] : ""
            guard same(zeroPoint, dequantize.inputs.count > 2 ? dequantize.inputs[2] : "", graph) else { continue }
            var zero: Float = 0, type = DataType.uint8
            if !zeroPoint.isEmpty {
                guard let tensor = graph.initializers[zeroPoint], tensor.elementCount == 1,
                      tensor.dataType == .uint8 || tensor.dataType == .int8 else { continue }
                zero = Float(tensor.integers()[0])
                type = tensor.dataType
            }
            let s = scale.scalars(as: Float.self)[0]
            // A negative scale (which the spec does not rule out) keeps its two operators: the
            // fused rounding takes positive scales only (see `QuantizationGrid`).
            guard s.isFinite, s > 0, let range = QuantizationOperators.range(type) else { continue }
            let activation = Activation.quantizeDequantize(scale: s, zeroPoint: zero, low: range.lowerBound, high: range.upperBound)
            graph.nodes[index] = Node(name: dequantize.name, opType: "QuantizeDequantize", domain: OperatorRegistry.internalDomain,
                                      inputs: [quantize.inputs[0]], outputs: dequantize.outputs,
                                      attributes: activation.fusedAttributes())
            removed.insert(producer)
        }
        graph.removeNodes(removed)
        dropRepeatedRoundings(&graph, opsets: opsets)
    }

    /// Drops a rounding of a value already on its grid: one that a rounding with the same scale,
    /// zero point and range made, directly or through MaxPool (the largest of grid points is one
    /// of them; a QDQ model rounds MaxPool's output with its input's grid). Rounding returns every
    /// grid point exactly when the scale, its reciprocal and the grid's ends are normal floats
    /// (`EpilogueTests.gridPointsRoundToThemselves`), so the values do not change. Graph outputs
    /// keep their rounding node.
    private func dropRepeatedRoundings(_ graph: inout Graph, opsets: [String: Int]) {
        let outputs = graph.outputNames, producers = graph.producers
        var dropped = Set<Int>(), renames: [String: String] = [:]
        for (index, node) in graph.nodes.enumerated() where node.isInternal("QuantizeDequantize") {
            // Grid points k·scale and 1/scale normal floats: then k·scale/scale (or times 1/scale)
            // is within a few ulps of k, which rounds back to k (|k| ≤ 65536).
            guard node.outputs.count == 1, let input = node.inputs.first, !outputs.contains(node.outputs[0]),
                  let rounding = ActivationFusion.activation(of: node, opsets: opsets, graph.initializers),
                  case .quantizeDequantize(let scale, _, _, _) = rounding, scale.isNormal, (1 / scale).isNormal,
                  (scale * 65_536).isFinite else { continue }
            var value = input
            while let producer = producers[value] {
                let source = graph.nodes[producer]
                if source.isInternal("QuantizeDequantize") {
                    if ActivationFusion.activation(of: source, opsets: opsets, graph.initializers) == rounding {
                        dropped.insert(index)
                        renames[node.outputs[0]] = input
                    }
                    break
                }
                guard Self.picksAnInput(source), let next = source.inputs.first else { break }
                value = next
            }
        }
        // A dropped rounding's input is on the grid too: one reading another's output reads its input.
        for (old, new) in renames {
            var target = new
            while let next = renames[target] { target = next }
            graph.rename(uses: old, to: target)
        }
        graph.removeNodes(dropped)
    }

    /// True for a MaxPool whose every output is one of its input's values: one output, no
    /// dilation, ceil_mode or auto_pad, and pads narrower than the kernel (so that no window lies
    /// wholly in the padding).
    static func picksAnInput(_ node: Node) -> Bool {
        guard node.isStandard("MaxPool"), node.outputs.count == 1, case .ints(let kernel)? = node.attributes["kernel_shape"] else {
            return false
        }
        if case .int(let ceil)? = node.attributes["ceil_mode"], ceil != 0 { return false }
        if case .string(let pad)? = node.attributes["auto_pad"], pad != "NOTSET" { return false }
        if case .ints(let dilations)? = node.attributes["dilations"], dilations.contains(where: { $0 != 1 }) { return false }
        guard case .ints(let pads)? = node.attributes["pads"] else { return node.attributes["pads"] == nil }
        return pads.count == 2 * kernel.count && pads.indices.allSatisfy { pads[$0] >= 0 && pads[$0] < kernel[$0 % kernel.count] }
    }

    /// True when `a` and `b` are the same value: one name (both omitted included), or constants
    /// of one type, shape and bytes.
    private func same(_ a: String, _ b: String, _ graph: Graph) -> Bool {
        if a == b { return true }
        guard let x = graph.initializers[a], let y = graph.initializers[b], x.dataType == y.dataType, x.shape == y.shape,
              x.dataType != .string else { return false }
        return withExtendedLifetime((x, y)) {
            UnsafeRawBufferPointer(start: x.rawPointer, count: x.byteCount).elementsEqual(UnsafeRawBufferPointer(start: y.rawPointer, count: y.byteCount))
        }
    }
}
