import Kernels
import Tensors

/// Pooling: MaxPool, AveragePool, LpPool and their global forms.
enum PoolingOperators {
    static let definitions: [OperatorDefinition] = [
        // MaxPool also takes int8 and uint8; the Indices output came in 8.
        OperatorDefinition("MaxPool", versions: [1, 8, 10, 11, 12, 22], contracts: { version in
            OperatorContract(inputs: [.init("X", "T")], outputs: [.init("Y", "T")] + (version < 8 ? [] : [.init("Indices", "I", .optional)]),
                             types: ["T": ElementTypes.floatingPoint.union([.int8, .uint8]), "I": [.int64]])
        }) { try Pool($0, kind: .max) },
        OperatorDefinition("AveragePool", versions: [1, 7, 10, 11, 19, 22], contract: floatingPool) {
            try Pool($0, kind: .average(countIncludePad: try $0.int("count_include_pad", default: 0) != 0))
        },
        OperatorDefinition("LpPool", versions: [1, 2, 11, 18, 22], contract: floatingPool) { try Pool($0, kind: .lp(p: try exponent($0))) },
        OperatorDefinition("GlobalMaxPool", versions: [1, 22], contract: floatingPool) { _ in GlobalPool(kind: .max) },
        OperatorDefinition("GlobalAveragePool", versions: [1, 22], contract: floatingPool) { _ in
            GlobalPool(kind: .average(countIncludePad: false))
        },
        OperatorDefinition("GlobalLpPool", versions: [1, 2, 22], contract: floatingPool) { GlobalPool(kind: .lp(p: try exponent($0))) },
    ]

    /// X of a floating-point type T to Y of T.
    static let floatingPool = OperatorContract(inputs: [.init("X", "T")], outputs: [.init("Y", "T")], types: ["T": ElementTypes.floatingPoint])

    /// LpPool's `p`: a float in version 1, an int later; a positive whole number either way.
    static func exponent(_ context: OperatorContext) throws -> Int {
        let p = try context.float("p", default: 2)
        guard p >= 1, p == p.rounded(), p < 1000 else { throw OpError("p \(p) must be a positive whole number") }
        return Int(p)
    }

    /// Runs the pooling kernel for the element type of `x`. MaxPool of 8-bit integers
    /// without indices runs the float kernel between two conversions (exact: float holds every
    /// such value, and the maximum commutes with the widening); the generic kernel was about 20×
    /// slower on a quantized ResNet's first pool.
    static func pool(_ kind: Pooling.Kind, x: Tensor, y: Tensor, indices: Tensor?, columnMajorIndices: Bool,
                     window: SpatialWindow, padsEnd: [Int], context: ExecutionContext) throws {
        if kind == .max, indices == nil, x.dataType == .int8 || x.dataType == .uint8 {
            let wide = try convert(x, to: .float, context)
            let pooled = try context.allocate(.float, y.shape)
            try pool(kind, x: wide, y: pooled, indices: nil, columnMajorIndices: columnMajorIndices, window: window,
                     padsEnd: padsEnd, context: context)
            // A window that reads only padding is -inf in float: the type's lowest value, as the
            // integer kernel gives.
            let lowest: Float = x.dataType == .int8 ? -128 : 0
            let values = pooled.mutablePointer(as: Float.self)
            for i in 0..<pooled.elementCount { values[i] = Swift.max(values[i], lowest) }
            let narrow = try convert(pooled, to: y.dataType, context)
            y.rawPointer.copyMemory(from: narrow.rawPointer, byteCount: narrow.byteCount)
            withExtendedLifetime((pooled, narrow)) {}
            return
        }
        struct Visitor: NumericVisitor {
            let kind: Pooling.Kind, x: Tensor, y: Tensor, indices: Tensor?, columnMajorIndices: Bool
            let window: SpatialWindow, padsEnd: [Int], parallelism: Parallelism
            func visit<T: NumericElement>(_ type: T.Type) {
                Pooling.forward(kind, input: x.pointer(as: T.self), output: y.mutablePointer(as: T.self),
                                indices: indices?.mutablePointer(as: Int64.self), columnMajorIndices: columnMajorIndices,
                                planes: x.shape[0] * x.shape[1], window: window, padsEnd: padsEnd, parallelism: parallelism)
            }
        }
        try requireKernel(x.dataType.visit(Visitor(kind: kind, x: x, y: y, indices: indices, columnMajorIndices: columnMajorIndices,
                                                   window: window, padsEnd: padsEnd, parallelism: context.parallelism)), x)
    }
}

