import Engine
import Kernels
import Tensors
import TestSupport
import Testing

/// Helpers for the convolution, matrix and pooling operator tests and the fusion pass tests.
enum ConvTestSupport {
    /// A model of `nodes` over float graph inputs `inputs` (name → shape) with outputs `outputs`.
    static func model(_ nodes: [Node], inputs: [(String, Shape)], outputs: [String], initializers: [String: Tensor] = [:],
                      opset: Int = 17) -> Model {
        let graph = Graph(name: "test", nodes: nodes,
                          inputs: inputs.map { ValueInfo(name: $0.0, type: TensorType(.float, shape: $0.1)) },
                          outputs: outputs.map { ValueInfo(name: $0, type: nil) }, initializers: initializers)
        return Model(graph: graph, opsets: ["": opset])
    }

    /// Runs `model` and returns its outputs in order.
    static func run(_ model: Model, _ feeds: [String: Tensor], optimize: Bool = true, threads: Int = 2) throws -> [Tensor] {
        let results = try outputs(model, feeds, optimize: optimize, threads: threads)
        return try model.graph.outputs.map { output in try #require(results[output.name], "no output \(output.name)") }
    }

    /// Every output of a run of `model`, by name.
    static func outputs(_ model: Model, _ feeds: [String: Tensor], optimize: Bool = true, threads: Int = 2) throws -> [String: Tensor] {
        let session = try InferenceSession(model: model, options: .init(intraOpThreads: threads, optimizations: optimize))
        return try session.run(feeds)
    }

    /// Runs one node whose inputs are named after their position ("x0", "x1", …; nil = omitted).
    static func runNode(_ opType: String, _ inputs: [Tensor?], attributes: [String: AttributeValue] = [:],
                        domain: String = "", opset: Int = 22, outputs: Int = 1, threads: Int = 2) throws -> [Tensor] {
        let node = Node(name: "node", opType: opType, domain: domain,
                        inputs: inputs.indices.map { inputs[$0] == nil ? "" : "x\($0)" },
                        outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes)
        let op = try OperatorRegistry.compile(node, opsets: ["": opset], constants: inputs.map { _ in nil })
        return try op.run(inputs, ExecutionContext(pool: BufferPool(), parallelism: Parallelism(threads: threads)))
    }

    /// The load-time output types of one node for these input types.
    static func types(_ opType: String, _ inputs: [TensorType?], attributes: [String: AttributeValue] = [:],
                      domain: String = "", opset: Int = 22, outputs: Int = 1) throws -> [TensorType?] {
        let node = Node(name: "node", opType: opType, domain: domain, inputs: inputs.indices.map { "x\($0)" },
                        outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes)
        return try OperatorRegistry.compile(node, opsets: ["": opset], constants: inputs.map { _ in nil }).outputTypes(inputs)
    }

    /// A float tensor of uniform values in [-1, 1].
    static func random(_ shape: Shape, seed: UInt64) -> Tensor {
        var generator = SeededGenerator(seed: seed)
        return Tensor(generator.floats(shape.elementCount), shape: shape)
    }

    /// A float tensor holding 0, 1, 2, … (or `start`, `start + 1`, …).
    static func iota(_ shape: Shape, start: Float = 0) -> Tensor {
        Tensor((0..<shape.elementCount).map { start + Float($0) }, shape: shape)
    }

    /// True when every element is within atol + rtol·|expected|.
    static func isClose(_ actual: [Float], _ expected: [Float], rtol: Float = 1e-4, atol: Float = 1e-5) -> Bool {
        actual.count == expected.count && zip(actual, expected).allSatisfy { abs($0 - $1) <= atol + rtol * abs($1) }
    }

    /// A Conv computed by the kernels' reference twin (the oracle the operator tests compare with).
    static func referenceConv(_ x: Tensor, _ w: Tensor, bias: Tensor? = nil, groups: Int = 1, window: SpatialWindow) -> [Float] {
        let layout = ConvolutionLayout(batch: x.shape[0], inputChannels: x.shape[1], outputChannels: w.shape[0],
                                       groups: groups, window: window)
        var output = [Float](repeating: 0, count: layout.batch * layout.outputChannels * window.outputCount)
        output.withUnsafeMutableBufferPointer { out in
            Convolution.reference(input: x.pointer(as: Float.self), weights: w.pointer(as: Float.self),
                                  bias: bias?.pointer(as: Float.self), residual: nil, activation: nil,
                                  output: out.baseAddress!, layout: layout)
        }
        return output
    }
}
