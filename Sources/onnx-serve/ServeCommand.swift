import API
import ArgumentParser
import Dispatch
import Engine
import Foundation
import HTTP
import Kernels
import Logging
import Serving
import Synchronization

/// `onnx-serve serve`: the daemon.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a model repository over HTTP (TF Serving REST API, Open Inference Protocol, health, metrics).",
        discussion: "Flags override the config file's keys of the same name (see the README, \"Configuration\")."
    )

    @Option(help: "Config file (YAML or JSON).")
    var config: String?

    @Option(name: .customLong("model-repository"), help: "Model repository: DIR/<model>/<version>/model.onnx.")
    var modelRepository: String?

    @Option(name: .customLong("model"), help: "Serve one file as version 1: NAME=PATH.onnx (repeatable).")
    var models: [String] = []

    @Option(help: "Address to listen on (\"::\" = every IPv6 and IPv4 address).")
    var host: String?

    @Option(help: "Port (default 8501, TF Serving's REST port; 0 picks a free one).")
    var port: Int?

    @Option(name: .customLong("http-threads"), help: "HTTP server threads (default: cores).")
    var httpThreads: Int?

    @Option(name: .customLong("max-connections"), help: "Most open connections (default 1024).")
    var maxConnections: Int?

    @Option(name: .customLong("max-connections-per-client"), help: "Most open connections from one client address (default 256; 0: no limit).")
    var maxConnectionsPerClient: Int?

    @Option(name: .customLong("idle-timeout-seconds"), help: "Close connections idle this long (default 30).")
    var idleTimeoutSeconds: Int?

    @Option(name: .customLong("header-timeout-seconds"), help: "Close new connections whose request headers are not complete this long after opening (default 10).")
    var headerTimeoutSeconds: Int?

    @Option(name: .customLong("max-body-bytes"), help: "Largest request body (default 67108864).")
    var maxBodyBytes: Int?

    @Option(name: .customLong("memory-budget-bytes"), help: "Most bytes held for requests at once, daemon-wide (default: a quarter of memory).")
    var memoryBudgetBytes: Int?

    @Option(name: .customLong("run-memory-budget-bytes"), help: "Most working memory one engine run may take; larger requests get 413 (default: a quarter of memory).")
    var runMemoryBudgetBytes: Int?

    @Option(name: .customLong("intra-op-threads"), help: "Threads per inference run (default 0: all cores).")
    var intraOpThreads: Int?

    @Option(name: .customLong("compute-threads"), help: "Threads the engine computes on at once, all models together (default 0: all cores).")
    var computeThreads: Int?

    @Flag(inversion: .prefixedNo, help: "Warm models up before reporting ready (default on).")
    var warmup: Bool?

    @Flag(inversion: .prefixedNo, help: "Run the engine's graph optimisations (default on).")
    var optimizations: Bool?

    @Flag(name: .customLong("flush-denormals"), inversion: .prefixedNo, help: "Flush denormal floats to zero (default off).")
    var flushDenormals: Bool?

    @Flag(name: .customLong("access-log"), inversion: .prefixedNo, help: "Log one line per request (default off).")
    var accessLog: Bool?

    @Option(name: .customLong("log-level"), help: "trace, debug, info (default), notice, warning, error or critical.")
    var logLevel: String?

    @Option(name: .customLong("drain-seconds"), help: "After SIGTERM: seconds reported not-ready before stopping (default 5).")
    var drainSeconds: Double?

    @Flag(inversion: .prefixedNo, help: "Dynamic batching for models with a dynamic batch dimension (default on).")
    var batching: Bool?

    @Option(name: .customLong("max-batch-size"), help: "Most rows per engine run (default 32).")
    var maxBatchSize: Int?

    @Option(name: .customLong("max-queue-delay-us"), help: "Longest a batch waits to grow, in µs (default 0).")
    var maxQueueDelay: Int?

    @Option(name: .customLong("preferred-batch-sizes"), help: "Comma-separated batch sizes to cut at.")
    var preferredBatchSizes: String?

    @Option(name: .customLong("max-queue-length"), help: "Most waiting requests per model (default 1024).")
    var maxQueueLength: Int?

    @Option(name: .customLong("default-deadline-ms"), help: "Deadline for requests that set none (default 0: none).")
    var defaultDeadline: Int?

    @Option(help: "Batches that may run at once per model (default 1).")
    var instances: Int?

    @Option(name: .customLong("model-control-mode"),
            help: "none (default: the repository is read at start, the repository API is off), poll (rescanned every --repository-poll-seconds) or explicit (load/unload through /v2/repository). SIGHUP rescans in every mode.")
    var modelControlMode: String?

    @Option(name: .customLong("repository-poll-seconds"), help: "Poll mode: seconds between repository rescans (default 1).")
    var repositoryPollSeconds: Double?

    @Option(name: .customLong("repository-api-restriction"),
            help: "HEADER=VALUE the repository API requires (explicit mode), as Triton's --http-restricted-api=model-repository:HEADER=VALUE.")
    var repositoryAPIRestriction: String?

    mutating func run() async throws {
        let configuration = try reportingErrors { try resolvedConfiguration() }
        let level = Logger.Level(rawValue: configuration.logLevel ?? "info") ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "onnx-serve")
        try await Daemon(configuration: configuration, logger: logger).run()
    }

    /// The config file overlaid with the flags given.
    func resolvedConfiguration() throws -> DaemonConfiguration {
        var base = DaemonConfiguration()
        if let config { base = try DaemonConfiguration.load(path: config) }
        var flags = DaemonConfiguration()
        flags.host = host
        flags.port = port
        flags.modelRepository = modelRepository
        var explicit: [String: String] = [:]
        for entry in models {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, ModelRepository.isValidName(parts[0]), !parts[1].isEmpty else {
                throw ValidationError("--model expects NAME=PATH.onnx, got '\(entry)'")
            }
            explicit[parts[0]] = parts[1]
        }
        flags.models = explicit
        flags.httpThreads = httpThreads
        flags.maxConnections = maxConnections
        flags.maxConnectionsPerClient = maxConnectionsPerClient
        flags.idleTimeoutSeconds = idleTimeoutSeconds
        flags.headerTimeoutSeconds = headerTimeoutSeconds
        flags.maxBodyBytes = maxBodyBytes
        flags.memoryBudgetBytes = memoryBudgetBytes
        flags.runMemoryBudgetBytes = runMemoryBudgetBytes
        flags.intraOpThreads = intraOpThreads
        flags.computeThreads = computeThreads
        flags.warmup = warmup
        flags.optimizations = optimizations
        flags.flushDenormals = flushDenormals
        flags.accessLog = accessLog
        flags.logLevel = logLevel
        flags.drainSeconds = drainSeconds
        if let modelControlMode {
            guard let mode = ModelControlMode(rawValue: modelControlMode) else {
                throw ValidationError("--model-control-mode must be one of \(ModelControlMode.allCases.map(\.rawValue).joined(separator: ", ")), not '\(modelControlMode)'")
            }
            flags.modelControlMode = mode
        }
        flags.repositoryAPIRestriction = repositoryAPIRestriction
        flags.repositoryPollSeconds = repositoryPollSeconds
        var preferred: [Int]?
        if let preferredBatchSizes {
            preferred = try preferredBatchSizes.split(separator: ",").map { text in
                guard let value = Int(text.trimmingCharacters(in: .whitespaces)), value > 0 else {
                    throw ValidationError("--preferred-batch-sizes expects positive integers, got '\(preferredBatchSizes)'")
                }
                return value
            }
        }
        flags.batching = BatchingConfiguration(
            enabled: batching, maxBatchSize: maxBatchSize, maxQueueDelayMicroseconds: maxQueueDelay,
            preferredBatchSizes: preferred, maxQueueLength: maxQueueLength,
            defaultDeadlineMilliseconds: defaultDeadline, instances: instances)
        let merged = base.overridden(by: flags)
        try merged.validate()
        return merged
    }
}

