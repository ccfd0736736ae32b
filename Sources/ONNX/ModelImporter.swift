public import Engine
public import Foundation
import SwiftProtobuf
import Tensors

/// Translates a decoded `ModelProto` into the engine's `Model`.
final class ModelImporter {
    let external: ExternalDataReader?
    /// Bytes that densified sparse tensors may still take: what a file of a given size can
    /// justify, since their dense size is declared, not backed by data.
    private var denseBytesLeft: Int

    /// An importer for a model file of `fileSize` bytes.
    init(external: ExternalDataReader?, fileSize: Int) {
        self.external = external
        let (scaled, overflow) = fileSize.multipliedReportingOverflow(by: Self.denseBytesPerFileByte)
        denseBytesLeft = max(Self.minimumDenseBytes, overflow ? .max : scaled)
    }

    /// Sparse tensors may expand to this many bytes per byte of the file, or `minimumDenseBytes`.
    static let denseBytesPerFileByte = 16
    static let minimumDenseBytes = 256 << 20

    /// The main graph's initializers' `raw_data` when `DetachedRawData` cut it out of the message:
    /// the original bytes, the range of each initializer's payload in them, and the mapped file
    /// they are in (whose pages are let go once copied), if any.
    struct Payloads {
        let bytes: UnsafeRawBufferPointer
        let ranges: [Range<Int>?]
        let file: MappedFile?
    }

    /// The engine's model for `proto`; `payloads`, when given, has one entry per initializer of
    /// its graph.
    func model(_ proto: Onnx_ModelProto, payloads: Payloads? = nil) throws(ONNXError) -> Model {
        guard proto.hasGraph else { throw .invalidModel("the file has no graph") }
        var opsets: [String: Int] = [:]
        for entry in proto.opsetImport {
            let domain = entry.domain == "ai.onnx" ? "" : entry.domain
            opsets[domain] = Int(entry.version)
        }
        if proto.opsetImport.isEmpty {
            // IR version 1-2 files predate opset_import; they mean opset 1.
            opsets[""] = 1
        }
        var metadata: [String: String] = [:]
        for entry in proto.metadataProps { metadata[entry.key] = entry.value }
        return Model(
            graph: try graph(proto.graph, path: "graph", payloads: payloads),
            opsets: opsets,
            irVersion: Int(proto.irVersion),
            producerName: proto.producerName,
            producerVersion: proto.producerVersion,
            domain: proto.domain,
            modelVersion: Int(proto.modelVersion),
            docString: proto.docString,
            metadata: metadata)
    }

    func graph(_ proto: Onnx_GraphProto, path: String, payloads: Payloads? = nil) throws(ONNXError) -> Graph {
        var initializers: [String: Tensor] = [:]
        for (index, tensor) in proto.initializer.enumerated() {
            guard !tensor.name.isEmpty else { throw .invalidModel("\(path) has an initializer without a name") }
            guard let payloads, let range = payloads.ranges[index] else {
                initializers[tensor.name] = try TensorProtoCodec.tensor(from: tensor, external: external)
                continue
            }
            initializers[tensor.name] = try TensorProtoCodec.tensor(
                from: tensor, external: external, rawData: UnsafeRawBufferPointer(rebasing: payloads.bytes[range]))
            // Copied into the tensor (or refused): the file's pages of it are no longer needed.
            payloads.file?.releasePages(range)
        }
        for sparse in proto.sparseInitializer {
            guard !sparse.values.name.isEmpty else { throw .invalidModel("\(path) has a sparse initializer without a name") }
            initializers[sparse.values.name] = try dense(sparse)
        }
        var inputs: [ValueInfo] = []
        for info in proto.input where initializers[info.name] == nil {
            inputs.append(try declared(info, role: "input"))
        }
        var outputs: [ValueInfo] = []
        for info in proto.output {
            outputs.append(try declared(info, role: "output"))
        }
        var valueInfo: [String: TensorType] = [:]
        for info in proto.valueInfo {
            // Intermediate annotations are hints; non-tensor or odd ones are simply not used.
            if let value = try? declared(info, role: "value"), value.kind == .tensor, let type = value.type { valueInfo[info.name] = type }
        }
        var nodes: [Node] = []
        nodes.reserveCapacity(proto.node.count)
        for (index, node) in proto.node.enumerated() {
            let name = node.name.isEmpty ? "\(node.opType)_\(index)" : node.name
            var attributes: [String: AttributeValue] = [:]
            for attribute in node.attribute {
                attributes[attribute.name] = try value(of: attribute, in: "\(node.opType) '\(name)'", path: path)
            }
            nodes.append(Node(name: name, opType: node.opType, domain: node.domain,
                              inputs: node.input, outputs: node.output, attributes: attributes))
        }
        return Graph(name: proto.name, nodes: nodes, inputs: inputs, outputs: outputs,
                     valueInfo: valueInfo, initializers: initializers)
    }

