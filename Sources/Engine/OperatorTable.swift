extension OperatorRegistry {
    /// Every operator family; each lists its operators one per line. Families of other domains
    /// than `ai.onnx` come last, one table per domain.
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
        + TextOperators.definitions
        + RecurrentOperators.definitions
        + ControlFlowOperators.definitions
        + SignalWindowOperators.definitions
        + LinearAlgebraOperators.definitions
        + [Unique.definition, Einsum.definition]
        + ClassicMLOperators.definitions  // ai.onnx.ml
}
