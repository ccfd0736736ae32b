import Engine
import Foundation
import Kernels
import ONNX
public import Logging
import Synchronization

/// Lifecycle state of a model version, as TF Serving reports it.
public enum ModelState: String, Sendable {
    case start = "START"
    case loading = "LOADING"
    case available = "AVAILABLE"
    case unloading = "UNLOADING"
    case end = "END"
}

/// State of one version, with the error that ended it, if any.
public struct VersionStatus: Sendable {
    public var version: Int
    public var state: ModelState
    /// Why the version is not available (nil when it is, or is still loading).
    public var error: ServingError?
}

/// Server-wide defaults that model config files override.
public struct ServingDefaults: Sendable {
    /// Intra-op threads per run (nil: all cores).
    public var threads: Int?
    /// Warm models up before reporting ready.
    public var warmup: Bool
    /// Run graph optimisations.
    public var optimizations: Bool
    /// Flush denormal floats to zero while running.
    public var flushDenormals: Bool
    /// Batching settings for models that do not set their own.
    public var batching: BatchingConfiguration
    /// Most working memory one engine run may take (nil: no limit).
    public var runMemoryBudgetBytes: Int?

    public init(threads: Int? = nil, warmup: Bool = true, optimizations: Bool = true, flushDenormals: Bool = false,
                batching: BatchingConfiguration = BatchingConfiguration(),
                runMemoryBudgetBytes: Int? = ServingDefaults.defaultRunMemoryBudgetBytes) {
        self.threads = threads
        self.warmup = warmup
        self.optimizations = optimizations
        self.flushDenormals = flushDenormals
        self.batching = batching
        self.runMemoryBudgetBytes = runMemoryBudgetBytes
    }

    /// The engine's default per-run budget: a quarter of physical memory.
    public static var defaultRunMemoryBudgetBytes: Int? { InferenceSession.Options.defaultWorkingMemoryBudget }
}

/// Every model the daemon serves: loads them (at start, or on request), keeps their sessions,
/// answers "which loaded model serves name/version/label", and tracks readiness.
public final class ModelRegistry: Sendable {
    private struct VersionRecord {
        var state: ModelState
        var error: ServingError?
        var model: ServedModel?
        /// The files of the last load attempt, successful or not: a rescan loads the version again
        /// only when they differ (nil: load at the next chance).
        var fingerprint: VersionFingerprint? = nil
    }

    private struct ModelRecord {
        var source: ModelSource
        var versions: [Int: VersionRecord] = [:]
    }

    private struct State {
        var models: [String: ModelRecord] = [:]
        var startupComplete = false
        var draining = false
    }

    private let state = Mutex(State())
    /// Held while loading: start-up, rescans and the repository API load one model at a time.
    private let loading = Mutex(())
    /// The repository models come from (nil when only explicit `--model` files are served).
    public let repository: ModelRepository?
    private let explicit: [ModelSource]
    /// Whether models may be loaded and unloaded after start-up, and how.
    public let controlMode: ModelControlMode
    private let defaults: ServingDefaults
    private let metrics: ServingMetrics
    private let logger: Logger

    public init(repository: ModelRepository?, explicit: [ModelSource], controlMode: ModelControlMode = .none,
                defaults: ServingDefaults, metrics: ServingMetrics, logger: Logger) {
        self.repository = repository
        self.explicit = explicit
        self.controlMode = controlMode
        self.defaults = defaults
        self.metrics = metrics
        self.logger = logger
    }

    // MARK: Loading

    /// Loads every model of the repository and every explicit one, then marks start-up complete.
    /// A model that fails is recorded with its reason; the others are served.
    public func loadAll() throws(ServingError) {
        try loading.withLock { (_: inout ()) throws(ServingError) -> Void in
            for source in try currentSources() { load(source) }
        }
        state.withLock { $0.startupComplete = true }
        updateLoadedGauge()
    }

