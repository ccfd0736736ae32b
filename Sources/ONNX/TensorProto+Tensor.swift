import Foundation
import SwiftProtobuf
public import Tensors

/// Conversion between ONNX `TensorProto` messages and `Tensor`s.
enum TensorProtoCodec {
    /// The element type of an ONNX type code, or an error naming the unsupported type.
    static func dataType(code: Int32, of what: String) throws(ONNXError) -> DataType {
        if let type = DataType(rawValue: code) { return type }
        let name = Onnx_TensorProto.DataType(rawValue: Int(code)).map { "\($0)" } ?? "code \(code)"
        throw .invalidModel("\(what) has element type \(name), which onnx-serve does not support")
    }

    /// Most elements a tensor read from a file may have, and the most the dimensions other than
    /// zero may multiply to (so that strides and offsets over any shape stay far from overflow).
    static let maximumElementCount = 1 << 34

    /// The shape `dims` describe, checked: no negative dimension, and the non-zero dimensions
    /// multiply to at most `maximumElementCount`.
    static func shape(_ dims: [Int64], of what: String) throws(ONNXError) -> Shape {
        var product = 1
        for dim in dims {
            guard dim >= 0, dim <= Int64(maximumElementCount) else {
                throw .invalidModel("\(what) has invalid dimensions \(dims)")
            }
            guard dim > 0 else { continue }
            let (next, overflow) = product.multipliedReportingOverflow(by: Int(dim))
            guard !overflow, next <= maximumElementCount else {
                throw .invalidModel("\(what) has too many elements: \(dims)")
            }
            product = next
        }
        return Shape(dims.map { Int($0) })
    }