/// MaxPool (with its optional Indices output), AveragePool and LpPool over 1 to 3 spatial axes.
struct Pool: Operator {
    let kind: Pooling.Kind
    let attributes: SlidingWindowAttributes
    /// MaxPool's storage_order 1: indices count the first spatial axis fastest.
    let columnMajorIndices: Bool
    let wantsIndices: Bool
    /// The window, trailing pads and output shape for the X shape of the last run.
    let windows = ShapeMemo<(window: SpatialWindow, padsEnd: [Int], shape: Shape)>()

    init(_ context: OperatorContext, kind: Pooling.Kind) throws {
        self.kind = kind
        attributes = try SlidingWindowAttributes(context, requireKernelShape: true)
        let storageOrder = try context.int("storage_order", default: 0)
        guard storageOrder == 0 || storageOrder == 1 else { throw OpError("storage_order \(storageOrder) must be 0 or 1") }
        columnMajorIndices = storageOrder == 1
        wantsIndices = context.hasOutput(1)
        if wantsIndices && kind != .max { throw OpError("only MaxPool has an Indices output") }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.first ?? nil else { return [] }
        guard let dims = x.dims else { return [TensorType(x.dataType, nil), TensorType(.int64, nil)] }
        guard dims.count >= 3 else { throw OpError("X must have rank 3 or more, not \(dims.count)") }
        let kernel = attributes.kernelShape ?? []
        guard kernel.count == dims.count - 2 else {
            throw OpError("kernel_shape \(kernel) needs \(dims.count - 2) values for input rank \(dims.count)")
        }
        let output = Array(dims.prefix(2)) + (try attributes.outputDims(input: Array(dims.dropFirst(2)), kernel: kernel))
        return [TensorType(x.dataType, output), TensorType(.int64, output)]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        guard let x = inputs.first ?? nil else { throw OpError("missing input X") }
        guard x.shape.rank >= 3 else { throw OpError.invalidArgument("X \(x.shape) must have rank 3 or more") }
        let kernel = attributes.kernelShape ?? []
        guard kernel.count == x.shape.rank - 2 else {
            throw OpError.invalidArgument("kernel_shape \(kernel) needs \(x.shape.rank - 2) values for X \(x.shape)")
        }
        let (window, padsEnd, shape) = try windows.value(x.shape) {
            let (window, padsEnd) = try attributes.window(input: Array(x.shape.dims.dropFirst(2)), kernel: kernel)
            return (window, padsEnd, Shape(Array(x.shape.dims.prefix(2)) + window.outputSize))
        }
        let y = try context.allocate(x.dataType, shape)
        let indices = try wantsIndices ? context.allocate(.int64, shape) : nil
        try PoolingOperators.pool(kind, x: x, y: y, indices: indices, columnMajorIndices: columnMajorIndices,
                                  window: window, padsEnd: padsEnd, context: context)
        return indices.map { [y, $0] } ?? [y]
    }
}

/// GlobalMaxPool, GlobalAveragePool and GlobalLpPool: one window over all spatial axes.
struct GlobalPool: Operator {
    let kind: Pooling.Kind
    /// The window (all spatial axes flattened into one) and output shape for the X shape of the last run.
    let windows = ShapeMemo<(window: SpatialWindow, shape: Shape)>()

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.first ?? nil else { return [] }
        guard let dims = x.dims else { return [TensorType(x.dataType, nil)] }
        guard dims.count >= 3 else { throw OpError("X must have rank 3 or more, not \(dims.count)") }
        return [TensorType(x.dataType, Array(dims.prefix(2)) + Array(repeating: .fixed(1), count: dims.count - 2))]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        guard let x = inputs.first ?? nil else { throw OpError("missing input X") }
        guard x.shape.rank >= 3 else { throw OpError.invalidArgument("X \(x.shape) must have rank 3 or more") }
        let (window, shape) = try windows.value(x.shape) {
            let size = x.shape.dims.dropFirst(2).reduce(1, *)
            guard size > 0 else { throw OpError.invalidArgument("X \(x.shape) has no spatial elements to pool") }
            // The spatial axes flattened into one, pooled by a window as large as the input.
            let window = SpatialWindow(inputSize: [size], outputSize: [1], kernel: [size], strides: [1], dilations: [1],
                                       padsBegin: [0])
            return (window, Shape(Array(x.shape.dims.prefix(2)) + Array(repeating: 1, count: x.shape.rank - 2)))
        }
        let y = try context.allocate(x.dataType, shape)
        try PoolingOperators.pool(kind, x: x, y: y, indices: nil, columnMajorIndices: false, window: window, padsEnd: [0],
                                  context: context)
        return [y]
    }
}
