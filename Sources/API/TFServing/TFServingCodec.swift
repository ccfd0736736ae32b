import Foundation
import Engine
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
        let inputs = model.inputs
        if let instances {
            return (InferenceRequest(inputs: try rows(instances, inputs: inputs)), .row)
        }
        guard let columns else { throw .invalidArgument("Missing 'inputs' or 'instances' key") }
        return (InferenceRequest(inputs: try columnar(columns, inputs: inputs)), .columnar)
    }

    private static func dataType(of input: ValueInfo) throws(ServingError) -> DataType {
        guard let type = input.type else { throw .invalidArgument("input '\(input.name)' has no declared element type") }
        return type.dataType
    }

    private static func input(named name: String, in inputs: [ValueInfo]) throws(ServingError) -> ValueInfo {
        guard let input = inputs.first(where: { $0.name == name }) else {
            throw .invalidArgument("unknown input '\(name)'; the model's inputs are: \(inputs.map(\.name).joined(separator: ", "))")
        }
        return input
    }

    private static func rows(_ instances: JSONValue, inputs: [ValueInfo]) throws(ServingError) -> [String: Tensor] {
        switch instances {
        case .numbers(let array):
            guard !array.shape.isEmpty else { throw .invalidArgument("Expecting 'instances' to be an list/array") }
            guard array.shape[0] > 0 else { throw .invalidArgument("No values in 'instances' array") }
            let only = try singleInput(inputs)
            return [only.name: try JSONTensor.tensor(instances, dataType: dataType(of: only), name: only.name)]
        case .array(let list):
            guard !list.isEmpty else { throw .invalidArgument("No values in 'instances' array") }
            let objects = list.compactMap { value -> JSONObject? in
                guard let object = value.object, object["b64"] == nil else { return nil }
                return object
            }
            if objects.isEmpty {
                let only = try singleInput(inputs)
                return [only.name: try JSONTensor.stack(list, dataType: dataType(of: only), name: only.name)]
            }
            guard objects.count == list.count else {
                throw .invalidArgument("'instances' mixes named (object) and unnamed instances")
            }
            // Named form: every instance is {input: value}; all instances name the same inputs.
            let names = objects[0].keys
            var tensors: [String: Tensor] = [:]
            for name in names {
                let info = try input(named: name, in: inputs)
                var values: [JSONValue] = []
                for (index, object) in objects.enumerated() {
                    guard let value = object[name] else {
                        throw .invalidArgument("instance \(index) lacks input '\(name)' that instance 0 has")
                    }
                    values.append(value)
                }
                tensors[name] = try JSONTensor.stack(values, dataType: dataType(of: info), name: name)
            }
            for (index, object) in objects.enumerated() where Set(object.keys) != Set(names) {
                throw .invalidArgument("instance \(index) names inputs \(object.keys.sorted()), instance 0 names \(names.sorted())")
            }
            return tensors
        default:
            throw .invalidArgument("Expecting 'instances' to be an list/array")
        }
    }

    private static func columnar(_ value: JSONValue, inputs: [ValueInfo]) throws(ServingError) -> [String: Tensor] {
        if let object = value.object, object["b64"] == nil {
            var tensors: [String: Tensor] = [:]
            for (name, column) in object.members {
                let info = try input(named: name, in: inputs)
                tensors[name] = try JSONTensor.tensor(column, dataType: dataType(of: info), name: name)
            }
            return tensors
        }
        let only = try singleInput(inputs)
        return [only.name: try JSONTensor.tensor(value, dataType: dataType(of: only), name: only.name)]
    }

    private static func singleInput(_ inputs: [ValueInfo]) throws(ServingError) -> ValueInfo {
        guard inputs.count == 1, let only = inputs.first else {
            throw .invalidArgument("the model has \(inputs.count) inputs (\(inputs.map(\.name).joined(separator: ", "))); name each one")
        }
        return only
    }

    // MARK: Responses

    /// The predict answer: `{"predictions": ...}` for row requests, `{"outputs": ...}` for columnar.
    package static func encodePredict(_ response: InferenceResponse, format: Format) throws(ServingError) -> [UInt8] {
        let names = response.outputOrder
        let tensors = names.map { response.outputs[$0]! }
        var writer = JSONWriter(capacity: tensors.reduce(64) { $0 + $1.elementCount * 12 })
        switch format {
        case .columnar:
            writer.raw("{\"outputs\":")
            if names.count == 1 {
                write(tensors[0], name: names[0], dims: tensors[0].shape.dims[...], offset: 0, into: &writer)
            } else {
                writer.raw("{")
                for (index, name) in names.enumerated() {
                    if index > 0 { writer.comma() }
                    writer.key(name)
                    write(tensors[index], name: name, dims: tensors[index].shape.dims[...], offset: 0, into: &writer)
                }
                writer.raw("}")
            }
            writer.raw("}")
        case .row:
            for (name, tensor) in zip(names, tensors) where tensor.shape.rank == 0 {
                throw .invalidArgument("output '\(name)' is a scalar, which the row format cannot split into instances; send 'inputs' instead of 'instances'")
            }
            let rows = tensors.first?.shape[0] ?? 0
            if let (name, _) = zip(names, tensors).first(where: { $0.1.shape[0] != rows }) {
                throw .invalidArgument("Tensor name: \(name) has inconsistent batch size: \(response.outputs[name]!.shape[0]) expecting: \(rows)")
            }
            writer.raw("{\"predictions\":")
            if names.count == 1 {
                write(tensors[0], name: names[0], dims: tensors[0].shape.dims[...], offset: 0, into: &writer)
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
                        write(tensor, name: name, dims: inner, offset: row * inner.reduce(1, *), into: &writer)
                    }
                    writer.raw("}")
                }
                writer.raw("]")
            }
            writer.raw("}")
        }
        return writer.bytes
    }

    /// String outputs are base64 objects only when the output name ends in `_bytes`.
    private static func write(_ tensor: Tensor, name: String, dims: ArraySlice<Int>, offset: Int, into writer: inout JSONWriter) {
        if tensor.dataType == .string && name.hasSuffix("_bytes") {
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