/// The running daemon: HTTP server up first (liveness), models loaded and warmed (readiness),
/// then serving until SIGTERM/SIGINT, when it reports not-ready, drains and stops.
struct Daemon {
    let configuration: DaemonConfiguration
    let logger: Logger

    func run() async throws {
        HeapPolicy.mapLargeAllocations()
        let metrics = ServingMetrics()
        let repository = configuration.modelRepository.map(ModelRepository.init(root:))
        if let repository {
            // Fail fast on a repository that is not there; a bad model inside it only fails that model.
            try reportingErrors { _ = try repository.scan() }
        }
        // A folder (KServe's /mnt/models) holds a bare model.onnx or version folders, and is reread by rescans.
        let explicit = (configuration.models ?? [:]).sorted { $0.key < $1.key }.map { name, path in
            ModelRepository.isDirectory(path) ? ModelRepository.modelSource(directory: path, name: name)
                : ModelSource(name: name, versions: [1: path])
        }
        if let budget = configuration.computeThreads, budget > 0 { Parallelism.reserveComputeThreads(budget) }
        let defaults = ServingDefaults(
            threads: (configuration.intraOpThreads ?? 0) > 0 ? configuration.intraOpThreads : nil,
            warmup: configuration.warmup ?? true, optimizations: configuration.optimizations ?? true,
            flushDenormals: configuration.flushDenormals ?? false,
            batching: configuration.batching ?? BatchingConfiguration(),
            runMemoryBudgetBytes: configuration.runMemoryBudgetBytes ?? ServingDefaults.defaultRunMemoryBudgetBytes)
        let registry = ModelRegistry(repository: repository, explicit: explicit, controlMode: configuration.modelControlMode ?? .none,
                                     defaults: defaults, metrics: metrics, logger: logger)
        // Request bodies are charged to it by the HTTP server, parsed JSON and decoded tensors by the API.
        let memoryBudget = MemoryBudget(limit: configuration.memoryBudgetBytes ?? DaemonConfiguration.defaultMemoryBudgetBytes)
        let api = ServingAPI(registry: registry, metrics: metrics, logger: logger, accessLog: configuration.accessLog ?? false,
                             repositoryRestriction: configuration.repositoryAPIRestriction.flatMap(RequiredHeader.init(parsing:)),
                             memoryBudget: memoryBudget)
        let httpLogger = logger
        let server = try reportingErrors {
            try HTTPServer.start(HTTPServer.Configuration(
                host: configuration.host ?? DaemonConfiguration.defaultHost,
                port: UInt16(configuration.port ?? DaemonConfiguration.defaultPort),
                threadCount: configuration.httpThreads ?? Parallelism.availableCores,
                idleTimeout: .seconds(configuration.idleTimeoutSeconds ?? DaemonConfiguration.defaultIdleTimeoutSeconds),
                headerTimeout: .seconds(configuration.headerTimeoutSeconds ?? DaemonConfiguration.defaultHeaderTimeoutSeconds),
                maxConnections: configuration.maxConnections ?? DaemonConfiguration.defaultMaxConnections,
                maxConnectionsPerClient: configuration.maxConnectionsPerClient ?? DaemonConfiguration.defaultMaxConnectionsPerClient,
                maxBodySize: configuration.maxBodyBytes ?? DaemonConfiguration.defaultMaxBodyBytes,
                memoryBudget: memoryBudget,
                log: { message in httpLogger.warning("http: \(message)") }), handler: api)
        }
        let address = "\(configuration.host ?? DaemonConfiguration.defaultHost) port \(server.port)"
        logger.info("listening on \(address); loading models")
        let summaryLogger = logger
        let intraOp = defaults.threads.map(String.init) ?? "cores ÷ instances"
        DispatchQueue.global(qos: .userInitiated).async {
            do {
                try registry.loadAll()
            } catch {
                summaryLogger.critical("model loading failed: \(error)")
            }
            Self.logSummary(registry, logger: summaryLogger, address: address, intraOpThreads: intraOp)
            SystemdNotifier.notify("READY=1\nSTATUS=serving \(registry.modelNames.count) models on \(address)")
        }
        let controlMode = configuration.modelControlMode ?? .none
        let reloader = RepositoryReloader(
            registry: registry,
            pollInterval: controlMode == .poll ? configuration.repositoryPollSeconds ?? DaemonConfiguration.defaultRepositoryPollSeconds : nil,
            logger: logger)
        let signal = await Self.terminationSignal()
        withExtendedLifetime(reloader) {}
        logger.info("received signal \(signal): not ready; draining for \(configuration.drainSeconds ?? DaemonConfiguration.defaultDrainSeconds) s")
        registry.beginDrain()
        SystemdNotifier.notify("STOPPING=1")
        try? await Task.sleep(for: .seconds(configuration.drainSeconds ?? DaemonConfiguration.defaultDrainSeconds))
        await server.stop(gracePeriod: .seconds(10))
        logger.info("stopped")
    }

