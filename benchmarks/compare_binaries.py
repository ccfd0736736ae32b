#!/usr/bin/env python3
"""A/B of two onnx-serve builds on one model, with ONNX Runtime beside them: rounds of
`onnx-serve bench --json` for each binary and an ORT timing loop, interleaved, so that a slow
moment on a shared machine hits all three alike. Prints the median of the per-round medians and
each build's ratio to ORT. For judging an engine change before it lands:

    git worktree add /tmp/before HEAD~1 && (cd /tmp/before && swift build -c release)
    python3 benchmarks/compare_binaries.py /tmp/before/.build/release/onnx-serve .build/release/onnx-serve \\
        .build/models/resnet50.onnx --threads 2 --rounds 5 --seconds 5
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np


def ours(binary, model, batch, threads, seconds):
    out = subprocess.run([binary, "bench", model, "--batch", str(batch), "--threads", str(threads),
                          "--seconds", str(seconds), "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("%s bench failed: %s" % (binary, out.stderr.strip()))
    return json.loads(out.stdout)["medianMilliseconds"]


def onnxruntime_median(session, feeds, seconds):
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 10:
        began = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    given = session.get_inputs()[0]
    shape = [args.batch] + [d if isinstance(d, int) else 1 for d in given.shape[1:]]
    feeds = {given.name: np.random.default_rng(0).random(shape, dtype=np.float32)}
    for _ in range(3):
        session.run(None, feeds)

    medians = {"before": [], "after": [], "onnxruntime": []}
    for _ in range(args.rounds):
        medians["before"].append(ours(args.before, args.model, args.batch, args.threads, args.seconds))
        medians["after"].append(ours(args.after, args.model, args.batch, args.threads, args.seconds))
        medians["onnxruntime"].append(onnxruntime_median(session, feeds, args.seconds))
    summary = {name: statistics.median(values) for name, values in medians.items()}
    for name, values in medians.items():
        print("%-12s median of %d round medians %8.2f ms   rounds: %s"
              % (name, len(values), summary[name], " ".join("%.1f" % v for v in values)))
    for name in ("before", "after"):
        print("%-12s / onnxruntime: %.2f" % (name, summary[name] / summary["onnxruntime"]))


if __name__ == "__main__":
    main()
