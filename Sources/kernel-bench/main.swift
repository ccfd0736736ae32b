// Prints the speed of the convolution kernels on every ResNet-50 layer shape (and MobileNet and
// EfficientNet depthwise ones, by both depthwise kernels), and the ResNet-50 total of the best per-layer times; then the fused attention
// kernel against the unfused MatMul + Softmax + MatMul path on BERT-base shapes.
// Not a test: figures only. Run with `swift run -c release kernel-bench [filter]` (`--core`: print
// the OpenBLAS core in use and stop; `attention`: only the attention cases; `b8pointwise`: batch-8 pointwise layers).
import Dispatch
import Glibc
import Kernels

struct Layer {
    let name: String
    let layout: ConvolutionLayout
    /// How many times ResNet-50 (v1.5, 224×224) has this layer; 0 for the MobileNetV2 extras.
    let count: Int
}

func layer(_ name: String, _ channels: Int, _ outputs: Int, size: Int, kernel: Int, stride: Int = 1, groups: Int = 1,
           batch: Int = 1, count: Int) -> Layer {
    let pad = kernel / 2
    let output = (size + 2 * pad - kernel) / stride + 1
    let window = SpatialWindow(inputSize: [size, size], outputSize: [output, output], kernel: [kernel, kernel],
                               strides: [stride, stride], dilations: [1, 1], padsBegin: [pad, pad])
    return Layer(name: name, layout: ConvolutionLayout(batch: batch, inputChannels: channels, outputChannels: outputs,
                                                       groups: groups, window: window), count: count)
}

