import Kernels
package import Tensors

/// Runs a batch as sub-batches, one per thread, when the model's images never mix (see `BatchSplit`).
///
/// Every op of a run on two threads splits its work and joins, and the threads exchange the
/// values between ops; on this VM the two vCPUs are sometimes far apart (a cache-line round trip
/// of 335-425 ns instead of 52-70), and then each op pays for moving its data between cores. A
/// batch cut in two sub-batches, each run from the first op to the last on one thread (every op
/// with one intra-op thread), exchanges nothing but the feeds and the outputs. The parts run on
/// the engine's worker pool (which stays the one owner of threads: when it is busy, the parts run
/// one after the other on the caller, as any loop does then), share the session's buffer pool and
/// the run's meter, and their outputs are joined on axis 0 (one copy, into buffers of the run).
/// A run with a profiler is not split, so that every node is timed once per run.
///
/// When it pays, measured on the 2-vCPU build VM with nothing else heavy running (`onnx-serve
/// bench M --batch B --threads 2 --seconds 1.5`, with and without `--no-batch-split`, same binary,
/// two interleaved rounds, round trip 392 then 72 ns), split / whole, medians:
/// - batch 8 (even parts): MNIST CNN 0.86, ShuffleNetV2 0.92, SqueezeNet 0.93, MobileNetV3-S 0.95,
///   MobileNetV2 0.95, DenseNet-121 0.95, EfficientNet-B0 0.97, GoogLeNet 0.98, ResNet-18 1.01;
/// - batch 2: MNIST 0.90, SqueezeNet 0.91, ResNet-18 1.00, MobileNetV2 1.12 (13.8 vs 10.9 ms in the
///   far placement, 10.3 vs 10.7 in the close one);
/// - batch 3 (parts of 2 and 1): MNIST 0.95, MobileNetV2 1.21, SqueezeNet 1.20, ResNet-18 1.35: the
///   larger part alone takes 2/3 of the one-thread time, more than the whole batch on two threads.
/// So a batch is split only when its parts are of equal size or nearly (`maximumImbalance`);
/// little work per image (MNIST) is no reason not to.
extension InferenceSession {
    /// Smallest batch that is split.
    static let minimumSplitBatch = 2
    /// Most the largest part may be above an even share of the batch (10%: 11 rows on two threads
    /// split, 9 do not), unless `Options.splitsUnevenBatches`.
    static let maximumImbalance = 1.1

    /// The sub-batches a run over feeds of these shapes is cut into, or nil when it runs whole:
    /// the model is separable, splitting is on, the run may use two threads or more and the
    /// thread budget has them, every tensor input has the same size on axis 0, at least
    /// `minimumSplitBatch`, the parts are about equal (`maximumImbalance`), and no input holds strings.
    func batchParts(_ feed: (String) -> (type: DataType?, shape: Shape)?) -> [Range<Int>]? {
        guard options.batchSplitting, batchSeparability == .separable, options.intraOpThreads >= 2 else { return nil }
        var batch: Int?
        for input in inputs {
            guard let (type, shape) = feed(input.name), shape.rank >= 1, (type ?? input.type?.dataType) != .string,
                  batch == nil || batch == shape[0] else { return nil }
            batch = shape[0]
        }
        guard let batch, batch >= Self.minimumSplitBatch else { return nil }
        let count = min(options.intraOpThreads, batch, Parallelism.computeThreadBudget)
        guard count >= 2 else { return nil }
        let largest = (batch + count - 1) / count
        guard options.splitsUnevenBatches || Double(largest * count) <= Self.maximumImbalance * Double(batch) else { return nil }
        return (0..<count).map { Parallelism.chunk($0, of: count, total: batch) }
    }

    /// `batchParts` for feeds of these shapes (of the declared element types).
    package func batchParts(for shapes: [String: Shape]) -> [Range<Int>]? {
        batchParts { name in shapes[name].map { (type: DataType?.none, shape: $0) } }
    }

