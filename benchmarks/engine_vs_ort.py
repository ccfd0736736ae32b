#!/usr/bin/env python3
"""Our engine against ONNX Runtime, side by side in one run, over the benchmark set of
export_models.py (random weights, opset 13, dynamic batch).

Rounds are interleaved: each round times every model and batch size once with ours
(`onnx-serve bench --json`, a fresh process; with several `--binary` builds, each of them) and
once with ORT (a fresh session, same thread count, same kind of random input), alternating
which goes first, so a slow moment on a shared machine hits all alike. It reports per model and
batch the medians over rounds and ours/ORT, the geometric means of the ratios per batch size,
load time (ours from `bench`, ORT's session creation, medians over rounds) and peak RSS of a
process that loads the model and runs it once at batch 1 (for every build; `--rss-only` skips the
timed rounds). The machine is shared and noisy: read ratios, not single times.

    python3 benchmarks/engine_vs_ort.py --threads 2 --seconds 3 --rounds 3 [--only resnet50,mobilenet_v2]
    python3 benchmarks/engine_vs_ort.py --binary before=/tmp/before/onnx-serve --binary after=.build/release/onnx-serve
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
BINARY = os.path.join(ROOT, ".build", "release", "onnx-serve")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_models import MODELS  # noqa: E402  (the set, in table order)


def ours_bench(binary, model, batch, threads, seconds):
    out = subprocess.run([binary, "bench", model, "--batch", str(batch), "--threads", str(threads),
                          "--seconds", str(seconds), "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("onnx-serve bench %s failed: %s" % (model, out.stderr.strip()))
    return json.loads(out.stdout)


def ort_session(model, threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def random_feeds(inputs, batch, rng):
    """Inputs like `onnx-serve bench` makes: the symbolic leading dimension is the batch, floats
    uniform in [0, 1), integers in [0, 10)."""
    feeds = {}
    for given in inputs:
        shape = [batch if not isinstance(d, int) else d for d in given.shape]
        if "int" in given.type:
            feeds[given.name] = rng.integers(0, 10, shape).astype(np.int64 if "int64" in given.type else np.int32)
        else:
            feeds[given.name] = rng.random(shape, dtype=np.float32)
    return feeds


def ort_bench(model, batch, threads, seconds):
    began = time.perf_counter()
    session = ort_session(model, threads)
    load = (time.perf_counter() - began) * 1000
    feeds = random_feeds(session.get_inputs(), batch, np.random.default_rng(0))
    warmup = time.perf_counter() + min(1.0, seconds / 5)
    for _ in range(3):
        session.run(None, feeds)
    while time.perf_counter() < warmup:
        session.run(None, feeds)
    times = []
    start = time.perf_counter()
    while len(times) < 10 or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - t) * 1000)
    return {"medianMilliseconds": statistics.median(times), "loadMilliseconds": load}


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
sys.path.insert(0, sys.argv[3])
from engine_vs_ort import random_feeds
o = ort.SessionOptions(); o.intra_op_num_threads = int(sys.argv[2]); o.inter_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], o, providers=["CPUExecutionProvider"])
s.run(None, random_feeds(s.get_inputs(), 1, np.random.default_rng(0)))
"""