    /// Reads the repository again (the poll timer and SIGHUP): a new version folder, a replaced
    /// `model.onnx` or a changed config file loads and warms beside what serves, then swaps in; a
    /// load that fails leaves the old version serving; a removed version folder stops taking new
    /// requests (those queued finish). In `none` and `poll` modes models added to the repository
    /// load and removed ones retire; in `explicit` mode only the models loaded now are rescanned.
    public func rescan() {
        loading.withLock { _ in
            let sources: [ModelSource]
            do throws(ServingError) {
                sources = try currentSources()
            } catch {
                logger.error("repository rescan failed; serving what is loaded", metadata: ["reason": "\(error.message)"])
                return
            }
            let known = state.withLock { state in
                state.models.filter { $0.value.versions.values.contains { $0.model != nil } }.map(\.key)
            }
            for source in sources where controlMode != .explicit || known.contains(source.name) {
                load(source)
            }
            if controlMode != .explicit {
                let present = Set(sources.map(\.name))
                for name in known where !present.contains(name) {
                    retire(name, versions: { _ in true })
                    logger.info("model removed from the repository: unloaded", metadata: ["model": "\(name)"])
                }
            }
        }
        updateLoadedGauge()
    }

    /// The explicit models and the repository's, as they are on disk now, sorted by name.
    private func currentSources() throws(ServingError) -> [ModelSource] {
        var sources = explicit.map { $0.reread() }
        if let repository {
            let found = try repository.scan()
            for source in found where !sources.contains(where: { $0.name == source.name }) { sources.append(source) }
        }
        return sources.sorted { $0.name < $1.name }
    }

    /// Loads (or reloads) the repository model called `name`. New versions load before old ones
    /// are dropped, so the model keeps answering throughout.
    public func load(name: String) throws(ServingError) {
        try checkRepositoryControl()
        guard let repository else { throw .failedPrecondition("no model repository is configured") }
        let source = try repository.source(named: name)
        loading.withLock { _ in load(source) }
        updateLoadedGauge()
        if let failure = statuses(of: name).compactMap(\.error).first, statuses(of: name).allSatisfy({ $0.state != .available }) {
            throw failure
        }
    }

    /// Stops serving every version of `name`. Requests already queued finish.
    public func unload(name: String) throws(ServingError) {
        try checkRepositoryControl()
        let found = state.withLock { state -> Bool in
            guard var record = state.models[name] else { return false }
            for version in record.versions.keys {
                record.versions[version] = VersionRecord(state: .end, error: nil, model: nil)
            }
            state.models[name] = record
            return true
        }
        guard found else { throw .notFound("model '\(name)' is not loaded") }
        logger.info("unloaded model", metadata: ["model": "\(name)"])
        updateLoadedGauge()
    }

    /// Throws 403's error unless the control mode lets the repository API list, load and unload
    /// models after start-up.
    public func checkRepositoryControl() throws(ServingError) {
        guard controlMode.allowsRepositoryAPI else {
            throw .permissionDenied("the model repository API (index, load, unload) is disabled: model_control_mode is '\(controlMode.rawValue)'; start the daemon with model_control_mode: explicit to enable it")
        }
    }

