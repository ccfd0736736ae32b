import Foundation
import Yams

/// Which versions of a model to serve (TF Serving's and Triton's `version_policy`).
public enum VersionPolicy: Sendable, Equatable {
    /// The newest `count` versions (default: 1).
    case latest(Int)
    /// Every version in the repository.
    case all
    /// Exactly these versions.
    case specific([Int])

    /// The versions to serve out of those present.
    public func select(from available: [Int]) -> [Int] {
        let sorted = available.sorted()
        switch self {
        case .latest(let count): return Array(sorted.suffix(max(count, 0)))
        case .all: return sorted
        case .specific(let versions): return versions.sorted()
        }
    }
}

extension VersionPolicy: Codable {
    private enum Key: String, CodingKey { case latest, all, specific }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        let keys = container.allKeys
        guard keys.count == 1, let key = keys.first else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "version_policy needs exactly one of latest, all, specific"))
        }
        switch key {
        case .latest:
            let count = try container.decode(Int.self, forKey: .latest)
            guard count >= 1 else {
                throw DecodingError.dataCorruptedError(forKey: .latest, in: container, debugDescription: "latest must be at least 1")
            }
            self = .latest(count)
        case .all:
            self = .all
        case .specific:
            let versions = try container.decode([Int].self, forKey: .specific)
            guard !versions.isEmpty, versions.allSatisfy({ $0 > 0 }) else {
                throw DecodingError.dataCorruptedError(forKey: .specific, in: container, debugDescription: "specific needs positive versions")
            }
            self = .specific(versions)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        switch self {
        case .latest(let count): try container.encode(count, forKey: .latest)
        case .all: try container.encode(true, forKey: .all)
        case .specific(let versions): try container.encode(versions, forKey: .specific)
        }
    }
}

/// Dynamic batching settings of one model (server-wide defaults come from the daemon config).
public struct BatchingConfiguration: Codable, Sendable, Equatable {
    /// Group concurrent requests along the batch axis.
    public var enabled: Bool?
    /// Most rows in one engine call.
    public var maxBatchSize: Int?
    /// Longest a formed batch waits for more requests, in microseconds (0: never waits).
    public var maxQueueDelayMicroseconds: Int?
    /// Batch sizes to prefer when cutting a batch.
    public var preferredBatchSizes: [Int]?
    /// Most requests waiting; beyond it requests are rejected at once.
    public var maxQueueLength: Int?
    /// Deadline for a request that sets none, in milliseconds (0: none).
    public var defaultDeadlineMilliseconds: Int?
    /// Batches that may run at once.
    public var instances: Int?

    public init(enabled: Bool? = nil, maxBatchSize: Int? = nil, maxQueueDelayMicroseconds: Int? = nil,
                preferredBatchSizes: [Int]? = nil, maxQueueLength: Int? = nil,
                defaultDeadlineMilliseconds: Int? = nil, instances: Int? = nil) {
        self.enabled = enabled
        self.maxBatchSize = maxBatchSize
        self.maxQueueDelayMicroseconds = maxQueueDelayMicroseconds
        self.preferredBatchSizes = preferredBatchSizes
        self.maxQueueLength = maxQueueLength
        self.defaultDeadlineMilliseconds = defaultDeadlineMilliseconds
        self.instances = instances
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case enabled
        case maxBatchSize = "max_batch_size"
        case maxQueueDelayMicroseconds = "max_queue_delay_microseconds"
        case preferredBatchSizes = "preferred_batch_sizes"
        case maxQueueLength = "max_queue_length"
        case defaultDeadlineMilliseconds = "default_deadline_ms"
        case instances
    }

    /// These settings with every unset field taken from `defaults`.
    public func merged(over defaults: BatchingConfiguration) -> BatchingConfiguration {
        BatchingConfiguration(
            enabled: enabled ?? defaults.enabled,
            maxBatchSize: maxBatchSize ?? defaults.maxBatchSize,
            maxQueueDelayMicroseconds: maxQueueDelayMicroseconds ?? defaults.maxQueueDelayMicroseconds,
            preferredBatchSizes: preferredBatchSizes ?? defaults.preferredBatchSizes,
            maxQueueLength: maxQueueLength ?? defaults.maxQueueLength,
            defaultDeadlineMilliseconds: defaultDeadlineMilliseconds ?? defaults.defaultDeadlineMilliseconds,
            instances: instances ?? defaults.instances)
    }
}

