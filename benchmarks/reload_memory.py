#!/usr/bin/env python3
"""Memory over reload cycles: a ResNet-50-sized model (ResNet-50's layers, random weights, built
here with onnx.helper: no download) served in poll mode; each cycle renames a new version folder
into the repository, waits until the new version answers a request and the old one has retired,
then removes the old folder. Prints the daemon's RSS along the way and the time from each rename
to the new version's first answer. Loopback only; bounded by --cycles.

    python3 benchmarks/reload_memory.py [--cycles 100] [--poll-seconds 0.2] [--binary .build/release/onnx-serve]
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import onnx
import requests
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def resnet50(path, seed=0):
    """ResNet-50 v1.5 (torchvision's layout; BatchNorm folded away, as the engine would): input
    float [N, 3, 224, 224] -> logits [N, 1000], 25.5 M random weights (He-scaled)."""
    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    counter = [0]

    def name(prefix):
        counter[0] += 1
        return "%s%d" % (prefix, counter[0])

    def conv(x, cin, cout, k, stride=1, relu=True):
        w = name("w")
        b = name("b")
        weights.append(numpy_helper.from_array((rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k)) * 0.5).astype(np.float32), w))
        weights.append(numpy_helper.from_array(np.zeros(cout, np.float32), b))
        y = name("conv")
        nodes.append(helper.make_node("Conv", [x, w, b], [y], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4))
        if not relu:
            return y
        r = name("relu")
        nodes.append(helper.make_node("Relu", [y], [r]))
        return r

    x = conv("input", 3, 64, 7, 2)
    pooled = name("pool")
    nodes.append(helper.make_node("MaxPool", [x], [pooled], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    x, cin = pooled, 64
    for width, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for block in range(blocks):
            s = stride if block == 0 else 1
            y = conv(x, cin, width, 1)
            y = conv(y, width, width, 3, s)
            y = conv(y, width, width * 4, 1, relu=False)
            shortcut = conv(x, cin, width * 4, 1, s, relu=False) if block == 0 else x
            added, out = name("add"), name("relu")
            nodes += [helper.make_node("Add", [y, shortcut], [added]), helper.make_node("Relu", [added], [out])]
            x, cin = out, width * 4
    gap, flat = name("gap"), name("flat")
    nodes += [helper.make_node("GlobalAveragePool", [x], [gap]), helper.make_node("Flatten", [gap], [flat])]
    weights.append(numpy_helper.from_array((rng.standard_normal((1000, 2048)) * 0.02).astype(np.float32), "fc_w"))
    weights.append(numpy_helper.from_array(np.zeros(1000, np.float32), "fc_b"))
    nodes.append(helper.make_node("Gemm", [flat, "fc_w", "fc_b"], ["logits"], transB=1))
    graph = helper.make_graph(nodes, "resnet50_random",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, path)
    return sum(int(np.prod(w.dims)) for w in weights)


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "onnx-serve"))
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--poll-seconds", type=float, default=0.2)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        source = os.path.join(directory, "resnet50.onnx")
        parameters = resnet50(source)
        repository = os.path.join(directory, "repository")
        os.makedirs(os.path.join(repository, "resnet", "1"))
        os.link(source, os.path.join(repository, "resnet", "1", "model.onnx"))
        print("model: ResNet-50 layout, %.1f M random weights, %.0f MB" % (parameters / 1e6, os.path.getsize(source) / 1e6))
        daemon = subprocess.Popen([options.binary, "serve", "--host", "127.0.0.1", "--port", "0", "--drain-seconds", "0",
                                   "--model-repository", repository, "--model-control-mode", "poll",
                                   "--repository-poll-seconds", str(options.poll_seconds), "--no-batching"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        log = []
        port = None
        deadline = time.monotonic() + 120
        while port is None:
            line = daemon.stderr.readline()
            if not line or time.monotonic() > deadline:
                sys.exit("daemon did not start: %s" % "".join(log))
            log.append(line)
            if " port " in line and "listening" in line:
                port = int(line.split(" port ")[1].split(";")[0])
        threading.Thread(target=lambda: [log.append(line) for line in daemon.stderr], daemon=True).start()
        url = "http://127.0.0.1:%d" % port
        body = {"instances": np.random.default_rng(1).random((1, 3, 224, 224), dtype=np.float32).round(3).tolist()}

        def answers(version):
            answer = requests.post(url + "/v1/models/resnet/versions/%d:predict" % version, json=body, timeout=60)
            return answer.status_code == 200

        def state(version):
            answer = requests.get(url + "/v1/models/resnet/versions/%d" % version, timeout=10)
            return answer.json()["model_version_status"][0]["state"] if answer.status_code == 200 else None

        def wait(condition, what, seconds=120):
            limit = time.monotonic() + seconds
            while not condition():
                if time.monotonic() > limit or daemon.poll() is not None:
                    raise RuntimeError("timed out waiting for %s: %s" % (what, "".join(log[-20:])))
                time.sleep(0.01)

        try:
            wait(lambda: answers(1), "version 1")
            rss = [rss_mib(daemon.pid)]
            first_answers = []
            print("cycle   0: RSS %6.0f MiB (version 1 loaded and answering)" % rss[0])
            for cycle in range(1, options.cycles + 1):
                old, new = cycle, cycle + 1
                staging = os.path.join(repository, "resnet", ".staging")
                os.makedirs(staging)
                os.link(source, os.path.join(staging, "model.onnx"))
                published = time.monotonic()
                os.rename(staging, os.path.join(repository, "resnet", str(new)))
                wait(lambda: answers(new), "version %d to answer" % new)
                first_answers.append(time.monotonic() - published)
                wait(lambda: state(old) == "END", "version %d to retire" % old)
                shutil.rmtree(os.path.join(repository, "resnet", str(old)))
                rss.append(rss_mib(daemon.pid))
                if cycle in (1, 2, 5) or cycle % 10 == 0:
                    print("cycle %3d: RSS %6.0f MiB" % (cycle, rss[-1]))
            print("RSS after cycle 1 %.0f MiB, after cycle %d %.0f MiB, highest %.0f MiB; the second half's median %.0f MiB vs the first half's %.0f MiB"
                  % (rss[1], options.cycles, rss[-1], max(rss), statistics.median(rss[len(rss) // 2:]), statistics.median(rss[1:len(rss) // 2])))
            print("rename to first answer of the new version (poll every %g s): median %.3f s, min %.3f s, max %.3f s"
                  % (options.poll_seconds, statistics.median(first_answers), min(first_answers), max(first_answers)))
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)


if __name__ == "__main__":
    main()