    /// A graph input or output as declared: its kind and the type of its tensors (both nil when
    /// the file leaves the type out).
    private func declared(_ info: Onnx_ValueInfoProto, role: String) throws(ONNXError) -> ValueInfo {
        guard info.hasType, info.type.value != nil else { return ValueInfo(name: info.name, type: nil, kind: nil) }
        // A sequence of maps (ZipMap's output): its operator gives the type it is carried as.
        if role == "output", case .sequenceType(let sequence)? = info.type.value, case .mapType? = sequence.elemType.value {
            return ValueInfo(name: info.name, type: nil)
        }
        let (kind, type) = try valueType(info.type, what: "\(role) '\(info.name)'")
        return ValueInfo(name: info.name, type: type, kind: kind)
    }

    /// The kind a `TypeProto` describes and the type of its tensors: a tensor, a sequence of
    /// tensors, a map (int64 or string keys, tensor values: the type is the values'), or an
    /// optional of a tensor or a sequence. Sparse tensors, sequences of sequences or of maps
    /// (other than ZipMap's outputs) are refused.
    func valueType(_ proto: Onnx_TypeProto, what: String) throws(ONNXError) -> (ValueKind, TensorType?) {
        switch proto.value {
        case .tensorType(let tensor)?:
            return (.tensor, try tensorType(tensor, what: what))
        case .sequenceType(let sequence)?:
            guard case .tensorType(let tensor)? = sequence.elemType.value else {
                throw .invalidModel("\(what) is a sequence of \(sequence.elemType.value.map(Self.kind) ?? "unknown values"); onnx-serve supports sequences of tensors only")
            }
            return (.sequence, try tensorType(tensor, what: what))
        case .optionalType(let optional)?:
            switch optional.elemType.value {
            case .tensorType?, .sequenceType?:
                let (element, type) = try valueType(optional.elemType, what: what)
                return (.optional(element), type)
            default:
                throw .invalidModel("\(what) is an optional of \(optional.elemType.value.map(Self.kind) ?? "unknown values"); onnx-serve supports optional tensors and sequences only")
            }
        case .mapType(let map)?:
            let key = try TensorProtoCodec.dataType(code: map.keyType, of: "the keys of \(what)")
            guard TensorMap.keyTypes.contains(key) else {
                throw .invalidModel("\(what) is a map with \(key) keys; onnx-serve supports maps with int64 or string keys")
            }
            guard case .tensorType(let tensor)? = map.valueType.value else {
                throw .invalidModel("\(what) is a map of \(map.valueType.value.map(Self.kind) ?? "unknown values"); onnx-serve supports maps of tensors only")
            }
            return (.map(key: key), try tensorType(tensor, what: what))
        case let value?:
            throw .invalidModel("\(what) is a \(Self.kind(of: value)); onnx-serve supports tensors, sequences of tensors, maps and optionals")
        case nil:
            throw .invalidModel("\(what) has an empty type")
        }
    }

    /// A declared tensor type (nil dims when the shape is left out).
    private func tensorType(_ tensor: Onnx_TypeProto.Tensor, what: String) throws(ONNXError) -> TensorType {
        let dataType = try TensorProtoCodec.dataType(code: tensor.elemType, of: what)
        guard tensor.hasShape else { return TensorType(dataType, nil) }
        var dims: [Dim] = []
        for dim in tensor.shape.dim {
            switch dim.value {
            case .dimValue(let size)? where size >= 0:
                guard size <= Int64(TensorProtoCodec.maximumElementCount) else {
                    throw .invalidModel("\(what) declares dimension \(size), more than onnx-serve supports (\(TensorProtoCodec.maximumElementCount))")
                }
                dims.append(.fixed(Int(size)))
            // "?" is how some exporters (PaddlePaddle) write "unnamed": each one is a size of its own.
            case .dimParam(let name)? where !Self.isUnnamed(name): dims.append(.symbolic(name))
            default: dims.append(.unknown)
            }
        }
        guard Shape(dims.map { $0.value ?? 1 }).checkedElementCount != nil else {
            throw .invalidModel("\(what) declares more elements than onnx-serve can count: \(tensor.shape.dim.map { $0.dimValue })")
        }
        return TensorType(dataType, dims)
    }

