#!/usr/bin/env python3
"""Soak: the daemon under a mix of valid and invalid requests of both protocols, on loopback,
bounded in time, then SIGTERM while the load still runs.

CONNECTIONS clients each keep one connection and send, in a seeded random order, requests of the
kinds in KINDS: TF Serving predict (rows and columns), Open Inference JSON and binary infer, and
hostile or wrong ones (ragged lists, an overflowing shape, a timeout of 1e17 µs, unknown models,
bad JSON, too many rows, the repository API, a wrong method). Every kind has the statuses it may
get; anything else counts as a wrong answer. After SECONDS, SIGTERM goes to the daemon with the
load still running: every request sent before the signal must get its kind's answer, and the
daemon must exit 0 within its drain plus a bound.

Prints (and with --json writes) requests served, answers by status, wrong answers, RSS at start,
peak and end (end: after the load stops, before the signal), and the SIGTERM figures.

    python3 tools/soak.py [--binary .build/release/onnx-serve] [--seconds 600] [--connections 32]
"""
import argparse
import http.client
import json
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import Counter

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
REPOSITORY = os.path.join(ROOT, "config", "models")
sys.path.insert(0, os.path.join(ROOT, "Tests", "Python"))
from conftest import Daemon  # noqa: E402


def row(rng):
    return [rng.randint(0, 16) for _ in range(64)]


def oi_json(rng, rows):
    return json.dumps({"inputs": [{"name": "pixels", "shape": [rows, 64], "datatype": "FP32",
                                   "data": [float(v) for _ in range(rows) for v in row(rng)]}]})


def oi_binary(rng, rows):
    values = [float(v) for _ in range(rows) for v in row(rng)]
    header = json.dumps({"inputs": [{"name": "pixels", "shape": [rows, 64], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 4 * len(values)}}],
                         "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]}).encode()
    return header + struct.pack("<%df" % len(values), *values), {"Inference-Header-Content-Length": str(len(header))}


JSON = {"Content-Type": "application/json"}

# name: (share, valid, expected statuses, request maker(rng) -> (method, path, body, headers))
KINDS = {
    "tf-rows": (20, True, {200}, lambda r: ("POST", "/v1/models/digits:predict",
                                           json.dumps({"instances": [row(r) for _ in range(r.randint(1, 8))]}), JSON)),
    "tf-columns": (10, True, {200}, lambda r: ("POST", "/v1/models/digits/labels/stable:predict",
                                              json.dumps({"inputs": {"pixels": [row(r)]}}), JSON)),
    "oi-json": (20, True, {200}, lambda r: ("POST", "/v2/models/digits/infer", oi_json(r, r.randint(1, 8)), JSON)),
    "oi-binary": (15, True, {200}, lambda r: ("POST", "/v2/models/digits/infer", *oi_binary(r, r.randint(1, 16)))),
    "oi-timeout-1e17": (3, True, {200}, lambda r: ("POST", "/v2/models/digits/infer", json.dumps(
        {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}], "parameters": {"timeout": 10 ** 17}}), JSON)),
    "health": (5, True, {200}, lambda r: ("GET", "/v2/health/ready", None, {})),
    "metadata": (2, True, {200}, lambda r: ("GET", "/v1/models/digits/metadata", None, {})),
    "ragged-tf": (5, False, {400}, lambda r: ("POST", "/v1/models/digits:predict",
                                              '{"inputs": [' + "1," * r.randint(1, 200) + json.dumps(row(r)) + "]}", JSON)),
    "ragged-oi": (4, False, {400}, lambda r: ("POST", "/v2/models/digits/infer", json.dumps(
        {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [1.0] * 64 + [[]]}]}), JSON)),
    "overflowing-shape": (3, False, {400}, lambda r: ("POST", "/v2/models/digits/infer", json.dumps(
        {"inputs": [{"name": "pixels", "shape": [2147483647] * 3, "datatype": "FP32", "data": [1.0]}]}), JSON)),
    "too-many-rows": (2, False, {400}, lambda r: ("POST", "/v2/models/digits/infer", bytes(65 * 64 * 4),
                                                 {"Inference-Header-Content-Length": "0"})),
    "bad-json": (3, False, {400}, lambda r: ("POST", "/v1/models/digits:predict", '{"instances": [1, 2', JSON)),
    "deep-json": (2, False, {400}, lambda r: ("POST", "/v1/models/digits:predict", "[" * 300 + "]" * 300, JSON)),
    "unknown-model": (2, False, {404}, lambda r: ("POST", "/v2/models/nope/infer", oi_json(r, 1), JSON)),
    "repository-api": (2, False, {403}, lambda r: ("POST", "/v2/repository/models/digits/unload", "{}", JSON)),
    "wrong-method": (2, False, {405}, lambda r: ("GET", "/v1/models/digits:predict", None, {})),
}


# Kinds whose right answer changes at SIGTERM: readiness turns 503 when the drain starts, so a probe
# sent just before the signal and answered after it may get either (the soak saw one in 3,073).
# Such probes are not requests the daemon must serve, so they are not counted as valid there.
DRAINING = {"health": {200, 503}}


