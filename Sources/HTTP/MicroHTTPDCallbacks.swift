import CMicroHTTPD
import Glibc

/// libmicrohttpd's callbacks. They run on libmicrohttpd's threads, so they live in this
/// non-isolated namespace of a library module (in top-level executable code they would be
/// main-actor isolated). Each reaches the `RequestDispatcher` through the context pointer, an
/// `Unmanaged` reference the server retains from start to stop.
enum MicroHTTPDCallbacks {
    /// A connection opened or closed (libmicrohttpd closes its socket after this returns).
    static let connectionChanged: MHD_NotifyConnectionCallback = { context, connection, _, change in
        guard let connection else { return }
        dispatcher(context).connectionChanged(MicroHTTPD.Connection(handle: connection), opened: change == .CONNECTION_NOTIFY_STARTED)
    }

    /// The request line arrived: create the request's `Exchange`, which libmicrohttpd keeps as
    /// the request context (retained) until `requestEnded`. libmicrohttpd parses the query
    /// arguments next, then unescapes the path (`unescape`).
    static let requestStarted: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, OpaquePointer?) -> UnsafeMutableRawPointer? = {
        context, target, connection in
        let exchange = dispatcher(context).requestStarted(target: target, connection: MicroHTTPD.Connection(handle: connection!))
        return Unmanaged.passRetained(exchange).toOpaque()
    }

    /// libmicrohttpd's percent-decoding of each query name and value and, last, of the path.
    static let unescape: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Int = {
        context, connection, text in
        guard let text else { return 0 }
        if let connection {
            dispatcher(context).unescaping(text, connection: MicroHTTPD.Connection(handle: connection))
        }
        return MicroHTTPD.unescapeInPlace(text)
    }

    /// Headers, body chunks, the end of the body, and the calls after a resume.
    static let access: MHD_AccessHandlerCallback = { context, _, path, method, _, uploadData, uploadDataSize, requestContext in
        guard let exchange = requestContext?.pointee else { return .NO }
        let upload = uploadData.map { UnsafeRawBufferPointer(start: $0, count: uploadDataSize!.pointee) }
        let result = dispatcher(context).access(
            Unmanaged<Exchange>.fromOpaque(exchange).takeUnretainedValue(),
            method: method,
            path: path,
            upload: upload
        )
        if upload != nil { uploadDataSize!.pointee = 0 }  // always consumed whole
        return result
    }

    /// The request ended (answered, failed, timed out, or the daemon stopped).
    static let requestEnded: MHD_RequestCompletedCallback = { context, _, requestContext, _ in
        guard let exchange = requestContext?.pointee else { return }
        requestContext!.pointee = nil
        let unmanaged = Unmanaged<Exchange>.fromOpaque(exchange)
        dispatcher(context).requestEnded(unmanaged.takeUnretainedValue())
        unmanaged.release()
    }

    static let logMessage: MHD_LogCallback = { context, format, arguments in
        guard let format, let arguments else { return }
        var buffer = [CChar](repeating: 0, count: 512)
        _ = vsnprintf(&buffer, buffer.count, format, arguments)
        dispatcher(context).libraryLogged(buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
    }

    static let releaseResponseBody: MHD_ContentReaderFreeCallback = { owner in
        Unmanaged<ResponseBody>.fromOpaque(owner!).release()
    }

    private static func dispatcher(_ context: UnsafeMutableRawPointer?) -> RequestDispatcher {
        Unmanaged<RequestDispatcher>.fromOpaque(context!).takeUnretainedValue()
    }
}
