import HTTP
import Serving

/// TF Serving's REST API: predict, model status and metadata.
extension ServingAPI {
    func answerTFServing(_ route: TFServingRoute, _ served: ServedRequest) {
        switch route {
        case .predict(let spec):
            infer(TFServingCodec.Predict(), spec, served)
        case .classify, .regress:
            served.finish(ServingError(.unimplemented, "classify and regress need a tf.Example signature, which ONNX models do not have; use :predict").response)
        case .status(let spec):
            served.finish(status(spec))
        case .metadata(let spec):
            served.finish(answer { () throws(ServingError) in
                TFServingCodec.encodeMetadata(try registry.resolve(name: spec.name, version: spec.version, label: spec.label))
            })
        }
    }

    private func status(_ spec: ModelSpec) -> HTTPResponse {
        var statuses = registry.statuses(of: spec.name)
        guard !statuses.isEmpty else {
            return ServingError.notFound("Could not find any versions of model \(spec.name)").response
        }
        if let label = spec.label {
            guard let version = registry.labels(of: spec.name)[label] else {
                return ServingError.notFound("Unrecognized servable version label: \(label)").response
            }
            statuses = statuses.filter { $0.version == version }
        }
        if let version = spec.version {
            statuses = statuses.filter { $0.version == version }
            guard !statuses.isEmpty else {
                return ServingError.notFound("Could not find version \(version) of model \(spec.name)").response
            }
        }
        return .json(TFServingCodec.encodeStatus(statuses))
    }
}