class Client(threading.Thread):
    """One connection sending requests until told to stop; records each outcome and whether the
    request was sent (written whole) before the signal."""

    def __init__(self, port, seed, stop, signal_time):
        super().__init__(daemon=True)
        self.port, self.rng, self.stop, self.signal_time = port, random.Random(seed), stop, signal_time
        self.outcomes = []  # (kind, status or error name, sent before the signal)
        self.choices = [name for name in KINDS for _ in range(KINDS[name][0])]

    def run(self):
        connection = None
        while not self.stop.is_set():
            kind = self.rng.choice(self.choices)
            method, path, body, headers = KINDS[kind][3](self.rng)
            sent = time.monotonic()  # until the request is written whole: when it was begun
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                connection.request(method, path, body=body, headers=headers)
                sent = time.monotonic()
                answer = connection.getresponse()
                answer.read()
                status = answer.status
                if answer.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as error:
                status = type(error).__name__
                if connection is not None:
                    connection.close()
                connection = None
                if self.signal_time[0] is not None:
                    self.stop.wait(0.01)  # the daemon is stopping: do not spin on refused connections
            signalled = self.signal_time[0]
            self.outcomes.append((kind, status, signalled is None or sent < signalled))


def run_clients(port, count, seed, signal_time):
    stop = threading.Event()
    clients = [Client(port, seed + index, stop, signal_time) for index in range(count)]
    for client in clients:
        client.start()
    return stop, clients


def summarize(outcomes, draining=False):
    """Answers by status, and the wrong ones by kind; `draining`: the outcomes span the signal."""
    def expected(kind):
        return DRAINING.get(kind, KINDS[kind][2]) if draining else KINDS[kind][2]
    statuses = Counter(str(status) for _, status, _ in outcomes)
    wrong = Counter("%s -> %s" % (kind, status) for kind, status, _ in outcomes if status not in expected(kind))
    return statuses, wrong


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "onnx-serve"))
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--drain-seconds", type=float, default=2)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    daemon = Daemon(args.binary, "--model-repository", REPOSITORY, "--drain-seconds", str(args.drain_seconds))
    rss_start = daemon.memory_mib()
    # Phase 1: the soak.
    no_signal = [None]
    stop, clients = run_clients(daemon.port, args.connections, 0, no_signal)
    peak, started = rss_start, time.monotonic()
    while time.monotonic() - started < args.seconds and daemon.process.poll() is None:
        time.sleep(1)
        peak = max(peak, daemon.memory_mib())
    stop.set()
    for client in clients:
        client.join(timeout=120)
    survived = daemon.process.poll() is None
    time.sleep(2)  # memory freed after the load goes back to the system
    rss_end = daemon.memory_mib()
    soak = [o for client in clients for o in client.outcomes]
    statuses, wrong = summarize(soak)

    # Phase 2: SIGTERM with load running.
    signal_time = [None]
    stop, clients = run_clients(daemon.port, args.connections, 1000, signal_time)
    time.sleep(2)
    signal_time[0] = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    try:
        code = daemon.process.wait(timeout=args.drain_seconds + 30)
    except subprocess.TimeoutExpired:
        daemon.process.kill()
        code = "killed after %.0f s" % (args.drain_seconds + 30)
    seconds_to_exit = time.monotonic() - signal_time[0]
    stop.set()
    for client in clients:
        client.join(timeout=120)
    stopping = [o for client in clients for o in client.outcomes]
    before = [o for o in stopping if o[2]]
    _, wrong_before = summarize(before, draining=True)
    served = [o for o in before if KINDS[o[0]][1] and o[0] not in DRAINING]

    figures = {
        "soak": {"seconds": args.seconds, "connections": args.connections, "requests": len(soak),
                 "valid": sum(1 for o in soak if KINDS[o[0]][1]), "invalid": sum(1 for o in soak if not KINDS[o[0]][1]),
                 "statuses": dict(statuses), "wrong_answers": dict(wrong), "daemon_survived": survived,
                 "rss_mib": {"start": round(rss_start, 1), "peak": round(peak, 1), "end": round(rss_end, 1)}},
        "sigterm_under_load": {"exit": code, "seconds_to_exit": round(seconds_to_exit, 2), "drain_seconds": args.drain_seconds,
                               "sent_before_signal": len(before),
                               "answered_as_expected": len(before) - sum(wrong_before.values()),
                               "valid_sent_before_signal": len(served),
                               "valid_answered_200": sum(1 for o in served if o[1] == 200),
                               "probes_sent_before_signal": dict(Counter(str(o[1]) for o in before if o[0] in DRAINING)),
                               "wrong_answers": dict(wrong_before),
                               "after_signal": dict(Counter(str(s) for _, s, b in stopping if not b))},
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)
    sys.exit(0 if survived and code == 0 and not wrong and not wrong_before else 1)


if __name__ == "__main__":
    main()
