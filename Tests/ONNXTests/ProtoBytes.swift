import Foundation

/// Writes protobuf messages field by field, so tests can build `.onnx` bytes that no well-behaved
/// exporter would write (the generated ONNX types are internal to the ONNX module).
struct ProtoBytes {
    private(set) var bytes: [UInt8] = []

    private mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    private mutating func key(_ field: Int, _ wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }

    /// An integer field (int32, int64, enum, bool); negative values as two's complement.
    func int(_ field: Int, _ value: Int64) -> Self {
        var copy = self
        copy.key(field, 0)
        copy.varint(UInt64(bitPattern: value))
        return copy
    }

    /// A length-delimited field: bytes, a string or a nested message.
    func bytes(_ field: Int, _ value: [UInt8]) -> Self {
        var copy = self
        copy.key(field, 2)
        copy.varint(UInt64(value.count))
        copy.bytes += value
        return copy
    }

    func string(_ field: Int, _ value: String) -> Self { bytes(field, Array(value.utf8)) }
    func message(_ field: Int, _ value: ProtoBytes) -> Self { bytes(field, value.bytes) }

    /// A 32-bit float field.
    func float(_ field: Int, _ value: Float) -> Self {
        var copy = self
        copy.key(field, 5)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { copy.bytes += $0 }
        return copy
    }

    var data: Data { Data(bytes) }
}

/// ONNX messages by field number (onnx.proto), with the defaults most tests want.
enum ONNXBytes {
    static let float: Int64 = 1, int64: Int64 = 7

    /// `ModelProto`: IR version 8, default-domain opset `opset`, and `graph`.
    static func model(_ graph: ProtoBytes, opset: Int64 = 13) -> ProtoBytes {
        ProtoBytes().int(1, 8).message(8, ProtoBytes().string(1, "").int(2, opset)).message(7, graph)
    }

    /// `GraphProto` from its parts.
    static func graph(nodes: [ProtoBytes], inputs: [ProtoBytes] = [], outputs: [ProtoBytes] = [],
                      initializers: [ProtoBytes] = [], sparseInitializers: [ProtoBytes] = []) -> ProtoBytes {
        var graph = ProtoBytes().string(2, "g")
        for node in nodes { graph = graph.message(1, node) }
        for tensor in initializers { graph = graph.message(5, tensor) }
        for input in inputs { graph = graph.message(11, input) }
        for output in outputs { graph = graph.message(12, output) }
        for sparse in sparseInitializers { graph = graph.message(15, sparse) }
        return graph
    }

    /// `NodeProto`.
    static func node(_ opType: String, _ inputs: [String], _ outputs: [String], name: String = "n",
                     attributes: [ProtoBytes] = []) -> ProtoBytes {
        var node = ProtoBytes().string(3, name).string(4, opType)
        for input in inputs { node = node.string(1, input) }
        for output in outputs { node = node.string(2, output) }
        for attribute in attributes { node = node.message(5, attribute) }
        return node
    }

    /// `ValueInfoProto` of a tensor with fixed dimensions.
    static func value(_ name: String, _ elementType: Int64 = float, _ dims: [Int64]) -> ProtoBytes {
        var shape = ProtoBytes()
        for dim in dims { shape = shape.message(1, ProtoBytes().int(1, dim)) }
        let tensorType = ProtoBytes().int(1, elementType).message(2, shape)
        return ProtoBytes().string(1, name).message(2, ProtoBytes().message(1, tensorType))
    }

    /// `ValueInfoProto` of a tensor whose dimensions are written as given: a number is a
    /// `dim_value`, "" a dimension with neither field, any other text a `dim_param`.
    static func value(_ name: String, _ elementType: Int64 = float, dims: [String]) -> ProtoBytes {
        var shape = ProtoBytes()
        for dim in dims {
            let dimension = if let size = Int64(dim) { ProtoBytes().int(1, size) }
                else if dim.isEmpty { ProtoBytes() } else { ProtoBytes().string(2, dim) }
            shape = shape.message(1, dimension)
        }
        let tensorType = ProtoBytes().int(1, elementType).message(2, shape)
        return ProtoBytes().string(1, name).message(2, ProtoBytes().message(1, tensorType))
    }

    /// `TensorProto` with dims and raw bytes (omitted when nil).
    static func tensor(_ name: String, _ elementType: Int64 = float, dims: [Int64], raw: [UInt8]? = nil) -> ProtoBytes {
        var tensor = ProtoBytes()
        for dim in dims { tensor = tensor.int(1, dim) }
        tensor = tensor.int(2, elementType).string(8, name)
        if let raw { tensor = tensor.bytes(9, raw) }
        return tensor
    }

    /// `AttributeProto` of type INT (2), INTS (7), FLOAT (1), FLOATS (6) or TENSOR (4).
    static func attribute(_ name: String, int: Int64) -> ProtoBytes { ProtoBytes().string(1, name).int(3, int).int(20, 2) }
    static func attribute(_ name: String, ints: [Int64]) -> ProtoBytes {
        ints.reduce(ProtoBytes().string(1, name)) { $0.int(8, $1) }.int(20, 7)
    }
    static func attribute(_ name: String, float: Float) -> ProtoBytes { ProtoBytes().string(1, name).float(2, float).int(20, 1) }
    static func attribute(_ name: String, tensor: ProtoBytes) -> ProtoBytes {
        ProtoBytes().string(1, name).message(5, tensor).int(20, 4)
    }

    /// Raw little-endian bytes of float values.
    static func raw(_ values: [Float]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }
    static func raw(_ values: [Int64]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }
}