    /// Brings one model in line with `source` (the caller holds `loading`). Each wanted version
    /// whose files changed since its last attempt loads beside what serves and swaps in when warm.
    private func load(_ source: ModelSource) {
        let policy = source.configuration.versionPolicy ?? .latest(1)
        let wanted = policy.select(from: Array(source.versions.keys))
        // A version whose folder is gone stops taking requests now; those queued finish (they hold the model).
        retire(source.name, versions: { version in version != 0 && source.versions[version] == nil })
        let hadNoVersions = state.withLock { state in
            // The record keeps the old source (labels) until the new versions serve, below.
            var record = state.models[source.name] ?? ModelRecord(source: source)
            let marked = record.versions.removeValue(forKey: 0) != nil
            for version in wanted where record.versions[version] == nil {
                record.versions[version] = VersionRecord(state: .start, error: nil, model: nil)
            }
            state.models[source.name] = record
            return marked
        }
        // Labels of a config that cannot be read stay as they were.
        defer { if source.problem == nil { state.withLock { $0.models[source.name]?.source = source } } }
        if wanted.isEmpty {
            if !hadNoVersions { logger.error("model has no versions to serve", metadata: ["model": "\(source.name)"]) }
            state.withLock { $0.models[source.name]?.versions[0] = VersionRecord(state: .end, error: .notFound("no version folder with \(ModelRepository.modelFileName) found"), model: nil) }
            return
        }
        for version in wanted {
            guard let path = source.versions[version] else { continue }
            let fingerprint = VersionFingerprint(modelPath: path, configuration: source.configurationFingerprint)
            let previous = state.withLock { $0.models[source.name]?.versions[version] }
            if previous?.fingerprint == fingerprint { continue }  // nothing changed since the last attempt
            let replacing = previous?.model != nil
            if !replacing { setState(source.name, version, .loading) }
            do throws(ServingError) {
                if let problem = source.problem { throw ServingError.invalidArgument(problem) }
                guard let contents = try Self.read(path, expecting: fingerprint.model) else {
                    logger.warning("model file changed while it was read (still being written?); loading it once it stops changing",
                                   metadata: ["model": "\(source.name)", "version": "\(version)", "path": "\(path)"])
                    state.withLock { state in
                        guard var record = state.models[source.name]?.versions[version] else { return }
                        record.fingerprint = nil
                        if record.model == nil { record.state = .start }
                        state.models[source.name]?.versions[version] = record
                    }
                    continue
                }
                let model = try makeModel(source, version: version, path: path, contents: contents)
                state.withLock {
                    $0.models[source.name]?.versions[version] = VersionRecord(state: .available, error: nil, model: model, fingerprint: fingerprint)
                }
                logger.info(replacing ? "model version reloaded" : "model version available", metadata: [
                    "model": "\(source.name)", "version": "\(version)",
                    "load_ms": "\(Self.milliseconds(model.loadDuration))",
                    "threads": "\(model.intraOpThreads)",
                    "batching": "\(model.policy.enabled ? "max \(model.policy.maxBatchSize)" : "off")",
                ])
            } catch {
                fail(source.name, version: version, error: error, fingerprint: fingerprint)
            }
        }
        // Versions the policy no longer wants retire once every wanted one serves: while a new
        // version fails to load, the one before it goes on serving.
        let complete = state.withLock { state in wanted.allSatisfy { state.models[source.name]?.versions[$0]?.model != nil } }
        if complete { retire(source.name, versions: { !wanted.contains($0) }) }
    }

    /// Stops serving the versions of `name` that `selected` picks; requests already queued finish.
    private func retire(_ name: String, versions selected: (Int) -> Bool) {
        let retired = state.withLock { state -> [Int] in
            guard var record = state.models[name] else { return [] }
            let versions = record.versions.filter { selected($0.key) && $0.value.model != nil }.map(\.key)
            for version in versions { record.versions[version] = VersionRecord(state: .end, error: nil, model: nil) }
            state.models[name] = record
            return versions
        }
        for version in retired.sorted() {
            logger.info("model version retired", metadata: ["model": "\(name)", "version": "\(version)"])
        }
    }

    /// The file's bytes, or nil when it changed while being read (a writer still at work). Read
    /// into memory rather than mapped: a file truncated under a mapping would kill the daemon.
    private static func read(_ path: String, expecting fingerprint: FileFingerprint?) throws(ServingError) -> ModelFileContents? {
        guard let fingerprint else { throw .notFound("\(path) cannot be read") }
        let contents: ModelFileContents
        do {
            contents = try ModelFileContents(reading: path)
        } catch {
            throw .invalidArgument("\(error)")
        }
        return FileFingerprint(path: path) == fingerprint && Int64(contents.count) == fingerprint.size ? contents : nil
    }

    private func makeModel(_ source: ModelSource, version: Int, path: String, contents: ModelFileContents) throws(ServingError) -> ServedModel {
        let configuration = source.configuration
        let batching = (configuration.batching ?? BatchingConfiguration()).merged(over: defaults.batching)
        let policy = BatchPolicy(
            enabled: batching.enabled ?? true,
            maxBatchSize: batching.maxBatchSize ?? 32,
            maxQueueDelay: .microseconds(batching.maxQueueDelayMicroseconds ?? 0),
            preferredBatchSizes: batching.preferredBatchSizes ?? [],
            maxQueueLength: batching.maxQueueLength ?? 1024,
            defaultDeadline: (batching.defaultDeadlineMilliseconds ?? 0) > 0 ? .milliseconds(batching.defaultDeadlineMilliseconds!) : nil,
            instances: batching.instances ?? 1)
        // Unless told otherwise, instances × threads stay within the cores.
        let threads = configuration.threads ?? defaults.threads ?? max(1, Parallelism.computeThreadBudget / policy.instances)
        let options = InferenceSession.Options(intraOpThreads: threads,
                                               optimizations: configuration.optimizations ?? defaults.optimizations,
                                               flushDenormals: configuration.flushDenormals ?? defaults.flushDenormals,
                                               workingMemoryBudget: configuration.runMemoryBudgetBytes ?? defaults.runMemoryBudgetBytes)
        let model = try ServedModel(name: source.name, version: version, path: path, contents: contents, options: options,
                                    policy: policy, metrics: metrics)
        if configuration.warmup ?? defaults.warmup {
            try model.warmUp()
        }
        return model
    }

