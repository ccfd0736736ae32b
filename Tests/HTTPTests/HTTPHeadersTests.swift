import HTTP
import Testing

@Suite struct HTTPHeadersTests {
    @Test func lookupIgnoresCase() {
        let headers: HTTPHeaders = ["Content-Type": "application/json", "X-Trace": "a", "x-trace": "b"]
        #expect(headers["content-type"] == "application/json")
        #expect(headers["X-TRACE"] == "a")
        #expect(headers.values(for: "x-Trace") == ["a", "b"])
        #expect(headers["Missing"] == nil)
    }

    @Test func settingReplacesEveryFieldOfThatName() {
        var headers: HTTPHeaders = ["X-Trace": "a", "Other": "1", "x-trace": "b"]
        headers["X-TRACE"] = "c"
        #expect(headers.values(for: "x-trace") == ["c"])
        headers["x-trace"] = nil
        #expect(headers.count == 1)
        #expect(headers["other"] == "1")
    }
}

@Suite struct HTTPResponseTests {
    @Test func errorIsJSONWithEscapedMessage() {
        let response = HTTPResponse.error(status: 400, message: "bad \"input\"\\ at\nline\u{1}")
        #expect(response.status == 400)
        #expect(response.headers["content-type"] == "application/json")
        #expect(String(decoding: response.body, as: UTF8.self) == #"{"error":"bad \"input\"\\ at\nline\u0001"}"#)
    }
}
