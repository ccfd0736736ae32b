import Kernels
import Tensors

/// Unique (11): the distinct elements of X (or its distinct slices along `axis`), sorted or in
/// order of first occurrence, with where each first occurs, where each input element went, and
/// how often each occurs.
/// (Opset 28 only adds bfloat16, which onnx-serve does not run.)
struct Unique: Operator {
    let sorted: Bool
    let axis: Int?

    static let definition = OperatorDefinition("Unique", versions: [11, 28], contract: OperatorContract(
        inputs: [.init("X", "T")],
        outputs: [.init("Y", "T"), .init("indices", .int64, .optional), .init("inverse_indices", .int64, .optional),
                  .init("counts", .int64, .optional)],
        types: ["T": ElementTypes.numeric.union([.string, .bool])])) { try Unique($0) }

    init(_ context: OperatorContext) throws {
        sorted = try context.int("sorted", default: 1) != 0
        axis = try context.int("axis")
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(x.dataType, nil), TensorType(.int64, [.unknown]), TensorType(.int64, [.unknown]), TensorType(.int64, [.unknown])]
    }

    /// One element or slice, for ordering and equality.
    private enum Key: Hashable, Comparable {
        case numbers([Double])
        case texts([String])

        static func < (a: Key, b: Key) -> Bool {
            switch (a, b) {
            case (.numbers(let x), .numbers(let y)): x.lexicographicallyPrecedes(y)
            case (.texts(let x), .texts(let y)): x.lexicographicallyPrecedes(y)
            default: false
            }
        }
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0)
        let dims: [Int], axis: Int
        if let given = self.axis {
            axis = try Layout.axis(given, rank: x.shape.rank)
            dims = x.shape.dims
        } else {
            (dims, axis) = ([x.elementCount], 0)
        }
        let size = dims[axis], inner = dims[(axis + 1)...].reduce(1, *), outer = dims[..<axis].reduce(1, *)
        let numbers = x.dataType == .string ? [] : x.doubles()
        let texts = x.dataType == .string ? x.strings : []
        func elements(of slice: Int) -> [Int] {
            var positions: [Int] = []
            positions.reserveCapacity(outer * inner)
            for o in 0..<outer { for i in 0..<inner { positions.append((o * size + slice) * inner + i) } }
            return positions
        }
        var first: [Key: Int] = [:], order: [Key] = [], counts: [Key: Int] = [:], keys: [Key] = []
        for slice in 0..<size {
            let positions = elements(of: slice)
            let key: Key = x.dataType == .string ? .texts(positions.map { texts[$0] }) : .numbers(positions.map { numbers[$0] })
            keys.append(key)
            if first[key] == nil {
                first[key] = slice
                order.append(key)
            }
            counts[key, default: 0] += 1
        }
        if sorted { order.sort() }
        var rank: [Key: Int] = [:]
        for (index, key) in order.enumerated() { rank[key] = index }
        let sources = order.compactMap { first[$0] }
        var outputDims = dims
        outputDims[axis] = order.count
        let y: Tensor
        if x.dataType == .string {
            var result = [String](repeating: "", count: outputDims.reduce(1, *))
            for (index, slice) in sources.enumerated() {
                for o in 0..<outer { for i in 0..<inner { result[(o * order.count + index) * inner + i] = texts[(o * size + slice) * inner + i] } }
            }
            y = Tensor(strings: result, shape: Shape(outputDims))
        } else {
            y = try context.allocate(x.dataType, Shape(outputDims))
            let width = x.dataType.byteSize
            for (index, slice) in sources.enumerated() {
                for o in 0..<outer {
                    for i in 0..<inner {
                        (y.rawPointer + ((o * order.count + index) * inner + i) * width)
                            .copyMemory(from: x.rawPointer + ((o * size + slice) * inner + i) * width, byteCount: width)
                    }
                }
            }
        }
        let count = order.count
        return [y,
                Tensor(sources.map { Int64($0) }, shape: [count]),
                Tensor(keys.map { Int64(rank[$0] ?? 0) }, shape: [keys.count]),
                Tensor(order.map { Int64(counts[$0] ?? 0) }, shape: [count])]
    }
}
