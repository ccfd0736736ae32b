/// How the set of loaded models may change after start-up, as Triton's `--model-control-mode`.
public enum ModelControlMode: String, Sendable, Codable, CaseIterable {
    /// The repository is read once, at start; the repository API is off. The default: loading
    /// a model means running a stranger's graph, so nothing outside the host may trigger it.
    case none
    /// The repository is read at start, then rescanned every `repository_poll_seconds`: new
    /// versions, replaced files and changed configs load beside what serves and swap in; removed
    /// versions and models retire. The repository API stays off.
    case poll
    /// Every model is loaded at start (as Triton's `--load-model=*`); then models load and unload
    /// only through the repository API (`/v2/repository/...`), which this mode turns on.
    case explicit

    /// True when the repository API (index, load, unload) answers.
    public var allowsRepositoryAPI: Bool { self == .explicit }
}
