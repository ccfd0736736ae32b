#!/usr/bin/env python3
"""Figures for the HTTP layer's hostile-client cases (issue 12, items 5, 6, 9, 14 and the drain),
against the shipped digits model, on loopback only. Each case starts its own daemon, is bounded in
time and stops by itself; it prints what a client sees and what the daemon holds:

  gzip       12 connections each send 62 KiB of gzip that inflates to 63 MiB, then stall:
             daemon RSS while they are held, and what each connection was answered
  slow       1,100 connections from 127.0.0.1 hold half-sent headers: a health probe from
             127.0.0.2 (answered? in how many ms), and when the held connections are closed
  halfclose  a complete 640 KiB predict request, then shutdown(SHUT_WR): answered or not
  unanswered a query string with 500 arguments, `Transfer-Encoding: gzip, chunked`,
             `Content-Length: 18446744073709551615`: status and time to answer or close
  sigterm    SIGTERM with idle keep-alive, stalled and item-14 connections open and one request
             waiting in the batch queue: time to exit, and that request's status

    python3 benchmarks/http_hardening.py [--binary .build/release/onnx-serve] [case ...]
Extra daemon flags for every case: --daemon-flag=--memory-budget-bytes=268435456 (repeatable).
"""
import argparse
import gzip
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
CONFIG = os.path.join(ROOT, "config", "onnx-serve.yaml")
ROW = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0,
       0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]
PREDICT = "/v1/models/digits:predict"
sys.path.insert(0, os.path.join(ROOT, "Tests", "Python"))
from conftest import Daemon as TestDaemon  # noqa: E402


class Daemon(TestDaemon):
    """`onnx-serve serve` on the shipped config, 127.0.0.1, an ephemeral port."""

    def __init__(self, binary, *flags):
        super().__init__(binary, "--config", CONFIG, *flags)

    def rss_mib(self):
        return self.memory_mib()


def connect(port, source="127.0.0.1", timeout=10.0):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def read_answer(sock, timeout):
    """(status or None, seconds): the status line's code, or None when closed without one or timed out."""
    began = time.perf_counter()
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return (int(match.group(1)) if match else None), time.perf_counter() - began


