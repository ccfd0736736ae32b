import CMicroHTTPD
import Glibc

/// Every call into libmicrohttpd, as thin wrappers that turn its return codes into `HTTPError`
/// or optionals. Only this module imports CMicroHTTPD.
enum MicroHTTPD {
    /// A running daemon. libmicrohttpd allows quiescing and stopping it from any thread.
    struct Daemon: @unchecked Sendable {
        let handle: OpaquePointer
    }

    /// A client connection. libmicrohttpd allows resuming it from any thread; every other call
    /// is made on the connection's own thread, inside a callback.
    struct Connection: @unchecked Sendable {
        let handle: OpaquePointer
    }

    // MARK: Daemon

    /// Starts the daemon with its own epoll thread pool, suspend/resume, and our callbacks;
    /// nil on failure (libmicrohttpd logs the reason through `MicroHTTPDCallbacks.logMessage`).
    static func startDaemon(
        _ configuration: HTTPServer.Configuration,
        address: ListenAddress,
        context: UnsafeMutableRawPointer
    ) -> Daemon? {
        let flags = MHD_USE_EPOLL_INTERNAL_THREAD.rawValue | MHD_ALLOW_SUSPEND_RESUME.rawValue | MHD_USE_ERROR_LOG.rawValue
        // The logger goes first, so libmicrohttpd routes every message through it.
        var options: [any CVarArg] = [
            MHD_OPTION.EXTERNAL_LOGGER.rawValue, cFunction(MicroHTTPDCallbacks.logMessage), OpaquePointer(context),
            MHD_OPTION.NOTIFY_CONNECTION.rawValue, cFunction(MicroHTTPDCallbacks.connectionChanged), OpaquePointer(context),
            MHD_OPTION.URI_LOG_CALLBACK.rawValue, cFunction(MicroHTTPDCallbacks.requestStarted), OpaquePointer(context),
            MHD_OPTION.UNESCAPE_CALLBACK.rawValue, cFunction(MicroHTTPDCallbacks.unescape), OpaquePointer(context),
            MHD_OPTION.NOTIFY_COMPLETED.rawValue, cFunction(MicroHTTPDCallbacks.requestEnded), OpaquePointer(context),
            MHD_OPTION.CONNECTION_TIMEOUT.rawValue, UInt32(clamping: configuration.idleTimeoutSeconds),
            MHD_OPTION.CONNECTION_LIMIT.rawValue, UInt32(clamping: configuration.maxConnections),
            MHD_OPTION.PER_IP_CONNECTION_LIMIT.rawValue, UInt32(clamping: configuration.maxConnectionsPerClient),
            MHD_OPTION.CONNECTION_MEMORY_LIMIT.rawValue, configuration.connectionMemory,
        ]
        if configuration.threadCount > 1 {
            options += [MHD_OPTION.THREAD_POOL_SIZE.rawValue, UInt32(clamping: configuration.threadCount)]
        }
        return address.withSocketAddress { socketAddress in
            var familyFlags: UInt32 = 0
            switch address {
            case .dualStack: familyFlags = MHD_USE_DUAL_STACK.rawValue
            case .ipv6: familyFlags = MHD_USE_IPv6.rawValue
            case .ipv4: break
            }
            if let socketAddress { options += [MHD_OPTION.SOCK_ADDR.rawValue, OpaquePointer(socketAddress)] }
            options.append(MHD_OPTION.END.rawValue)
            let handle = withVaList(options) { arguments in
                MHD_start_daemon_va(
                    flags | familyFlags, configuration.port, nil, nil,
                    MicroHTTPDCallbacks.access, context, arguments
                )
            }
            return handle.map(Daemon.init)
        }
    }

    /// The port the daemon listens on (the ephemeral one when started on port 0).
    static func boundPort(_ daemon: Daemon) -> UInt16 {
        mhd_shim_daemon_port(daemon.handle)
    }

    /// Stops accepting connections; returns the listening socket, which the caller closes after `stop`.
    static func quiesce(_ daemon: Daemon) -> Int32? {
        let socket = MHD_quiesce_daemon(daemon.handle)
        return socket >= 0 ? socket : nil
    }

    /// Closes every connection and joins the daemon's threads.
    static func stop(_ daemon: Daemon) {
        MHD_stop_daemon(daemon.handle)
    }

    // MARK: Connections

    static func socket(of connection: Connection) -> Int32 {
        mhd_shim_connection_socket(connection.handle)
    }

    static func suspend(_ connection: Connection) {
        MHD_suspend_connection(connection.handle)
    }

    static func resume(_ connection: Connection) {
        MHD_resume_connection(connection.handle)
    }

    /// The request headers, in order.
    static func headers(of connection: Connection) -> HTTPHeaders {
        HTTPHeaders(values(.HEADER_KIND, of: connection).map { HTTPHeaders.Field(name: $0.name, value: $0.value ?? "") })
    }