    /// Decodes a tensor. `external` resolves `data_location: EXTERNAL` (nil where external data is
    /// not allowed, e.g. a standalone .pb file). `rawData` is the `raw_data` payload when it was
    /// cut out of the message (`DetachedRawData`; the message then holds it empty). Nothing is
    /// allocated before the data present in the file (or its external file) is known to fill the
    /// declared shape.
    static func tensor(from proto: Onnx_TensorProto, external: ExternalDataReader?,
                       rawData: UnsafeRawBufferPointer? = nil) throws(ONNXError) -> Tensor {
        let what = proto.name.isEmpty ? "a tensor" : "tensor '\(proto.name)'"
        let dataType = try dataType(code: proto.dataType, of: what)
        let shape = try shape(proto.dims, of: what)
        // `shape` keeps the count and its byte size far below overflow.
        let count = shape.elementCount
        if proto.hasSegment { throw .invalidModel("\(what) is segmented, which onnx-serve does not support") }

        if proto.dataLocation == .external {
            guard let external else { throw .externalData("\(what) refers to external data, which is not allowed here") }
            guard dataType != .string else { throw .externalData("\(what): string tensors cannot be stored externally") }
            let buffer = try external.read(proto, byteCount: dataType.packedByteCount(elements: count) ?? 0, what: what)
            if dataType.bitWidth < 8 {
                return withExtendedLifetime(buffer) {
                    tensor(dataType, shape: shape, bytes: UnsafeRawBufferPointer(start: buffer.baseAddress, count: buffer.byteCount))
                }
            }
            return normalized(Tensor(dataType: dataType, shape: shape, storage: .bytes(buffer)))
        }
        if proto.hasRawData && dataType != .string {
            let byteCount = dataType.packedByteCount(elements: count) ?? 0
            let given = rawData?.count ?? proto.rawData.count
            guard given == byteCount else {
                throw .invalidModel("\(what) has \(given) bytes of raw_data; \(dataType)\(shape) needs \(byteCount)")
            }
            if let rawData { return tensor(dataType, shape: shape, bytes: rawData) }
            return proto.rawData.withUnsafeBytes { raw in tensor(dataType, shape: shape, bytes: raw) }
        }
        switch dataType {
        case .string:
            guard proto.stringData.count == count else {
                throw .invalidModel("\(what) has \(proto.stringData.count) strings for shape \(shape)")
            }
            return Tensor(strings: proto.stringData.map { String(decoding: $0, as: UTF8.self) }, shape: shape)
        case .float: return try typed(proto.floatData, as: Float.self, shape: shape, what: what, field: "float_data")
        case .double: return try typed(proto.doubleData, as: Double.self, shape: shape, what: what, field: "double_data")
        case .int64: return try typed(proto.int64Data, as: Int64.self, shape: shape, what: what, field: "int64_data")
        case .int32: return try typed(proto.int32Data, as: Int32.self, shape: shape, what: what, field: "int32_data")
        case .int16: return try typed(proto.int32Data.map { Int16(truncatingIfNeeded: $0) }, as: Int16.self, shape: shape, what: what, field: "int32_data")
        case .int8: return try typed(proto.int32Data.map { Int8(truncatingIfNeeded: $0) }, as: Int8.self, shape: shape, what: what, field: "int32_data")
        case .uint16: return try typed(proto.int32Data.map { UInt16(truncatingIfNeeded: $0) }, as: UInt16.self, shape: shape, what: what, field: "int32_data")
        case .uint8: return try typed(proto.int32Data.map { UInt8(truncatingIfNeeded: $0) }, as: UInt8.self, shape: shape, what: what, field: "int32_data")
        case .bool: return try typed(proto.int32Data.map { $0 != 0 }, as: Bool.self, shape: shape, what: what, field: "int32_data")
        case .float16:
            return try typed(proto.int32Data.map { Float16(bitPattern: UInt16(truncatingIfNeeded: $0)) }, as: Float16.self, shape: shape, what: what, field: "int32_data")
        case .uint32: return try typed(proto.uint64Data.map { UInt32(truncatingIfNeeded: $0) }, as: UInt32.self, shape: shape, what: what, field: "uint64_data")
        case .uint64: return try typed(proto.uint64Data, as: UInt64.self, shape: shape, what: what, field: "uint64_data")
        default:
            // The low-precision types keep their bytes (or packed pairs and quadruples) in
            // int32_data, one 8- or 16-bit unit per entry.
            let unit = dataType == .bfloat16 ? 2 : 1
            let byteCount = dataType.packedByteCount(elements: count) ?? 0
            guard proto.int32Data.count * unit == byteCount else {
                throw .invalidModel("\(what) has \(proto.int32Data.count) values in int32_data; \(dataType)\(shape) needs \(byteCount / unit)")
            }
            let bytes: [UInt8] = unit == 2
                ? proto.int32Data.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
                : proto.int32Data.map { UInt8(truncatingIfNeeded: $0) }
            return bytes.withUnsafeBytes { tensor(dataType, shape: shape, bytes: $0) }
        }
    }

    /// A tensor of `dataType` from its little-endian bytes as files store them (sub-byte types
    /// packed); `bytes` holds exactly `packedByteCount` of the shape's elements.
    private static func tensor(_ dataType: DataType, shape: Shape, bytes: UnsafeRawBufferPointer) -> Tensor {
        let tensor = Tensor(uninitialized: dataType, shape: shape)
        if dataType.bitWidth < 8 {
            LowPrecision.unpack(bytes, count: shape.elementCount, dataType: dataType, into: tensor.rawPointer)
        } else if let base = bytes.baseAddress {
            tensor.rawPointer.copyMemory(from: base, byteCount: bytes.count)
        }
        return normalized(tensor)
    }

    private static func typed<T: TensorElement>(_ values: [T], as type: T.Type, shape: Shape, what: String, field: String) throws(ONNXError) -> Tensor {
        guard values.count == shape.elementCount else {
            throw .invalidModel("\(what) has \(values.count) values in \(field); shape \(shape) needs \(shape.elementCount)")
        }
        return Tensor(values, shape: shape)
    }

