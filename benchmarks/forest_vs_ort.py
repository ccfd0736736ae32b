#!/usr/bin/env python3
"""A scikit-learn random forest (300 trees) over 10,000 rows: our engine against ONNX Runtime.

The forest is trained on uniform [0, 1) features (what `onnx-serve bench` feeds), converted with
skl2onnx (probabilities as a tensor, no ZipMap), and timed in rounds that alternate ours
(`onnx-serve bench --json`, a fresh process) and ORT (same threads, same kind of input). It prints
the median time per run of each and ours/ORT. The machine is shared and noisy: read the ratio.

    python3 benchmarks/forest_vs_ort.py --threads 2 --rounds 3 --seconds 3
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
BINARY = os.path.join(ROOT, ".build", "release", "onnx-serve")


def build_forest(path, trees, depth, features, seed=0):
    from sklearn.ensemble import RandomForestClassifier
    from skl2onnx import to_onnx
    rng = np.random.default_rng(seed)
    x = rng.random((4000, features), dtype=np.float32)
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0.8).astype(np.int64) + (x[:, 3] > 0.7)
    forest = RandomForestClassifier(n_estimators=trees, max_depth=depth, random_state=seed, n_jobs=1).fit(x, y)
    model = to_onnx(forest, x[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
    with open(path, "wb") as handle:
        handle.write(model.SerializeToString())
    return sum(estimator.tree_.node_count for estimator in forest.estimators_)


def ours(binary, model, rows, threads, seconds):
    out = subprocess.run([binary, "bench", model, "--batch", str(rows), "--threads", str(threads), "--seconds", str(seconds), "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["medianMilliseconds"]


def ort_median(model, rows, features, threads, seconds, seed):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(seed).random((rows, features), dtype=np.float32)
    session.run(None, {"X": x})
    times, start = [], time.perf_counter()
    while len(times) < 10 or time.perf_counter() - start < seconds:
        begin = time.perf_counter()
        session.run(None, {"X": x})
        times.append((time.perf_counter() - begin) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=BINARY)
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model = os.path.join(folder, "forest.onnx")
        nodes = build_forest(model, args.trees, args.depth, args.features)
        print("random forest: %d trees, max depth %d, %d nodes, %d features; %d rows, %d threads"
              % (args.trees, args.depth, nodes, args.features, args.rows, args.threads))
        mine, theirs = [], []
        for round_index in range(args.rounds):
            order = [("ours", mine), ("ort", theirs)] if round_index % 2 == 0 else [("ort", theirs), ("ours", mine)]
            for name, results in order:
                if name == "ours":
                    results.append(ours(args.binary, model, args.rows, args.threads, args.seconds))
                else:
                    results.append(ort_median(model, args.rows, args.features, args.threads, args.seconds, round_index))
        a, b = statistics.median(mine), statistics.median(theirs)
        print("onnx-serve: %.2f ms per run (rounds: %s)" % (a, ", ".join("%.2f" % v for v in mine)))
        print("onnxruntime: %.2f ms per run (rounds: %s)" % (b, ", ".join("%.2f" % v for v in theirs)))
        print("ours/ORT: %.2f" % (a / b))


if __name__ == "__main__":
    main()