/// Every convolution of ResNet-50 with its multiplicity, then MobileNetV2's depthwise shapes.
let layers = [
    layer("3->64 7x7 s2 @224", 3, 64, size: 224, kernel: 7, stride: 2, count: 1),
    layer("64->64 1x1 @56", 64, 64, size: 56, kernel: 1, count: 1),
    layer("64->64 3x3 @56", 64, 64, size: 56, kernel: 3, count: 3),
    layer("64->256 1x1 @56", 64, 256, size: 56, kernel: 1, count: 4),
    layer("256->64 1x1 @56", 256, 64, size: 56, kernel: 1, count: 2),
    layer("256->128 1x1 @56", 256, 128, size: 56, kernel: 1, count: 1),
    layer("128->128 3x3 s2 @56", 128, 128, size: 56, kernel: 3, stride: 2, count: 1),
    layer("256->512 1x1 s2 @56", 256, 512, size: 56, kernel: 1, stride: 2, count: 1),
    layer("128->512 1x1 @28", 128, 512, size: 28, kernel: 1, count: 4),
    layer("512->128 1x1 @28", 512, 128, size: 28, kernel: 1, count: 3),
    layer("128->128 3x3 @28", 128, 128, size: 28, kernel: 3, count: 3),
    layer("512->256 1x1 @28", 512, 256, size: 28, kernel: 1, count: 1),
    layer("256->256 3x3 s2 @28", 256, 256, size: 28, kernel: 3, stride: 2, count: 1),
    layer("512->1024 1x1 s2 @28", 512, 1024, size: 28, kernel: 1, stride: 2, count: 1),
    layer("256->1024 1x1 @14", 256, 1024, size: 14, kernel: 1, count: 6),
    layer("1024->256 1x1 @14", 1024, 256, size: 14, kernel: 1, count: 5),
    layer("256->256 3x3 @14", 256, 256, size: 14, kernel: 3, count: 5),
    layer("1024->512 1x1 @14", 1024, 512, size: 14, kernel: 1, count: 1),
    layer("512->512 3x3 s2 @14", 512, 512, size: 14, kernel: 3, stride: 2, count: 1),
    layer("1024->2048 1x1 s2 @14", 1024, 2048, size: 14, kernel: 1, stride: 2, count: 1),
    layer("512->2048 1x1 @7", 512, 2048, size: 7, kernel: 1, count: 3),
    layer("2048->512 1x1 @7", 2048, 512, size: 7, kernel: 1, count: 2),
    layer("512->512 3x3 @7", 512, 512, size: 7, kernel: 3, count: 2),
    layer("2048->1000 1x1 (fc)", 2048, 1000, size: 1, kernel: 1, count: 1),
    layer("dw 32 3x3 @112", 32, 32, size: 112, kernel: 3, groups: 32, count: 0),
    layer("dw 144 3x3 s2 @56", 144, 144, size: 56, kernel: 3, stride: 2, groups: 144, count: 0),
    // MobileNetV3-Small's depthwise layers that are furthest behind ONNX Runtime, at batch 8.
    layer("dw 72 3x3 s2 @56 n8", 72, 72, size: 56, kernel: 3, stride: 2, groups: 72, batch: 8, count: 0),
    layer("dw 288 5x5 s2 @14 n8", 288, 288, size: 14, kernel: 5, stride: 2, groups: 288, batch: 8, count: 0),
    layer("dw 576 5x5 @7 n8", 576, 576, size: 7, kernel: 5, groups: 576, batch: 8, count: 0),
    layer("dw 96 5x5 s2 @28 n8", 96, 96, size: 28, kernel: 5, stride: 2, groups: 96, batch: 8, count: 0),
    // EfficientNet-B0's depthwise layers at batch 8 (the 112×112 one at batch 1), and MobileNetV2's
    // largest one: where the interleaved and planar depthwise kernels cross over.
    layer("dw 1152 5x5 @7 n8", 1152, 1152, size: 7, kernel: 5, groups: 1152, batch: 8, count: 0),
    layer("dw 672 5x5 s2 @14 n8", 672, 672, size: 14, kernel: 5, stride: 2, groups: 672, batch: 8, count: 0),
    layer("dw 672 5x5 @14 n8", 672, 672, size: 14, kernel: 5, groups: 672, batch: 8, count: 0),
    layer("dw 480 3x3 @14 n8", 480, 480, size: 14, kernel: 3, groups: 480, batch: 8, count: 0),
    layer("dw 240 5x5 @28 n8", 240, 240, size: 28, kernel: 5, groups: 240, batch: 8, count: 0),
    layer("dw 144 3x3 @56 n8", 144, 144, size: 56, kernel: 3, groups: 144, batch: 8, count: 0),
    layer("dw 144 5x5 s2 @56 n8", 144, 144, size: 56, kernel: 5, stride: 2, groups: 144, batch: 8, count: 0),
    layer("dw 96 3x3 s2 @112", 96, 96, size: 112, kernel: 3, stride: 2, groups: 96, count: 0),
    layer("dw 96 3x3 @112", 96, 96, size: 112, kernel: 3, groups: 96, count: 0),
    layer("dw 144->288 5x5 @14 n8", 144, 288, size: 14, kernel: 5, groups: 144, batch: 8, count: 0),
    layer("dw 72->144 3x3 @28 n8", 72, 144, size: 28, kernel: 3, groups: 72, batch: 8, count: 0),
    // Pointwise layers at batch 8 (MobileNetV3-Small, MobileNetV2, ResNet-50's last stage).
    layer("pw 576->96 @7 n8", 576, 96, size: 7, kernel: 1, batch: 8, count: 0),
    layer("pw 96->576 @7 n8", 96, 576, size: 7, kernel: 1, batch: 8, count: 0),
    layer("pw 240->40 @14 n8", 240, 40, size: 14, kernel: 1, batch: 8, count: 0),
    layer("pw 64->384 @14 n8", 64, 384, size: 14, kernel: 1, batch: 8, count: 0),
    layer("pw 32->192 @28 n8", 32, 192, size: 28, kernel: 1, batch: 8, count: 0),
    layer("pw 512->2048 @7 n8", 512, 2048, size: 7, kernel: 1, batch: 8, count: 0),
]