/// Settings of one model, from `config.yaml` (or `config.json`) beside its version folders.
public struct ModelConfiguration: Codable, Sendable, Equatable {
    /// Versions to serve (default: the latest one).
    public var versionPolicy: VersionPolicy?
    /// Label → version.
    public var labels: [String: Int]?
    /// Intra-op threads per run (default: the daemon's setting).
    public var threads: Int?
    /// Run synthetic requests after loading, before reporting ready (default: true).
    public var warmup: Bool?
    /// Run the engine's graph optimisations (default: true).
    public var optimizations: Bool?
    /// Flush denormal floats to zero while running (default: false).
    public var flushDenormals: Bool?
    /// Most working memory one engine run may take, estimated from its shapes before it starts;
    /// larger requests get 413 (default: the daemon's setting).
    public var runMemoryBudgetBytes: Int?
    /// Dynamic batching.
    public var batching: BatchingConfiguration?

    public init(versionPolicy: VersionPolicy? = nil, labels: [String: Int]? = nil, threads: Int? = nil,
                warmup: Bool? = nil, optimizations: Bool? = nil, flushDenormals: Bool? = nil,
                runMemoryBudgetBytes: Int? = nil, batching: BatchingConfiguration? = nil) {
        self.versionPolicy = versionPolicy
        self.labels = labels
        self.threads = threads
        self.warmup = warmup
        self.optimizations = optimizations
        self.flushDenormals = flushDenormals
        self.runMemoryBudgetBytes = runMemoryBudgetBytes
        self.batching = batching
    }

    enum CodingKeys: String, CodingKey {
        case versionPolicy = "version_policy"
        case flushDenormals = "flush_denormals"
        case runMemoryBudgetBytes = "run_memory_budget_bytes"
        case labels, threads, warmup, optimizations, batching
    }

    /// File names looked for beside the version folders, in order.
    public static let fileNames = ["config.yaml", "config.yml", "config.json"]

    /// Parses YAML or JSON text (JSON is YAML); unknown keys are errors, so typos do not pass silently.
    public static func parse(_ text: String, source: String) throws(ServingError) -> ModelConfiguration {
        try ConfigurationText.decode(ModelConfiguration.self, from: text, source: source)
    }
}

/// A configuration section that names the keys it accepts, so that a misspelt key is an error
/// instead of a silently ignored setting.
public protocol ConfigurationSection: Decodable {
    /// Accepted keys, each with the section type it holds when it is a nested section.
    static var keys: [String: (any ConfigurationSection.Type)?] { get }
}

/// Decoding of YAML/JSON configuration text with one-line errors that name the file and key.
public enum ConfigurationText {
    public static func decode<T: ConfigurationSection>(_ type: T.Type, from text: String, source: String) throws(ServingError) -> T {
        do {
            let node = try Yams.compose(yaml: text)
            try rejectUnknownKeys(node, section: type, path: [])
            return try YAMLDecoder().decode(type, from: node == nil ? "{}" : text)
        } catch let error as ServingError {
            throw ServingError(.invalidArgument, "\(source): \(error.message)")
        } catch let error as DecodingError {
            throw .invalidArgument("\(source): \(describe(error))")
        } catch {
            throw .invalidArgument("\(source): \(error)".replacingOccurrences(of: "\n", with: " "))
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String { keys.map(\.stringValue).joined(separator: ".") }
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            let location = path(context.codingPath)
            return (location.isEmpty ? "" : location + ": ") + context.debugDescription
        case .keyNotFound(let key, let context):
            return "missing key '\(path(context.codingPath + [key]))'"
        @unknown default:
            return "\(error)"
        }
    }

    private static func rejectUnknownKeys(_ node: Node?, section: any ConfigurationSection.Type, path: [String]) throws(ServingError) {
        guard let mapping = node?.mapping else { return }
        let keys = section.keys
        for (key, value) in mapping {
            guard let name = key.string else { continue }
            guard let nested = keys[name] else {
                throw .invalidArgument("unknown key '\((path + [name]).joined(separator: "."))'; known keys: \(keys.keys.sorted().joined(separator: ", "))")
            }
            if let nested { try rejectUnknownKeys(value, section: nested, path: path + [name]) }
        }
    }
}

extension ModelConfiguration: ConfigurationSection {
    public static var keys: [String: (any ConfigurationSection.Type)?] {
        ["version_policy": VersionPolicy.self, "labels": nil, "threads": nil, "warmup": nil,
         "optimizations": nil, "flush_denormals": nil, "run_memory_budget_bytes": nil, "batching": BatchingConfiguration.self]
    }
}

extension VersionPolicy: ConfigurationSection {
    public static var keys: [String: (any ConfigurationSection.Type)?] { ["latest": nil, "all": nil, "specific": nil] }
}

extension BatchingConfiguration: ConfigurationSection {
    public static var keys: [String: (any ConfigurationSection.Type)?] {
        Dictionary(uniqueKeysWithValues: CodingKeys.allCases.map { ($0.rawValue, nil) })
    }
}
