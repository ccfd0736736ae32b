#!/usr/bin/env python3
"""Start-up time of the container's runtime stage without Docker: the daemon run in a chroot that
holds only Debian 12 minbase (what debian:bookworm-slim is) plus the runtime stage's packages, as
user 10001, beside the same binary run on the host, interleaved. Reports the time from exec to the
"listening" log line and to the first 200 from /v2/health/ready (the digits model loaded and warm).
Needs root (chroot, mounting /proc).

    debootstrap --variant=minbase --include=libc6,libgcc-s1,libstdc++6,libmicrohttpd12,libopenblas0-pthread,zlib1g \\
        bookworm ROOTFS http://deb.debian.org/debian
    python3 benchmarks/runtime_stage_start.py --rootfs ROOTFS --binary STATIC_BINARY [--rounds 5]

STATIC_BINARY is onnx-serve linked with the Swift runtime and Foundation static, as the builder
stage links it (`swift build -c release --product onnx-serve --static-swift-stdlib`)."""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import time

import requests

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_once(command, port):
    """Seconds from exec to the listening line and to readiness."""
    began = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    listening = None
    try:
        for line in process.stderr:
            if "listening on" in line:
                listening = time.monotonic() - began
                break
        if listening is None:
            raise RuntimeError("no listening line from %s" % command)
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get("http://127.0.0.1:%d/v2/health/ready" % port, timeout=1).status_code == 200:
                    return listening, time.monotonic() - began
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("not ready within 60 s")
            time.sleep(0.002)
    finally:
        process.terminate()
        process.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rootfs", required=True)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    rootfs = os.path.abspath(options.rootfs)
    # The image's files, as the Dockerfile lays them out.
    os.makedirs(os.path.join(rootfs, "usr/local/bin"), exist_ok=True)
    shutil.copy(options.binary, os.path.join(rootfs, "usr/local/bin/onnx-serve"))
    os.makedirs(os.path.join(rootfs, "etc/onnx-serve"), exist_ok=True)
    shutil.copy(os.path.join(ROOT, "deploy/container/onnx-serve.yaml"), os.path.join(rootfs, "etc/onnx-serve/onnx-serve.yaml"))
    shutil.rmtree(os.path.join(rootfs, "models"), ignore_errors=True)
    shutil.copytree(os.path.join(ROOT, "config/models"), os.path.join(rootfs, "models"))
    subprocess.run(["chmod", "-R", "a+rX", os.path.join(rootfs, "models"), os.path.join(rootfs, "etc/onnx-serve")], check=True)
    proc = os.path.join(rootfs, "proc")
    mounted = not os.path.exists(os.path.join(proc, "self"))
    if mounted:
        subprocess.run(["mount", "-t", "proc", "proc", proc], check=True)
    try:
        ldd = subprocess.run(["chroot", rootfs, "ldd", "/usr/local/bin/onnx-serve"], capture_output=True, text=True, check=True).stdout
        missing = [line for line in ldd.splitlines() if "not found" in line]
        print("libraries in the chroot: %d, missing: %s" % (len(ldd.splitlines()), missing or "none"))
        times = {"runtime stage (chroot, user 10001)": [], "host": []}
        for _ in range(options.rounds):
            port = free_port()
            flags = ["--config", "/etc/onnx-serve/onnx-serve.yaml", "--host", "127.0.0.1", "--port", str(port)]
            times["runtime stage (chroot, user 10001)"].append(start_once(
                ["chroot", "--userspec=10001:10001", rootfs, "/usr/local/bin/onnx-serve", "serve", *flags], port))
            port = free_port()
            host_flags = ["--model-repository", os.path.join(ROOT, "config/models"), "--host", "127.0.0.1", "--port", str(port)]
            times["host"].append(start_once([options.binary, "serve", *host_flags], port))
        for name, samples in times.items():
            print("%-36s listening %.3f s, ready %.3f s (medians of %d; ready min %.3f, max %.3f)" % (
                name, statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples), len(samples),
                min(s[1] for s in samples), max(s[1] for s in samples)))
    finally:
        if mounted:
            subprocess.run(["umount", proc], check=False)


if __name__ == "__main__":
    main()
