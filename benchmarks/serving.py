#!/usr/bin/env python3
"""Serving figures for the TF Serving REST path, on loopback:

  * end-to-end latency (p50/p99) at one client for the shipped digits model and ResNet-18, and the
    server's own overhead: end-to-end minus the engine time the server reports (Server-Timing);
  * time from start to ready with ResNet-50 plus digits, and RSS after loading;
  * requests/s for digits at 32 concurrent connections (wrk), with the error count;
  * ResNet-18 through tritonclient (Open Inference Protocol): binary vs JSON tensors, p50, and the
    server's own overhead on the binary path (server time minus engine time, from Server-Timing
    and the response's arrival).

ResNet models come from benchmarks/export_models.py (.build/models). Release build required.
    python3 benchmarks/serving.py [--seconds 10]
"""
import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
BINARY = os.path.join(ROOT, ".build", "release", "onnx-serve")
MODELS = os.path.join(ROOT, ".build", "models")


def start(repository, *extra):
    """Starts the daemon on an ephemeral port; returns (process, port, seconds to ready)."""
    began = time.perf_counter()
    process = subprocess.Popen([BINARY, "serve", "--model-repository", repository, "--host", "127.0.0.1", "--port", "0",
                                "--drain-seconds", "0", *extra], stderr=subprocess.PIPE, text=True)
    port = None
    while port is None:
        line = process.stderr.readline()
        if not line:
            sys.exit("daemon exited before listening")
        match = re.search(r"listening on .* port (\d+)", line)
        if match:
            port = int(match.group(1))
    import threading
    threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/v2/health/ready")
        if connection.getresponse().status == 200:
            break
        time.sleep(0.01)
    return process, port, time.perf_counter() - began


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(next(l for l in f if l.startswith("VmRSS")).split()[1]) / 1024


def repository(directory, with_resnet):
    shutil.copytree(os.path.join(ROOT, "config", "models", "digits"), os.path.join(directory, "digits"))
    for name in with_resnet:
        path = os.path.join(MODELS, name + ".onnx")
        if not os.path.exists(path):
            sys.exit("%s missing: run benchmarks/export_models.py" % path)
        os.makedirs(os.path.join(directory, name, "1"))
        os.symlink(path, os.path.join(directory, name, "1", "model.onnx"))
    return directory


def latency(port, model, body, count):
    connection = http.client.HTTPConnection("127.0.0.1", port)
    totals, overheads = [], []
    for index in range(count + 5):
        began = time.perf_counter()
        connection.request("POST", "/v1/models/%s:predict" % model, body=body)
        answer = connection.getresponse()
        answer.read()
        elapsed = (time.perf_counter() - began) * 1000
        assert answer.status == 200, answer.status
        if index < 5:
            continue  # warm-up
        timing = dict(re.findall(r"(\w+);dur=([\d.]+)", answer.getheader("Server-Timing")))
        totals.append(elapsed)
        overheads.append(elapsed - float(timing["engine"]))
    totals.sort()
    return statistics.median(totals), totals[int(len(totals) * 0.99) - 1], statistics.median(overheads)


def tritonclient_latency(port, count):
    """p50 end-to-end of ResNet-18 through tritonclient, binary and JSON tensors; and the server's
    own overhead: its statistics' total request time minus engine time, per request."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient("127.0.0.1:%d" % port)
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    results = {}
    for binary in (True, False):
        given = httpclient.InferInput("input", list(x.shape), "FP32")
        given.set_data_from_numpy(x, binary_data=binary)
        wanted = [httpclient.InferRequestedOutput("logits", binary_data=binary)]
        for _ in range(3):
            client.infer("resnet18", [given], outputs=wanted)
        before = client.get_inference_statistics("resnet18")["model_stats"][0]["inference_stats"]
        times = []
        for _ in range(count):
            began = time.perf_counter()
            client.infer("resnet18", [given], outputs=wanted)
            times.append((time.perf_counter() - began) * 1000)
        after = client.get_inference_statistics("resnet18")["model_stats"][0]["inference_stats"]
        per = lambda key: (int(after[key]["ns"]) - int(before[key]["ns"])) / count / 1e6
        results[binary] = (statistics.median(times), per("success") - per("compute_infer") - per("queue"),
                           per("compute_input"), per("compute_output"))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    digits_body = json.dumps({"instances": [rng.integers(0, 17, 64).astype(float).tolist()]})
    image_body = json.dumps({"instances": rng.random((1, 3, 224, 224), dtype=np.float32).tolist()})

    with tempfile.TemporaryDirectory() as directory:
        process, port, _ = start(repository(directory, ["resnet18"]))
        try:
            print("end-to-end latency, one client, keep-alive (ms; overhead = end-to-end minus engine time):")
            for model, body, count in [("digits", digits_body, 2000), ("resnet18", image_body, 100)]:
                p50, p99, overhead = latency(port, model, body, count)
                print("  %-9s p50 %7.3f  p99 %7.3f  server+client overhead p50 %6.3f  (%d requests, %.1f kB body)"
                      % (model, p50, p99, overhead, count, len(body) / 1000))
            triton = tritonclient_latency(port, 50)
            for binary in (True, False):
                p50, overhead, decode, encode = triton[binary]
                print("  resnet18 via tritonclient, %-6s tensors: p50 %7.2f ms; server overhead (total - engine - queue) %.3f ms "
                      "(decode %.3f, encode %.3f)" % ("binary" if binary else "JSON", p50, overhead, decode, encode))
            print("  binary vs JSON p50: %.2fx faster" % (triton[False][0] / triton[True][0]))
            with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
                script.write('wrk.method = "POST"\nwrk.body = %s\n' % json.dumps(digits_body))
                script.flush()
                done = subprocess.run(["wrk", "-t2", "-c32", "-d%ds" % args.seconds, "-s", script.name,
                                       "http://127.0.0.1:%d/v1/models/digits:predict" % port], capture_output=True, text=True)
            rps = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1)
            non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
            socket_errors = re.search(r"Socket errors: (.*)", done.stdout)
            latency_line = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", done.stdout)
            print("digits at 32 connections (wrk -t2 -c32 -d%ds): %s requests/s, non-2xx %s, socket errors: %s, latency avg %s"
                  % (args.seconds, rps, non2xx.group(1) if non2xx else "0",
                     socket_errors.group(1) if socket_errors else "none", latency_line.group(1) if latency_line else "?"))
        finally:
            process.terminate()
            process.wait()

    with tempfile.TemporaryDirectory() as directory:
        times, rss = [], []
        for _ in range(3):
            process, port, seconds = start(repository(tempfile.mkdtemp(dir=directory), ["resnet50"]))
            times.append(seconds)
            rss.append(rss_mb(process.pid))
            process.terminate()
            process.wait()
        print("start to ready with ResNet-50 + digits (warm-up included): median %.2f s of 3; RSS after load %.0f MiB"
              % (statistics.median(times), statistics.median(rss)))


if __name__ == "__main__":
    main()
