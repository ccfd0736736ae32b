#!/usr/bin/env python3
"""Side-by-side CNN latency: onnx-serve vs ONNX Runtime on the same generated model.

Builds ResNet-50 (torchvision v1.5 layout: Conv+BatchNorm+Relu, bottlenecks with the stride on the
3x3, residual Adds) or MobileNetV2-like depthwise stacks with random weights, opset 17, batch 1, then times
ONNX Runtime (ORT_ENABLE_ALL) and `onnx-serve bench` with the same thread count. The classifier is a
1x1 Conv on the pooled features (same FLOPs as Flatten + Gemm, and no reshape operator needed).

  python3 tools/bench_cnn.py --binary .build/release/onnx-serve --threads 2
"""
import argparse
import json
import os
import subprocess
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Builder:
    def __init__(self, seed=0):
        self.nodes, self.inits, self.rng, self.count = [], [], np.random.default_rng(seed), 0

    def name(self, base):
        self.count += 1
        return f"{base}_{self.count}"

    def conv(self, x, cin, cout, k, stride=1, group=1, bn=True, relu=True, relu6=False):
        w = self.name("w")
        fan_in = cin // group * k * k
        self.inits.append(numpy_helper.from_array(
            (self.rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2 / fan_in)).astype(np.float32), w))
        y = self.name("conv")
        self.nodes.append(helper.make_node("Conv", [x, w], [y], kernel_shape=[k, k], strides=[stride, stride],
                                           pads=[k // 2] * 4, group=group))
        if bn:
            names = [self.name(p) for p in ("scale", "bias", "mean", "var")]
            values = [self.rng.uniform(0.5, 1.0, cout), self.rng.uniform(-0.1, 0.1, cout),
                      self.rng.uniform(-0.1, 0.1, cout), self.rng.uniform(0.5, 1.5, cout)]
            self.inits += [numpy_helper.from_array(v.astype(np.float32), n) for v, n in zip(values, names)]
            z = self.name("bn")
            self.nodes.append(helper.make_node("BatchNormalization", [y] + names, [z]))
            y = z
        if relu:
            z = self.name("relu")
            if relu6:
                low, high = self.name("min"), self.name("max")
                self.inits += [numpy_helper.from_array(np.array(0, np.float32), low),
                               numpy_helper.from_array(np.array(6, np.float32), high)]
                self.nodes.append(helper.make_node("Clip", [y, low, high], [z]))
            else:
                self.nodes.append(helper.make_node("Relu", [y], [z]))
            y = z
        return y

    def add(self, a, b, relu=True):
        y = self.name("add")
        self.nodes.append(helper.make_node("Add", [a, b], [y]))
        if relu:
            z = self.name("relu")
            self.nodes.append(helper.make_node("Relu", [y], [z]))
            y = z
        return y

    def head(self, x, channels):
        pooled = self.name("pool")
        self.nodes.append(helper.make_node("GlobalAveragePool", [x], [pooled]))
        return self.conv(pooled, channels, 1000, 1, bn=False, relu=False)

    def model(self, output):
        graph = helper.make_graph(self.nodes, "cnn", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
                                  [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def resnet50():
    b = Builder()
    x = b.conv("input", 3, 64, 7, stride=2)
    pooled = b.name("maxpool")
    b.nodes.append(helper.make_node("MaxPool", [x], [pooled], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    x, cin = pooled, 64
    for width, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for i in range(blocks):
            s = stride if i == 0 else 1
            y = b.conv(x, cin, width, 1)
            y = b.conv(y, width, width, 3, stride=s)
            y = b.conv(y, width, width * 4, 1, relu=False)
            shortcut = b.conv(x, cin, width * 4, 1, stride=s, relu=False) if i == 0 else x
            x, cin = b.add(y, shortcut), width * 4
    return b.model(b.head(x, cin))


def mobilenetv2():
    b = Builder()
    x, cin = b.conv("input", 3, 32, 3, stride=2, relu6=True), 32
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            stride, hidden = (s if i == 0 else 1), cin * t
            y = b.conv(x, cin, hidden, 1, relu6=True) if t != 1 else x
            y = b.conv(y, hidden, hidden, 3, stride=stride, group=hidden, relu6=True)
            y = b.conv(y, hidden, c, 1, relu=False)
            x = b.add(y, x, relu=False) if stride == 1 and cin == c else y
            cin = c
    x = b.conv(x, cin, 1280, 1, relu6=True)
    return b.model(b.head(x, 1280))


def time_ort(path, threads, seconds):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {"input": np.random.default_rng(1).random((1, 3, 224, 224), dtype=np.float32)}
    for _ in range(5):
        session.run(None, feed)
    samples, start = [], time.perf_counter()
    while len(samples) < 10 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        session.run(None, feed)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return samples[0], samples[len(samples) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=".build/release/onnx-serve")
    parser.add_argument("--model", choices=["resnet50", "mobilenetv2"], default="resnet50")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--out", default="/tmp")
    args = parser.parse_args()
    path = os.path.join(args.out, f"bench_{args.model}.onnx")
    if not os.path.exists(path):
        onnx.save(resnet50() if args.model == "resnet50" else mobilenetv2(), path)
    best, median = time_ort(path, args.threads, args.seconds)
    print(f"onnxruntime  {args.model} {args.threads} threads: min {best:.2f} ms, median {median:.2f} ms")
    result = subprocess.run([args.binary, "bench", path, "--threads", str(args.threads), "--seconds", str(args.seconds), "--json"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stderr.strip())
        return
    ours = json.loads(result.stdout)
    print(f"onnx-serve   {args.model} {args.threads} threads: min {ours['minMilliseconds']:.2f} ms, median {ours['medianMilliseconds']:.2f} ms, "
          f"p90 {ours['p90Milliseconds']:.2f} ms (load {ours['loadMilliseconds']:.0f} ms)")


if __name__ == "__main__":
    main()
