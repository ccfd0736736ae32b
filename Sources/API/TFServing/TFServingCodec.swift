import Foundation
import HTTP
package import Serving
package import Tensors

/// TF Serving's REST predict format: requests in row (`instances`) or columnar (`inputs`) form,
/// answered as `predictions` or `outputs` to match (tensorflow_serving/g3doc/api_rest.md).
package enum TFServingCodec {
    /// Which of the two request forms a request used.
    package enum Format: Sendable {
        case row
        case columnar
    }

    /// The predict route as an `InferenceCodec`.
    struct Predict: InferenceCodec {
        func decodesInline(_ request: HTTPRequest) -> Bool { request.body.count <= Self.inlineJSONBodyLimit }

        func decode(_ request: HTTPRequest, model: ServedModel, charge: @escaping (Int) -> Bool) throws(ServingError) -> (InferenceRequest, Format) {
            let body = try request.body.withUnsafeBytes { raw in
                Result { () throws(JSONError) in try JSONParser.parse(raw, charge: charge) }
            }.mapError(ServingError.init).get()
            return try decodePredict(body, model: model)
        }

        func encode(_ inference: InferenceResponse, _ format: Format, model: ServedModel) throws(ServingError) -> HTTPResponse {
            .json(try encodePredict(inference, format: format, mapKeys: model.mapOutputKeys))
        }
    }

    /// Decodes a predict body for `model`.
    package static func decodePredict(_ body: JSONValue, model: ServedModel) throws(ServingError) -> (InferenceRequest, Format) {
        guard let object = body.object else {
            throw .invalidArgument("Not formatted correctly: the request body must be a JSON object")
        }
        if let signature = object["signature_name"] {
            guard let name = signature.string else { throw .invalidArgument("'signature_name' must be a string") }
            guard name == "serving_default" || name.isEmpty else {
                throw .invalidArgument("Serving signature name: \"\(name)\" not found in signature def")
            }
        }
        let instances = object["instances"], columns = object["inputs"]
        if instances != nil && columns != nil {
            throw .invalidArgument("Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist")
        }
        if model.inputs.contains(where: { $0.mapKey != nil }) {
            return try mapRequest(instances: instances, columns: columns, model: model)
        }
        if let instances {
            return (InferenceRequest(inputs: try rows(instances, model: model)), .row)
        }
        guard let columns else { throw .invalidArgument("Missing 'inputs' or 'instances' key") }
        return (InferenceRequest(inputs: try columnar(columns, model: model)), .columnar)
    }

    /// A request for a model with a map input, which takes one map per run: columnar, `inputs` is
    /// the map itself (`{"a": 1.0}`, when the map is the only input) or an object naming every
    /// input; in row form, `instances` holds exactly one instance, written the same way (its
    /// tensors gain the leading dimension of one row).
    private static func mapRequest(instances: JSONValue?, columns: JSONValue?, model: ServedModel) throws(ServingError) -> (InferenceRequest, Format) {
        let value: JSONValue, format: Format
        if let instances {
            guard case .array(let list) = instances, list.count == 1 else {
                throw .invalidArgument("the model takes one map per request: send 'instances' as a list of exactly one instance")
            }
            (value, format) = (list[0], .row)
        } else {
            guard let columns else { throw .invalidArgument("Missing 'inputs' or 'instances' key") }
            (value, format) = (columns, .columnar)
        }
        // The map alone, unless the object is {"<the input's name>": {...}}: map values are never objects.
        if model.inputs.count == 1, let only = model.inputs.first, let key = only.mapKey,
           !(value.object.map { $0.members.count == 1 && $0.members[0].key == only.name && $0.members[0].value.object != nil } ?? false) {
            return (InferenceRequest(inputs: [:], maps: [only.name: try JSONMap.map(value, key: key, valueType: only.type?.dataType ?? .float, name: only.name)]), format)
        }
        guard let object = value.object else {
            throw .invalidArgument("the model has \(model.inputs.count) inputs (\(model.inputs.map(\.name).joined(separator: ", "))); name each one in an object")
        }
        var request = InferenceRequest(inputs: [:])
        for (name, column) in object.members {
            guard request.inputs[name] == nil && request.maps[name] == nil else { throw .invalidArgument("input '\(name)' is given twice") }
            let info = try input(named: name, in: model)
            if let key = info.mapKey {
                request.maps[name] = try JSONMap.map(column, key: key, valueType: info.type?.dataType ?? .float, name: name)
            } else {
                request.inputs[name] = try tensor(format == .row ? .array([column]) : column, for: info, model: model)
            }
        }
        return (request, format)
    }

    /// The tensor for input `info` from a value whose nesting gives the shape.
    private static func tensor(_ value: JSONValue, for info: ValueInfo, model: ServedModel) throws(ServingError) -> Tensor {
        guard let type = info.type else { throw .invalidArgument("input '\(info.name)' has no declared element type") }
        return try JSONTensor.tensor(value, dataType: type.dataType, name: info.name, layout: .nested, allocate: model.makeInput)
    }

    private static func input(named name: String, in model: ServedModel) throws(ServingError) -> ValueInfo {
        guard let input = model.inputs.first(where: { $0.name == name }) else {
            throw .invalidArgument("unknown input '\(name)'; the model's inputs are: \(model.inputs.map(\.name).joined(separator: ", "))")
        }
        return input
    }

    /// Row format: a list of instances, each the value of the single input, or an object naming
    /// every input; the instances are stacked along a new leading dimension.
    private static func rows(_ instances: JSONValue, model: ServedModel) throws(ServingError) -> [String: Tensor] {
        let list: [JSONValue]
        switch instances {
        case .numbers(let array):
            guard array.shape.first.map({ $0 > 0 }) ?? false else {
                throw .invalidArgument(array.shape.isEmpty ? "Expecting 'instances' to be an list/array" : "No values in 'instances' array")
            }
            let only = try singleInput(model)
            return [only.name: try tensor(instances, for: only, model: model)]
        case .array(let elements):
            list = elements
        default:
            throw .invalidArgument("Expecting 'instances' to be an list/array")
        }
        guard !list.isEmpty else { throw .invalidArgument("No values in 'instances' array") }
        let named = list.map { value -> JSONObject? in
            guard let object = value.object, object["b64"] == nil else { return nil }
            return object
        }
        guard let first = named[0] else {
            guard named.allSatisfy({ $0 == nil }) else {
                throw .invalidArgument("'instances' mixes named (object) and unnamed instances")
            }
            let only = try singleInput(model)
            return [only.name: try tensor(instances, for: only, model: model)]
        }
        // Named form: every instance is {input: value}, and every instance names the same inputs.
        let names = first.keys
        var columns = names.map { _ in [JSONValue]() }
        for index in columns.indices { columns[index].reserveCapacity(list.count) }
        for (position, instance) in named.enumerated() {
            guard let instance else { throw .invalidArgument("'instances' mixes named (object) and unnamed instances") }
            guard instance.members.count == names.count else {
                throw .invalidArgument("instance \(position) names inputs \(instance.keys.sorted()), instance 0 names \(names.sorted())")
            }
            for (column, name) in names.enumerated() {
                guard let value = instance[name] else {
                    throw .invalidArgument("instance \(position) lacks input '\(name)' that instance 0 has")
                }
                columns[column].append(value)
            }
        }
        var tensors: [String: Tensor] = [:]
        for (column, name) in names.enumerated() {
            guard tensors[name] == nil else { throw .invalidArgument("input '\(name)' is named twice in instance 0") }
            let info = try input(named: name, in: model)
            tensors[name] = try tensor(.array(columns[column]), for: info, model: model)
            columns[column] = []  // the column's values are no longer needed
        }
        return tensors
    }

    /// Columnar format: the single input's value, or an object mapping input names to values.
    private static func columnar(_ value: JSONValue, model: ServedModel) throws(ServingError) -> [String: Tensor] {
        if let object = value.object, object["b64"] == nil {
            var tensors: [String: Tensor] = [:]
            for (name, column) in object.members {
                guard tensors[name] == nil else { throw .invalidArgument("input '\(name)' is given twice") }
                tensors[name] = try tensor(column, for: try input(named: name, in: model), model: model)
            }
            return tensors
        }
        let only = try singleInput(model)
        return [only.name: try tensor(value, for: only, model: model)]
    }

    private static func singleInput(_ model: ServedModel) throws(ServingError) -> ValueInfo {
        guard model.inputs.count == 1, let only = model.inputs.first else {
            throw .invalidArgument("the model has \(model.inputs.count) inputs (\(model.inputs.map(\.name).joined(separator: ", "))); name each one")
        }
        return only
    }

    // MARK: Responses

    /// The predict answer: `{"predictions": ...}` for row requests, `{"outputs": ...}` for columnar.
    /// An output named in `mapKeys` (ZipMap's sequence of maps) is written as one JSON object per row.
    /// A sequence output is a JSON list of its tensors, an optional one its value or `null`; they have
    /// no rows, so only the columnar form carries them.
    package static func encodePredict(_ response: InferenceResponse, format: Format,
                                      mapKeys: [String: Tensor] = [:]) throws(ServingError) -> [UInt8] {
        let names = response.outputOrder
        var values: [Value] = []
        for name in names {
            if let tensor = response.outputs[name] {
                values.append(.tensor(tensor))
            } else if let value = response.otherOutputs[name] {
                values.append(value)
            } else {
                throw .internal("output '\(name)' is missing from the model's answer")
            }
        }
        var writer = JSONWriter(capacity: values.reduce(64) { $0 + elementCount($1) * 12 })
        switch format {
        case .columnar:
            writer.raw("{\"outputs\":")
            if names.count == 1 {
                write(values[0], name: names[0], keys: mapKeys[names[0]], into: &writer)
            } else {
                writer.raw("{")
                for (index, name) in names.enumerated() {
                    if index > 0 { writer.comma() }
                    writer.key(name)
                    write(values[index], name: name, keys: mapKeys[name], into: &writer)
                }
                writer.raw("}")
            }
            writer.raw("}")
        case .row:
            var tensors: [Tensor] = []
            for (name, value) in zip(names, values) {
                guard case .tensor(let tensor) = value else {
                    let kind = value.kind == .sequence ? "a sequence" : value.map != nil ? "a map" : "an optional"
                    throw .invalidArgument("output '\(name)' is \(kind), which the row format cannot split into instances; send 'inputs' instead of 'instances'")
                }
                guard tensor.shape.rank > 0 else {
                    throw .invalidArgument("output '\(name)' is a scalar, which the row format cannot split into instances; send 'inputs' instead of 'instances'")
                }
                tensors.append(tensor)
            }
            let rows = tensors.first?.shape[0] ?? 0
            if let (name, tensor) = zip(names, tensors).first(where: { $0.1.shape[0] != rows }) {
                throw .invalidArgument("Tensor name: \(name) has inconsistent batch size: \(tensor.shape[0]) expecting: \(rows)")
            }
            writer.raw("{\"predictions\":")
            if names.count == 1 {
                write(tensors[0], name: names[0], dims: tensors[0].shape.dims[...], offset: 0, keys: mapKeys[names[0]], into: &writer)
            } else {
                writer.raw("[")
                for row in 0..<rows {
                    if row > 0 { writer.comma() }
                    writer.raw("{")
                    for (index, name) in names.enumerated() {
                        if index > 0 { writer.comma() }
                        writer.key(name)
                        let tensor = tensors[index]
                        let inner = tensor.shape.dims.dropFirst()
                        write(tensor, name: name, dims: inner, offset: row * inner.reduce(1, *), keys: mapKeys[name], into: &writer)
                    }
                    writer.raw("}")
                }
                writer.raw("]")
            }
            writer.raw("}")
        }
        return writer.bytes
    }

    /// Elements in a value (for sizing the answer).
    private static func elementCount(_ value: Value) -> Int {
        switch value {
        case .tensor(let tensor): tensor.elementCount
        case .sequence(let sequence): sequence.tensors.reduce(0) { $0 + $1.elementCount }
        case .map(let map): 2 * map.count
        case .optional(let inner, _): inner.map(elementCount) ?? 0
        }
    }

    /// A whole output in the columnar form: a tensor as nested lists, a sequence as a list of
    /// them, a map as an object, an optional as its value or `null`.
    private static func write(_ value: Value, name: String, keys: Tensor?, into writer: inout JSONWriter) {
        switch value {
        case .tensor(let tensor):
            write(tensor, name: name, dims: tensor.shape.dims[...], offset: 0, keys: keys, into: &writer)
        case .sequence(let sequence):
            writer.raw("[")
            for (index, tensor) in sequence.tensors.enumerated() {
                if index > 0 { writer.comma() }
                write(tensor, name: name, dims: tensor.shape.dims[...], offset: 0, into: &writer)
            }
            writer.raw("]")
        case .map(let map):
            writer.map(map)
        case .optional(let inner, _):
            if let inner { write(inner, name: name, keys: keys, into: &writer) } else { writer.raw("null") }
        }
    }

    /// String outputs are base64 objects only when the output name ends in `_bytes`; a map output
    /// (`keys`) is one object per row of its last dimension.
    private static func write(_ tensor: Tensor, name: String, dims: ArraySlice<Int>, offset: Int, keys: Tensor? = nil,
                              into writer: inout JSONWriter) {
        if let keys {
            writer.maps(tensor, keys: keys, dims: dims.dropLast(), offset: offset)
        } else if tensor.dataType == .string && name.hasSuffix("_bytes") {
            writer.tensor(tensor, dims: dims, offset: offset) { writer, text in
                writer.raw("{\"b64\":")
                writer.string(Data(text.utf8).base64EncodedString())
                writer.raw("}")
            }
        } else {
            writer.tensor(tensor, dims: dims, offset: offset)
        }
    }

    // MARK: Model status and metadata

    /// TensorFlow's name for an element type.
    package static func tensorflowType(_ dataType: DataType) -> String {
        switch dataType {
        case .float: "DT_FLOAT"
        case .double: "DT_DOUBLE"
        case .float16: "DT_HALF"
        case .int8: "DT_INT8"
        case .int16: "DT_INT16"
        case .int32: "DT_INT32"
        case .int64: "DT_INT64"
        case .uint8: "DT_UINT8"
        case .uint16: "DT_UINT16"
        case .uint32: "DT_UINT32"
        case .uint64: "DT_UINT64"
        case .bool: "DT_BOOL"
        case .string: "DT_STRING"
        case .bfloat16: "DT_BFLOAT16"
        case .float8e4m3fn: "DT_FLOAT8_E4M3FN"
        case .float8e5m2: "DT_FLOAT8_E5M2"
        case .int4: "DT_INT4"
        case .uint4: "DT_UINT4"
        default: "DT_INVALID"
        }
    }

    /// `GET /v1/models/{name}`: `{"model_version_status": [...]}` as TF Serving prints it.
    package static func encodeStatus(_ statuses: [VersionStatus]) -> [UInt8] {
        var writer = JSONWriter()
        writer.raw("{\"model_version_status\":[")
        for (index, status) in statuses.enumerated() {
            if index > 0 { writer.comma() }
            writer.raw("{\"version\":")
            writer.string(String(status.version))
            writer.raw(",\"state\":")
            writer.string(status.state.rawValue)
            writer.raw(",\"status\":{\"error_code\":")
            writer.string(status.error?.kind.rawValue ?? "OK")
            writer.raw(",\"error_message\":")
            writer.string(status.error?.message ?? "")
            writer.raw("}}")
        }
        writer.raw("]}")
        return writer.bytes
    }

    /// `GET /v1/models/{name}/metadata`: the `serving_default` signature with ONNX inputs and
    /// outputs as TensorInfo (dtype, shape with string sizes, -1 for dynamic dims).
    package static func encodeMetadata(_ model: ServedModel) -> [UInt8] {
        var writer = JSONWriter()
        writer.raw("{\"model_spec\":{\"name\":")
        writer.string(model.name)
        writer.raw(",\"signature_name\":\"\",\"version\":")
        writer.string(String(model.version))
        writer.raw("},\"metadata\":{\"signature_def\":{\"signature_def\":{\"serving_default\":{\"inputs\":")
        tensorInfos(model.inputs, into: &writer)
        writer.raw(",\"outputs\":")
        tensorInfos(model.outputs, into: &writer)
        writer.raw(",\"method_name\":\"tensorflow/serving/predict\",\"defaults\":{}}}}}}")
        return writer.bytes
    }

    private static func tensorInfos(_ values: [ValueInfo], into writer: inout JSONWriter) {
        writer.raw("{")
        for (index, value) in values.enumerated() {
            if index > 0 { writer.comma() }
            writer.key(value.name)
            writer.raw("{\"dtype\":")
            writer.string(value.type.map { tensorflowType($0.dataType) } ?? "DT_INVALID")
            writer.raw(",\"tensor_shape\":")
            if let dims = value.type?.dims {
                writer.raw("{\"dim\":[")
                for (position, dim) in dims.enumerated() {
                    if position > 0 { writer.comma() }
                    writer.raw("{\"size\":")
                    writer.string(String(dim.value ?? -1))
                    writer.raw(",\"name\":")
                    if case .symbolic(let name) = dim { writer.string(name) } else { writer.string("") }
                    writer.raw("}")
                }
                writer.raw("],\"unknown_rank\":false}")
            } else {
                writer.raw("{\"dim\":[],\"unknown_rank\":true}")
            }
            writer.raw(",\"name\":")
            writer.string(value.name)
            writer.raw("}")
        }
        writer.raw("}")
    }
}