def request(port, head, body=b"", source="127.0.0.1", timeout=10.0):
    """One request on a new connection; returns (status or None, seconds)."""
    began = time.perf_counter()
    try:
        with connect(port, source, timeout) as sock:
            sock.sendall(("%s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (head, len(body))).encode() + body)
            status, _ = read_answer(sock, timeout)
    except OSError:
        status = None
    return status, time.perf_counter() - began


def outcome(status, seconds):
    return ("%d after %.3f s" % (status, seconds)) if status else ("no answer (closed or timed out) after %.1f s" % seconds)


# MARK: cases

def case_gzip(binary, flags):
    daemon = Daemon(binary, *flags)
    bomb = gzip.compress(bytes(63 << 20), compresslevel=9)
    baseline = daemon.rss_mib()
    sockets = []
    for _ in range(12):
        sock = connect(daemon.port)
        sock.sendall(("POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                      "Content-Length: %d\r\n\r\n" % (PREDICT, len(bomb) + 1000)).encode() + bomb)
        sockets.append(sock)
    held, stable_since = daemon.rss_mib(), time.time()
    while time.time() - stable_since < 1.0:  # until RSS has stopped growing for a second
        time.sleep(0.2)
        now = daemon.rss_mib()
        if now > held + 1:
            held, stable_since = now, time.time()
    answers = [read_answer(sock, 0.5)[0] for sock in sockets]
    probe = request(daemon.port, "GET /v2/health/ready")
    print("gzip: %d connections x %.0f KiB of gzip (63 MiB inflated), stalled: RSS %.0f -> %.0f MiB held; "
          "answers %s; health probe %s" % (len(sockets), len(bomb) / 1024, baseline, held,
                                            {str(a): answers.count(a) for a in set(answers)}, outcome(*probe)))
    for sock in sockets:
        sock.close()
    time.sleep(1)
    print("gzip: RSS %.0f MiB after the connections closed" % daemon.rss_mib())
    daemon.stop()


def case_slow(binary, flags):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    daemon = Daemon(binary, *flags)
    held = []
    for _ in range(1100):
        try:
            sock = connect(daemon.port, timeout=2)
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            held.append(sock)
        except OSError:
            pass
    time.sleep(0.5)  # let the daemon accept (or refuse) the backlog before probing
    status, seconds = request(daemon.port, "GET /v2/health/ready", source="127.0.0.2", timeout=5)
    print("slow: %d half-sent connections from 127.0.0.1; probe from 127.0.0.2: %s"
          % (len(held), outcome(status, seconds) if status is None else "%d in %.1f ms" % (status, seconds * 1000)))
    began = time.perf_counter()
    open_count = len(held)
    while open_count and time.perf_counter() - began < 40:
        time.sleep(0.25)
        open_count = sum(1 for sock in held if not closed_by_peer(sock))
    print("slow: %d of them still open %.1f s after the probe" % (open_count, time.perf_counter() - began))
    for sock in held:
        sock.close()
    daemon.stop()


def closed_by_peer(sock):
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def case_halfclose(binary, flags):
    daemon = Daemon(binary, *flags)
    body = json.dumps({"instances": [ROW]}).encode()
    body += b" " * (640 * 1024 - len(body))
    began = time.perf_counter()
    with connect(daemon.port) as sock:
        sock.sendall(("POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                      % (PREDICT, len(body))).encode() + body)
        sock.shutdown(socket.SHUT_WR)
        status, _ = read_answer(sock, 35)
    print("halfclose: 640 KiB request, then SHUT_WR: %s" % outcome(status, time.perf_counter() - began))
    daemon.stop()


def unanswered_requests():
    """The item-14 requests, each as the bytes a client sends and then waits on."""
    chunked = gzip.compress(json.dumps({"instances": [ROW]}).encode())
    return {
        "500 query arguments": ("GET /v2/health/live?" + "&".join("a%d=1" % i for i in range(500))
                                + " HTTP/1.1\r\nHost: t\r\n\r\n").encode(),
        "Transfer-Encoding: gzip, chunked": ("POST %s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                                             "%x\r\n" % (PREDICT, len(chunked))).encode() + chunked + b"\r\n0\r\n\r\n",
        "Content-Length: 2^64-1": ("POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: 18446744073709551615\r\n\r\n{}"
                                   % PREDICT).encode(),
    }


def case_unanswered(binary, flags):
    daemon = Daemon(binary, *flags)
    results = {}

    def attempt(name, payload):
        began = time.perf_counter()
        with connect(daemon.port) as sock:
            sock.sendall(payload)
            status, _ = read_answer(sock, 40)
            results[name] = outcome(status, time.perf_counter() - began)

    threads = [threading.Thread(target=attempt, args=item) for item in unanswered_requests().items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, result in results.items():
        print("unanswered: %-34s %s" % (name, result))
    daemon.stop()


def case_sigterm(binary, flags):
    daemon = Daemon(binary, "--drain-seconds", "1", "--max-queue-delay-us", "2000000", *flags)
    held = []
    keep_alive = connect(daemon.port)
    keep_alive.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n")
    read_answer(keep_alive, 5)
    held.append(keep_alive)
    for payload in list(unanswered_requests().values()) + [
            b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\nX-Slow: ",
            ("POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n{\"instances\"" % PREDICT).encode()]:
        sock = connect(daemon.port)
        sock.sendall(payload)
        held.append(sock)
    waiting = connect(daemon.port)
    body = json.dumps({"instances": [ROW]}).encode()
    waiting.sendall(("POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (PREDICT, len(body))).encode() + body)
    while not re.search(r'onnx_serve_queue_length\{[^}]*model="digits"[^}]*\} 1', metrics(daemon.port)):
        time.sleep(0.01)
    began = time.perf_counter()
    daemon.process.send_signal(signal.SIGTERM)
    status, _ = read_answer(waiting, 60)
    try:
        daemon.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        daemon.process.kill()
    print("sigterm: exit %s after %.1f s (drain_seconds 1, a 2 s queue delay); the waiting request got %s"
          % (daemon.process.returncode, time.perf_counter() - began, status))
    for sock in held + [waiting]:
        sock.close()


def metrics(port):
    with connect(port) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data.decode(errors="replace")
            data += chunk


CASES = {"gzip": case_gzip, "slow": case_slow, "halfclose": case_halfclose, "unanswered": case_unanswered,
         "sigterm": case_sigterm}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "onnx-serve"))
    parser.add_argument("--daemon-flag", action="append", default=[], help="extra flag for every daemon")
    parser.add_argument("cases", nargs="*", help="any of %s (default: all)" % ", ".join(CASES))
    arguments = parser.parse_args()
    unknown = set(arguments.cases) - set(CASES)
    if unknown:
        parser.error("unknown case %s" % ", ".join(sorted(unknown)))
    for name in arguments.cases or list(CASES):
        CASES[name](arguments.binary, arguments.daemon_flag)


if __name__ == "__main__":
    main()