    /// True for a `dim_param` that names nothing: empty, or "?". Such dimensions are independent
    /// of each other; only a real name ties two dimensions together.
    static func isUnnamed(_ dimParam: String) -> Bool {
        dimParam.isEmpty || dimParam == "?"
    }

    private static func kind(of value: Onnx_TypeProto.OneOf_Value) -> String {
        switch value {
        case .tensorType: "tensor"
        case .sequenceType: "sequence"
        case .mapType: "map"
        case .optionalType: "optional"
        case .sparseTensorType: "sparse tensor"
        case .opaqueType: "opaque"
        }
    }

    private func value(of attribute: Onnx_AttributeProto, in node: String, path: String) throws(ONNXError) -> AttributeValue {
        let what = "attribute '\(attribute.name)' of \(node)"
        var type = attribute.type
        if type == .undefined {
            // Files from before IR version 2 leave the type out; the filled field tells.
            if attribute.hasF { type = .float }
            else if attribute.hasI { type = .int }
            else if attribute.hasS { type = .string }
            else if attribute.hasT { type = .tensor }
            else if attribute.hasG { type = .graph }
            else if attribute.hasTp { type = .typeProto }
            else if !attribute.floats.isEmpty { type = .floats }
            else if !attribute.ints.isEmpty { type = .ints }
            else if !attribute.strings.isEmpty { type = .strings }
            else if !attribute.tensors.isEmpty { type = .tensors }
            else if !attribute.graphs.isEmpty { type = .graphs }
        }
        switch type {
        case .float: return .float(attribute.f)
        case .int: return .int(Int(attribute.i))
        case .string: return .string(String(decoding: attribute.s, as: UTF8.self))
        case .tensor: return .tensor(try TensorProtoCodec.tensor(from: attribute.t, external: external))
        case .graph: return .graph(try graph(attribute.g, path: "\(path)/\(attribute.name)"))
        case .sparseTensor: return .tensor(try dense(attribute.sparseTensor))
        case .typeProto:
            let (kind, tensorType) = try valueType(attribute.tp, what: what)
            return .type(kind, tensorType)
        case .floats: return .floats(attribute.floats)
        case .ints: return .ints(attribute.ints.map { Int($0) })
        case .strings: return .strings(attribute.strings.map { String(decoding: $0, as: UTF8.self) })
        case .tensors:
            var tensors: [Tensor] = []
            for tensor in attribute.tensors { tensors.append(try TensorProtoCodec.tensor(from: tensor, external: external)) }
            return .tensors(tensors)
        case .graphs:
            var graphs: [Graph] = []
            for (index, graph) in attribute.graphs.enumerated() {
                graphs.append(try self.graph(graph, path: "\(path)/\(attribute.name)[\(index)]"))
            }
            return .graphs(graphs)
        default:
            throw .invalidModel("\(what) has type \(type), which onnx-serve does not support")
        }
    }

    /// A sparse tensor (values + COO indices, linear or per-dimension) made dense, within what is
    /// left of the importer's dense-byte budget.
    private func dense(_ sparse: Onnx_SparseTensorProto) throws(ONNXError) -> Tensor {
        let what = "sparse tensor '\(sparse.values.name)'"
        let values = try TensorProtoCodec.tensor(from: sparse.values, external: external)
        let indexTensor = try TensorProtoCodec.tensor(from: sparse.indices, external: external)
        guard values.dataType != .string else { throw .invalidModel("\(what) holds strings, which onnx-serve does not support") }
        guard indexTensor.dataType == .int64 else { throw .invalidModel("\(what) has \(indexTensor.dataType) indices; ONNX requires int64") }
        let shape = try TensorProtoCodec.shape(sparse.dims, of: what)
        let denseCount = shape.elementCount, size = values.dataType.byteSize
        guard denseCount * size <= denseBytesLeft else {
            throw .invalidModel("\(what) \(shape) would take \(denseCount * size) bytes once dense, more than the file can justify (\(denseBytesLeft) left)")
        }
        let indices = indexTensor.scalars(as: Int64.self)
        let count = values.elementCount, rank = shape.rank
        let positions: [Int]
        if indices.count == count {
            positions = try indices.map { (index) throws(ONNXError) -> Int in
                guard index >= 0 && index < denseCount else { throw .invalidModel("\(what) has index \(index) outside shape \(shape)") }
                return Int(index)
            }
        } else if rank > 0, indices.count / rank == count, indices.count % rank == 0 {
            let strides = shape.strides
            positions = try (0..<count).map { (item) throws(ONNXError) -> Int in
                var position = 0
                for axis in 0..<rank {
                    let coordinate = indices[item * rank + axis]
                    guard coordinate >= 0 && coordinate < shape[axis] else {
                        throw .invalidModel("\(what) has index \(indices[(item * rank)..<(item * rank + rank)]) outside shape \(shape)")
                    }
                    position += Int(coordinate) * strides[axis]
                }
                return position
            }
        } else {
            throw .invalidModel("\(what) has \(indices.count) indices for \(count) values")
        }
        denseBytesLeft -= denseCount * size
        let result = Tensor(zeros: values.dataType, shape: shape)
        for (item, position) in positions.enumerated() {
            (result.rawPointer + position * size).copyMemory(from: values.rawPointer + item * size, byteCount: size)
        }
        return result
    }
}

