#!/usr/bin/env python3
"""Load test of dynamic batching, loopback only, bounded in time: requests/s and p50/p99 latency
at 1, 4, 16 and 64 concurrent clients (wrk), for the shipped digits model, MobileNetV2 and
ResNet-18, with onnx-serve's batching on and off, and against a minimal FastAPI + onnxruntime
server (benchmarks/fastapi_ort/app.py) under the same load. Every request is a TF Serving
predict with one row (`{"instances": [...]}`); the server, wrk and the Python server share
the machine's cores.

All three servers run at once and their runs alternate; each figure is the median of --rounds
interleaved runs, since on a shared machine a p50 moves by more than 0.2 ms between runs of a
40 ms CNN request, and throughput by 10%. The one-client check (batching on within 0.2 ms of
off) uses requests sent to the two onnx-serve servers in turn, one by one, which is the only
way to compare two p50s that closely here. Every run at one client is a batch of one, the same
engine work with batching on or off, and a CNN run jitters by milliseconds on this machine, so the
0.2 ms check compares the p50 of end-to-end time minus the engine time the server reports
(Server-Timing); the end-to-end p50s and the queue wait (the batching queue's own cost) are
printed beside it. The servers' logs go to
/tmp/batching_load-<port>.log.

Besides requests/s and latency, each run reads the server's CPU time from /proc: CPU per request
is what a request costs the server, and moves much less than requests/s when a neighbour takes
the cores. The on/off verdict uses the per-round ratios (on and off run back to back in each
round, in turns first), whose median is steadier than a ratio of medians.

    python3 benchmarks/batching_load.py [--seconds 5] [--cnn-seconds 6] [--rounds 3] [--clients 1,4,16,64]
        [--models digits,mobilenet_v2,resnet18]
"""
import argparse
import json
import os
import re
import statistics
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
                               stdout=subprocess.DEVNULL, stderr=open("/tmp/batching_load-%d.log" % port, "w"))
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


