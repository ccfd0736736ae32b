extension OperatorRegistry {
    /// Every operator family; each lists its operators one per line.
    static let allDefinitions: [OperatorDefinition] =
        UnaryOperators.definitions
        + ActivationOperators.definitions
        + BinaryOperators.definitions
        + CastOperators.definitions
        + SoftmaxOperators.definitions
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
}