    /// Bool bytes other than 0 and 1 are not valid Swift `Bool`s; fold them to 1.
    private static func normalized(_ tensor: Tensor) -> Tensor {
        guard tensor.dataType == .bool else { return tensor }
        let bytes = tensor.rawPointer.assumingMemoryBound(to: UInt8.self)
        guard (0..<tensor.elementCount).contains(where: { bytes[$0] > 1 }) else { return tensor }
        let copy = Tensor(uninitialized: .bool, shape: tensor.shape)
        let target = copy.rawPointer.assumingMemoryBound(to: UInt8.self)
        for index in 0..<tensor.elementCount { target[index] = bytes[index] == 0 ? 0 : 1 }
        return copy
    }

    /// A `TensorProto` holding `tensor` (raw little-endian data; strings in `string_data`).
    static func proto(for tensor: Tensor, name: String) -> Onnx_TensorProto {
        var proto = Onnx_TensorProto()
        proto.name = name
        proto.dataType = tensor.dataType.rawValue
        proto.dims = tensor.shape.dims.map { Int64($0) }
        if tensor.dataType == .string {
            proto.stringData = tensor.strings.map { Data($0.utf8) }
        } else {
            proto.rawData = tensor.dataType.bitWidth < 8 ? Data(LowPrecision.pack(tensor))
                : withExtendedLifetime(tensor) { Data(bytes: tensor.rawPointer, count: tensor.byteCount) }
        }
        return proto
    }
}

/// Reading and writing standalone serialized `TensorProto`s (the ONNX backend test format).
public enum TensorFile {
    /// Decodes a serialized `TensorProto`; returns its name (may be empty) and tensor.
    public static func decode(_ bytes: [UInt8]) throws(ONNXError) -> (name: String, tensor: Tensor) {
        let proto: Onnx_TensorProto
        do {
            proto = try Onnx_TensorProto(serializedBytes: bytes)
        } catch {
            throw .malformed("not a serialized TensorProto (\(error))")
        }
        return (proto.name, try TensorProtoCodec.tensor(from: proto, external: nil))
    }

    /// Reads a serialized `TensorProto` from `path`.
    public static func read(_ path: String) throws(ONNXError) -> (name: String, tensor: Tensor) {
        let file = try MappedFile(path: path)
        do {
            return try decode(Array(file.buffer))
        } catch .malformed(let message) {
            throw .malformed("\(path): \(message)")
        }
    }

    /// Serializes `tensor` as a `TensorProto` named `name`.
    public static func encode(_ tensor: Tensor, name: String) -> [UInt8] {
        // Serializing a message we built ourselves cannot fail.
        (try? TensorProtoCodec.proto(for: tensor, name: name).serializedBytes()) ?? []
    }
}