def cpu_seconds(pid):
    """User + system CPU time a process (all its threads) has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url, body_file, clients, seconds, pid=None):
    # wrk gives up on a request after 2 s by default and counts it as an error; 64 clients queued
    # on a CNN wait longer than that, so allow 30 s: what is counted as an error then is a failure.
    script = 'wrk.method = "POST"\nlocal f = io.open("%s", "rb")\nwrk.body = f:read("*a")\nf:close()\n' % body_file
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        cpu_before = cpu_seconds(pid) if pid else 0
        done = subprocess.run(["wrk", "-t%d" % min(clients, 2), "-c%d" % clients, "-d%ds" % seconds, "--timeout", "30s",
                               "--latency", "-s", lua.name, url],
                              capture_output=True, text=True)
        cpu = cpu_seconds(pid) - cpu_before if pid else float("nan")
    out = done.stdout
    if done.returncode != 0 or "Requests/sec" not in out or not re.search(r"^\s+50%\s+[\d.]+\w+", out, re.M):
        raise RuntimeError("wrk against %s with %d clients gave no figures:\n%s%s" % (url, clients, out, done.stderr))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    # The percentile lines of --latency (anchored: a "+/- Stdev" column such as "85.99%" must not match).
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    count = int(errors.group(1)) if errors else 0
    if socket_errors:
        count += sum(int(x) for x in socket_errors.groups())
    # The server's CPU time per request (µs): how much work a request costs it, which a
    # neighbour taking the machine's cores away changes far less than requests/s.
    return rps, p50, p99, count, cpu * 1e6 / max(total, 1)


def one_client_interleaved(urls, body, count):
    """One client, sequential requests sent to batching on and off in turn (one each, `count`
    times): per server, the median end-to-end latency (ms), the median queue wait it reports, and
    the median of end-to-end minus the engine time it reports (Server-Timing). Alternating request
    by request, a slow moment on the shared machine hits both alike."""
    import requests

    latencies = {server: [] for server in urls}
    waits = {server: [] for server in urls}
    outside = {server: [] for server in urls}
    sessions = {server: requests.Session() for server in urls}
    try:
        names = list(urls)
        for index in range(count):
            # Which server goes first alternates, so neither always follows the other.
            for server in (names if index % 2 == 0 else names[::-1]):
                url = urls[server]
                began = time.perf_counter()
                answer = sessions[server].post(url, data=body, timeout=60)
                elapsed = (time.perf_counter() - began) * 1000
                answer.raise_for_status()
                timing = answer.headers["Server-Timing"]
                engine = float(re.search(r"engine;dur=([\d.]+)", timing).group(1))
                latencies[server].append(elapsed)
                waits[server].append(float(re.search(r"queue;dur=([\d.]+)", timing).group(1)))
                outside[server].append(elapsed - engine)
    finally:
        for session in sessions.values():
            session.close()
    return {server: (statistics.median(latencies[server]), statistics.median(waits[server]), statistics.median(outside[server]))
            for server in urls}


def median_result(runs):
    """Per-figure median over rounds (req/s, p50, p99, CPU µs per request); errors summed."""
    return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
            statistics.median(r[2] for r in runs), sum(r[3] for r in runs), statistics.median(r[4] for r in runs))


SERVERS = ("batching on", "batching off", "FastAPI+ORT")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="wrk window for the digits model")
    parser.add_argument("--cnn-seconds", type=int, default=6,
                        help="wrk window for the CNNs (doubled at 64 clients, where one request waits seconds)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians reported)")
    parser.add_argument("--clients", default="1,4,16,64")
    parser.add_argument("--models", default="digits,mobilenet_v2,resnet18")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]

    rng = np.random.default_rng(0)
    models = {"digits": os.path.join(ROOT, "config", "models", "digits", "1", "model.onnx"),
              "mobilenet_v2": os.path.join(MODELS, "mobilenet_v2.onnx"), "resnet18": os.path.join(MODELS, "resnet18.onnx")}
    models = {name: path for name, path in models.items() if name in args.models.split(",")}
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
        # All three servers run at once (idle ones cost nothing) so that their runs can alternate:
        # a slow minute on the shared machine then hits all of them, not one.
        ports = dict(zip(SERVERS, (8610, 8611, 8612)))
        processes = []
        results, one_client, pairs, pids = {}, {}, {}, {}
        try:
            for server, port in ports.items():
                processes.append(fastapi(flat, port) if server == "FastAPI+ORT"
                                 else onnx_serve(repository, port, server == "batching on"))
                pids[server] = processes[-1].pid
            for name in models:
                urls = {server: "http://127.0.0.1:%d/v1/models/%s:predict" % (port, name) for server, port in ports.items()}
                for url in urls.values():
                    wrk(url, body_files[name], 2, 1)  # warm-up
                for count in clients:
                    window = args.seconds if name == "digits" else args.cnn_seconds * (2 if count >= 64 else 1)
                    runs = {server: [] for server in SERVERS}
                    for round_ in range(args.rounds):
                        # on and off back to back, in turns first, so each round is a fair pair.
                        order = SERVERS if round_ % 2 == 0 else (SERVERS[1], SERVERS[0], SERVERS[2])
                        for server in order:
                            runs[server].append(wrk(urls[server], body_files[name], count, window, pids[server]))
                    for server in SERVERS:
                        results[(server, name, count)] = median_result(runs[server])
                        print("%-13s %-13s %3d clients: %9.1f req/s  p50 %8.2f ms  p99 %8.2f ms  errors %d  server CPU %6.1f us/request"
                              % ((server, name, count) + results[(server, name, count)]), flush=True)
                    pairs[(name, count)] = [(on[0] / off[0], on[4] / off[4])
                                            for on, off in zip(runs["batching on"], runs["batching off"])]
                with open(body_files[name]) as f:
                    body = f.read()
                ours = {server: urls[server] for server in ("batching on", "batching off")}
                one_client[name] = one_client_interleaved(ours, body, 1000 if name == "digits" else 200)
        finally:
            for process in processes:
                process.terminate()
                process.wait()

    print("\nsummary (req/s; latency p50/p99 ms; medians of %d interleaved rounds)" % args.rounds)
    print("%-13s %7s | %-26s | %-26s | %-26s | %s" % ("model", "clients", "batching on", "batching off", "FastAPI+ORT",
                                                      "on/off req/s, paired; on/FastAPI req/s"))
    failures = []
    for name in models:
        for count in clients:
            on, off, py = (results[(s, name, count)] for s in SERVERS)
            cell = lambda r: "%8.1f  %7.2f/%8.2f" % r[:3]
            paired = statistics.median(r for r, _ in pairs[(name, count)])
            print("%-13s %7d | %s | %s | %s | %.2fx, %.2fx; %.2fx" % (name, count, cell(on), cell(off), cell(py),
                                                                   on[0] / off[0], paired, on[0] / py[0]))
            # Slower means: the median of the per-round on/off ratios (each round runs the two
            # back to back, so a slow spell of the shared machine mostly hits both) is below 1.
            if count >= 4 and paired < 1:
                failures.append("%s at %d clients: batching on slower than off (median paired req/s ratio %.3f)" % (name, count, paired))
            if count == 1:
                # At one client every run is a batch of one, the same engine work either way, and
                # the engine's jitter on this shared machine (milliseconds on a CNN run) swamps a
                # 0.2 ms comparison; what batching can add is the time outside the engine, so the
                # check compares the p50 of end-to-end minus the engine time each server reports.
                (_, _, on_outside), (_, _, off_outside) = one_client[name]["batching on"], one_client[name]["batching off"]
                if on_outside - off_outside > 0.2:
                    failures.append("%s at 1 client (interleaved): batching on p50 outside the engine %.3f ms is more "
                                    "than 0.2 ms above off %.3f" % (name, on_outside, off_outside))
            if on[3] or off[3] or py[3]:
                failures.append("%s at %d clients: errors (on %d, off %d, FastAPI %d)" % (name, count, on[3], off[3], py[3]))
    print("\nserver CPU per request (us; medians) and per-round on/off ratios (req/s ratio, CPU ratio):")
    for name in models:
        for count in clients:
            on, off, py = (results[(s, name, count)] for s in SERVERS)
            print("  %-13s %3d clients: on %6.1f, off %6.1f, FastAPI %7.1f | rounds: %s" % (
                name, count, on[4], off[4], py[4], " ".join("%.2f/%.2f" % pair for pair in pairs[(name, count)])))
    print("\none client, requests alternating between batching on and off (medians, ms):")
    for name in models:
        (on_p50, on_wait, on_outside), (off_p50, off_wait, off_outside) = (one_client[name]["batching on"],
                                                                           one_client[name]["batching off"])
        print("  %-13s end-to-end p50: on %.3f, off %.3f (on - off %+.3f); outside the engine: on %.3f, off %.3f (%+.3f); "
              "queue wait the server reports: on %.3f, off %.3f"
              % (name, on_p50, off_p50, on_p50 - off_p50, on_outside, off_outside, on_outside - off_outside, on_wait, off_wait))
    print("\nchecks: " + ("all hold" if not failures else "; ".join(failures)))


if __name__ == "__main__":
    main()
