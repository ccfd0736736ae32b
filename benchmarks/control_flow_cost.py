#!/usr/bin/env python3
"""What a Loop iteration costs next to its body run alone, and a stacked LSTM beside ONNX Runtime.

Loop: the body v = tanh(v · a + b) over a [width] vector, (1) as a plain graph, (2) as the body of a
Loop of 1 and (3) of `--iterations` iterations; one iteration costs (T(n) - T(1)) / (n - 1), which
the issue asks to be close to the plain body's time. LSTM: 2 layers, hidden 256, input 256,
sequence 100, batch 1 and 16 (the PyTorch export structure of test_recurrent.py). Times are
minimums and medians of `onnx-serve bench --json` (a fresh process each) and of ORT runs in this
process, single-threaded unless --threads says otherwise. On a shared, loaded machine a run of
milliseconds is preempted far more often than one of microseconds: compare minimums.

    python3 benchmarks/control_flow_cost.py --threads 1 --seconds 3
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "Tests", "Python"))
from test_recurrent import stacked  # noqa: E402


def body_nodes(prefix, source, target):
    return [helper.make_node("Mul", [source, "a"], [prefix + "scaled"]),
            helper.make_node("Add", [prefix + "scaled", "b"], [prefix + "shifted"]),
            helper.make_node("Tanh", [prefix + "shifted"], [target])]


def plain(width):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.uniform(-1, 1, width).astype(np.float32), "a"),
             numpy_helper.from_array(rng.uniform(-1, 1, width).astype(np.float32), "b")]
    graph = helper.make_graph(body_nodes("", "x", "y"), "plain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [width])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def loop(width, iterations):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.uniform(-1, 1, width).astype(np.float32), "a"),
             numpy_helper.from_array(rng.uniform(-1, 1, width).astype(np.float32), "b"),
             numpy_helper.from_array(np.array(iterations, dtype=np.int64), "M")]
    body = helper.make_graph(body_nodes("", "v_in", "v_out") + [helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
                             [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                              helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                              helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [width])],
                             [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
                              helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [width])])
    graph = helper.make_graph([helper.make_node("Loop", ["M", "", "x"], ["y"], body=body)], "loop",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [width])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def ours(binary, path, threads, seconds, batch=1):
    out = subprocess.run([binary, "bench", path, "--batch", str(batch), "--threads", str(threads), "--seconds", str(seconds), "--json"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    result = json.loads(out.stdout)
    return result["minMilliseconds"], result["medianMilliseconds"]


def ort_time(path, feeds, threads, seconds):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    for _ in range(3):
        session.run(None, feeds)
    times, end = [], time.time() + seconds
    while time.time() < end:
        start = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - start) * 1000)
    return min(times), statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "onnx-serve"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=1000)
    args = parser.parse_args()
    directory = tempfile.mkdtemp()
    save = lambda model, name: (onnx.save(model, os.path.join(directory, name)), os.path.join(directory, name))[1]

    x = {"x": np.random.default_rng(1).uniform(-1, 1, args.width).astype(np.float32)}
    paths = {"plain": save(plain(args.width), "plain.onnx"), "loop1": save(loop(args.width, 1), "loop1.onnx"),
             "loopN": save(loop(args.width, args.iterations), "loopN.onnx")}
    times = {name: (ours(args.binary, path, args.threads, args.seconds), ort_time(path, x, args.threads, args.seconds))
             for name, path in paths.items()}
    print("Loop over a [%d] vector (3 ops per body), %d threads; ms (ours min, median; ORT min, median):" % (args.width, args.threads))
    for name, (mine, theirs) in times.items():
        print("  %-6s %9.4f %9.4f   %9.4f %9.4f" % (name, mine[0], mine[1], theirs[0], theirs[1]))
    for column, label in ((0, "ours"), (1, "ORT")):
        for statistic, kind in ((0, "min"), (1, "median")):
            iteration = (times["loopN"][column][statistic] - times["loop1"][column][statistic]) / (args.iterations - 1)
            plain_run = times["plain"][column][statistic]
            print("  %s (%s): one iteration %.2f us = %.2f x the plain body's run (%.2f us)"
                  % (label, kind, iteration * 1000, iteration / plain_run, plain_run * 1000))

    print("2-layer LSTM, hidden 256, input 256, sequence 100; medians in ms:")
    model = stacked("LSTM", 2, 256, 256, seed=0)
    # bench feeds the leading dimension as --batch: give the model a fixed sequence and a leading batch.
    for dim in model.graph.input[0].type.tensor_type.shape.dim:
        if dim.dim_param == "seq":
            dim.dim_value = 100
    path = save(model, "lstm.onnx")
    for batch in (1, 16):
        feeds = {"x": np.random.default_rng(2).uniform(0, 1, (100, batch, 256)).astype(np.float32)}
        mine = ours_with_batch(args.binary, path, batch, args.threads, args.seconds)
        theirs = ort_time(path, feeds, args.threads, args.seconds)
        print("  batch %2d: min ours %8.2f ORT %8.2f (ours/ORT %.2f); median ours %8.2f ORT %8.2f (%.2f)"
              % (batch, mine[0], theirs[0], mine[0] / theirs[0], mine[1], theirs[1], mine[1] / theirs[1]))


def ours_with_batch(binary, path, batch, threads, seconds):
    # x is [seq, batch, 256]: the batch is not the leading dimension, so it is set by name.
    out = subprocess.run([binary, "bench", path, "--dim", "batch=%d" % batch, "--threads", str(threads),
                          "--seconds", str(seconds), "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    result = json.loads(out.stdout)
    return result["minMilliseconds"], result["medianMilliseconds"]


if __name__ == "__main__":
    main()
