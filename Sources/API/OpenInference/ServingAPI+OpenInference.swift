import Dispatch
import Foundation
import HTTP
import Serving
import Tensors

/// The Open Inference Protocol (KServe v2) as Triton serves it, with the extensions
/// `tritonclient` uses: binary tensors, classification, model configuration, statistics and the
/// model repository.
extension ServingAPI {
    /// Server name and version reported by `GET /v2`.
    static let serverName = "onnx-serve"
    static let serverVersion = "0.1.0"
    /// Extensions advertised by `GET /v2`.
    static let extensions = ["binary_tensor_data", "classification", "model_configuration", "schedule_policy", "statistics"]

    /// Extensions this daemon answers: the repository API only in explicit control mode.
    var extensions: [String] {
        (Self.extensions + (registry.controlMode.allowsRepositoryAPI ? ["model_repository"] : [])).sorted()
    }

    /// Refuses the repository API unless the control mode enables it and the request carries the
    /// required header, if one is configured.
    private func checkRepositoryAccess(_ request: HTTPRequest) throws(ServingError) {
        try registry.checkRepositoryControl()
        try repositoryRestriction?.check(request.headers, api: "model-repository")
    }

    func answerOpenInference(_ route: OpenInferenceRoute, _ served: ServedRequest) {
        switch route {
        case .serverMetadata:
            var writer = JSONWriter()
            writer.raw("{\"name\":")
            writer.string(Self.serverName)
            writer.raw(",\"version\":")
            writer.string(Self.serverVersion)
            writer.raw(",\"extensions\":[")
            for (index, name) in extensions.enumerated() {
                if index > 0 { writer.comma() }
                writer.string(name)
            }
            writer.raw("]}")
            served.finish(.json(writer.bytes))
        case .modelMetadata(let spec):
            served.finish(answer { () throws(ServingError) in
                Self.metadata(try registry.resolve(name: spec.name, version: spec.version),
                              versions: registry.statuses(of: spec.name).filter { $0.state == .available }.map(\.version))
            })
        case .modelReady(let spec):
            served.finish(modelReady(spec))
        case .modelConfig(let spec):
            served.finish(answer { () throws(ServingError) in
                Self.config(try registry.resolve(name: spec.name, version: spec.version), registry: registry)
            })
        case .statistics(let spec):
            served.finish(answer { () throws(ServingError) in try statistics(spec) })
        case .repository(let route):
            do throws(ServingError) {
                try checkRepositoryAccess(served.request)
            } catch {
                served.finish(error.response)
                return
            }
            repository(route, served)
        case .infer(let spec):
            infer(OpenInferenceCodec.Infer(), spec, served)
        }
    }

    /// The repository API, once access is checked.
    private func repository(_ route: OpenInferenceRoute.RepositoryRoute, _ served: ServedRequest) {
        switch route {
        case .index:
            served.finish(answer { () throws(ServingError) in try repositoryIndex(served.request.body) })
        case .load(let name):
            work.async { served.finish(self.answer { () throws(ServingError) in try self.load(name, body: served.request.body) }) }
        case .unload(let name):
            served.finish(answer { () throws(ServingError) in
                try registry.unload(name: name)
                return Array("{}".utf8)
            })
        }
    }

    private func modelReady(_ spec: ModelSpec) -> HTTPResponse {
        guard !registry.statuses(of: spec.name).isEmpty else {
            return ServingError.notFound("unknown model '\(spec.name)'").response
        }
        var writer = JSONWriter()
        writer.raw("{\"name\":")
        writer.string(spec.name)
        if (try? registry.resolve(name: spec.name, version: spec.version)) != nil {
            writer.raw(",\"ready\":true}")
            return .json(writer.bytes)
        }
        writer.raw(",\"ready\":false,\"error\":")
        writer.string("model '\(spec.name)'\(spec.version.map { " version \($0)" } ?? "") is not ready")
        writer.raw("}")
        return .json(status: 503, writer.bytes)
    }

    // MARK: Metadata and configuration

    static func metadata(_ model: ServedModel, versions: [Int]) -> [UInt8] {
        var writer = JSONWriter()
        writer.raw("{\"name\":")
        writer.string(model.name)
        writer.raw(",\"versions\":[")
        for (index, version) in versions.sorted().enumerated() {
            if index > 0 { writer.comma() }
            writer.string(String(version))
        }
        writer.raw("],\"platform\":\"onnxruntime_onnx\",\"inputs\":")
        tensorMetadata(model.inputs, into: &writer)
        writer.raw(",\"outputs\":")
        tensorMetadata(model.outputs, into: &writer)
        writer.raw("}")
        return writer.bytes
    }

