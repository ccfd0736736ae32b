import Foundation
import HTTP
package import Serving
package import Tensors

/// Open Inference Protocol inference bodies: JSON tensors, and Triton's binary tensor extension
/// (a JSON header of `Inference-Header-Content-Length` bytes followed by raw tensor data, in the
/// order the JSON names it; BYTES elements as a 4-byte little-endian length and the bytes).
package enum OpenInferenceCodec {
    /// An output the client asked for, and how.
    package struct RequestedOutput: Sendable {
        package var name: String
        /// Per-output `binary_data`; nil follows the request's `binary_data_output`.
        package var binary: Bool?
        /// Triton's classification extension: return the top N classes as "value:index" strings.
        package var classification: Int?
    }

    /// A decoded inference request.
    package struct Decoded: Sendable {
        package var id: String?
        package var request: InferenceRequest
        package var outputs: [RequestedOutput]
        /// Request-level `binary_data_output`.
        package var binaryOutput: Bool
    }

    /// The infer route as an `InferenceCodec`.
    struct Infer: InferenceCodec {
        /// Largest JSON header of a binary request decoded on the HTTP thread.
        static let inlineHeaderLimit = 64 << 10
        /// Largest binary request body decoded on the HTTP thread (a copy of it takes about a millisecond).
        static let inlineBodyLimit = 16 << 20
        /// Binary requests with a small JSON header, whose tensors are read in place or copied
        /// once, and small JSON bodies are decoded on the HTTP thread; a large JSON body, whose
        /// parse takes milliseconds, never holds one.
        func decodesInline(_ request: HTTPRequest) -> Bool {
            switch Result(catching: { () throws(ServingError) in try Self.binaryHeaderLength(request) }) {
            case .success(let headerLength?):
                return headerLength <= Self.inlineHeaderLimit && request.body.count <= Self.inlineBodyLimit
            case .success(nil):
                return request.body.count <= Self.inlineJSONBodyLimit
            case .failure:
                return false
            }
        }

        func decode(_ request: HTTPRequest, model: ServedModel, charge: @escaping (Int) -> Bool) throws(ServingError) -> (InferenceRequest, Decoded) {
            let decoded = try OpenInferenceCodec.decode(request.body, headerLength: try Self.binaryHeaderLength(request), model: model,
                                                        charge: charge)
            return (decoded.request, decoded)
        }

        func encode(_ inference: InferenceResponse, _ decoded: Decoded, model: ServedModel) throws(ServingError) -> HTTPResponse {
            let (body, jsonLength) = try OpenInferenceCodec.encode(inference, decoded, model: model)
            var response = HTTPResponse(status: 200, body: body)
            if let jsonLength {
                response.headers.append(name: "Content-Type", value: "application/octet-stream")
                response.headers.append(name: "Inference-Header-Content-Length", value: String(jsonLength))
            } else {
                response.headers.append(name: "Content-Type", value: "application/json")
            }
            return response
        }

        /// The `Inference-Header-Content-Length` of a binary request, nil for a JSON one.
        static func binaryHeaderLength(_ request: HTTPRequest) throws(ServingError) -> Int? {
            guard let value = request.headers["Inference-Header-Content-Length"] else { return nil }
            guard let length = Int(value.trimmingASCIIWhitespace), length >= 0 else {
                throw .invalidArgument("Inference-Header-Content-Length must be a non-negative integer, not '\(value)'")
            }
            return length
        }
    }

    // MARK: Datatypes

    /// The protocol's datatype name for an element type.
    package static func datatype(_ dataType: DataType) -> String {
        switch dataType {
        case .bool: "BOOL"
        case .uint8: "UINT8"
        case .uint16: "UINT16"
        case .uint32: "UINT32"
        case .uint64: "UINT64"
        case .int8: "INT8"
        case .int16: "INT16"
        case .int32: "INT32"
        case .int64: "INT64"
        case .float16: "FP16"
        case .float: "FP32"
        case .double: "FP64"
        case .string: "BYTES"
        case .bfloat16: "BF16"
        // Not in the protocol: ONNX's names.
        default: dataType.name.uppercased()
        }
    }

    /// The element type a protocol datatype name denotes.
    package static func dataType(_ datatype: String) -> DataType? {
        DataType.allCases.first { Self.datatype($0) == datatype }
    }

    // MARK: Requests

    /// The longest `parameters.timeout` honoured (one day, in microseconds); longer ones are
    /// clamped, so no deadline arithmetic can overflow.
    static let maximumTimeoutMicroseconds: Int64 = 86_400_000_000

    /// Decodes a body whose first `headerLength` bytes are JSON (all of it when nil).
    package static func decode(_ body: [UInt8], headerLength: Int?, model: ServedModel,
                               charge: @escaping (Int) -> Bool = { _ in true }) throws(ServingError) -> Decoded {
        let jsonLength = headerLength ?? body.count
        guard jsonLength <= body.count else {
            throw .invalidArgument("Inference-Header-Content-Length is \(jsonLength) but the body has only \(body.count) bytes")
        }
        if jsonLength == 0 && headerLength != nil {
            return try decodeRaw(body, model: model)
        }
        let json = try body.withUnsafeBytes { raw in
            Result { () throws(JSONError) in try JSONParser.parse(UnsafeRawBufferPointer(rebasing: raw[0..<jsonLength]), charge: charge) }
        }.mapError(ServingError.init).get()
        guard let object = json.object else { throw .invalidArgument("the inference request must be a JSON object") }

        var id: String?
        if let value = object["id"] {
            guard let text = value.string else { throw .invalidArgument("'id' must be a string") }
            id = text
        }
        var binaryOutput = false
        var deadline: ContinuousClock.Instant?
        if let parameters = object["parameters"] {
            guard let parameters = parameters.object else { throw .invalidArgument("'parameters' must be an object") }
            binaryOutput = try bool(parameters["binary_data_output"], "binary_data_output") ?? false
            if let timeout = try integer(parameters["timeout"], "timeout"), timeout > 0 {
                deadline = ContinuousClock.now + .microseconds(min(timeout, maximumTimeoutMicroseconds))
            }
        }
        guard case .array(let inputList)? = object["inputs"] else {
            throw .invalidArgument("'inputs' must be a list of input tensors")
        }
        var binary = BinarySection(body: body, offset: jsonLength, model: model)
        var inputs: [String: Tensor] = [:]
        var maps: [String: TensorMap] = [:]
        for (index, item) in inputList.enumerated() {
            guard let input = item.object else { throw .invalidArgument("input \(index) is not an object") }
            let (name, value) = try decodeInput(input, index: index, model: model, binary: &binary)
            guard inputs[name] == nil && maps[name] == nil else { throw .invalidArgument("input '\(name)' is given twice") }
            if case .map(let map) = value { maps[name] = map } else { inputs[name] = value.tensor }
        }
        guard binary.remaining == 0 else {
            throw .invalidArgument("the inputs' binary_data_size values add up to \(binary.offset - jsonLength) bytes but \(body.count - jsonLength) bytes follow the JSON header")
        }
        let outputs = try requestedOutputs(object["outputs"], model: model)
        let request = InferenceRequest(inputs: inputs, maps: maps, outputs: outputs.isEmpty ? nil : outputs.map(\.name), deadline: deadline)
        return Decoded(id: id, request: request, outputs: outputs, binaryOutput: binaryOutput)
    }

    private static func bool(_ value: JSONValue?, _ name: String) throws(ServingError) -> Bool? {
        guard let value else { return nil }
        guard case .bool(let flag) = value else { throw .invalidArgument("parameter '\(name)' must be a boolean") }
        return flag
    }

    private static func integer(_ value: JSONValue?, _ name: String) throws(ServingError) -> Int64? {
        guard let value else { return nil }
        guard case .number(let number) = value, let integer = number.integer else {
            throw .invalidArgument("parameter '\(name)' must be an integer")
        }
        return integer
    }

    /// The raw-binary form: no JSON header, the body is the one input's data.
    private static func decodeRaw(_ body: [UInt8], model: ServedModel) throws(ServingError) -> Decoded {
        guard model.inputs.count == 1, let input = model.inputs.first, let type = input.type, let dims = type.dims else {
            throw .invalidArgument("a raw binary request (Inference-Header-Content-Length: 0) needs a model with one input of known rank")
        }
        var binary = BinarySection(body: body, offset: 0, model: model)
        let shape: Shape
        if type.dataType == .string {
            shape = [1]
        } else {
            let dynamic = dims.indices.filter { dims[$0].value == nil }
            guard dynamic.count <= 1 else {
                throw .invalidArgument("a raw binary request needs an input with at most one variable dimension")
            }
            guard let fixedElements = Shape(dims.compactMap(\.value)).checkedElementCount,
                  let fixed = type.dataType.checkedByteCount(elements: fixedElements), fixed > 0, body.count % fixed == 0 else {
                throw .invalidArgument("raw binary body of \(body.count) bytes does not fill input '\(input.name)' (\(type))")
            }
            shape = Shape(dims.map { $0.value ?? body.count / fixed })
        }
        let tensor = try binary.tensor(type.dataType, shape, size: body.count, name: input.name)
        let outputs = model.outputs.map { RequestedOutput(name: $0.name, binary: true, classification: nil) }
        return Decoded(id: nil, request: InferenceRequest(inputs: [input.name: tensor]), outputs: outputs, binaryOutput: true)
    }

    /// One input: a tensor, or for a map input (`datatype` its values' type, `shape` [entries])
    /// a map whose `data` is a JSON object of keys to values (see `JSONMap`); the binary extension
    /// carries tensors only.
    private static func decodeInput(_ input: JSONObject, index: Int, model: ServedModel,
                                    binary: inout BinarySection) throws(ServingError) -> (String, Value) {
        guard let name = input["name"]?.string else { throw .invalidArgument("input \(index) has no 'name'") }
        guard let info = model.inputs.first(where: { $0.name == name }) else {
            throw .invalidArgument("unknown input '\(name)'; the model's inputs are: \(model.inputs.map(\.name).joined(separator: ", "))")
        }
        guard let datatype = input["datatype"]?.string else { throw .invalidArgument("input '\(name)' has no 'datatype'") }
        guard let dataType = dataType(datatype) else { throw .invalidArgument("input '\(name)' has unknown datatype '\(datatype)'") }
        if let expected = info.type?.dataType, expected != dataType {
            throw .invalidArgument("input '\(name)' has datatype \(datatype); the model expects \(Self.datatype(expected))")
        }
        let shape = try shape(input["shape"], name: name)
        var binarySize: Int64?
        if let parameters = input["parameters"] {
            guard let parameters = parameters.object else { throw .invalidArgument("input '\(name)': 'parameters' must be an object") }
            binarySize = try integer(parameters["binary_data_size"], "binary_data_size")
        }
        if let key = info.mapKey {
            guard binarySize == nil else {
                throw .invalidArgument("input '\(name)' is a map, which the binary extension cannot carry: send 'data' as a JSON object")
            }
            guard let data = input["data"] else { throw .invalidArgument("input '\(name)' has no 'data'") }
            let map = try JSONMap.map(data, key: key, valueType: dataType, name: name)
            guard shape == [map.count] else {
                throw .invalidArgument("input '\(name)' has \(map.count) entries in 'data' but shape \(shape); a map's shape is [entries]")
            }
            return (name, .map(map))
        }
        if let binarySize {
            guard input["data"] == nil else { throw .invalidArgument("input '\(name)' has both 'data' and binary_data_size") }
            guard binarySize >= 0 else { throw .invalidArgument("input '\(name)' has a negative binary_data_size") }
            guard binarySize <= binary.remaining else {
                throw .invalidArgument("binary_data_size \(binarySize) of input '\(name)' runs past the end of the body (\(binary.remaining) bytes left)")
            }
            return (name, .tensor(try binary.tensor(dataType, shape, size: Int(binarySize), name: name)))
        }
        guard let data = input["data"] else { throw .invalidArgument("input '\(name)' has neither 'data' nor binary_data_size") }
        let tensor = try JSONTensor.tensor(data, dataType: dataType, name: name, layout: .declared(shape), allocate: model.makeInput)
        return (name, .tensor(tensor))
    }

    /// A `shape`: non-negative dimensions whose element count does not overflow.
    private static func shape(_ value: JSONValue?, name: String) throws(ServingError) -> Shape {
        let message = ServingError.invalidArgument("input '\(name)' needs 'shape', a list of non-negative integers")
        let shape: Shape
        switch value {
        case .numbers(let array)?:
            guard array.shape.count == 1 else { throw message }
            var dims: [Int] = []
            dims.reserveCapacity(array.count)
            for index in 0..<array.count {
                guard let dim = array.integer(at: index), dim >= 0, let size = Int(exactly: dim) else { throw message }
                dims.append(size)
            }
            shape = Shape(dims)
        case .array(let list)? where list.isEmpty:
            shape = []
        default:
            throw message
        }
        guard shape.checkedElementCount != nil else {
            throw .invalidArgument("input '\(name)' has shape \(shape), whose element count overflows")
        }
        return shape
    }

    private static func requestedOutputs(_ value: JSONValue?, model: ServedModel) throws(ServingError) -> [RequestedOutput] {
        guard let value else { return [] }
        guard case .array(let list) = value else {
            if case .numbers(let array) = value, array.count == 0 { return [] }
            throw .invalidArgument("'outputs' must be a list")
        }
        var outputs: [RequestedOutput] = []
        for (index, item) in list.enumerated() {
            guard let object = item.object, let name = object["name"]?.string else {
                throw .invalidArgument("requested output \(index) needs a 'name'")
            }
            guard model.outputs.contains(where: { $0.name == name }) else {
                throw .invalidArgument("unknown output '\(name)'; the model's outputs are: \(model.outputs.map(\.name).joined(separator: ", "))")
            }
            guard !outputs.contains(where: { $0.name == name }) else { throw .invalidArgument("output '\(name)' is requested twice") }
            var output = RequestedOutput(name: name)
            if let parameters = object["parameters"] {
                guard let parameters = parameters.object else { throw .invalidArgument("output '\(name)': 'parameters' must be an object") }
                output.binary = try bool(parameters["binary_data"], "binary_data")
                if let count = try integer(parameters["classification"], "classification") {
                    guard count > 0 else { throw .invalidArgument("output '\(name)': classification must be positive") }
                    output.classification = Int(clamping: count)
                }
            }
            outputs.append(output)
        }
        return outputs
    }

    /// The binary tensor data after the JSON header, consumed in order. Tensors are read in place
    /// (sharing the body's memory) where the data is 64-byte aligned, as tensor buffers must be,
    /// and otherwise copied once into a buffer from the model's pool (no fresh pages per request).
    private struct BinarySection {
        let body: [UInt8]
        var offset: Int
        let model: ServedModel

        var remaining: Int { body.count - offset }

        /// The next `size` bytes as a tensor of `shape`, which must hold exactly that many bytes.
        mutating func tensor(_ dataType: DataType, _ shape: Shape, size: Int, name: String) throws(ServingError) -> Tensor {
            guard size <= remaining else {
                throw .invalidArgument("binary_data_size \(size) of input '\(name)' runs past the end of the body (\(remaining) bytes left)")
            }
            guard let count = shape.checkedElementCount else {
                throw .invalidArgument("input '\(name)' has shape \(shape), whose element count overflows")
            }
            defer { offset += size }
            if dataType == .string {
                return Tensor(strings: try strings(count: count, size: size, name: name), shape: shape)
            }
            guard dataType.bitWidth >= 8 else {
                throw .invalidArgument("input '\(name)' has element type \(dataType), which requests cannot carry")
            }
            guard let expected = dataType.checkedByteCount(elements: count), size == expected else {
                throw .invalidArgument("input '\(name)' has binary_data_size \(size); \(OpenInferenceCodec.datatype(dataType)) \(shape) needs \(dataType.checkedByteCount(elements: count).map(String.init) ?? "more than Int.max") bytes")
            }
            let tensor = inPlace(dataType, shape, size: size) ?? copied(dataType, shape, size: size)
            if dataType == .bool {
                let bytes = tensor.rawPointer.assumingMemoryBound(to: UInt8.self)
                for index in 0..<count where bytes[index] > 1 { bytes[index] = 1 }
            }
            return tensor
        }

        /// The tensor over the body's own bytes, when they are aligned (bools are copied: they
        /// may need normalising).
        private func inPlace(_ dataType: DataType, _ shape: Shape, size: Int) -> Tensor? {
            guard size > 0, dataType != .bool else { return nil }
            // An array's storage stays put while it is not mutated; the buffer keeps it alive.
            guard let base = body.withUnsafeBytes({ $0.baseAddress }) else { return nil }
            let start = UnsafeMutableRawPointer(mutating: base) + offset
            guard Int(bitPattern: start) % TensorBuffer.alignment == 0 else { return nil }
            let buffer = TensorBuffer.borrowing(start, byteCount: size, owner: BodyStorage(body))
            return Tensor(dataType: dataType, shape: shape, storage: .bytes(buffer))
        }

        private func copied(_ dataType: DataType, _ shape: Shape, size: Int) -> Tensor {
            let tensor = model.makeInput(dataType, shape)
            body.withUnsafeBytes { raw in
                if size > 0, let base = raw.baseAddress { tensor.rawPointer.copyMemory(from: base + offset, byteCount: size) }
            }
            return tensor
        }

        /// BYTES elements: each a 4-byte little-endian length followed by that many bytes.
        private func strings(count: Int, size: Int, name: String) throws(ServingError) -> [String] {
            // Each element takes at least its 4-byte length: a count the data cannot hold is
            // refused before anything is reserved for it.
            guard count <= size / 4 else {
                throw .invalidArgument("input '\(name)' claims \(count) BYTES elements but its \(size) bytes hold at most \(size / 4)")
            }
            var strings: [String] = []
            strings.reserveCapacity(count)
            var position = offset
            let end = offset + size
            for element in 0..<count {
                guard end - position >= 4 else {
                    throw .invalidArgument("BYTES element \(element) of input '\(name)' has no room for its 4-byte length")
                }
                let length = Int(body[position]) | Int(body[position + 1]) << 8 | Int(body[position + 2]) << 16 | Int(body[position + 3]) << 24
                position += 4
                guard length <= end - position else {
                    throw .invalidArgument("BYTES element \(element) of input '\(name)' claims \(length) bytes, past the end of its data")
                }
                strings.append(String(decoding: body[position..<(position + length)], as: UTF8.self))
                position += length
            }
            guard position == end else {
                throw .invalidArgument("input '\(name)' has \(end - position) bytes after its \(count) BYTES elements")
            }
            return strings
        }
    }

    /// Keeps a request body alive while tensors read it in place.
    private final class BodyStorage {
        let bytes: [UInt8]
        init(_ bytes: [UInt8]) { self.bytes = bytes }
    }

    // MARK: Responses

    /// The response body, and the JSON header's length when binary data follows it.
    package static func encode(_ response: InferenceResponse, _ decoded: Decoded, model: ServedModel) throws(ServingError)
        -> (body: [UInt8], headerLength: Int?)
    {
        let requested = decoded.outputs.isEmpty
            ? response.outputOrder.map { RequestedOutput(name: $0) }
            : decoded.outputs
        var writer = JSONWriter(capacity: 256)
        var blobs: [[UInt8]] = []
        writer.raw("{\"model_name\":")
        writer.string(model.name)
        writer.raw(",\"model_version\":")
        writer.string(String(model.version))
        if let id = decoded.id {
            writer.raw(",\"id\":")
            writer.string(id)
        }
        writer.raw(",\"outputs\":[")
        var written = 0
        for output in requested {
            for (name, element) in tensors(of: output.name, in: response) {
                var tensor = element
                if let keys = model.mapOutputKeys[output.name] {
                    // A sequence of maps (ZipMap): one BYTES element per row, the JSON text of its map.
                    tensor = Tensor(strings: JSONWriter.mapTexts(tensor, keys: keys), shape: Shape(tensor.shape.dims.dropLast()))
                }
                if let count = output.classification { tensor = try classify(tensor, top: count, name: name) }
                if written > 0 { writer.comma() }
                written += 1
                write(tensor, name: name, binary: output.binary ?? decoded.binaryOutput, into: &writer, blobs: &blobs)
            }
        }
        writer.raw("]}")
        guard !blobs.isEmpty else { return (writer.bytes, nil) }
        var body = writer.bytes
        let headerLength = body.count
        body.reserveCapacity(headerLength + blobs.reduce(0) { $0 + $1.count })
        for blob in blobs { body.append(contentsOf: blob) }
        return (body, headerLength)
    }

    /// The tensors an output is sent as: a tensor as itself; a sequence as one output per element,
    /// named `<name>/<index>`; a map as one BYTES element, its JSON text; an optional as its
    /// value, or nothing when it has none.
    private static func tensors(of name: String, in response: InferenceResponse) -> [(String, Tensor)] {
        if let tensor = response.outputs[name] { return [(name, tensor)] }
        guard let value = response.otherOutputs[name] else { return [] }
        func spelled(_ value: Value) -> [(String, Tensor)] {
            switch value {
            case .tensor(let tensor): [(name, tensor)]
            case .sequence(let sequence): sequence.tensors.enumerated().map { ("\(name)/\($0.offset)", $0.element) }
            case .map(let map):
                [(name, Tensor(strings: [{ var writer = JSONWriter(); writer.map(map); return String(decoding: writer.bytes, as: UTF8.self) }()], shape: []))]
            case .optional(let inner, _): inner.map(spelled) ?? []
            }
        }
        return spelled(value)
    }

    /// One output object of the response, its data inline or appended to `blobs`.
    private static func write(_ tensor: Tensor, name: String, binary: Bool, into writer: inout JSONWriter, blobs: inout [[UInt8]]) {
        writer.raw("{\"name\":")
        writer.string(name)
        writer.raw(",\"datatype\":")
        writer.string(datatype(tensor.dataType))
        writer.raw(",\"shape\":[")
        for (position, dim) in tensor.shape.enumerated() {
            if position > 0 { writer.comma() }
            writer.number(dim)
        }
        writer.raw("]")
        if binary {
            let blob = bytes(of: tensor)
            writer.raw(",\"parameters\":{\"binary_data_size\":")
            writer.number(blob.count)
            writer.raw("}}")
            blobs.append(blob)
        } else {
            writer.raw(",\"data\":")
            writer.tensor(tensor, dims: [tensor.elementCount][...], offset: 0)
            writer.raw("}")
        }
    }

    /// A tensor's elements as the binary extension lays them out (little-endian, BYTES prefixed).
    private static func bytes(of tensor: Tensor) -> [UInt8] {
        if tensor.dataType == .string {
            var bytes: [UInt8] = []
            for text in tensor.strings {
                let utf8 = Array(text.utf8)
                let length = UInt32(utf8.count)
                bytes += [UInt8(length & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length >> 16 & 0xFF), UInt8(length >> 24)]
                bytes += utf8
            }
            return bytes
        }
        return withExtendedLifetime(tensor) {
            Array(UnsafeRawBufferPointer(start: tensor.rawPointer, count: tensor.byteCount))
        }
    }

    /// Triton's classification extension: for each row of a [batch, classes] (or [classes])
    /// output, the `top` largest values as "value:index" strings, largest first.
    private static func classify(_ tensor: Tensor, top: Int, name: String) throws(ServingError) -> Tensor {
        guard tensor.dataType.isNumeric, let classes = tensor.shape.dims.last else {
            throw .invalidArgument("output '\(name)' is not a numeric tensor of rank 1 or more, so it cannot be classified")
        }
        let rows = classes == 0 ? 0 : tensor.elementCount / classes
        let values = tensor.doubles()
        let count = min(top, classes)
        var strings: [String] = []
        strings.reserveCapacity(rows * count)
        for row in 0..<rows {
            let slice = values[(row * classes)..<((row + 1) * classes)]
            let ranked = slice.indices.sorted { slice[$0] > slice[$1] || (slice[$0] == slice[$1] && $0 < $1) }.prefix(count)
            for index in ranked {
                let value = tensor.dataType.isFloatingPoint ? "\(Float(slice[index]))" : String(Int64(slice[index]))
                strings.append("\(value):\(index - row * classes)")
            }
        }
        var dims = tensor.shape.dims
        dims[dims.count - 1] = count
        return Tensor(strings: strings, shape: Shape(dims))
    }
}
