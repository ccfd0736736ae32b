#!/usr/bin/env python3
"""Where the engine's time goes compared with ONNX Runtime, node by node: runs `onnx-serve bench
--profile --json` and an ONNX Runtime session with `enable_profiling` on the same model, input
shape and thread count, matches the nodes, and prints each side's median time per node (the
largest gaps first) and the totals per kind of node.

ONNX Runtime names the nodes it fuses after their outputs ("<tensor>_nchwc", e.g. a Conv+Clip
after the Clip's output) or after the last node of the pattern plus a suffix
("<Mul node>/QuickGeluFusion/" for x*Sigmoid(x)). A node is matched to ours by walking from there
back through the activations and residual Adds ONNX Runtime fuses to the Conv (or other node) that
made the value, and taking the furthest node of that walk our profile has: our optimiser keeps a
fused node under the name of its product.

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


# One-input activations ONNX Runtime fuses into the node before them (Conv, NCHWc Conv, Gemm).
FUSED_ACTIVATIONS = {"Relu", "Clip", "LeakyRelu", "HardSigmoid", "HardSwish", "Sigmoid", "Tanh", "Elu", "Selu",
                     "Softplus", "ThresholdedRelu", "Gelu", "FastGelu", "QuickGelu"}


def fused_chain(name, producers, nodes):
    """The model's nodes an ONNX Runtime node name stands for, from the last back to the product
    (see the module docstring)."""
    node = nodes.get(name)
    if node is None:
        tensor = name[: -len("_nchwc")] if name.endswith("_nchwc") else name
        node = producers.get(tensor)
    prefix = name.rstrip("/")
    while node is None and "/" in prefix:  # "<node>/QuickGeluFusion/" and the like
        prefix = prefix.rsplit("/", 1)[0]
        node = nodes.get(prefix)
    chain = []
    while node is not None and node not in chain:
        chain.append(node)
        if node.op_type in FUSED_ACTIVATIONS:
            source = node.input[0]
        elif node.op_type in ("Add", "Sum"):
            # A residual Add is fused into the product on one side; take that side.
            made = [i for i in node.input if producers.get(i) is not None and producers[i].op_type in ("Conv", "Gemm", "MatMul")]
            source = made[0] if made else node.input[0]
        elif node.op_type == "Mul" and len(node.input) == 2:
            # x * Sigmoid(x) or x * HardSigmoid(x) (SiLU, HardSwish): back to x.
            gates = [producers.get(i) for i in node.input]
            source = next((node.input[1 - k] for k, g in enumerate(gates) if g is not None
                           and g.op_type in ("Sigmoid", "HardSigmoid") and g.input[0] == node.input[1 - k]), None)
            if source is None:
                break
        else:
            break
        node = producers.get(source)
    return chain


def original_node(name, producers, nodes, ours, consumers=None):
    """Our node name an ONNX Runtime node stands for: the furthest node of its fused chain that our
    profile has (a Conv we fused with its Clip is named after the Conv; one we did not fuse keeps
    its Clip); else, for a node we folded into its only consumer (a squeeze-and-excitation Mul
    taken into the next 1x1 convolution's weights), that consumer; else the chain's first node,
    else the name itself."""
    chain = fused_chain(name, producers, nodes)
    for node in reversed(chain):
        if node.name in ours:
            return node.name
    if chain and consumers is not None:
        readers = {reader.name for output in chain[0].output for reader in consumers.get(output, [])}
        if len(readers) == 1 and next(iter(readers)) in ours:
            return next(iter(readers))
    return chain[0].name if chain else name


def our_node_name(profiled):
    """The node name in an `onnx-serve bench --profile --json` row ("FusedConv 'name'" or the name)."""
    label = profiled["node"]
    return label.split("'", 1)[1].rsplit("'", 1)[0] if "'" in label else label


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
    consumers = collections.defaultdict(list)
    for node in model.graph.node:
        for name in set(node.input):
            consumers[name].append(node)

    done = subprocess.run([args.binary, "bench", args.model, "--batch", str(args.batch), "--threads", str(args.threads),
                           "--seconds", str(args.seconds), "--profile", "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit("onnx-serve bench failed: " + done.stderr.strip())
    ours = json.loads(done.stdout)
    runs = max(10, ours["runs"])
    theirs, ort_median = onnxruntime_profile(args.model, args.batch, args.threads, runs)
    nodes = {node.name: node for node in model.graph.node if node.name}
    our_names = {our_node_name(node) for node in ours["profile"]}
    matched = {}
    for name, (kind, ms) in theirs.items():
        key = original_node(name, producers, nodes, our_names, consumers)
        previous = matched.get(key, (kind, 0.0))
        matched[key] = (previous[0], previous[1] + ms)

    rows = []
    for node in ours["profile"]:
        name = our_node_name(node)
        kind, ort_ms = matched.pop(name, ("-", 0.0))
        rows.append((name, node["opType"], node["outputShape"], node["milliseconds"], ort_ms))
    ours_total = sum(r[3] for r in rows)
    ort_total = sum(r[4] for r in rows) + sum(ms for _, ms in matched.values())
    print("model %s, batch %d, %d threads" % (os.path.basename(args.model), args.batch, args.threads))
    print("run median: onnx-serve %.2f ms, onnxruntime %.2f ms (%.2fx); sum of node medians %.2f vs %.2f ms"
          % (ours["medianMilliseconds"], ort_median, ours["medianMilliseconds"] / ort_median, ours_total, ort_total))
    # ONNX Runtime's layout changes (NCHW <-> NCHWc) have no node of ours: one line for all of them.
    reorders = [ms for kind, ms in matched.values() if kind.startswith("Reorder")]
    if reorders:
        print("onnxruntime layout reorders (no node of ours): %d nodes, %.3f ms" % (len(reorders), sum(reorders)))
    unmatched = [(k, ms) for k, (kind, ms) in matched.items() if not kind.startswith("Reorder")]
    if unmatched:
        print("onnxruntime nodes with no match: " + ", ".join("%s %.3f ms" % (k, ms) for k, ms in unmatched))
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
