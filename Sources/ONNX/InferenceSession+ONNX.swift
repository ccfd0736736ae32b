public import Engine

extension InferenceSession {
    /// Loads the `.onnx` file at `path` and builds a session for it.
    public convenience init(contentsOf path: String, options: Options = Options()) throws {
        try self.init(model: ModelLoader.load(contentsOf: path), options: options)
    }
}