    private static func tensorMetadata(_ values: [ValueInfo], into writer: inout JSONWriter) {
        writer.raw("[")
        for (index, value) in values.enumerated() {
            if index > 0 { writer.comma() }
            writer.raw("{\"name\":")
            writer.string(value.name)
            writer.raw(",\"datatype\":")
            // A sequence of maps is sent as BYTES, one JSON object per row; a map input is its
            // values' datatype, shape [entries].
            var dims = value.type?.dims ?? []
            if value.mapKey != nil { dims = [.unknown] } else if value.mapKeys != nil { dims = Array(dims.dropLast()) }
            writer.string(value.mapKeys == nil ? value.type.map { OpenInferenceCodec.datatype($0.dataType) } ?? "BYTES" : "BYTES")
            writer.raw(",\"shape\":[")
            for (position, dim) in dims.enumerated() {
                if position > 0 { writer.comma() }
                writer.number(dim.value ?? -1)
            }
            writer.raw("]}")
        }
        writer.raw("]")
    }

    /// Triton's ModelConfig for an ONNX model: with batching, `max_batch_size` is set and dims
    /// leave the batch dimension out, as in config.pbtxt.
    static func config(_ model: ServedModel, registry: ModelRegistry) -> [UInt8] {
        let batching = model.batchable ? model.policy.maxBatchSize : 0
        var writer = JSONWriter()
        writer.raw("{\"name\":")
        writer.string(model.name)
        writer.raw(",\"platform\":\"onnxruntime_onnx\",\"backend\":\"onnxruntime\",\"max_batch_size\":")
        writer.number(batching)
        writer.raw(",\"input\":")
        configTensors(model.inputs, dropBatch: batching > 0, into: &writer)
        writer.raw(",\"output\":")
        configTensors(model.outputs, dropBatch: batching > 0, into: &writer)
        writer.raw(",\"instance_group\":[{\"name\":")
        writer.string(model.name)
        writer.raw(",\"kind\":\"KIND_CPU\",\"count\":")
        writer.number(model.policy.instances)
        writer.raw("}]")
        if model.policy.enabled {
            writer.raw(",\"dynamic_batching\":{\"preferred_batch_size\":[")
            for (index, size) in model.policy.preferredBatchSizes.enumerated() {
                if index > 0 { writer.comma() }
                writer.number(size)
            }
            writer.raw("],\"max_queue_delay_microseconds\":")
            writer.number(model.policy.maxQueueDelay.microseconds)
            writer.raw("}")
        }
        writer.raw(",\"default_model_filename\":\"model.onnx\",\"labels\":{")
        for (index, (label, version)) in registry.labels(of: model.name).sorted(by: { $0.key < $1.key }).enumerated() {
            if index > 0 { writer.comma() }
            writer.key(label)
            writer.number(version)
        }
        writer.raw("}}")
        return writer.bytes
    }

    private static func configTensors(_ values: [ValueInfo], dropBatch: Bool, into writer: inout JSONWriter) {
        writer.raw("[")
        for (index, value) in values.enumerated() {
            if index > 0 { writer.comma() }
            writer.raw("{\"name\":")
            writer.string(value.name)
            writer.raw(",\"data_type\":")
            let type = value.type.map { OpenInferenceCodec.datatype($0.dataType) } ?? "BYTES"
            writer.string("TYPE_" + (type == "BYTES" ? "STRING" : type))
            writer.raw(",\"dims\":[")
            let dims = (value.type?.dims ?? []).dropFirst(dropBatch ? 1 : 0)
            for (position, dim) in dims.enumerated() {
                if position > 0 { writer.comma() }
                writer.number(dim.value ?? -1)
            }
            writer.raw("]}")
        }
        writer.raw("]")
    }

    // MARK: Statistics