    /// Runs `schedule` once per part of the batch, each with one thread, and joins the outputs
    /// `names` on axis 0. The feeds are tensors (a separable model has only tensor inputs).
    func runSplit(_ feeds: [String: Value], outputs names: [String], schedule: ExecutionPlan.Schedule,
                  parts: [Range<Int>], meter: WorkingMemoryMeter) throws(EngineError) -> [String: Value] {
        let context = ExecutionContext(pool: pool, parallelism: Parallelism(threads: 1, flushesDenormals: options.flushDenormals),
                                       meter: meter)
        var outcomes = [Result<[Tensor], EngineError>?](repeating: nil, count: parts.count)
        pool.beginRun()
        defer { pool.endRun() }
        outcomes.withUnsafeMutableBufferPointer { outcomes in
            Parallelism(threads: parts.count, flushesDenormals: options.flushDenormals).forEach(parts.count) { part in
                do throws(EngineError) {
                    outcomes[part] = .success(try runPart(feeds, rows: parts[part], outputs: names, schedule: schedule, context: context))
                } catch {
                    outcomes[part] = .failure(error)
                }
            }
        }
        var results: [[Tensor]] = []
        for outcome in outcomes {
            switch outcome {
            case .success(let tensors)?: results.append(tensors)
            case .failure(let error)?: throw error
            case nil: throw .runtime(node: "graph", message: "a part of the batch did not run")
            }
        }
        var joined: [String: Value] = [:]
        for (index, name) in names.enumerated() {
            joined[name] = .tensor(try Self.join(results.map { $0[index] }, output: name, context: context))
        }
        return joined
    }

    /// One part: the plan over rows `rows` of the feeds (views, no copy).
    private func runPart(_ feeds: [String: Value], rows: Range<Int>, outputs names: [String], schedule: ExecutionPlan.Schedule,
                         context: ExecutionContext) throws(EngineError) -> [Tensor] {
        var values = [Value?](repeating: nil, count: plan.slotCount)
        for (slot, tensor) in plan.constants { values[slot] = .tensor(tensor) }
        for (name, value) in feeds {
            guard let tensor = value.tensor, let slot = plan.inputSlots[name] else {
                throw .runtime(node: "graph", message: "input '\(name)' cannot be split")
            }
            values[slot] = .tensor(Self.rows(rows, of: tensor))
        }
        try plan.execute(schedule, values: &values, context: context)
        var outputs: [Tensor] = []
        for name in names {
            guard let slot = plan.outputSlots[name], let tensor = values[slot]?.tensor else {
                throw .runtime(node: "graph", message: "output '\(name)' was not produced")
            }
            outputs.append(tensor)
        }
        return outputs
    }

    /// Rows `rows` of axis 0 of `tensor` (not strings), sharing its memory.
    private static func rows(_ rows: Range<Int>, of tensor: Tensor) -> Tensor {
        var dims = tensor.shape.dims
        let rowBytes = tensor.byteCount / max(dims[0], 1)
        dims[0] = rows.count
        let buffer = tensor.buffer
        let view = TensorBuffer.borrowing(buffer.baseAddress + rows.lowerBound * rowBytes, byteCount: rows.count * rowBytes,
                                          owner: buffer)
        return Tensor(dataType: tensor.dataType, shape: Shape(dims), storage: .bytes(view))
    }

    /// The parts' tensors of one output joined on axis 0, in a buffer of the run.
    private static func join(_ parts: [Tensor], output: String, context: ExecutionContext) throws(EngineError) -> Tensor {
        guard let first = parts.first, first.shape.rank >= 1,
              parts.allSatisfy({ $0.dataType == first.dataType && $0.shape.dims.dropFirst() == first.shape.dims.dropFirst() })
        else { throw .runtime(node: "graph", message: "the parts of the batch disagree on output '\(output)'") }
        if first.dataType == .string {
            guard let joined = Tensor.concatenatingBatch(parts) else {
                throw .runtime(node: "graph", message: "the parts of the batch disagree on output '\(output)'")
            }
            return joined
        }
        var dims = first.shape.dims
        dims[0] = parts.reduce(0) { $0 + $1.shape[0] }
        let joined: Tensor
        do {
            joined = try context.allocate(first.dataType, Shape(dims))
        } catch let error as OpError {
            throw EngineError(error, running: "joining output '\(output)'")
        } catch {
            throw .runtime(node: "graph", message: "\(error)")
        }
        Tensor.copyConsecutively(parts, into: joined)
        return joined
    }
}
