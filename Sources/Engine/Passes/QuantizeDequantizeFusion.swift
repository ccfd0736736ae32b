import Kernels
import Tensors

/// `DequantizeLinear(QuantizeLinear(x, s, z), s, z)`, per tensor, becomes one internal
/// `QuantizeDequantize(x)` (the `Activation.quantizeDequantize` of s and z): the same values in
/// one pass over x, with no quantized buffer in between. QDQ-format models put such a pair on
/// every activation between float operators; as an activation, the fusion passes after this one
/// can move it into a convolution's epilogue.
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
            guard s.isFinite, s != 0, let range = QuantizationOperators.range(type) else { continue }
            let activation = Activation.quantizeDequantize(scale: s, zeroPoint: zero, low: range.lowerBound, high: range.upperBound)
            graph.nodes[index] = Node(name: dequantize.name, opType: "QuantizeDequantize", domain: OperatorRegistry.internalDomain,
                                      inputs: [quantize.inputs[0]], outputs: dequantize.outputs,
                                      attributes: activation.fusedAttributes())
            removed.insert(producer)
        }
        graph.removeNodes(removed)
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
