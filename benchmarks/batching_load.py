#!/usr/bin/env python3
"""Load test of dynamic batching, loopback only, bounded in time: requests/s and p50/p99 latency
at 1, 4, 16 and 64 concurrent clients (wrk), for the shipped digits model, MobileNetV2 and
ResNet-18, with onnx-serve's batching on and off, and against a minimal FastAPI + onnxruntime
server (benchmarks/fastapi_ort/app.py) under the same load. Every request is a TF Serving
predict with one row (`{"instances": [...]}`); the server, wrk and the Python server share
the machine's cores.

    python3 benchmarks/batching_load.py [--seconds 5] [--clients 1,4,16,64]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
BINARY = os.path.join(ROOT, ".build", "release", "onnx-serve")
MODELS = os.path.join(ROOT, ".build", "models")


def wait_until_ready(url, process, timeout=300):
    import requests

    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            sys.exit("server exited early")
        try:
            if requests.get(url, timeout=2).status_code in (200, 405):
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    sys.exit("server not ready: " + url)


def onnx_serve(repository, port, batching):
    process = subprocess.Popen([BINARY, "serve", "--model-repository", repository, "--host", "127.0.0.1", "--port", str(port),
                                "--drain-seconds", "0", "--batching" if batching else "--no-batching"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until_ready("http://127.0.0.1:%d/v2/health/ready" % port, process)
    return process


def fastapi(directory, port):
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "app:app", "--app-dir", os.path.join(ROOT, "benchmarks", "fastapi_ort"),
                                "--port", str(port), "--log-level", "warning"], env=dict(os.environ, MODEL_DIR=directory),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until_ready("http://127.0.0.1:%d/v1/models/none:predict" % port, process)
    return process


def to_ms(text):
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def wrk(url, body_file, clients, seconds):
    script = 'wrk.method = "POST"\nlocal f = io.open("%s", "rb")\nwrk.body = f:read("*a")\nf:close()\n' % body_file
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        done = subprocess.run(["wrk", "-t%d" % min(clients, 2), "-c%d" % clients, "-d%ds" % seconds, "--latency", "-s", lua.name, url],
                              capture_output=True, text=True)
    out = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"50%\s+(\S+)", out).group(1))
    p99 = to_ms(re.search(r"99%\s+(\S+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    count = int(errors.group(1)) if errors else 0
    if socket_errors:
        count += sum(int(x) for x in socket_errors.groups())
    return rps, p50, p99, count


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--clients", default="1,4,16,64")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]

    rng = np.random.default_rng(0)
    models = {"digits": os.path.join(ROOT, "config", "models", "digits", "1", "model.onnx"),
              "mobilenet_v2": os.path.join(MODELS, "mobilenet_v2.onnx"), "resnet18": os.path.join(MODELS, "resnet18.onnx")}
    for path in models.values():
        if not os.path.exists(path):
            sys.exit("%s missing: run benchmarks/export_models.py" % path)
    bodies = {"digits": {"instances": [rng.integers(0, 17, 64).astype(float).tolist()]}}
    image = {"instances": rng.random((1, 3, 224, 224), dtype=np.float32).tolist()}
    bodies["mobilenet_v2"] = bodies["resnet18"] = image

    with tempfile.TemporaryDirectory() as directory:
        repository, flat = os.path.join(directory, "repository"), os.path.join(directory, "flat")
        os.makedirs(flat)
        body_files = {}
        for name, path in models.items():
            os.makedirs(os.path.join(repository, name, "1"))
            os.symlink(path, os.path.join(repository, name, "1", "model.onnx"))
            os.symlink(path, os.path.join(flat, name + ".onnx"))
            body_files[name] = os.path.join(directory, name + ".json")
            with open(body_files[name], "w") as f:
                f.write(json.dumps(bodies[name]))
        results = {}
        for server in ("batching on", "batching off", "FastAPI+ORT"):
            port = 8610
            process = fastapi(flat, port) if server == "FastAPI+ORT" else onnx_serve(repository, port, server == "batching on")
            try:
                for name in models:
                    url = "http://127.0.0.1:%d/v1/models/%s:predict" % (port, name)
                    wrk(url, body_files[name], 2, 1)  # warm-up
                    for count in clients:
                        results[(server, name, count)] = wrk(url, body_files[name], count, args.seconds)
                        print("%-13s %-13s %3d clients: %9.1f req/s  p50 %8.2f ms  p99 %8.2f ms  errors %d"
                              % ((server, name, count) + results[(server, name, count)]), flush=True)
            finally:
                process.terminate()
                process.wait()

    print("\nsummary (req/s; latency p50/p99 ms)")
    print("%-13s %7s | %-26s | %-26s | %-26s | %s" % ("model", "clients", "batching on", "batching off", "FastAPI+ORT", "on/off, on/FastAPI req/s"))
    failures = []
    for name in models:
        for count in clients:
            on, off, py = (results[(s, name, count)] for s in ("batching on", "batching off", "FastAPI+ORT"))
            cell = lambda r: "%8.1f  %7.2f/%8.2f" % r[:3]
            print("%-13s %7d | %s | %s | %s | %.2fx, %.2fx" % (name, count, cell(on), cell(off), cell(py), on[0] / off[0], on[0] / py[0]))
            if count >= 4 and on[0] < off[0]:
                failures.append("%s at %d clients: batching on %.1f req/s < off %.1f" % (name, count, on[0], off[0]))
            if count == 1 and on[1] - off[1] > 0.2:
                failures.append("%s at 1 client: batching on p50 %.2f ms is more than 0.2 ms above off %.2f" % (name, on[1], off[1]))
            if on[3] or off[3]:
                failures.append("%s at %d clients: errors (on %d, off %d)" % (name, count, on[3], off[3]))
    print("\nchecks: " + ("all hold" if not failures else "; ".join(failures)))


if __name__ == "__main__":
    main()
