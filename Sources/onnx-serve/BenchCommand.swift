import ArgumentParser
import Dispatch
import Engine
import Foundation
import Kernels
import ONNX
import Tensors

/// `onnx-serve bench`: latency and throughput of one model on random inputs.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time a model on random inputs: median, p90 and p99 latency, and throughput.",
        discussion: """
            Dimensions: fixed sizes are used as declared; the leading dimension of an input, when \
            symbolic or unknown, is --batch; any other symbolic dimension is set by --dim NAME=VALUE \
            and defaults to 1. Float inputs are uniform in [0, 1); integer inputs in [0, 10); bool inputs random.
            """
    )

    @Argument(help: "The .onnx model file.")
    var model: String

    @Option(help: "Batch size for a symbolic leading dimension.")
    var batch = 1

    @Option(help: "Intra-op threads (default: all cores).")
    var threads: Int?

    @Option(help: "Seconds of timed runs after warm-up (at least 10 runs are made).")
    var seconds = 5.0

    @Option(name: .customLong("dim"), help: "Size of a symbolic dimension: NAME=VALUE (repeatable).")
    var dims: [String] = []

    @Flag(name: .customLong("no-optimize"), help: "Skip the graph optimisation passes.")
    var noOptimize = false

    @Flag(name: .customLong("flush-denormals"), help: "Flush denormal floats to zero (faster on underflowing models).")
    var flushDenormals = false

    @Flag(name: .customLong("no-batch-split"), help: "Run a batch whole, every op split between the threads, even when the model's images never mix (by default such a batch runs as one sub-batch per thread).")
    var noBatchSplit = false

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Flag(help: "Time every node during the timed runs and print where the time goes (per op type, and the slowest nodes).")
    var profile = false

    func run() throws {
        try reportingErrors {
            var sizes: [String: Int] = [:]
            for entry in dims {
                let parts = entry.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, let value = Int(parts[1]), value >= 0 else {
                    throw ValidationError("--dim expects NAME=VALUE, got '\(entry)'")
                }
                sizes[String(parts[0])] = value
            }
            let loadStart = DispatchTime.now()
            let loaded = try ModelLoader.load(contentsOf: model)
            let decodeSeconds = Self.seconds(since: loadStart)
            let session = try InferenceSession(model: loaded, options: .init(intraOpThreads: threads, optimizations: !noOptimize, flushDenormals: flushDenormals,
                                                                                     batchSplitting: !noBatchSplit))
            let loadSeconds = Self.seconds(since: loadStart)
            var generator = SystemRandomNumberGenerator()
            var feeds: [String: Tensor] = [:]
            for input in session.inputs {
                guard let type = input.type else { throw ValidationError("input '\(input.name)' has no declared type") }
                let shape = Shape((type.dims ?? []).enumerated().map { axis, dim in
                    switch dim {
                    case .fixed(let value): value
                    case .symbolic(let name): sizes[name] ?? (axis == 0 ? batch : 1)
                    case .unknown: axis == 0 ? batch : 1
                    }
                })
                feeds[input.name] = Self.random(type.dataType, shape, using: &generator)
            }
            let warmup = DispatchTime.now()
            var warmups = 0
            while warmups < 3 || (Self.seconds(since: warmup) < min(1, seconds / 5) && warmups < 50) {
                _ = try session.run(feeds)
                warmups += 1
            }
            var latencies: [Double] = []
            let profiler = profile ? NodeProfiler() : nil
            let start = DispatchTime.now(), cpuStart = Self.processCPUSeconds()
            while latencies.count < 10 || Self.seconds(since: start) < seconds {
                let begin = DispatchTime.now()
                _ = try session.run(feeds, profiler: profiler)
                latencies.append(Self.seconds(since: begin) * 1000)
            }
            let total = Self.seconds(since: start), cpu = Self.processCPUSeconds() - cpuStart
            latencies.sort()
            let result = Result(
                model: model, batch: batch, threads: session.options.intraOpThreads, runs: latencies.count,
                loadMilliseconds: loadSeconds * 1000, decodeMilliseconds: decodeSeconds * 1000,
                optimizeMilliseconds: Self.milliseconds(session.buildTimes.optimize),
                compileMilliseconds: Self.milliseconds(session.buildTimes.compile), minMilliseconds: latencies[0],
                medianMilliseconds: Self.percentile(latencies, 0.5), p90Milliseconds: Self.percentile(latencies, 0.9),
                p99Milliseconds: Self.percentile(latencies, 0.99), meanMilliseconds: latencies.reduce(0, +) / Double(latencies.count),
                throughputPerSecond: Double(latencies.count * batch) / total,
                cpuMillisecondsPerRun: cpu * 1000 / Double(latencies.count),
                openBLASCore: BLAS.coreName, inputs: feeds.keys.sorted().map { "\($0)\(feeds[$0]!.shape)" },
                profile: profiler.map { profiler in
                    profiler.nodes.map { entry in
                        NodeTime(node: entry.node, opType: entry.opType, outputShape: entry.outputShape.map { "\($0)" } ?? "",
                                 milliseconds: Self.milliseconds(entry.total) / Double(max(1, entry.runs)))
                    }
                })
            print(json ? result.json : result.text)
        }
    }

    struct Result: Encodable {
        var model: String, batch: Int, threads: Int, runs: Int
        var loadMilliseconds, decodeMilliseconds, optimizeMilliseconds, compileMilliseconds, minMilliseconds, medianMilliseconds: Double
        var p90Milliseconds, p99Milliseconds, meanMilliseconds, throughputPerSecond: Double
        /// CPU time of the whole process (all its threads) over the timed runs, per run: on a
        /// shared machine, less disturbed by preemption than latency at one thread.
        var cpuMillisecondsPerRun: Double
        var openBLASCore: String
        var inputs: [String]
        /// With --profile: every node's mean time per run, in execution order.
        var profile: [NodeTime]?

        var text: String {
            func ms(_ value: Double) -> String { String(format: "%.3f ms", value) }
            return """
                model: \(model)
                inputs: \(inputs.joined(separator: ", "))
                threads: \(threads), OpenBLAS core: \(openBLASCore)
                load: \(ms(loadMilliseconds)) (decode \(ms(decodeMilliseconds)), optimise \(ms(optimizeMilliseconds)), compile \(ms(compileMilliseconds)))
                runs: \(runs), CPU time per run: \(ms(cpuMillisecondsPerRun))
                latency: min \(ms(minMilliseconds)), median \(ms(medianMilliseconds)), p90 \(ms(p90Milliseconds)), p99 \(ms(p99Milliseconds)), mean \(ms(meanMilliseconds))
                throughput: \(String(format: "%.1f", throughputPerSecond)) items/s (batch \(batch))
                """ + (profile.map(Self.profileText) ?? "")
        }

        /// Per op type totals, then the 25 slowest nodes; times are means per run.
        static func profileText(_ nodes: [NodeTime]) -> String {
            let total = nodes.reduce(0) { $0 + $1.milliseconds }
            func row(_ name: String, _ ms: Double, _ extra: String) -> String {
                let padded = name.count >= 52 ? name : name + String(repeating: " ", count: 52 - name.count)
                return "  " + padded + String(format: " %9.3f ms %5.1f%%  ", ms, total > 0 ? 100 * ms / total : 0) + extra
            }
            var byType: [String: (Double, Int)] = [:]
            for node in nodes { byType[node.opType, default: (0, 0)].0 += node.milliseconds; byType[node.opType, default: (0, 0)].1 += 1 }
            var lines = ["", String(format: "profile: %.3f ms per run in %d nodes; by op type:", total, nodes.count)]
            for (type, (ms, count)) in byType.sorted(by: { $0.value.0 > $1.value.0 }) { lines.append(row(type, ms, "\(count) nodes")) }
            lines.append("slowest nodes:")
            for node in nodes.sorted(by: { $0.milliseconds > $1.milliseconds }).prefix(25) {
                lines.append(row(node.node, node.milliseconds, "-> \(node.outputShape)"))
            }
            return "\n" + lines.joined(separator: "\n")
        }

        var json: String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
        }
    }

    struct NodeTime: Encodable {
        var node: String, opType: String, outputShape: String
        var milliseconds: Double
    }

    static func seconds(since start: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }

    /// CPU seconds used so far by every thread of this process.
    static func processCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    static func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }

    static func percentile(_ sorted: [Double], _ fraction: Double) -> Double {
        sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * fraction).rounded()))]
    }

    static func random(_ dataType: DataType, _ shape: Shape, using generator: inout some RandomNumberGenerator) -> Tensor {
        let tensor = Tensor(uninitialized: dataType, shape: shape)
        let count = shape.elementCount
        switch dataType {
        case .string:
            return Tensor(strings: (0..<count).map { _ in String(Int.random(in: 0..<10, using: &generator)) }, shape: shape)
        case .bool:
            let target = tensor.mutablePointer(as: Bool.self)
            for index in 0..<count { target[index] = Bool.random(using: &generator) }
        default:
            let values = (0..<count).map { _ in dataType.isFloatingPoint
                ? Double.random(in: 0..<1, using: &generator) : Double(Int.random(in: 0..<10, using: &generator)) }
            _ = try? dataType.visit(Filler(tensor: tensor, values: values))
        }
        return tensor
    }

    private struct Filler: NumericVisitor {
        let tensor: Tensor
        let values: [Double]
        func visit<T: NumericElement>(_ type: T.Type) -> Void {
            let target = tensor.mutablePointer(as: type)
            for (index, value) in values.enumerated() { target[index] = T(converting: value) }
        }
    }
}
