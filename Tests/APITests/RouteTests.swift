import API
import Foundation
import HTTP
import Logging
import Serving
import Testing

/// Routing is a pure function of the method and the raw path.
@Suite struct RouteTests {
    @Test(arguments: [
        ("GET", "/v2/health/live", Route.live),
        ("HEAD", "/v2/health/ready", Route.ready),
        ("GET", "/metrics", Route.metrics),
        ("POST", "/v1/models/digits:predict", Route.tfServing(.predict(ModelSpec(name: "digits")))),
        ("POST", "/V1/MODELS/digits/Versions/3:PREDICT", Route.tfServing(.predict(ModelSpec(name: "digits", version: 3)))),
        ("GET", "/v1/models/a%20b/labels/stable/metadata", Route.tfServing(.metadata(ModelSpec(name: "a b", label: "stable")))),
        ("POST", "/v2/models/digits/versions/2/infer", Route.openInference(.infer(ModelSpec(name: "digits", version: 2)))),
        ("GET", "/v2/models/stats", Route.openInference(.statistics(nil))),
        ("POST", "/v2/repository/models/digits/unload", Route.openInference(.repository(.unload("digits")))),
    ])
    func requestsMatchTheirRoute(method: String, path: String, route: Route) {
        #expect(Route.match(method: method, rawPath: path) == .success(route))
    }

    @Test(arguments: [
        ("GET", "/v2/health/livez", RouteError.notFound("Not Found: GET /v2/health/livez")),
        ("GET", "/", RouteError.notFound("Not Found: GET /")),
        ("POST", "/v2/health/ready", RouteError.methodNotAllowed(method: "POST", allowed: "GET")),
        ("GET", "/v1/models/digits:predict", RouteError.methodNotAllowed(method: "GET", allowed: "POST")),
        ("GET", "/v1/models", RouteError.malformed("Missing model name in request.")),
        ("GET", "/v1/models/digits/versions/x", RouteError.malformed("Malformed request: GET /v1/models/digits/versions/x")),
        ("GET", "/v1/models/digits/versions/99999999999999999999", RouteError.malformed("Failed to convert version: 99999999999999999999")),
        ("GET", "/v2/models/%2E%2E", RouteError.malformed("invalid model name '..'")),
        ("GET", "/v2/models/a%zz", RouteError.malformed("malformed percent-encoding in model name 'a%zz'")),
        ("GET", "/v2/models/digits/versions/-1", RouteError.malformed("model version must be a number: /v2/models/digits/versions/-1")),
    ])
    func otherRequestsSayWhyNot(method: String, path: String, error: RouteError) {
        #expect(Route.match(method: method, rawPath: path) == .failure(error))
    }
}

