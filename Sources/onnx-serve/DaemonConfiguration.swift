import API
import Foundation
import Serving

/// The daemon's settings: the config file (YAML or JSON), then command-line flags on top.
/// Every key is documented in the README ("Configuration").
struct DaemonConfiguration: Codable, Equatable {
    var host: String?
    var port: Int?
    var modelRepository: String?
    var models: [String: String]?
    var httpThreads: Int?
    var maxConnections: Int?
    var maxConnectionsPerClient: Int?
    var idleTimeoutSeconds: Int?
    var headerTimeoutSeconds: Int?
    var maxBodyBytes: Int?
    var memoryBudgetBytes: Int?
    var runMemoryBudgetBytes: Int?
    var intraOpThreads: Int?
    var computeThreads: Int?
    var warmup: Bool?
    var optimizations: Bool?
    var flushDenormals: Bool?
    var accessLog: Bool?
    var logLevel: String?
    var drainSeconds: Double?
    var batching: BatchingConfiguration?
    var modelControlMode: ModelControlMode?
    var repositoryAPIRestriction: String?
    var repositoryPollSeconds: Double?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case host, port, models, warmup, optimizations, batching
        case modelRepository = "model_repository"
        case httpThreads = "http_threads"
        case maxConnections = "max_connections"
        case maxConnectionsPerClient = "max_connections_per_client"
        case idleTimeoutSeconds = "idle_timeout_seconds"
        case headerTimeoutSeconds = "header_timeout_seconds"
        case maxBodyBytes = "max_body_bytes"
        case memoryBudgetBytes = "memory_budget_bytes"
        case runMemoryBudgetBytes = "run_memory_budget_bytes"
        case intraOpThreads = "intra_op_threads"
        case computeThreads = "compute_threads"
        case flushDenormals = "flush_denormals"
        case accessLog = "access_log"
        case logLevel = "log_level"
        case drainSeconds = "drain_seconds"
        case modelControlMode = "model_control_mode"
        case repositoryAPIRestriction = "repository_api_restriction"
        case repositoryPollSeconds = "repository_poll_seconds"
    }

    // MARK: Defaults

    static let defaultHost = "::"
    static let defaultPort = 8501
    static let defaultMaxConnections = 1024
    static let defaultMaxConnectionsPerClient = 256
    static let defaultIdleTimeoutSeconds = 30
    static let defaultHeaderTimeoutSeconds = 10
    static let defaultMaxBodyBytes = 64 << 20

    /// A quarter of the memory this process may use: physical memory, or the cgroup's limit
    /// when that is lower. Models and the engine's working memory need the rest.
    static var defaultMemoryBudgetBytes: Int {
        let physical = sysconf(Int32(_SC_PHYS_PAGES)).multipliedReportingOverflow(by: sysconf(Int32(_SC_PAGESIZE)))
        var available = physical.overflow || physical.partialValue <= 0 ? Int.max : physical.partialValue
        if let text = try? String(contentsOfFile: "/sys/fs/cgroup/memory.max", encoding: .utf8),
           let limit = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), limit > 0 {
            available = min(available, limit)
        }
        return available / 4
    }
    static let defaultDrainSeconds = 5.0
    /// As TF Serving's `--file_system_poll_wait_seconds`.
    static let defaultRepositoryPollSeconds = 1.0

    /// Reads a config file; a relative `model_repository` or model path is relative to the file.
    static func load(path: String) throws(ServingError) -> DaemonConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .invalidArgument("cannot read config file \(path): \(error.localizedDescription)")
        }
        var configuration = try ConfigurationText.decode(DaemonConfiguration.self, from: text, source: path)
        let directory = (path as NSString).deletingLastPathComponent
        func resolve(_ value: String) -> String {
            value.hasPrefix("/") || directory.isEmpty ? value : directory + "/" + value
        }
        configuration.modelRepository = configuration.modelRepository.map(resolve)
        configuration.models = configuration.models?.mapValues(resolve)
        return configuration
    }

    /// `other`'s set values replace this one's.
    func overridden(by other: DaemonConfiguration) -> DaemonConfiguration {
        var merged = self
        merged.host = other.host ?? host
        merged.port = other.port ?? port
        merged.modelRepository = other.modelRepository ?? modelRepository
        merged.models = (models ?? [:]).merging(other.models ?? [:]) { $1 }
        merged.httpThreads = other.httpThreads ?? httpThreads
        merged.maxConnections = other.maxConnections ?? maxConnections
        merged.maxConnectionsPerClient = other.maxConnectionsPerClient ?? maxConnectionsPerClient
        merged.idleTimeoutSeconds = other.idleTimeoutSeconds ?? idleTimeoutSeconds
        merged.headerTimeoutSeconds = other.headerTimeoutSeconds ?? headerTimeoutSeconds
        merged.maxBodyBytes = other.maxBodyBytes ?? maxBodyBytes
        merged.memoryBudgetBytes = other.memoryBudgetBytes ?? memoryBudgetBytes
        merged.runMemoryBudgetBytes = other.runMemoryBudgetBytes ?? runMemoryBudgetBytes
        merged.intraOpThreads = other.intraOpThreads ?? intraOpThreads
        merged.computeThreads = other.computeThreads ?? computeThreads
        merged.warmup = other.warmup ?? warmup
        merged.optimizations = other.optimizations ?? optimizations
        merged.flushDenormals = other.flushDenormals ?? flushDenormals
        merged.accessLog = other.accessLog ?? accessLog
        merged.logLevel = other.logLevel ?? logLevel
        merged.drainSeconds = other.drainSeconds ?? drainSeconds
        merged.modelControlMode = other.modelControlMode ?? modelControlMode
        merged.repositoryAPIRestriction = other.repositoryAPIRestriction ?? repositoryAPIRestriction
        merged.repositoryPollSeconds = other.repositoryPollSeconds ?? repositoryPollSeconds
        merged.batching = (other.batching ?? BatchingConfiguration()).merged(over: batching ?? BatchingConfiguration())
        return merged
    }

    /// Checks values a file or flag can get wrong.
    func validate() throws(ServingError) {
        if let port, !(0...65535).contains(port) { throw .invalidArgument("port must be 0...65535, not \(port)") }
        if let httpThreads, httpThreads < 1 { throw .invalidArgument("http_threads must be at least 1") }
        if let maxConnections, maxConnections < 1 { throw .invalidArgument("max_connections must be at least 1") }
        if let maxConnectionsPerClient, maxConnectionsPerClient < 0 {
            throw .invalidArgument("max_connections_per_client must be 0 (no limit) or more")
        }
        if let idleTimeoutSeconds, idleTimeoutSeconds < 1 { throw .invalidArgument("idle_timeout_seconds must be at least 1") }
        if let headerTimeoutSeconds, headerTimeoutSeconds < 1 { throw .invalidArgument("header_timeout_seconds must be at least 1") }
        if let maxBodyBytes, maxBodyBytes < 1 { throw .invalidArgument("max_body_bytes must be at least 1") }
        if let memoryBudgetBytes, memoryBudgetBytes < 1 { throw .invalidArgument("memory_budget_bytes must be at least 1") }
        if let runMemoryBudgetBytes, runMemoryBudgetBytes < 1 { throw .invalidArgument("run_memory_budget_bytes must be at least 1") }
        if let intraOpThreads, intraOpThreads < 0 { throw .invalidArgument("intra_op_threads must be 0 (all cores) or more") }
        if let computeThreads, computeThreads < 0 { throw .invalidArgument("compute_threads must be 0 (all cores) or more") }
        if let drainSeconds, drainSeconds < 0 { throw .invalidArgument("drain_seconds must not be negative") }
        if let logLevel, !["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logLevel) {
            throw .invalidArgument("log_level must be one of trace, debug, info, notice, warning, error, critical")
        }
        if let batching {
            if let size = batching.maxBatchSize, size < 1 { throw .invalidArgument("batching.max_batch_size must be at least 1") }
            if let delay = batching.maxQueueDelayMicroseconds, delay < 0 { throw .invalidArgument("batching.max_queue_delay_microseconds must not be negative") }
            if let length = batching.maxQueueLength, length < 1 { throw .invalidArgument("batching.max_queue_length must be at least 1") }
            if let instances = batching.instances, instances < 1 { throw .invalidArgument("batching.instances must be at least 1") }
        }
        if let repositoryAPIRestriction, RequiredHeader(parsing: repositoryAPIRestriction) == nil {
            throw .invalidArgument("repository_api_restriction must be HEADER=VALUE (a header name and a non-empty value)")
        }
        if repositoryAPIRestriction != nil && modelControlMode != .explicit {
            throw .invalidArgument("repository_api_restriction needs model_control_mode: explicit (the repository API is off otherwise)")
        }
        if let repositoryPollSeconds {
            guard repositoryPollSeconds > 0, repositoryPollSeconds <= 86_400 else {
                throw .invalidArgument("repository_poll_seconds must be more than 0 and at most 86400")
            }
            guard modelControlMode == .poll else {
                throw .invalidArgument("repository_poll_seconds needs model_control_mode: poll")
            }
        }
        if modelRepository == nil && (models ?? [:]).isEmpty {
            throw .invalidArgument("nothing to serve: give --model-repository DIR, --model NAME=PATH.onnx or a config file that sets one")
        }
    }
}

extension DaemonConfiguration: ConfigurationSection {
    static var keys: [String: (any ConfigurationSection.Type)?] {
        var keys: [String: (any ConfigurationSection.Type)?] = [:]
        for key in CodingKeys.allCases { keys[key.rawValue] = .some(nil) }
        keys["batching"] = BatchingConfiguration.self
        return keys
    }
}