    private static func logSummary(_ registry: ModelRegistry, logger: Logger, address: String, intraOpThreads: String) {
        var lines: [String] = []
        for name in registry.modelNames {
            let threads = registry.loadedModels(named: name).first.map { " \($0.intraOpThreads) threads" } ?? ""
            let versions = registry.statuses(of: name).map { status in
                "\(status.version) \(status.state.rawValue)" + (status.error.map { " (\($0.message))" } ?? "")
            }
            lines.append("\(name): " + versions.joined(separator: ", ") + threads)
        }
        logger.info("ready: \(lines.joined(separator: "; ")) | OpenBLAS core \(BLAS.coreName) (\(BLAS.coreOrigin)) | intra-op threads \(intraOpThreads), compute threads \(Parallelism.computeThreadBudget) (\(Parallelism.availableCores) cores) | \(address)")
    }

    /// Waits for SIGTERM or SIGINT; returns which.
    private static func terminationSignal() async -> Int32 {
        let signals = [SIGTERM, SIGINT]
        for number in signals { signal(number, SIG_IGN) }
        let waiter = SignalWaiter()
        let sources = signals.map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { waiter.deliver(number) }
            source.resume()
            return source
        }
        let number = await waiter.wait()
        for source in sources { source.cancel() }
        return number
    }
}

/// Hands the first signal delivered to whoever waits for it (before or after it arrives).
private final class SignalWaiter: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Int32, Never>?
        var received: Int32?
    }
    private let state = Mutex(State())

    func deliver(_ number: Int32) {
        let continuation = state.withLock { state -> CheckedContinuation<Int32, Never>? in
            guard state.received == nil else { return nil }
            state.received = number
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(returning: number)
    }

    func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            let received = state.withLock { state -> Int32? in
                if state.received == nil { state.continuation = continuation }
                return state.received
            }
            if let received { continuation.resume(returning: received) }
        }
    }
}
