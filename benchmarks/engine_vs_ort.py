#!/usr/bin/env python3
"""Our engine against ONNX Runtime, side by side in one run, on torchvision exports
(ResNet-50 and MobileNetV2, opset 13, dynamic batch; see export_models.py).

For each model and batch size it alternates rounds of ours (`onnx-serve bench --json`) and ORT
(same random input shape, same thread count), and reports medians and the ours/ORT ratio.
Then load time (median of several fresh loads) and peak RSS of a process that loads the model
and runs it once, ours vs ORT. The machine is shared and noisy: read ratios, not single times.

    python3 benchmarks/engine_vs_ort.py --threads 2 --seconds 5 --rounds 2
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
BINARY = os.path.join(ROOT, ".build", "release", "onnx-serve")


def ours_bench(model, batch, threads, seconds):
    out = subprocess.run([BINARY, "bench", model, "--batch", str(batch), "--threads", str(threads),
                          "--seconds", str(seconds), "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def ort_session(model, threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def ort_bench(model, batch, threads, seconds):
    session = ort_session(model, threads)
    feeds = {}
    for i in session.get_inputs():
        shape = [batch if not isinstance(d, int) else d for d in i.shape]
        feeds[i.name] = np.random.rand(*shape).astype(np.float32)
    deadline = time.perf_counter() + min(1.0, seconds / 5)
    for _ in range(3):
        session.run(None, feeds)
    while time.perf_counter() < deadline:
        session.run(None, feeds)
    times = []
    start = time.perf_counter()
    while len(times) < 10 or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - t) * 1000)
    return {"medianMilliseconds": statistics.median(times), "runs": len(times)}


def child_peak_rss_mb(command):
    """Peak RSS of a command, in MiB, as GNU time reports it (`time` package).

    Not from our own wait4: Linux keeps a process's peak RSS across exec, so a child forked from
    this (large) Python process would report this process's size, not its own. GNU time is
    small, so what it forks and execs starts from nothing."""
    if not os.path.exists("/usr/bin/time"):
        raise SystemExit("peak RSS needs GNU time: apt-get install time")
    done = subprocess.run(["/usr/bin/time", "-f", "%M"] + command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError("%s failed: %s" % (command[0], done.stderr))
    return int(done.stderr.strip().splitlines()[-1]) / 1024


ORT_ONCE = """
import sys, numpy as np, onnxruntime as ort
o = ort.SessionOptions(); o.intra_op_num_threads = int(sys.argv[2])
s = ort.InferenceSession(sys.argv[1], o, providers=["CPUExecutionProvider"])
if len(sys.argv) > 3:
    i = s.get_inputs()[0]
    s.run(None, {i.name: np.random.rand(*[1 if not isinstance(d, int) else d for d in i.shape]).astype(np.float32)})
"""


def load_times(model, threads, repeats):
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(ours_bench(model, 1, threads, 0)["loadMilliseconds"])
        t = time.perf_counter()
        ort_session(model, threads)
        theirs.append((time.perf_counter() - t) * 1000)
    return statistics.median(ours), statistics.median(theirs)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=os.path.join(ROOT, ".build", "models"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per configuration")
    parser.add_argument("--batches", default="1,8")
    args = parser.parse_args()
    import onnxruntime

    models = [("ResNet-50", os.path.join(args.models, "resnet50.onnx")),
              ("MobileNetV2", os.path.join(args.models, "mobilenet_v2.onnx"))]
    for _, path in models:
        if not os.path.exists(path):
            sys.exit("%s missing: run benchmarks/export_models.py (needs torch + torchvision)" % path)
    core = ours_bench(models[0][1], 1, args.threads, 0)["openBLASCore"]
    print("onnx-serve vs onnxruntime %s, %d intra-op threads, OpenBLAS core %s, %s s per timing, %d rounds"
          % (onnxruntime.__version__, args.threads, core, args.seconds, args.rounds))
    print("%-12s %5s %12s %12s %8s" % ("model", "batch", "ours ms", "ORT ms", "ours/ORT"))
    for label, path in models:
        for batch in (int(b) for b in args.batches.split(",")):
            ours, theirs = [], []
            for _ in range(args.rounds):
                ours.append(ours_bench(path, batch, args.threads, args.seconds)["medianMilliseconds"])
                theirs.append(ort_bench(path, batch, args.threads, args.seconds)["medianMilliseconds"])
            a, b = statistics.median(ours), statistics.median(theirs)
            print("%-12s %5d %12.2f %12.2f %8.2f" % (label, batch, a, b, a / b))
    sys.stdout.flush()

    resnet = models[0][1]
    ours_load, ort_load = load_times(resnet, args.threads, 5)
    print("ResNet-50 load (median of 5): ours %.0f ms, ORT %.0f ms, ratio %.2f" % (ours_load, ort_load, ours_load / ort_load))
    ours_rss = child_peak_rss_mb([BINARY, "bench", resnet, "--seconds", "0", "--threads", str(args.threads)])
    ort_rss = child_peak_rss_mb([sys.executable, "-c", ORT_ONCE, resnet, str(args.threads), "run"])
    python_rss = child_peak_rss_mb([sys.executable, "-c", "import numpy, onnxruntime"])
    print("ResNet-50 peak RSS, load + 1 batch-1 run: ours %.0f MiB, ORT %.0f MiB (of which %.0f MiB is Python + numpy + onnxruntime imported)"
          % (ours_rss, ort_rss, python_rss))


if __name__ == "__main__":
    main()