/// The handler called in process, with a responder that captures the answer: no sockets.
@Suite struct ServingAPITests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../config/models").standardized.path

    static func api(controlMode: ModelControlMode = .none, memoryBudget: MemoryBudget? = nil,
                    runMemoryBudget: Int? = ServingDefaults.defaultRunMemoryBudgetBytes) throws -> ServingAPI {
        let registry = ModelRegistry(repository: ModelRepository(root: repository), explicit: [], controlMode: controlMode,
                                     defaults: ServingDefaults(warmup: false, runMemoryBudgetBytes: runMemoryBudget),
                                     metrics: ServingMetrics(), logger: Logger(label: "test"))
        try registry.loadAll()
        return ServingAPI(registry: registry, metrics: ServingMetrics(), logger: Logger(label: "test"), accessLog: false,
                          memoryBudget: memoryBudget)
    }

    /// The answer `api` gives, however late and from whichever thread.
    static func send(_ api: ServingAPI, _ method: String, _ path: String, body: String = "",
                     headers: HTTPHeaders = [:]) async -> HTTPResponse {
        await withCheckedContinuation { continuation in
            api.handle(HTTPRequest(method: method, rawPath: path, headers: headers, body: Array(body.utf8)),
                       responder: HTTPResponder { continuation.resume(returning: $0) })
        }
    }

    static func error(_ response: HTTPResponse) -> String {
        guard case .object(let object)? = try? JSONParser.parse(response.body), let message = object["error"]?.string else { return "" }
        return message
    }

    static let zeroDigit = "[" + Array(repeating: "0", count: 64).joined(separator: ",") + "]"

    @Test func routingFailuresMapToTheirStatuses() async throws {
        let api = try Self.api()
        #expect(await Self.send(api, "GET", "/nope").status == 404)
        let wrongMethod = await Self.send(api, "DELETE", "/v2/health/live")
        #expect(wrongMethod.status == 405 && wrongMethod.headers["Allow"] == "GET")
        #expect(await Self.send(api, "GET", "/v1/models/digits/versions/x").status == 400)
        #expect(await Self.send(api, "HEAD", "/v2/health/live").body.isEmpty)
    }

    @Test func bothProtocolsAnswerThroughOneFlow() async throws {
        let api = try Self.api()
        let predict = await Self.send(api, "POST", "/v1/models/digits:predict", body: #"{"instances": [\#(Self.zeroDigit)]}"#)
        #expect(predict.status == 200, "\(Self.error(predict))")
        #expect(predict.headers["Server-Timing"]?.hasPrefix("queue;dur=") == true)
        let infer = await Self.send(api, "POST", "/v2/models/digits/infer",
                                    body: #"{"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": \#(Self.zeroDigit)}]}"#)
        #expect(infer.status == 200, "\(Self.error(infer))")
        #expect(infer.headers["Content-Type"] == "application/json")
    }

    @Test func hostileRequestsGetClientErrors() async throws {
        let api = try Self.api()
        func infer(_ body: String, headers: HTTPHeaders = [:]) async -> HTTPResponse {
            await Self.send(api, "POST", "/v2/models/digits/infer", body: body, headers: headers)
        }
        // A timeout of 1e17 µs overflowed the deadline: clamped now, and the request runs.
        let timeout = await infer(#"{"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": \#(Self.zeroDigit)}], "parameters": {"timeout": 100000000000000000}}"#)
        #expect(timeout.status == 200, "\(Self.error(timeout))")
        // A shape whose element count overflows, with one value and in binary form.
        let huge = await infer(#"{"inputs": [{"name": "pixels", "shape": [2147483647, 2147483647, 2147483647], "datatype": "FP32", "data": [1]}]}"#)
        #expect(huge.status == 400 && Self.error(huge).contains("overflows"), "\(Self.error(huge))")
        let header = #"{"inputs": [{"name": "pixels", "shape": [2147483647, 2147483647, 2147483647], "datatype": "FP32", "parameters": {"binary_data_size": 0}}]}"#
        let binary = await infer(header, headers: ["Inference-Header-Content-Length": String(header.utf8.count)])
        #expect(binary.status == 400 && Self.error(binary).contains("overflows"), "\(Self.error(binary))")
        // Ragged bodies in both protocols.
        let ragged = await Self.send(api, "POST", "/v1/models/digits:predict",
                                     body: #"{"inputs": [3, \#(Array(repeating: "1", count: 47).joined(separator: ",")), \#(Self.zeroDigit)]}"#)
        #expect(ragged.status == 400 && Self.error(ragged).contains("ragged"), "\(Self.error(ragged))")
        let raggedData = await infer(#"{"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [\#(Array(repeating: "1.0", count: 64).joined(separator: ",")), []]}]}"#)
        #expect(raggedData.status == 400 && Self.error(raggedData).contains("ragged"), "\(Self.error(raggedData))")
        // More rows than the model's max_batch_size (64), in raw binary form.
        let rows = [UInt8](repeating: 0, count: 65 * 64 * 4)
        let oversized: HTTPResponse = await withCheckedContinuation { continuation in
            api.handle(HTTPRequest(method: "POST", rawPath: "/v2/models/digits/infer", headers: ["Inference-Header-Content-Length": "0"], body: rows),
                       responder: HTTPResponder { continuation.resume(returning: $0) })
        }
        #expect(oversized.status == 400 && Self.error(oversized).contains("batch-size must be <= 64"), "\(Self.error(oversized))")
    }

    @Test func decodingIsChargedToTheMemoryBudgetAndGivenBack() async throws {
        let budget = MemoryBudget(limit: 4 << 20)
        let api = try Self.api(memoryBudget: budget)
        // 64 rows parse to 32 KiB and become 16 KiB of floats: within the budget, all given back.
        let rows = "[" + Array(repeating: Self.zeroDigit, count: 64).joined(separator: ",") + "]"
        let small = await Self.send(api, "POST", "/v1/models/digits:predict", body: #"{"instances": \#(rows)}"#)
        #expect(small.status == 200, "\(Self.error(small))")
        #expect(budget.bytesInUse == 0)
        // 1,048,576 numbers parse to 8 MiB: refused with 503 and Retry-After while parsing.
        let many = "[" + Array(repeating: "0", count: 1 << 20).joined(separator: ",") + "]"
        let large = await Self.send(api, "POST", "/v2/models/digits/infer",
                                    body: #"{"inputs": [{"name": "pixels", "shape": [16384, 64], "datatype": "FP32", "data": \#(many)}]}"#)
        #expect(large.status == 503 && large.headers["Retry-After"] == "1", "\(Self.error(large))")
        #expect(Self.error(large).contains("memory budget"))
        #expect(budget.bytesInUse == 0)
    }

    @Test func aRunOverTheRunMemoryBudgetIs413AndNeverQueues() async throws {
        // The digits model's working memory grows with the rows: one row fits in 16 KiB, 64 do not.
        let api = try Self.api(runMemoryBudget: 16 << 10)
        let one = await Self.send(api, "POST", "/v1/models/digits:predict", body: #"{"instances": [\#(Self.zeroDigit)]}"#)
        #expect(one.status == 200, "\(Self.error(one))")
        let rows = "[" + Array(repeating: Self.zeroDigit, count: 64).joined(separator: ",") + "]"
        let many = await Self.send(api, "POST", "/v1/models/digits:predict", body: #"{"instances": \#(rows)}"#)
        #expect(many.status == 413 && Self.error(many).contains("working memory"), "\(Self.error(many))")
    }

    @Test func theRepositoryAPIIsOffByDefault() async throws {
        let api = try Self.api()
        let unload = await Self.send(api, "POST", "/v2/repository/models/digits/unload", body: "{}")
        #expect(unload.status == 403 && Self.error(unload).contains("model_control_mode is 'none'"))
        #expect(await Self.send(api, "GET", "/v2/models/digits/ready").status == 200)
        let explicit = try Self.api(controlMode: .explicit)
        #expect(await Self.send(explicit, "POST", "/v2/repository/models/digits/unload", body: "{}").status == 200)
        #expect(await Self.send(explicit, "GET", "/v2/models/digits/ready").status == 503)
        #expect(await Self.send(explicit, "POST", "/v1/models/digits:predict", body: #"{"instances": [\#(Self.zeroDigit)]}"#).status == 404)
    }
}