/// Seconds on `clock`.
func now(_ clock: clockid_t) -> Double {
    var spec = timespec()
    clock_gettime(clock, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

/// Best and median seconds of `body` over repeated runs lasting about `budget` seconds, by the
/// wall clock, and the best CPU time of the calling thread (steady on a busy machine, but it only
/// counts the caller's own work, so it means something for one thread only).
func time(budget: Double = 0.4, _ body: () -> Void) -> (best: Double, median: Double, cpu: Double) {
    body()
    var samples: [Double] = [], cpu = Double.infinity
    let start = now(CLOCK_MONOTONIC)
    while samples.count < 5 || (now(CLOCK_MONOTONIC) - start < budget && samples.count < 1000) {
        let (wall, thread) = (now(CLOCK_MONOTONIC), now(CLOCK_THREAD_CPUTIME_ID))
        body()
        samples.append(now(CLOCK_MONOTONIC) - wall)
        cpu = min(cpu, now(CLOCK_THREAD_CPUTIME_ID) - thread)
    }
    samples.sort()
    return (samples[0], samples[samples.count / 2], cpu)
}

func format(_ value: Double, _ digits: Int = 2) -> String {
    let scale = (0..<digits).reduce(1.0) { value, _ in value * 10 }
    let rounded = (value * scale).rounded() / scale
    return String(rounded)
}

let filter = CommandLine.arguments.dropFirst().first
print("OpenBLAS core: \(BLAS.coreName) (\(BLAS.coreOrigin))")
// `--core`: only the line above (tests run this to see the core a fresh process gets).
if filter == "--core" { exit(0) }

// Raw sgemm, one thread, as the ceiling the convolution paths work under.
do {
    let n = 1024
    let a = [Float](repeating: 0.5, count: n * n), b = a
    var c = [Float](repeating: 0, count: n * n)
    let t = c.withUnsafeMutableBufferPointer { c in
        time { BLAS.sgemm(transposeA: false, transposeB: false, m: n, n: n, k: n, alpha: 1, a: a, lda: n, b: b, ldb: n,
                          beta: 0, c: c.baseAddress!, ldc: n) }
    }
    print("sgemm 1024³ 1 thread: \(format(2 * Double(n * n * n) / t.best / 1e9, 1)) GFLOP/s (CPU time: \(format(2 * Double(n * n * n) / t.cpu / 1e9, 1)))")
}

// `b8pointwise`: pointwise layers of MobileNetV3-Small, SqueezeNet 1.1, MobileNetV2, EfficientNet-B0
// and ResNet-50 at batch 8, medians in ms: `forward` (the route it picks), one product over all
// images (`merged`: block work 0, where `forward` merges below `mergedPixelLimit` pixels) and
// products per image in OpenBLAS's small-matrix kernel where it has one (weights per image).
if filter == "b8pointwise" {
    let shapes = [("mv3 24->88 @28", 24, 88, 28), ("mv3 88->24 @28", 88, 24, 28), ("mv3 24->96 @28", 24, 96, 28),
                  ("mv3 96->40 @14", 96, 40, 14), ("mv3 40->240 @14", 40, 240, 14), ("mv3 240->40 @14", 240, 40, 14),
                  ("mv3 48->288 @14", 48, 288, 14), ("mv3 288->96 @7", 288, 96, 7), ("mv3 96->576 @7", 96, 576, 7),
                  ("mv3 576->96 @7", 576, 96, 7), ("sq 128->32 @27", 128, 32, 27), ("sq 256->32 @27", 256, 32, 27),
                  ("sq 32->128 @27", 32, 128, 27), ("sq 384->48 @13", 384, 48, 13), ("sq 48->192 @13", 48, 192, 13),
                  ("sq 512->64 @13", 512, 64, 13), ("sq 64->256 @13", 64, 256, 13), ("sq 512->1000 @13", 512, 1000, 13),
                  ("v2 192->32 @28", 192, 32, 28), ("v2 384->64 @14", 384, 64, 14), ("v2 64->384 @14", 64, 384, 14),
                  ("v2 160->960 @7", 160, 960, 7), ("v2 960->160 @7", 960, 160, 7), ("v2 320->1280 @7", 320, 1280, 7),
                  ("eb0 1152->192 @7", 1152, 192, 7), ("r50 2048->512 @7", 2048, 512, 7), ("r50 512->2048 @7", 512, 2048, 7)]
    for (name, channels, outputs, size) in shapes {
        let layout = layer(name, channels, outputs, size: size, kernel: 1, batch: 8, count: 0).layout
        let input = [Float](repeating: 0.25, count: layout.batch * channels * layout.window.inputCount)
        let weights = [Float](repeating: 0.01, count: layout.batch * outputs * channels)
        let bias = [Float](repeating: 0.1, count: outputs)
        var output = [Float](repeating: 0, count: layout.batch * outputs * layout.window.outputCount)
        var line = name + String(repeating: " ", count: max(1, 18 - name.count))
            + (Convolution.mergesImages(layout) ? "merges" : "apart ")
        for threads in [1, 2] {
            let parallelism = Parallelism(threads: threads)
            let ways = [("forward", 0, BLAS.smallKernelWork), ("merged", 0, 0), ("per image", outputs * channels, BLAS.smallKernelWork)]
            for (label, perImage, blockWork) in ways {
                let count = Convolution.scratchCount(layout, parallelism: parallelism, blockWork: blockWork)
                var scratch = [Float](repeating: 0, count: max(1, count))
                let t = bias.withUnsafeBufferPointer { bias in
                    output.withUnsafeMutableBufferPointer { output in
                        scratch.withUnsafeMutableBufferPointer { scratch in
                            time(budget: 0.3) {
                                Convolution.forward(input: input, weights: weights, output: output.baseAddress!, layout: layout,
                                                    epilogue: Epilogue(bias: .perRow(bias.baseAddress!), activation: .relu),
                                                    scratch: scratch.baseAddress, parallelism: parallelism,
                                                    weightsPerImage: perImage, blockWork: blockWork)
                            }
                        }
                    }
                }
                line += "  \(threads)T \(label) \(format(t.median * 1000, 3))"
            }
        }
        print(line)
    }
    exit(0)
}

var totals = [1: 0.0, 2: 0.0]
var resnetFlops = 0.0
/// Per layer, the bare product's time (or, for Winograd layers, the whole layer's): a floor for
/// any convolution built on one-thread OpenBLAS calls, whatever the im2col and epilogue cost.
var floorTotal = 0.0
for layer in layers where filter.map({ layer.name.contains($0) }) ?? true {
    let layout = layer.layout
    let input = [Float](repeating: 0.25, count: layout.batch * layout.inputChannels * layout.window.inputCount)
    let plainWeights = [Float](repeating: 0.01, count: layout.outputChannels * layout.depth)
    // Winograd takes its weights transformed at load, as the engine does.
    let weights = layout.algorithm == .winograd
        ? Winograd.transformWeights(plainWeights, outputChannels: layout.outputChannels, inputChannels: layout.inputChannels)
        : plainWeights
    let bias = [Float](repeating: 0.1, count: layout.outputChannels)
    var output = [Float](repeating: 0, count: layout.batch * layout.outputChannels * layout.window.outputCount)
    var line = "\(layer.name) [\(layout.algorithm)]"
    line += String(repeating: " ", count: max(1, 36 - line.count))
    var oneThreadBest = 0.0
    for threads in [1, 2] {
        let parallelism = Parallelism(threads: threads)
        var scratch = [Float](repeating: 0, count: Convolution.scratchCount(layout, parallelism: parallelism))
        let t = bias.withUnsafeBufferPointer { bias in
            output.withUnsafeMutableBufferPointer { output in
                scratch.withUnsafeMutableBufferPointer { scratch in
                    time {
                        Convolution.forward(input: input, weights: weights, output: output.baseAddress!, layout: layout,
                                            epilogue: Epilogue(bias: .perRow(bias.baseAddress!), activation: .relu),
                                            scratch: scratch.baseAddress, parallelism: parallelism)
                    }
                }
            }
        }
        totals[threads]! += t.best * Double(layer.count)
        if threads == 1 { oneThreadBest = t.best }
        let gflops = 2 * Double(layout.multiplyAdds) / t.best / 1e9
        line += "  \(threads)T: \(format(t.best * 1000, 3)) ms \(format(gflops, 1)) GFLOP/s (median \(format(t.median * 1000, 3)))"
        if threads == 1 { line += " [CPU \(format(2 * Double(layout.multiplyAdds) / t.cpu / 1e9, 1))]" }
    }
    // Both depthwise kernels, one thread, best CPU time (`depthwiseRoute` picks one of them).
    if layout.algorithm == .depthwise {
        line += "  [\(Convolution.depthwiseRoute(layout))]"
        for route in [Convolution.DepthwiseRoute.planar, .interleaved] {
            let t = bias.withUnsafeBufferPointer { bias in
                output.withUnsafeMutableBufferPointer { output in
                    time {
                        Convolution.depthwise(input: input, weights: weights, output: output.baseAddress!, layout: layout,
                                              epilogue: Epilogue(bias: .perRow(bias.baseAddress!), activation: .relu),
                                              route: route, parallelism: .serial)
                    }
                }
            }
            line += "  \(route) 1T CPU \(format(t.cpu * 1000, 3)) ms"
        }
    }
    // The bare product on an already expanded input: what OpenBLAS alone takes for this layer.
    if layout.algorithm != .depthwise {
        // (All images side by side: the floor of one product over the batch.)
        let m = layout.outputChannels, n = layout.batch * layout.window.outputCount, k = layout.depth
        let columns = [Float](repeating: 0.25, count: k * n)
        let t = output.withUnsafeMutableBufferPointer { output in
            time { BLAS.sgemm(transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: 1, a: plainWeights, lda: k,
                              b: columns, ldb: n, beta: 0, c: output.baseAddress!, ldc: n) }
        }
        line += "  sgemm alone 1T: \(format(2 * Double(layout.multiplyAdds) / t.best / 1e9, 1)) [CPU \(format(2 * Double(layout.multiplyAdds) / t.cpu / 1e9, 1))] GFLOP/s"
        floorTotal += (layout.algorithm == .winograd ? oneThreadBest : t.best) * Double(layer.count)
    }
    print(line)
    resnetFlops += 2 * Double(layout.multiplyAdds * layer.count)
}
if filter == nil {
    for threads in [1, 2] {
        print("ResNet-50 convolutions, sum of best layer times at \(threads) thread(s): \(format(totals[threads]! * 1000, 1)) ms "
              + "(\(format(resnetFlops / 1e9, 2)) GFLOP, \(format(resnetFlops / totals[threads]! / 1e9, 1)) GFLOP/s)")
    }
    print("ResNet-50 convolutions, floor at 1 thread (bare sgemm per layer, no im2col or epilogue; Winograd layers "
          + "as measured): \(format(floorTotal * 1000, 1)) ms")
}

// MARK: Attention

/// One attention shape: `batch` items of `heads` heads, `length` queries and keys of `headSize`.
struct AttentionCase {
    let name: String
    let batch: Int, heads: Int, length: Int, headSize: Int
    let causal: Bool
}

let attentionCases = [
    AttentionCase(name: "attention BERT-base s128 b1", batch: 1, heads: 12, length: 128, headSize: 64, causal: false),
    AttentionCase(name: "attention BERT-base s128 b8", batch: 8, heads: 12, length: 128, headSize: 64, causal: false),
    AttentionCase(name: "attention s1024 b1", batch: 1, heads: 12, length: 1024, headSize: 64, causal: false),
    AttentionCase(name: "attention s1024 b1 causal", batch: 1, heads: 12, length: 1024, headSize: 64, causal: true),
]

// Fused: Q, K, V and Y as [B, S, H·D] (how the fused operators read them, in place). Unfused: the
// graph's MatMul(Q, Kᵀ) with the scale, Softmax and MatMul(P, V) over [B, H, S, D] heads (after its
// transposes, which are not timed), with the whole [B, H, S, S] score matrix in between.
for test in attentionCases where filter.map({ test.name.contains($0) }) ?? true {
    let (batch, heads, length, size) = (test.batch, test.heads, test.length, test.headSize)
    let count = batch * length * heads * size
    var q = (0..<count).map { Float(($0 * 7919) % 1000) / 1000 - 0.5 }
    var k = (0..<count).map { Float(($0 * 104729) % 1000) / 1000 - 0.5 }
    var v = (0..<count).map { Float(($0 * 1299709) % 1000) / 1000 - 0.5 }
    var y = [Float](repeating: 0, count: count)
    var scores = [Float](repeating: 0, count: batch * heads * length * length)
    let scale = 1 / Float(size).squareRoot()
    // Causal: the unfused graph adds a mask of 0 and −∞ to the scores before its Softmax.
    let mask: [Float] = test.causal ? (0..<(length * length)).map { $0 % length > $0 / length ? -.infinity : 0 } : []
    let flops = 4 * Double(batch * heads * length * length * size) / (test.causal ? 2 : 1)
    var line = test.name + String(repeating: " ", count: max(1, 36 - test.name.count))
    for threads in [1, 2] {
        let parallelism = Parallelism(threads: threads)
        let fused = q.withUnsafeMutableBufferPointer { q in
            k.withUnsafeMutableBufferPointer { k in
                v.withUnsafeMutableBufferPointer { v in
                    y.withUnsafeMutableBufferPointer { y in
                        func operand(_ base: UnsafeMutableBufferPointer<Float>) -> Attention.Operand {
                            Attention.Operand(base: base.baseAddress!, batchStride: length * heads * size, headStride: size,
                                              rowStride: heads * size)
                        }
                        return time {
                            Attention.attention(q: operand(q), k: operand(k), v: operand(v), y: operand(y), batch: batch,
                                                qHeads: heads, kvHeads: heads, queries: length, keys: length, headSize: size,
                                                valueSize: size, scale: scale, masking: Attention.Masking(causal: test.causal),
                                                parallelism: parallelism)
                        }
                    }
                }
            }
        }
        let unfused = scores.withUnsafeMutableBufferPointer { scores in
            y.withUnsafeMutableBufferPointer { y in
                time {
                    let s = scores.baseAddress!, matrix = length * size, square = length * length
                    Gemm.multiply(transposeB: true, m: length, n: length, k: size, alpha: scale, a: q, lda: size, b: k, ldb: size,
                                  c: s, ldc: length, batch: batch * heads, batchOffsets: { ($0 * matrix, $0 * matrix, $0 * square) },
                                  parallelism: parallelism)
                    if test.causal {
                        for item in 0..<(batch * heads) {
                            for index in 0..<square { s[item * square + index] += mask[index] }
                        }
                    }
                    Softmax.softmax(UnsafePointer(s), into: s, outer: batch * heads * length, length: length, inner: 1,
                                    logarithm: false, parallelism: parallelism)
                    Gemm.multiply(m: length, n: size, k: length, a: UnsafePointer(s), lda: length, b: v, ldb: size,
                                  c: y.baseAddress!, ldc: size, batch: batch * heads,
                                  batchOffsets: { ($0 * square, $0 * matrix, $0 * matrix) }, parallelism: parallelism)
                }
            }
        }
        line += "  \(threads)T: fused \(format(fused.best * 1000, 3)) ms \(format(flops / fused.best / 1e9, 1)) GFLOP/s,"
            + " unfused \(format(unfused.best * 1000, 3)) ms \(format(flops / unfused.best / 1e9, 1)) GFLOP/s"
        if threads == 1 {
            line += " [CPU: fused \(format(flops / fused.cpu / 1e9, 1)), unfused \(format(flops / unfused.cpu / 1e9, 1))]"
        }
    }
    print(line)
}