/// A model file read whole into memory rather than mapped (a file truncated under a mapping would
/// kill the process), to be imported once by `ModelLoader.load(_:directory:source:)`.
public final class ModelFileContents {
    let file: MappedFile
    fileprivate(set) var loaded = false

    /// Bytes read: the file's size, or less when it shrank while being read.
    public var count: Int { file.count }

    /// Reads the file at `path`.
    public init(reading path: String) throws(ONNXError) {
        file = try MappedFile(readingIntoMemory: path)
    }
}

/// Loads `.onnx` files.
public enum ModelLoader {
    /// Reads and imports the model at `path`. External data is looked up next to the file.
    public static func load(contentsOf path: String) throws(ONNXError) -> Model {
        let file = try MappedFile(path: path)
        guard file.count > 0 else { throw .malformed("\(path) is empty") }
        let directory = (path as NSString).deletingLastPathComponent
        return try load(file.buffer, file: file, directory: directory.isEmpty ? "." : directory, source: path)
    }

    /// Imports the model in `contents`, a file read whole into memory; external data is resolved
    /// relative to `directory`. The weights' bytes in `contents` are let go as they are copied,
    /// so the file and the weights are not both held at the peak; a second load of the same
    /// contents is refused.
    public static func load(_ contents: ModelFileContents, directory: String?, source: String = "model") throws(ONNXError) -> Model {
        guard !contents.loaded else { throw .unreadable(path: source, reason: "its contents were loaded once already") }
        contents.loaded = true
        guard contents.count > 0 else { throw .malformed("\(source) is empty") }
        return try load(contents.file.buffer, file: contents.file, directory: directory, source: source)
    }

    /// Imports a model from serialized bytes; external data is resolved relative to `directory`.
    public static func load(_ data: Data, directory: String?, source: String = "model") throws(ONNXError) -> Model {
        guard !data.isEmpty else { throw .malformed("\(source) is empty") }
        let result = data.withUnsafeBytes { bytes in
            Result { () throws(ONNXError) -> Model in try load(bytes, file: nil, directory: directory, source: source) }
        }
        return try result.get()
    }

    /// Imports the model in `bytes` (not empty), which lie in `file` when it is given. The main
    /// graph's initializers are copied from `bytes` straight into their tensors (see
    /// `DetachedRawData`), and the file's pages of each let go once it is copied.
    private static func load(_ bytes: UnsafeRawBufferPointer, file: MappedFile?, directory: String?,
                             source: String) throws(ONNXError) -> Model {
        guard let base = bytes.baseAddress else { throw .malformed("\(source) is empty") }
        var detached = DetachedRawData(cutting: bytes)
        let proto: Onnx_ModelProto
        do {
            var decoded: Onnx_ModelProto?
            if let cut = detached {
                let message = try Onnx_ModelProto(serializedBytes: cut.skeleton)
                if cut.payloads.count == message.graph.initializer.count { decoded = message } else { detached = nil }
            }
            proto = try decoded ?? Onnx_ModelProto(serializedBytes: Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base),
                                                                         count: bytes.count, deallocator: .none))
        } catch {
            throw .malformed("\(source) is not an ONNX protobuf (\(describe(error)))")
        }
        guard proto.hasGraph || proto.hasIrVersion else {
            throw .malformed("\(source) is not an ONNX model (no ir_version and no graph)")
        }
        let reader = try directory.map { (directory) throws(ONNXError) in try ExternalDataReader(directory: directory) }
        let payloads = detached.map { ModelImporter.Payloads(bytes: bytes, ranges: $0.payloads, file: file) }
        return try ModelImporter(external: reader, fileSize: bytes.count).model(proto, payloads: payloads)
    }

    private static func describe(_ error: any Error) -> String {
        switch error as? BinaryDecodingError {
        case .truncated?: "the data ends early: truncated file?"
        case .malformedProtobuf?: "malformed protobuf data"
        case .invalidUTF8?: "a string is not valid UTF-8"
        case .messageDepthLimit?: "messages nested too deeply"
        default: "\(error)"
        }
    }
}