def geometric_mean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=os.path.join(ROOT, ".build", "models"), help="folder of the exports")
    parser.add_argument("--only", help="comma-separated model names (default: the whole set)")
    parser.add_argument("--binary", action="append", help="LABEL=PATH of an onnx-serve build (repeat to compare "
                        "builds in the same rounds; default: ours=.build/release/onnx-serve)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak RSS measurements")
    parser.add_argument("--rss-only", action="store_true", help="only the peak RSS measurements (no timed rounds)")
    args = parser.parse_args()
    import onnxruntime

    builds = [tuple(b.split("=", 1)) if "=" in b else (os.path.basename(b), b) for b in (args.binary or ["ours=" + BINARY])]
    names = args.only.split(",") if args.only else list(MODELS)
    models = [(name, os.path.join(args.models, name + ".onnx")) for name in names]
    missing = [path for _, path in models if not os.path.exists(path)]
    if missing:
        sys.exit("missing %s: run benchmarks/export_models.py (needs torch, torchvision, transformers)" % ", ".join(missing))
    batches = [int(b) for b in args.batches.split(",")]
    core = ours_bench(builds[0][1], models[0][1], 1, args.threads, 0)["openBLASCore"]
    print("onnx-serve (%s) vs onnxruntime %s, %d intra-op threads, OpenBLAS core %s, %s s per timing, %d interleaved "
          "rounds; load average %.1f at the start" % (", ".join(label for label, _ in builds), onnxruntime.__version__,
                                                       args.threads, core, args.seconds, args.rounds, os.getloadavg()[0]),
          flush=True)

    sides = [label for label, _ in builds] + ["ORT"]
    times = {(side, n, b): [] for side in sides for n, _ in models for b in batches}
    loads = {(side, n): [] for side in sides for n, _ in models}
    for round_ in range(0 if args.rss_only else args.rounds):
        for name, path in models:
            for batch in batches:
                timings = [(label, lambda binary=binary: ours_bench(binary, path, batch, args.threads, args.seconds))
                           for label, binary in builds]
                timings.append(("ORT", lambda: ort_bench(path, batch, args.threads, args.seconds)))
                for label, timing in (timings if round_ % 2 == 0 else timings[::-1]):
                    result = timing()
                    times[label, name, batch].append(result["medianMilliseconds"])
                    loads[label, name].append(result["loadMilliseconds"])
        print("round %d done, load average %.1f" % (round_ + 1, os.getloadavg()[0]), file=sys.stderr, flush=True)

    median = statistics.median
    for label, _ in ([] if args.rss_only else builds):
        print("\n%s: medians over rounds, ms" % label)
        print("%-20s" % "model" + "".join("%11s %10s %7s" % ("b%d ours" % b, "ORT", "ratio") for b in batches)
              + "  load ours / ORT ms")
        ratios = {b: [] for b in batches}
        for name, _ in models:
            line = "%-20s" % name
            for batch in batches:
                a, t = median(times[label, name, batch]), median(times["ORT", name, batch])
                ratios[batch].append(a / t)
                line += "%11.3f %10.3f %7.2f" % (a, t, a / t)
            print(line + "  %.0f / %.0f" % (median(loads[label, name]), median(loads["ORT", name])))
        print("%-20s" % "geometric mean" + "".join("%11s %10s %7.2f" % ("", "", geometric_mean(ratios[b])) for b in batches))
        print("%-20s" % "worst" + "".join("%11s %10s %7.2f" % ("", "", max(ratios[b])) for b in batches), flush=True)

    if args.no_rss:
        return
    python_rss = child_peak_rss_mb([sys.executable, "-c", "import numpy, onnxruntime"])
    print("\npeak RSS, load + one batch-1 run (MiB); ORT's includes %.0f MiB of Python + numpy + onnxruntime imported"
          % python_rss)
    print("%-20s" % "model" + "".join("%10s %7s" % (label, "/ORT") for label, _ in builds) + " %8s %14s" % ("ORT", "ORT - Python"))
    here = os.path.dirname(os.path.abspath(__file__))
    for name, path in models:
        mine = [child_peak_rss_mb([binary, "bench", path, "--seconds", "0", "--threads", str(args.threads)]) for _, binary in builds]
        other = child_peak_rss_mb([sys.executable, "-c", ORT_ONCE, path, str(args.threads), here])
        print("%-20s" % name + "".join("%10.0f %7.2f" % (value, value / other) for value in mine)
              + " %8.0f %14.0f" % (other, other - python_rss), flush=True)


if __name__ == "__main__":
    main()
