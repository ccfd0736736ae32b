#!/usr/bin/env python3
"""Engine working memory per request, as a client sees it (issue 12, items 12 and 13).

Builds a MiniLM-like encoder and the PyTorch MNIST CNN with random weights
(benchmarks/memory_models.py) and sends each case as one Open Inference binary request to a
daemon of its own (on 127.0.0.1, serving both models). For each case it prints the HTTP status,
the time to the answer, the daemon's resident memory before the request, its peak during it
(VmHWM, reset through /proc/PID/clear_refs) and one second after the answer, and the start of
the error message.

    python3 benchmarks/engine_memory.py --binary .build/release/onnx-serve [--case NAME]...

Cases: minilm_128x512 (1 MB of token ids), mnist_8000 (25 MB of images), and the bad inputs of
item 13: minilm_bad_token (id 40000 of 30522), minilm_empty (sequence length 0), minilm_too_long
(600 tokens; the model has 512 positions). Not run unless named: minilm_512x512 (4 MB of token
ids), which a binary without a working-memory budget would run with about 16 GB.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Python"))
import memory_models  # noqa: E402
from conftest import Daemon  # noqa: E402


def token_ids(rows, columns, high=memory_models.VOCABULARY, seed=0):
    return np.random.default_rng(seed).integers(0, high, (rows, columns), dtype=np.int64)


CASES = {
    "minilm_128x512": ("minilm", lambda: {"input_ids": token_ids(128, 512), "attention_mask": np.ones((128, 512), np.int64)}),
    "minilm_512x512": ("minilm", lambda: {"input_ids": token_ids(512, 512), "attention_mask": np.ones((512, 512), np.int64)}),
    "mnist_8000": ("mnist_cnn", lambda: {"image": np.random.default_rng(0).random((8000, 1, 28, 28), np.float32)}),
    "minilm_bad_token": ("minilm", lambda: {"input_ids": np.array([[101, 40000, 102]], np.int64),
                                            "attention_mask": np.ones((1, 3), np.int64)}),
    "minilm_empty": ("minilm", lambda: {"input_ids": np.zeros((1, 0), np.int64), "attention_mask": np.zeros((1, 0), np.int64)}),
    "minilm_too_long": ("minilm", lambda: {"input_ids": token_ids(1, 600), "attention_mask": np.ones((1, 600), np.int64)}),
}

DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}


def binary_request(feeds):
    header = {"inputs": [{"name": name, "shape": list(array.shape), "datatype": DATATYPES[array.dtype],
                          "parameters": {"binary_data_size": array.nbytes}} for name, array in feeds.items()]}
    head = json.dumps(header).encode()
    return head + b"".join(array.tobytes() for array in feeds.values()), {"Inference-Header-Content-Length": str(len(head))}


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def run_case(daemon, name):
    model, make = CASES[name]
    body, headers = binary_request(make())
    pid = daemon.process.pid
    with open("/proc/%d/clear_refs" % pid, "w") as clear:
        clear.write("5")  # resets VmHWM (the peak) to the current RSS
    before = status_kib(pid, "VmRSS")
    start = time.monotonic()
    answer = requests.post("%s/v2/models/%s/infer" % (daemon.url, model), data=body, headers=headers, timeout=600)
    seconds = time.monotonic() - start
    peak = status_kib(pid, "VmHWM")
    time.sleep(1)
    after = status_kib(pid, "VmRSS")
    message = ""
    if answer.status_code != 200:
        try:
            message = answer.json().get("error", "")
        except ValueError:
            message = answer.text
    return {"case": name, "status": answer.status_code, "seconds": round(seconds, 2), "body_bytes": len(body),
            "rss_before_mib": before // 1024, "peak_mib": peak // 1024, "rss_after_mib": after // 1024,
            "message": message[:160]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(os.path.dirname(__file__), "..", ".build", "release", "onnx-serve"))
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="cases to run (default: all, in the order above)")
    parser.add_argument("--models", default=os.path.join(tempfile.gettempdir(), "onnx-serve-memory-models"))
    parser.add_argument("serve_arguments", nargs="*", help="extra `serve` flags, after --")
    args = parser.parse_args()
    paths = {"minilm": os.path.join(args.models, "minilm.onnx"), "mnist_cnn": os.path.join(args.models, "mnist_cnn.onnx")}
    for model, path in paths.items():
        if not os.path.exists(path):
            getattr(memory_models, model)(path)
    for name in args.case or [name for name in CASES if name != "minilm_512x512"]:
        # A daemon of its own per case: what one run leaves behind does not count in the next.
        daemon = Daemon(args.binary, *["--model=%s=%s" % item for item in paths.items()], *args.serve_arguments)
        try:
            print(json.dumps(run_case(daemon, name)), flush=True)
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