/// Reading and writing standalone serialized values of any kind the engine runs: `TensorProto`
/// for a tensor, `SequenceProto` for a sequence of tensors, `MapProto` for a map (values: a
/// `SequenceProto` of scalar tensors, as `onnx.numpy_helper.from_dict` writes it), `OptionalProto`
/// for an optional (the ONNX backend test format for sequence and optional inputs and outputs).
public enum ValueFile {
    /// Decodes a serialized value of `kind`. `elementType` is the declared type of its tensors,
    /// which an empty sequence takes (float when nil); tensors of another type are refused.
    public static func decode(_ bytes: [UInt8], kind: ValueKind, elementType: DataType?) throws(ONNXError) -> Value {
        switch kind {
        case .tensor:
            return .tensor(try TensorFile.decode(bytes).tensor)
        case .sequence:
            let proto: Onnx_SequenceProto
            do { proto = try Onnx_SequenceProto(serializedBytes: bytes) } catch {
                throw .malformed("not a serialized SequenceProto (\(error))")
            }
            return .sequence(try sequence(proto, elementType: elementType))
        case .map(let key):
            let proto: Onnx_MapProto
            do { proto = try Onnx_MapProto(serializedBytes: bytes) } catch {
                throw .malformed("not a serialized MapProto (\(error))")
            }
            return .map(try map(proto, key: key, valueType: elementType))
        case .optional(let element):
            let proto: Onnx_OptionalProto
            do { proto = try Onnx_OptionalProto(serializedBytes: bytes) } catch {
                throw .malformed("not a serialized OptionalProto (\(error))")
            }
            switch element {
            case .tensor where proto.hasTensorValue:
                let tensor = try TensorProtoCodec.tensor(from: proto.tensorValue, external: nil)
                if let elementType, tensor.dataType != elementType {
                    throw .malformed("the optional holds a \(tensor.dataType) tensor; \(elementType) is expected")
                }
                return .optional(.tensor(tensor), kind: .tensor)
            case .sequence where proto.hasSequenceValue:
                return .optional(.sequence(try sequence(proto.sequenceValue, elementType: elementType)), kind: .sequence)
            case .tensor, .sequence:
                guard !proto.hasTensorValue && !proto.hasSequenceValue else {
                    throw .malformed("the optional holds a \(proto.hasTensorValue ? "tensor" : "sequence"); a \(element) is expected")
                }
                return .optional(nil, kind: element)
            case .optional, .map:
                throw .malformed("optionals of \(element)s are not supported")
            }
        }
    }

    /// Reads a serialized value of `kind` from `path` (see `decode`).
    public static func read(_ path: String, kind: ValueKind, elementType: DataType?) throws(ONNXError) -> Value {
        let file = try MappedFile(path: path)
        do {
            return try decode(Array(file.buffer), kind: kind, elementType: elementType)
        } catch .malformed(let message) {
            throw .malformed("\(path): \(message)")
        }
    }

    /// Serializes `value` as the proto of its kind, named `name`.
    public static func encode(_ value: Value, name: String) -> [UInt8] {
        switch value {
        case .tensor(let tensor):
            return TensorFile.encode(tensor, name: name)
        case .sequence(let sequence):
            // Serializing a message we built ourselves cannot fail.
            return (try? sequenceProto(sequence, name: name).serializedBytes()) ?? []
        case .optional(let element, let kind):
            var proto = Onnx_OptionalProto()
            proto.name = name
            proto.elemType = kind == .sequence ? Int32(Onnx_OptionalProto.DataType.sequence.rawValue)
                                               : Int32(Onnx_OptionalProto.DataType.tensor.rawValue)
            switch element {
            case .tensor(let tensor)?: proto.tensorValue = TensorProtoCodec.proto(for: tensor, name: "")
            case .sequence(let sequence)?: proto.sequenceValue = sequenceProto(sequence, name: "")
            case .optional?, .map?, nil: break
            }
            return (try? proto.serializedBytes()) ?? []
        case .map(let map):
            return (try? mapProto(map, name: name).serializedBytes()) ?? []
        }
    }

