import Dispatch
import HTTP
import Serving
import Tensors

/// A wire format for inference: TF Serving's predict, Open Inference's infer. Both go through
/// one flow (`ServingAPI.infer`): resolve the model, decode, submit, encode.
protocol InferenceCodec: Sendable {
    /// What encoding the answer needs to know of the request (its format, requested outputs).
    associatedtype Decoded: Sendable

    /// True when decoding this request costs less than handing it to another thread, so it is
    /// decoded on the HTTP thread that received it.
    func decodesInline(_ request: HTTPRequest) -> Bool

    /// The engine request for `model`, and what the answer's encoding needs. `charge` is asked
    /// for the memory the decoding takes beyond the body, as it grows; false stops it.
    func decode(_ request: HTTPRequest, model: ServedModel, charge: @escaping (Int) -> Bool) throws(ServingError) -> (InferenceRequest, Decoded)

    /// The 200 answer to a finished inference.
    func encode(_ inference: InferenceResponse, _ decoded: Decoded, model: ServedModel) throws(ServingError) -> HTTPResponse
}

extension InferenceCodec {
    /// Largest JSON body decoded on the HTTP thread: 8 KiB parse in tens of microseconds, about
    /// what handing them to the work queue costs.
    static var inlineJSONBodyLimit: Int { 8 << 10 }
}

extension ServingAPI {
    /// Answers an inference request for the model `spec` names, in `codec`'s wire format.
    func infer<Codec: InferenceCodec>(_ codec: Codec, _ spec: ModelSpec, _ served: ServedRequest) {
        if codec.decodesInline(served.request) {
            submit(codec, spec, served)
        } else {
            work.async { self.submit(codec, spec, served) }
        }
    }

    private func submit<Codec: InferenceCodec>(_ codec: Codec, _ spec: ModelSpec, _ served: ServedRequest) {
        do throws(ServingError) {
            let model = try registry.resolve(name: spec.name, version: spec.version, label: spec.label)
            // What decoding takes beyond the body (which the HTTP server charged) is charged as it
            // grows, then exchanged for what the tensors hold until the request is answered.
            let held = memoryBudget.map(MemoryBudget.Reservation.init)
            let (request, decoded) = try codec.decode(served.request, model: model) { bytes in
                held.map { $0.grow(to: $0.bytes + bytes) } ?? true
            }
            held?.release()
            guard held?.grow(to: Self.bytesHeld(by: request)) ?? true else {
                throw ServingError(.unavailable, "the request's tensors would exceed the server's memory budget; retry later",
                                   retryAfterSeconds: 1)
            }
            if served.request.cancellation.isCancelled { return }  // the client left while we decoded
            let decodeTime = ContinuousClock.now - served.start
            let handle = model.submit(request) { result in
                defer { held?.release() }
                let encodeStart = ContinuousClock.now
                do throws(ServingError) {
                    let inference = try result.get()
                    var response = try codec.encode(inference, decoded, model: model)
                    response.headers.append(name: "Server-Timing", value: Self.serverTiming(inference))
                    let now = ContinuousClock.now
                    model.statistics.recordSuccess(total: now - served.start, input: decodeTime, output: now - encodeStart)
                    served.finish(response)
                } catch {
                    model.statistics.recordFailure(total: ContinuousClock.now - served.start)
                    served.finish(error.response)
                }
            }
            served.request.cancellation.onCancel { handle.cancel() }
        } catch {
            served.finish(error.response)
        }
    }

    /// Bytes a request's input tensors (and the keys and values of its maps) hold of their own
    /// (tensors read in place from the body hold none: the body is charged already).
    static func bytesHeld(by request: InferenceRequest) -> Int {
        var total = 0
        for tensor in Array(request.inputs.values) + request.maps.values.flatMap({ [$0.keys, $0.values] }) {
            switch tensor.storage {
            case .bytes(let buffer) where buffer.ownsMemory: total += buffer.byteCount
            case .bytes: break
            case .strings(let strings): total += strings.reduce(strings.count * MemoryLayout<String>.stride) { $0 + $1.utf8.count }
            }
        }
        return total
    }

    /// `queue;dur=…, engine;dur=…` in milliseconds with three decimals, from whole microseconds
    /// (no printf: this runs per request).
    static func serverTiming(_ inference: InferenceResponse) -> String {
        func milliseconds(_ duration: Duration) -> String {
            let micros = max(0, duration.microseconds)
            let fraction = String(micros % 1000)
            return String(micros / 1000) + "." + String(repeating: "0", count: 3 - fraction.count) + fraction
        }
        return "queue;dur=\(milliseconds(inference.queueDuration)), engine;dur=\(milliseconds(inference.engineDuration))"
    }
}
