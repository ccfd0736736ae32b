extension OperatorRegistry {
    /// Every operator family; each lists its operators one per line. Families of other domains
    /// than `ai.onnx` come last (ai.onnx.ml's definitions name their domain), or sit in
    /// `domainDefinitions`.
    static let allDefinitions: [OperatorDefinition] =
        UnaryOperators.definitions
        + ActivationOperators.definitions
        + BinaryOperators.definitions
        + CastOperators.definitions
        + SoftmaxOperators.definitions
        + AttentionOperators.definitions
        + TransformerOperators.definitions
        + MicrosoftTransformerOperators.definitions
        + ReductionOperators.definitions
        + NormalizationOperators.definitions
        + ConvolutionOperators.definitions
        + MatrixOperators.definitions
        + PoolingOperators.definitions
        + ShapeOperators.definitions
        + DataMovementOperators.definitions
        + IndexingOperators.definitions
        + GeneratorOperators.definitions
        + ResizeOperators.definitions
        + QuantizationOperators.definitions
        + DetectionOperators.definitions
        + VisionOperators.definitions
        + SignalOperators.definitions
        + TextOperators.definitions
        + RecurrentOperators.definitions
        + ControlFlowOperators.definitions
        + SequenceOperators.definitions
        + SignalWindowOperators.definitions
        + LinearAlgebraOperators.definitions
        + LossOperators.definitions
        + RandomOperators.definitions
        + [Unique.definition, Einsum.definition, BitCast.definition, MaxUnpool.definition]
        + ClassicMLOperators.definitions  // ai.onnx.ml

    /// Operators of other domains: one table per domain, each listing its operators one per line
    /// (their definitions leave `domain` unset; the table's key is their domain).
    static let domainDefinitions: [String: [OperatorDefinition]] = [
        MicrosoftOperators.domain: MicrosoftOperators.definitions,
        TrainingOperators.domain: TrainingOperators.definitions,
    ]
}
