extension OperatorRegistry {
    /// Every operator family; each lists its operators one per line.
    static let allDefinitions: [OperatorDefinition] =
        ElementwiseOperators.definitions
        + ConvolutionOperators.definitions
        + MatrixOperators.definitions
        + PoolingOperators.definitions
}