    private func setState(_ name: String, _ version: Int, _ newState: ModelState) {
        state.withLock { $0.models[name]?.versions[version]?.state = newState }
    }

    /// Records a failed load: a version that was serving goes on serving (its status carries the
    /// error); one that was not ends with it.
    private func fail(_ name: String, version: Int, error: ServingError, fingerprint: VersionFingerprint) {
        state.withLock { state in
            guard var record = state.models[name]?.versions[version] else { return }
            record.error = error
            record.fingerprint = fingerprint
            if record.model == nil { record.state = .end }
            state.models[name]?.versions[version] = record
        }
        logger.error("model failed to load", metadata: [
            "model": "\(name)", "version": "\(version)", "reason": "\(error.message)",
            "serving": "\(loadedModels(named: name).map(\.version))",
        ])
    }

    private func updateLoadedGauge() {
        metrics.setModelsLoaded(state.withLock { state in
            state.models.values.reduce(0) { $0 + $1.versions.values.filter { $0.state == .available }.count }
        })
    }

    private static func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }

    // MARK: Readiness

    /// True once start-up loading has finished and no shutdown has begun.
    public var isReady: Bool { state.withLock { $0.startupComplete && !$0.draining } }

    /// Reports not-ready from now on (SIGTERM): load balancers stop sending traffic.
    public func beginDrain() { state.withLock { $0.draining = true } }

    // MARK: Lookup

    /// Names of the models known (loaded or failed), sorted.
    public var modelNames: [String] { state.withLock { $0.models.keys.sorted() } }

    /// Every version's status for a model, newest first; empty when the model is unknown.
    public func statuses(of name: String) -> [VersionStatus] {
        state.withLock { state in
            guard let record = state.models[name] else { return [] }
            return record.versions.sorted { $0.key > $1.key }.map { VersionStatus(version: $0.key, state: $0.value.state, error: $0.value.error) }
        }
    }

    /// The available versions of a model, oldest first.
    public func loadedModels(named name: String) -> [ServedModel] {
        state.withLock { state in
            (state.models[name]?.versions ?? [:]).sorted { $0.key < $1.key }.compactMap(\.value.model)
        }
    }

    /// Labels of a model (label → version), from its config.
    public func labels(of name: String) -> [String: Int] {
        state.withLock { $0.models[name]?.source.configuration.labels ?? [:] }
    }

    /// The loaded model serving `name`, at `version` or `label` if given (not both), else the
    /// newest available version.
    public func resolve(name: String, version: Int? = nil, label: String? = nil) throws(ServingError) -> ServedModel {
        try state.withLock { (state) throws(ServingError) -> ServedModel in
            guard let record = state.models[name] else {
                throw .notFound("Servable not found for request: \(Self.describe(name, version, label))")
            }
            var wanted = version
            if let label {
                guard version == nil else { throw .invalidArgument("a request may name a version or a label, not both") }
                guard let labelled = record.source.configuration.labels?[label] else {
                    throw .notFound("Unrecognized servable version label: \(label)")
                }
                wanted = labelled
            }
            if let wanted {
                guard let model = record.versions[wanted]?.model else {
                    throw .notFound("Servable not found for request: \(Self.describe(name, wanted, nil))")
                }
                return model
            }
            guard let latest = record.versions.filter({ $0.value.model != nil }).max(by: { $0.key < $1.key })?.value.model else {
                let reason = record.versions.values.compactMap(\.error).first.map { " (\($0.message))" } ?? ""
                throw .notFound("Servable not found for request: \(Self.describe(name, nil, nil))\(reason)")
            }
            return latest
        }
    }

    private static func describe(_ name: String, _ version: Int?, _ label: String?) -> String {
        if let version { return "Specific(\(name), \(version))" }
        if let label { return "Label(\(name), \(label))" }
        return "Latest(\(name))"
    }
}
