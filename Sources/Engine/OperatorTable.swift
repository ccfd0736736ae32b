extension OperatorRegistry {
    /// Every operator family; each lists its operators one per line.
    static let allDefinitions: [OperatorDefinition] =
        ElementwiseOperators.definitions
        + ShapeOperators.definitions
        + DataMovementOperators.definitions
        + IndexingOperators.definitions
        + GeneratorOperators.definitions
        + ResizeOperators.definitions
}
