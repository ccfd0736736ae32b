#!/usr/bin/env python3
"""Where the engine's time goes compared with ONNX Runtime, node by node: runs `onnx-serve bench
--profile --json` and an ONNX Runtime session with `enable_profiling` on the same model, input
shape and thread count, matches the nodes, and prints each side's median time per node (the
largest gaps first) and the totals per kind of node.

ONNX Runtime names the nodes it fuses after their outputs ("<tensor>_nchwc"); a node is matched
to ours by walking from that tensor back through Relu/Add to the Conv (or other node) that made
it, which is the node our optimiser keeps (fused) under its own name.

    python3 benchmarks/profile_vs_ort.py .build/models/resnet50.onnx [--batch 1] [--threads 2] [--seconds 5] [--top 30]
"""
import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_vs_ort import random_feeds  # noqa: E402  (inputs as `onnx-serve bench` makes them)
BINARY = os.path.join(ROOT, ".build", "release", "onnx-serve")


def onnxruntime_profile(path, batch, threads, runs):
    """Median microseconds per node over `runs` runs, keyed by ONNX Runtime's node name; and the median run."""
    import time

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.gettempdir(), "profile_vs_ort")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = random_feeds(session.get_inputs(), batch, np.random.default_rng(0))
    for _ in range(5):
        session.run(None, feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - start) * 1000)
    trace = session.end_profiling()
    with open(trace) as f:
        events = json.load(f)
    os.remove(trace)
    durations = collections.defaultdict(list)
    kinds = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            name = event["name"][: -len("_kernel_time")]
            durations[name].append(event["dur"])
            kinds[name] = event["args"].get("op_name", "?")
    # The warm-up runs are profiled too: keep each node's last `runs` events.
    return {name: (kinds[name], statistics.median(values[-runs:]) / 1000) for name, values in durations.items()}, statistics.median(times)


def original_node(name, producers):
    """The model's node an ONNX Runtime node name stands for (see the module docstring)."""
    tensor = name[: -len("_nchwc")] if name.endswith("_nchwc") else name
    node = producers.get(tensor)
    while node is not None and node.op_type in ("Relu", "Add"):
        node = producers.get(node.input[0])
    return node.name if node is not None else name


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--top", type=int, default=30, help="nodes listed (largest gap first)")
    parser.add_argument("--binary", default=BINARY, help="the onnx-serve build to profile")
    args = parser.parse_args()
    import onnx

    model = onnx.load(args.model, load_external_data=False)
    producers = {output: node for node in model.graph.node for output in node.output}

    done = subprocess.run([args.binary, "bench", args.model, "--batch", str(args.batch), "--threads", str(args.threads),
                           "--seconds", str(args.seconds), "--profile", "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit("onnx-serve bench failed: " + done.stderr.strip())
    ours = json.loads(done.stdout)
    runs = max(10, ours["runs"])
    theirs, ort_median = onnxruntime_profile(args.model, args.batch, args.threads, runs)
    matched = {}
    for name, (kind, ms) in theirs.items():
        key = original_node(name, producers)
        previous = matched.get(key, (kind, 0.0))
        matched[key] = (previous[0], previous[1] + ms)

    rows = []
    for node in ours["profile"]:
        name = node["node"].split("'", 1)[1].rsplit("'", 1)[0] if "'" in node["node"] else node["node"]
        kind, ort_ms = matched.pop(name, ("-", 0.0))
        rows.append((name, node["opType"], node["outputShape"], node["milliseconds"], ort_ms))
    ours_total = sum(r[3] for r in rows)
    ort_total = sum(r[4] for r in rows) + sum(ms for _, ms in matched.values())
    print("model %s, batch %d, %d threads" % (os.path.basename(args.model), args.batch, args.threads))
    print("run median: onnx-serve %.2f ms, onnxruntime %.2f ms (%.2fx); sum of node medians %.2f vs %.2f ms"
          % (ours["medianMilliseconds"], ort_median, ours["medianMilliseconds"] / ort_median, ours_total, ort_total))
    if matched:
        print("onnxruntime nodes with no match: " + ", ".join("%s %.3f ms" % (k, ms) for k, (_, ms) in matched.items()))
    print("\n%9s %9s %7s %8s  %-48s %-10s %s" % ("ours ms", "ORT ms", "ratio", "gap ms", "node", "our op", "output"))
    for name, kind, shape, mine, theirs_ms in sorted(rows, key=lambda r: r[4] - r[3])[: args.top]:
        ratio = "%6.2fx" % (mine / theirs_ms) if theirs_ms > 0 else "      -"
        print("%9.3f %9.3f %s %+8.3f  %-48s %-10s %s" % (mine, theirs_ms, ratio, mine - theirs_ms, name[:48], kind, shape))
    groups = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for name, kind, shape, mine, theirs_ms in rows:
        group = groups[kind]
        group[0] += mine
        group[1] += theirs_ms
        group[2] += 1
    print("\nby our op type: ours ms, ORT ms (its matching nodes), nodes")
    for kind, (mine, theirs_ms, count) in sorted(groups.items(), key=lambda g: -g[1][0]):
        print("  %-20s %9.3f %9.3f %4d" % (kind, mine, theirs_ms, count))


if __name__ == "__main__":
    main()