    private func statistics(_ spec: ModelSpec?) throws(ServingError) -> [UInt8] {
        var models: [ServedModel] = []
        if let spec {
            if let version = spec.version {
                models = [try registry.resolve(name: spec.name, version: version)]
            } else {
                models = registry.loadedModels(named: spec.name)
                guard !models.isEmpty else { throw .notFound("unknown model '\(spec.name)'") }
            }
        } else {
            models = registry.modelNames.flatMap { registry.loadedModels(named: $0) }
        }
        var writer = JSONWriter()
        writer.raw("{\"model_stats\":[")
        for (index, model) in models.enumerated() {
            if index > 0 { writer.comma() }
            let stats = model.statistics.snapshot
            writer.raw("{\"name\":")
            writer.string(model.name)
            writer.raw(",\"version\":")
            writer.string(String(model.version))
            writer.raw(",\"last_inference\":")
            writer.number(stats.lastInferenceMilliseconds)
            writer.raw(",\"inference_count\":")
            writer.number(stats.inferenceCount)
            writer.raw(",\"execution_count\":")
            writer.number(stats.executionCount)
            writer.raw(",\"inference_stats\":{")
            let zero = ModelStatistics.Duration()
            let fields: [(String, ModelStatistics.Duration)] = [
                ("success", stats.success), ("fail", stats.failure), ("queue", stats.queue),
                ("compute_input", stats.computeInput), ("compute_infer", stats.computeInfer),
                ("compute_output", stats.computeOutput), ("cache_hit", zero), ("cache_miss", zero),
            ]
            for (position, (name, duration)) in fields.enumerated() {
                if position > 0 { writer.comma() }
                writer.key(name)
                Self.duration(duration, into: &writer)
            }
            writer.raw("},\"batch_stats\":[")
            for (position, (size, duration)) in stats.batches.sorted(by: { $0.key < $1.key }).enumerated() {
                if position > 0 { writer.comma() }
                writer.raw("{\"batch_size\":")
                writer.number(size)
                writer.raw(",\"compute_input\":{\"count\":0,\"ns\":0},\"compute_infer\":")
                Self.duration(duration, into: &writer)
                writer.raw(",\"compute_output\":{\"count\":0,\"ns\":0}}")
            }
            writer.raw("]}")
        }
        writer.raw("]}")
        return writer.bytes
    }

    private static func duration(_ duration: ModelStatistics.Duration, into writer: inout JSONWriter) {
        writer.raw("{\"count\":")
        writer.number(duration.count)
        writer.raw(",\"ns\":")
        writer.number(duration.nanoseconds)
        writer.raw("}")
    }

    // MARK: Model repository

    private func repositoryIndex(_ body: [UInt8]) throws(ServingError) -> [UInt8] {
        var readyOnly = false
        if !body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            let json = try Result { () throws(JSONError) in try JSONParser.parse(body) }
                .mapError(ServingError.init).get()
            guard let object = json.object else { throw .invalidArgument("the index request must be a JSON object") }
            if case .bool(let flag)? = object["ready"] { readyOnly = flag }
        }
        var names = Set(registry.modelNames)
        if let repository = registry.repository, let sources = try? repository.scan() {
            names.formUnion(sources.map(\.name))
        }
        var writer = JSONWriter()
        writer.raw("[")
        var first = true
        for name in names.sorted() {
            let statuses = registry.statuses(of: name)
            let entries: [(version: String, state: String, reason: String)] = statuses.isEmpty
                ? [("", "UNAVAILABLE", "not loaded")]
                : statuses.map { status in
                    let state = switch status.state {
                    case .available: "READY"
                    case .start, .loading: "LOADING"
                    case .unloading: "UNLOADING"
                    case .end: "UNAVAILABLE"
                    }
                    return (String(status.version), state, status.error?.message ?? (status.state == .end ? "unloaded" : ""))
                }
            for entry in entries where !readyOnly || entry.state == "READY" {
                if !first { writer.comma() }
                first = false
                writer.raw("{\"name\":")
                writer.string(name)
                if !entry.version.isEmpty {
                    writer.raw(",\"version\":")
                    writer.string(entry.version)
                }
                writer.raw(",\"state\":")
                writer.string(entry.state)
                writer.raw(",\"reason\":")
                writer.string(entry.reason)
                writer.raw("}")
            }
        }
        writer.raw("]")
        return writer.bytes
    }

    private func load(_ name: String, body: [UInt8]) throws(ServingError) -> [UInt8] {
        if !body.isEmpty {
            let json = try Result { () throws(JSONError) in try JSONParser.parse(body) }
                .mapError(ServingError.init).get()
            if let parameters = json.object?["parameters"]?.object, !parameters.members.isEmpty {
                throw .invalidArgument("load parameters (config or file overrides) are not supported; change the model repository instead")
            }
        }
        try registry.load(name: name)
        return Array("{}".utf8)
    }
}