    /// A map from a `MapProto` whose keys are of element type `key` and whose values (a
    /// `SequenceProto` of tensors) are one-element tensors of `valueType` (any one type when nil).
    private static func map(_ proto: Onnx_MapProto, key: DataType, valueType: DataType?) throws(ONNXError) -> TensorMap {
        let keyType = try TensorProtoCodec.dataType(code: proto.keyType, of: "the map's keys")
        guard keyType == key else { throw .malformed("the map has \(keyType) keys; the model expects \(key) keys") }
        let keys = key == .string
            ? Tensor(strings: proto.stringKeys.map { String(decoding: $0, as: UTF8.self) }, shape: [proto.stringKeys.count])
            : Tensor(proto.keys, shape: [proto.keys.count])
        let tensorCode = Int32(Onnx_SequenceProto.DataType.tensor.rawValue)
        let entries = proto.values.tensorValues
        guard (proto.values.elemType == tensorCode || entries.isEmpty) && proto.values.sequenceValues.isEmpty
                && proto.values.mapValues.isEmpty && proto.values.optionalValues.isEmpty else {
            throw .malformed("the map's values are of elem_type \(proto.values.elemType); onnx-serve reads maps of tensors only")
        }
        guard entries.count == keys.elementCount else {
            throw .malformed("the map has \(keys.elementCount) keys and \(entries.count) values")
        }
        var scalars: [Tensor] = []
        scalars.reserveCapacity(entries.count)
        for (index, entry) in entries.enumerated() {
            let scalar = try TensorProtoCodec.tensor(from: entry, external: nil)
            guard scalar.elementCount == 1 else {
                throw .malformed("value \(index) of the map has shape \(scalar.shape); onnx-serve reads maps of scalars")
            }
            if let valueType, scalar.dataType != valueType {
                throw .malformed("value \(index) of the map is \(scalar.dataType); the model expects \(valueType)")
            }
            scalars.append(scalar)
        }
        let type = valueType ?? scalars.first?.dataType ?? .float
        guard scalars.allSatisfy({ $0.dataType == type }) else {
            throw .malformed("the map's values are not all \(type): \(scalars.map { "\($0.dataType)" }.joined(separator: ", "))")
        }
        // One-element tensors of one type: they always join.
        let values = Tensor.concatenatingBatch(scalars.map { $0.reshaped([1]) }) ?? Tensor(zeros: type, shape: [0])
        switch TensorMap.checked(keys: keys, values: values) {
        case .success(let map): return map
        case .failure(let error): throw .malformed("\(error)")
        }
    }

    private static func mapProto(_ map: TensorMap, name: String) -> Onnx_MapProto {
        var proto = Onnx_MapProto()
        proto.name = name
        proto.keyType = Int32(map.keys.dataType.rawValue)
        if map.keys.dataType == .string {
            proto.stringKeys = map.keys.strings.map { Data($0.utf8) }
        } else {
            proto.keys = map.keys.scalars(as: Int64.self)
        }
        proto.values.elemType = Int32(Onnx_SequenceProto.DataType.tensor.rawValue)
        proto.values.tensorValues = (0..<map.count).map { TensorProtoCodec.proto(for: map.values.batchRows($0..<$0 + 1).reshaped([]), name: "") }
        return proto
    }

    private static func sequence(_ proto: Onnx_SequenceProto, elementType: DataType?) throws(ONNXError) -> TensorSequence {
        let tensorCode = Int32(Onnx_SequenceProto.DataType.tensor.rawValue)
        guard proto.elemType == tensorCode || (proto.tensorValues.isEmpty && proto.sequenceValues.isEmpty
                                               && proto.mapValues.isEmpty && proto.optionalValues.isEmpty) else {
            throw .malformed("the sequence holds values of elem_type \(proto.elemType); onnx-serve reads sequences of tensors only")
        }
        var tensors: [Tensor] = []
        tensors.reserveCapacity(proto.tensorValues.count)
        for value in proto.tensorValues { tensors.append(try TensorProtoCodec.tensor(from: value, external: nil)) }
        let type = elementType ?? tensors.first?.dataType ?? .float
        guard let sequence = TensorSequence.checked(elementType: type, tensors) else {
            throw .malformed("the sequence's tensors are not all \(type): \(tensors.map { "\($0.dataType)" }.joined(separator: ", "))")
        }
        return sequence
    }

    private static func sequenceProto(_ sequence: TensorSequence, name: String) -> Onnx_SequenceProto {
        var proto = Onnx_SequenceProto()
        proto.name = name
        proto.elemType = Int32(Onnx_SequenceProto.DataType.tensor.rawValue)
        proto.tensorValues = sequence.tensors.map { TensorProtoCodec.proto(for: $0, name: "") }
        return proto
    }
}
