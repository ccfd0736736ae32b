#!/usr/bin/env python3
"""Figures for the request-side cases of issue 12 (items 1-4, 7, 8, 10, 11), one small request
each against the shipped digits model (input `pixels` float32 [N, 64]), on loopback only. Each
case starts its own daemon, is bounded in time and stops by itself, and prints what the client
got, whether the daemon survived, its peak RSS during the case, and the slowest health probe sent
while the case ran:

  timeout     Open Inference parameters.timeout of 1e17 µs                          (item 1)
  shape       JSON and binary-header shapes [2147483647] x 3 with one value / 0 bytes (item 2)
  ragged      TF Serving: 2M ones then [], 47 numbers then [64 values], 64-level ragged (item 3)
  nested      4 concurrent 390 KiB bodies of 250 nested lists around 200,000 numbers and a
              string, to the repository index and to predict, then
              of 120 (under the parser's depth limit, so parsed whole)                (item 4)
  instances   a row body of 110,000 named instances (14 MiB)                         (item 7)
  unload      POST /v2/repository/models/digits/unload without credentials           (item 8)
  rows        a raw binary request of 65,536 rows (max_batch_size 64)                (item 10)
  burst       3 rounds of 8 concurrent 2 MiB JSON bodies (a million numbers each): RSS after
  oidata      Open Inference data [1.0 x64, []] with [1, 64]; INT-like [1,1,1,1,1,[1,1]];
              [2.0 x63, [2.0 x63]] with [63, 64]                                     (item 11)

    python3 benchmarks/hardening_cases.py [--binary .build/release/onnx-serve] [case ...]

Items 5, 6, 9 and 14 are in benchmarks/http_hardening.py, items 12 and 13 in
benchmarks/engine_memory.py.
"""
import argparse
import concurrent.futures
import json
import os
import sys
import threading
import time

import requests

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
REPOSITORY = os.path.join(ROOT, "config", "models")
sys.path.insert(0, os.path.join(ROOT, "Tests", "Python"))
from conftest import Daemon  # noqa: E402
ZERO = [0.0] * 64


class Prober(threading.Thread):
    """Asks for /v2/health/live every 50 ms while a case runs; remembers the slowest answer."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.slowest, self.failures, self.done = url, 0.0, 0, threading.Event()

    def run(self):
        while not self.done.is_set():
            started = time.monotonic()
            try:
                requests.get(self.url + "/v2/health/live", timeout=30)
            except requests.RequestException:
                self.failures += 1
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.done.wait(0.05)


def healthy(url):
    try:
        return requests.get(url + "/v2/health/ready", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def post(url, path, body, headers=None, timeout=300):
    """(status, first 100 characters of the answer) or the error's name."""
    try:
        answer = requests.post(url + path, data=body, headers=headers or {"Content-Type": "application/json"}, timeout=timeout)
        return answer.status_code, answer.text[:100]
    except requests.RequestException as error:
        return type(error).__name__, ""


def binary_request(header, data=b""):
    header = json.dumps(header).encode()
    return header + data, {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}


# MARK: Cases: each returns [(what, answer)], answer = (status, text)

def case_timeout(url):
    body = json.dumps({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": ZERO}],
                       "parameters": {"timeout": 10 ** 17}})
    return [("timeout 1e17 us", post(url, "/v2/models/digits/infer", body))]


def case_shape(url):
    huge = [2147483647] * 3
    body = json.dumps({"inputs": [{"name": "pixels", "shape": huge, "datatype": "FP32", "data": [1.0]}]})
    header = {"inputs": [{"name": "pixels", "shape": huge, "datatype": "FP32", "parameters": {"binary_data_size": 0}}]}
    return [("JSON shape", post(url, "/v2/models/digits/infer", body)),
            ("binary header shape", post(url, "/v2/models/digits/infer", *binary_request(header)))]


def case_ragged(url):
    ones = '{"inputs": [' + "1," * 2_000_000 + "[]]}"
    short = '{"inputs": [' + "3," * 47 + json.dumps(ZERO) + "]}"
    deep = '{"instances": [' + "[" * 64 + "1" + "]" * 64 + ", 1]}"
    return [("2M ones then []", post(url, "/v1/models/digits:predict", ones)),
            ("47 numbers then [64]", post(url, "/v1/models/digits:predict", short)),
            ("same request again", post(url, "/v1/models/digits:predict", short)),
            ("64-level ragged", post(url, "/v1/models/digits:predict", deep))]


