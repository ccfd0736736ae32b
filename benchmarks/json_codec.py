#!/usr/bin/env python3
"""The TF Serving JSON codec against Python's json and orjson on the same payloads:
a 1x3x224x224 float32 predict request (parse) and a 1000-class response (write).

Two request payloads: float32 values written shortest (orjson of a float32 array, ~1.6 MB), and
what `json.dumps({"instances": array.tolist()})` writes (float32 widened to 17-digit doubles,
~3.2 MB).

Medians over --runs; MB/s = payload bytes / median time.
    swift build -c release --product codec-bench && python3 benchmarks/json_codec.py
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np
import orjson

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))


def median_ms(runs, body):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        body()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "codec-bench"))
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    image = rng.random((1, 3, 224, 224), dtype=np.float32)
    probabilities = rng.random((1, 1000), dtype=np.float32)
    payloads = [("float32 shortest", orjson.dumps({"instances": image}, option=orjson.OPT_SERIALIZE_NUMPY)),
                ("json.dumps(tolist())", json.dumps({"instances": image.tolist()}).encode())]
    for label, request in payloads:
        report(label, request, probabilities, args)


def report(label, request, probabilities, args):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(request)
        f.flush()
        ours = json.loads(subprocess.run([args.binary, f.name, str(args.runs)], capture_output=True, text=True, check=True).stdout)

    text = request.decode()
    py_parse = median_ms(args.runs, lambda: json.loads(text))
    py_tensor = median_ms(args.runs, lambda: np.asarray(json.loads(text)["instances"], dtype=np.float32))
    or_parse = median_ms(args.runs, lambda: orjson.loads(request))
    or_tensor = median_ms(args.runs, lambda: np.asarray(orjson.loads(request)["instances"], dtype=np.float32))
    py_write = median_ms(args.runs * 10, lambda: json.dumps({"predictions": probabilities.tolist()}).encode())
    or_write = median_ms(args.runs * 10, lambda: orjson.dumps({"predictions": probabilities}, option=orjson.OPT_SERIALIZE_NUMPY))
    response_bytes = len(orjson.dumps({"predictions": probabilities}, option=orjson.OPT_SERIALIZE_NUMPY))

    mb = len(request) / 1e6
    print("\nrequest: 1x3x224x224 float32 as %s, %.2f MB; response: 1000 floats, ~%d bytes; medians of %d runs"
          % (label, mb, response_bytes, args.runs))
    print("%-26s %12s %12s %12s" % ("", "onnx-serve", "Python json", "orjson"))
    print("%-26s %12.2f %12.2f %12.2f" % ("parse (ms)", ours["parse_ms"], py_parse, or_parse))
    print("%-26s %12.0f %12.0f %12.0f" % ("parse (MB/s)", mb / ours["parse_ms"] * 1000, mb / py_parse * 1000, mb / or_parse * 1000))
    print("%-26s %12.2f %12.2f %12.2f" % ("parse to float tensor (ms)", ours["parse_to_tensor_ms"], py_tensor, or_tensor))
    print("%-26s %12.3f %12.3f %12.3f" % ("write response (ms)", ours["write_ms"], py_write, or_write))
    print("%-26s %12.0f %12.0f %12.0f" % ("write (MB/s)", ours["response_bytes"] / ours["write_ms"] / 1000,
                                          response_bytes / py_write / 1000, response_bytes / or_write / 1000))


if __name__ == "__main__":
    main()
