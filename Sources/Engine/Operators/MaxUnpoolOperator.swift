import Kernels
import Tensors

/// MaxUnpool (9, 11, 22): the inverse of MaxPool with indices. The output is zeros except at
/// `I[i]` (an index into the whole flattened output, as MaxPool's `Indices` output gives it), which
/// holds `X[i]`. Its shape is per spatial axis `(in − 1) · stride + kernel − pad_begin − pad_end`;
/// a larger `output_shape` holds that result at its origin, zeros after it.
struct MaxUnpool: Operator {
    static let definition = OperatorDefinition("MaxUnpool", versions: [9, 11, 22], contract: OperatorContract(
        inputs: [.init("X", "T1"), .init("I", "T2"), .init("output_shape", "T2", .optional)], outputs: [.init("output", "T1")],
        types: ["T1": ElementTypes.floatingPoint, "T2": [.int64]])) { try MaxUnpool($0) }

    let kernel: [Int]
    let strides: [Int]
    let pads: [Int]

    init(_ context: OperatorContext) throws {
        guard let kernel = try context.ints("kernel_shape"), !kernel.isEmpty, kernel.allSatisfy({ $0 > 0 && $0 <= 1 << 20 }) else {
            throw OpError("kernel_shape must be given, with sizes in 1...\(1 << 20)")
        }
        self.kernel = kernel
        strides = try context.ints("strides") ?? Array(repeating: 1, count: kernel.count)
        pads = try context.ints("pads") ?? Array(repeating: 0, count: 2 * kernel.count)
        guard strides.count == kernel.count, strides.allSatisfy({ $0 > 0 && $0 <= 1 << 20 }) else {
            throw OpError("strides \(strides) must be \(kernel.count) sizes in 1...\(1 << 20)")
        }
        guard pads.count == 2 * kernel.count, pads.allSatisfy({ $0 >= 0 && $0 <= 1 << 20 }) else {
            throw OpError("pads \(pads) must be \(2 * kernel.count) sizes in 0...\(1 << 20)")
        }
    }

    func outputTypes(_ inputs: [TensorType?]) throws -> [TensorType?] {
        guard let x = inputs.type(0) else { return [] }
        return [TensorType(x.dataType, x.dims.map { $0.map { _ in .unknown } })]
    }

    func run(_ inputs: [Tensor?], _ context: ExecutionContext) throws -> [Tensor] {
        let x = try inputs.required(0), indices = try inputs.required(1)
        guard x.shape.rank == kernel.count + 2 else {
            throw OpError.invalidArgument("X must have rank \(kernel.count + 2) for a \(kernel.count)-D kernel, got \(x.shape)")
        }
        guard indices.shape == x.shape else { throw OpError.invalidArgument("I's shape \(indices.shape) must be X's \(x.shape)") }
        var dims = Array(x.shape.dims.prefix(2))
        for axis in 0..<kernel.count {
            // Checked: with a zero size elsewhere, X's dimensions are not bounded by its element count.
            let stretched = try Layout.multiplied(x.shape[axis + 2] - 1, strides[axis])
            let (size, overflow) = stretched.addingReportingOverflow(kernel[axis] - pads[axis] - pads[axis + kernel.count])
            guard !overflow else { throw OpError.invalidArgument("output shape is too large") }
            guard size >= 0 else { throw OpError.invalidArgument("the pads leave axis \(axis + 2) a negative size") }
            dims.append(size)
        }
        let inferred = try Layout.checkedShape(dims)
        let unpooled = try context.allocate(.double, inferred)
        let output = unpooled.mutablePointer(as: Double.self)
        let count = unpooled.elementCount
        output.initialize(repeating: 0, count: count)
        for (value, index) in zip(x.doubles(), indices.integers()) {
            guard index >= 0 && index < count else {
                throw OpError.invalidArgument("index \(index) in I is outside the output's \(count) elements")
            }
            output[index] = value
        }
        var y = unpooled
        // A given output_shape (each size at least the inferred one) holds the result at its origin,
        // zeros after it, as ONNX's reference and ONNX Runtime place it.
        if let given = try Layout.optionalIntegers(inputs.optional(2), "output_shape"), given != dims {
            guard given.count == dims.count, zip(given, dims).allSatisfy({ $0 >= $1 }) else {
                throw OpError.invalidArgument("output_shape \(given) must have \(dims.count) sizes, each at least \(dims)")
            }
            y = try context.allocate(.double, try Layout.checkedShape(given))
            let target = y.mutablePointer(as: Double.self)
            target.initialize(repeating: 0, count: y.elementCount)
            let sourceStrides = inferred.strides, targetStrides = y.shape.strides
            for flat in 0..<count {
                var rest = flat, position = 0
                for axis in 0..<dims.count {
                    let coordinate = rest / sourceStrides[axis]
                    rest -= coordinate * sourceStrides[axis]
                    position += coordinate * targetStrides[axis]
                }
                target[position] = output[flat]
            }
        }
        return [try convert(y, to: x.dataType, context)]
    }
}
