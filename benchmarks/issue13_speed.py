#!/usr/bin/env python3
"""Issue 13's speed targets beside ONNX Runtime, with an A/A control: a 2-layer LSTM (hidden 256,
input 256, sequence 100; batch 1 and 16) and a 300-tree random forest over 10,000 rows; on
request (`--cases bilstm1,bilstm16`) the same LSTM bidirectional (its second layer's input 512).

Each round times every case with ours twice (A and A': the same binary, two fresh
`onnx-serve bench --json` processes) and with ORT once (a fresh session in this process), in an
order that rotates from round to round, so a slow moment on the shared machine hits all alike.
Per case it prints the medians over rounds of the wall median per run and of the CPU time per run
(all threads of the process over the timed runs / runs; at 1 thread the steadier figure), ours/ORT
on both, and the A/A ratio's median and range over rounds: a difference between ours and ORT
smaller than that range is noise.

    python3 benchmarks/issue13_speed.py --threads 1 --rounds 5 --seconds 2 [--cases lstm1,lstm16,forest]
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

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
BINARY = os.path.join(ROOT, ".build", "release", "onnx-serve")
sys.path.insert(0, os.path.join(ROOT, "Tests", "Python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def lstm_model(folder, bidirectional=False):
    from test_recurrent import stacked
    model = stacked("LSTM", 2, 256, 256, bidirectional=bidirectional, seed=0)
    for dim in model.graph.input[0].type.tensor_type.shape.dim:
        if dim.dim_param == "seq":
            dim.dim_value = 100
    path = os.path.join(folder, "bilstm.onnx" if bidirectional else "lstm.onnx")
    onnx.save(model, path)
    return path


def forest_model(folder):
    from forest_vs_ort import build_forest
    path = os.path.join(folder, "forest.onnx")
    build_forest(path, 300, 12, 10)
    return path


def cases(folder, names):
    """name -> (model path, `bench` arguments that size its input, ORT feeds of the same shape)."""
    rng = np.random.default_rng(0)
    table = {}
    if any(name.startswith("lstm") for name in names):
        path = lstm_model(folder)
        for batch in (1, 16):
            table["lstm%d" % batch] = (path, ["--dim", "batch=%d" % batch],
                                       {"x": rng.random((100, batch, 256), dtype=np.float32)})
    if any(name.startswith("bilstm") for name in names):
        path = lstm_model(folder, bidirectional=True)
        for batch in (1, 16):
            table["bilstm%d" % batch] = (path, ["--dim", "batch=%d" % batch],
                                         {"x": rng.random((100, batch, 256), dtype=np.float32)})
    if "forest" in names:
        table["forest"] = (forest_model(folder), ["--batch", "10000"], {"X": rng.random((10000, 10), dtype=np.float32)})
    return {name: table[name] for name in names}


def ours(binary, path, size, threads, seconds):
    out = subprocess.run([binary, "bench", path, *size, "--threads", str(threads), "--seconds", str(seconds), "--json"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("onnx-serve bench failed: %s" % out.stderr.strip())
    result = json.loads(out.stdout)
    return result["medianMilliseconds"], result["cpuMillisecondsPerRun"]


def ort(path, feeds, threads, seconds):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    warm = time.perf_counter()
    while time.perf_counter() - warm < min(1, seconds / 5):
        session.run(None, feeds)
    times, start, cpu = [], time.perf_counter(), time.process_time()
    while len(times) < 10 or time.perf_counter() - start < seconds:
        begin = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - begin) * 1000)
    return statistics.median(times), (time.process_time() - cpu) * 1000 / len(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=BINARY)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2)
    parser.add_argument("--cases", default="lstm1,lstm16,forest")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        table = cases(folder, args.cases.split(","))
        results = {name: {"A": [], "A'": [], "ORT": []} for name in table}
        runners = ("A", "A'", "ORT")
        for round_index in range(args.rounds):
            order = runners[round_index % 3:] + runners[:round_index % 3]
            for name, (path, size, feeds) in table.items():
                for runner in order:
                    figure = (ort(path, feeds, args.threads, args.seconds) if runner == "ORT"
                              else ours(args.binary, path, size, args.threads, args.seconds))
                    results[name][runner].append(figure)
        print("%d threads, %d rounds of %g s; medians over rounds in ms (wall median per run | CPU per run)"
              % (args.threads, args.rounds, args.seconds))
        for name, runs in results.items():
            med = {runner: [statistics.median(r[i] for r in runs[runner]) for i in (0, 1)] for runner in runners}
            ours_med = [statistics.median([r[i] for r in runs["A"] + runs["A'"]]) for i in (0, 1)]
            aa = [[a[i] / b[i] for a, b in zip(runs["A"], runs["A'"], strict=True)] for i in (0, 1)]
            print("  %-7s ours %8.2f | %8.2f   ORT %8.2f | %8.2f   ours/ORT %.3f | %.3f   A/A %.3f [%.3f..%.3f] | %.3f [%.3f..%.3f]"
                  % (name, ours_med[0], ours_med[1], med["ORT"][0], med["ORT"][1],
                     ours_med[0] / med["ORT"][0], ours_med[1] / med["ORT"][1],
                     statistics.median(aa[0]), min(aa[0]), max(aa[0]), statistics.median(aa[1]), min(aa[1]), max(aa[1])))
            print("          rounds ours A: %s; A': %s; ORT: %s" % tuple(
                ", ".join("%.2f|%.2f" % r for r in runs[runner]) for runner in runners))


if __name__ == "__main__":
    main()