def case_nested(url):
    answers = []
    # The route (the repository index), then predict; 250 levels (the body), then
    # 120 (within the parser's depth limit, so parsed whole).
    for path, depth in (("/v2/repository/index", 250), ("/v1/models/digits:predict", 250), ("/v1/models/digits:predict", 120)):
        # The string at the end makes the innermost list not numeric, which the old parser found
        # out again at every level.
        body = "[" * depth + ",".join(["1"] * 200_000) + ',"x"' + "]" * depth
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            answers += [("%s %d levels #%d" % (path.split("/")[-1], depth, index), answer)
                        for index, answer in enumerate(pool.map(lambda _: post(url, path, body), range(4)))]
    return answers


def case_instances(url):
    body = json.dumps({"instances": [{"pixels": [0] * 64} for _ in range(110_000)]})
    return [("110,000 named instances (%.1f MiB)" % (len(body) / 2 ** 20), post(url, "/v1/models/digits:predict", body))]


def case_unload(url):
    return [("unload", post(url, "/v2/repository/models/digits/unload", "{}")),
            ("predict after", post(url, "/v1/models/digits:predict", json.dumps({"instances": [ZERO]})))]


def case_rows(url):
    data = bytes(65536 * 64 * 4)
    return [("65,536 raw rows", post(url, "/v2/models/digits/infer", data,
                                      {"Inference-Header-Content-Length": "0", "Content-Type": "application/octet-stream"}))]


def case_oidata(url):
    def infer(data, shape):
        return post(url, "/v2/models/digits/infer",
                    json.dumps({"inputs": [{"name": "pixels", "shape": shape, "datatype": "FP32", "data": data}]}))
    return [("[1.0 x64, []] as [1, 64]", infer([1.0] * 64 + [[]], [1, 64])),
            ("[1,1,1,1,1,[1,1]] as [1, 7]", infer([1, 1, 1, 1, 1, [1, 1]], [1, 7])),
            ("[2.0 x63, [2.0 x63]] as [63, 64]", infer([2.0] * 63 + [[2.0] * 63], [63, 64])),
            ("same request again", infer([2.0] * 63 + [[2.0] * 63], [63, 64]))]


def case_burst(url):
    """Three rounds of 8 concurrent bodies of a million numbers each (about 2 MiB of JSON, refused
    after decoding for their 16,384 rows): memory must go back afterwards."""
    body = json.dumps({"inputs": [{"name": "pixels", "shape": [16384, 64], "datatype": "FP32", "data": [0.5] * (1 << 20)}]})
    answers = []
    for _ in range(3):
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            answers += list(pool.map(lambda _: post(url, "/v2/models/digits/infer", body), range(8)))
    time.sleep(2)
    return [("24 bodies of 1M numbers: statuses", (sorted(set(a[0] for a in answers)), answers[0][1]))]


CASES = {name[5:]: function for name, function in globals().items() if name.startswith("case_")}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "onnx-serve"))
    parser.add_argument("cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    for name in args.cases:
        daemon = Daemon(args.binary, "--model-repository", REPOSITORY)
        baseline = daemon.memory_mib("VmRSS")
        daemon.reset_peak()
        prober = Prober(daemon.url)
        prober.start()
        started = time.monotonic()
        answers = CASES[name](daemon.url)
        elapsed = time.monotonic() - started
        prober.done.set()
        prober.join()
        survived = daemon.process.poll() is None and healthy(daemon.url)
        peak, after = daemon.memory_mib("VmHWM"), daemon.memory_mib("VmRSS")
        print("%s: %.1f s; daemon %s; RSS %.0f MiB before, peak %.0f MiB, %.0f MiB after; slowest health probe %.0f ms%s"
              % (name, elapsed, "survived" if survived else "DIED (exit %s)" % daemon.process.poll(), baseline, peak, after,
                 prober.slowest * 1000, ", %d probes failed" % prober.failures if prober.failures else ""))
        for what, (status, text) in answers:
            print("    %-36s %s %s" % (what, status, text.replace("\n", " ")))
        daemon.stop()


if __name__ == "__main__":
    main()