    /// The decoded query items, in order.
    static func queryItems(of connection: Connection) -> [HTTPRequest.QueryItem] {
        values(.GET_ARGUMENT_KIND, of: connection).map { HTTPRequest.QueryItem(name: $0.name, value: $0.value) }
    }

    /// How many query items libmicrohttpd holds for the request.
    static func queryItemCount(of connection: Connection) -> Int {
        Int(MHD_get_connection_values_n(connection.handle, .GET_ARGUMENT_KIND, nil, nil))
    }

    /// Decodes percent-escapes (and nothing else) in place, as libmicrohttpd does by default;
    /// returns the decoded length.
    static func unescapeInPlace(_ text: UnsafeMutablePointer<CChar>) -> Int {
        MHD_http_unescape(text)
    }

    private static func values(_ kind: MHD_ValueKind, of connection: Connection) -> [(name: String, value: String?)] {
        var collected: [(name: String, value: String?)] = []
        withUnsafeMutablePointer(to: &collected) { list in
            _ = MHD_get_connection_values_n(connection.handle, kind, { list, _, key, keyLength, value, valueLength in
                let text = { (start: UnsafePointer<CChar>, length: Int) in
                    String(decoding: UnsafeRawBufferPointer(start: start, count: length), as: UTF8.self)
                }
                list!.assumingMemoryBound(to: [(name: String, value: String?)].self).pointee
                    .append((name: key.map { text($0, keyLength) } ?? "", value: value.map { text($0, valueLength) }))
                return .YES
            }, list)
        }
        return collected
    }

    // MARK: Answers

    /// Queues `response` on the connection (inside its callback). The body is handed over without
    /// a copy; `closing` adds `Connection: close`.
    static func queue(_ response: HTTPResponse, closing: Bool, on connection: Connection) throws(HTTPError) {
        let answer = try makeResponse(body: response.body)
        defer { MHD_destroy_response(answer) }  // the queued response holds its own reference
        for field in response.headers where MHD_add_response_header(answer, field.name, field.value) != .YES {
            throw .libraryCallFailed("the response header '\(field.name)'")
        }
        if closing, MHD_add_response_header(answer, "Connection", "close") != .YES {
            throw .libraryCallFailed("the response header 'Connection: close'")
        }
        guard MHD_queue_response(connection.handle, UInt32(clamping: response.status), answer) == .YES else {
            throw .libraryCallFailed("MHD_queue_response")
        }
    }

    /// Writes `response` straight to the socket, for errors found while the body is arriving,
    /// when libmicrohttpd refuses to queue a response. The connection must then be closed.
    static func writeDirectly(_ response: HTTPResponse, to socket: Int32) {
        let reason = String(cString: MHD_get_reason_phrase_for(UInt32(clamping: response.status)))
        var head = "HTTP/1.1 \(response.status) \(reason)\r\n"
        for field in response.headers { head += "\(field.name): \(field.value)\r\n" }
        head += "Content-Length: \(response.body.count)\r\nConnection: close\r\n\r\n"
        // One non-blocking send: nothing else was sent for this request, so a short error
        // answer fits in the socket's buffer.
        _ = (Array(head.utf8) + response.body).withUnsafeBytes { bytes in
            send(socket, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
        }
    }

    /// True when the client has shut down its sending side and nothing it sent is still unread
    /// by libmicrohttpd: the socket reads end-of-file.
    static func clientStoppedSending(_ socket: Int32) -> Bool {
        var byte: UInt8 = 0
        return recv(socket, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) == 0
    }

    private static func makeResponse(body: [UInt8]) throws(HTTPError) -> OpaquePointer {
        guard !body.isEmpty else {
            guard let response = MHD_create_response_from_buffer(0, nil, .RESPMEM_PERSISTENT) else {
                throw .libraryCallFailed("MHD_create_response_from_buffer")
            }
            return response
        }
        let owner = Unmanaged.passRetained(ResponseBody(body))
        let response = MHD_create_response_from_buffer_with_free_callback_cls(
            body.count, owner.takeUnretainedValue().start, MicroHTTPDCallbacks.releaseResponseBody, owner.toOpaque()
        )
        guard let response else {
            owner.release()
            throw .libraryCallFailed("MHD_create_response_from_buffer_with_free_callback_cls")
        }
        return response
    }

    /// A C function pointer as a variadic argument.
    private static func cFunction<Function>(_ function: Function) -> OpaquePointer {
        unsafeBitCast(function, to: OpaquePointer.self)
    }
}

/// Keeps a response body alive until libmicrohttpd has sent it and calls
/// `MicroHTTPDCallbacks.releaseResponseBody`.
final class ResponseBody {
    private let bytes: [UInt8]
    /// Where libmicrohttpd reads the body: a native array's elements stay at one address while
    /// the array lives unmutated, which this owner guarantees.
    let start: UnsafeMutableRawPointer

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        start = UnsafeMutableRawPointer(mutating: self.bytes.withUnsafeBytes { $0.baseAddress! })
    }
}
