#!/usr/bin/env python3
"""Two onnx-serve replicas behind HAProxy on loopback, under constant load: a rolling restart
(SIGTERM one replica, wait for it to stop, start it again, then the other), counting the requests
that failed. The target is zero.

    python3 tools/load_balancer.py [--binary .build/release/onnx-serve] [--clients 4] [--drain-seconds 1]

HAProxy (Debian's package) health-checks /v2/health/ready every 200 ms and takes a replica out
after one failed check; it does not retry or redispatch requests (`retries 0`), so every request
that a replica drops or refuses reaches the client as a failure. Everything listens on 127.0.0.1;
every wait is bounded, and the run stops by itself. Tests/Python/test_load_balancer.py runs a short
version of it."""
import argparse
import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import requests

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DIGIT_ZERO = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0,
              0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]


class Timeout(Exception):
    pass


def wait_until(condition, seconds, what):
    """Polls `condition` every 20 ms until it holds; raises Timeout after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise Timeout("timed out after %g s waiting for %s" % (seconds, what))
        time.sleep(0.02)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Replica:
    """One `onnx-serve serve` on 127.0.0.1 at a fixed port, so that it comes back at the same address."""

    def __init__(self, name, binary, port, arguments):
        self.name, self.binary, self.port, self.arguments = name, binary, port, arguments
        self.process = None
        self.log = []

    def start(self, timeout=120):
        self.process = subprocess.Popen(
            [self.binary, "serve", "--host", "127.0.0.1", "--port", str(self.port), *self.arguments],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read_log, args=(self.process,), daemon=True).start()
        wait_until(self.ready, timeout, "%s to be ready" % self.name)

    def _read_log(self, process):
        for line in process.stderr:
            self.log.append(line)

    def ready(self):
        if self.process.poll() is not None:
            raise RuntimeError("%s exited with %s: %s" % (self.name, self.process.returncode, "".join(self.log[-20:])))
        try:
            return requests.get("http://127.0.0.1:%d/v2/health/ready" % self.port, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def terminate(self, timeout=60):
        """SIGTERM, then waits for the process to exit; returns its exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class HAProxy:
    """HAProxy in the foreground with a stats socket, balancing the replicas round robin."""

    def __init__(self, replicas, directory):
        self.port = free_port()
        self.socket_path = os.path.join(directory, "haproxy.sock")
        servers = "\n".join("    server %s 127.0.0.1:%d check" % (replica.name, replica.port) for replica in replicas)
        self.config = os.path.join(directory, "haproxy.cfg")
        with open(self.config, "w") as file:
            file.write("""global
    stats socket %s mode 600 level admin
    maxconn 256

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    # No retries and no redispatch: a request a replica drops or refuses fails at the client.
    retries 0

frontend inference
    bind 127.0.0.1:%d
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /v2/health/ready
    http-check expect status 200
    # Out after one failed check, back after two good ones.
    default-server inter 200ms fastinter 200ms downinter 200ms fall 1 rise 2
%s
""" % (self.socket_path, self.port, servers))
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        self.process = subprocess.Popen([haproxy, "-db", "-f", self.config], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        wait_until(lambda: os.path.exists(self.socket_path) or self.process.poll() is not None, 30, "HAProxy to start")
        if self.process.poll() is not None:
            raise RuntimeError("haproxy exited: %s" % self.process.stdout.read())
        self.url = "http://127.0.0.1:%d" % self.port

    def servers(self):
        """{server: (status, sessions so far)} from `show stat`."""
        with socket.socket(socket.AF_UNIX) as connection:
            connection.connect(self.socket_path)
            connection.sendall(b"show stat\n")
            data = b""
            while chunk := connection.recv(65536):
                data += chunk
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        return {row["svname"]: (row["status"], int(row["stot"] or 0)) for row in rows
                if row["pxname"] == "replicas" and row["svname"] not in ("FRONTEND", "BACKEND")}

    def wait_status(self, name, status, seconds=30):
        wait_until(lambda: self.servers()[name][0] == status, seconds, "HAProxy to see %s %s" % (name, status))

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Load:
    """Clients sending digits predictions through the balancer back to back, counting outcomes."""

    def __init__(self, url, clients, request_timeout=30):
        self.url = url + "/v1/models/digits:predict"
        self.body = {"instances": [DIGIT_ZERO]}
        self.timeout = request_timeout
        self.lock = threading.Lock()
        self.succeeded = 0
        self.failures = {}
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self):
        session = requests.Session()
        while not self.stopping.is_set():
            try:
                response = session.post(self.url, json=self.body, timeout=self.timeout)
                ok = response.status_code == 200 and response.json()["predictions"][0]["digit"] == 0
                outcome = None if ok else "HTTP %d" % response.status_code
            except (requests.RequestException, ValueError, KeyError) as error:
                outcome = type(error).__name__
            with self.lock:
                if outcome is None:
                    self.succeeded += 1
                else:
                    self.failures[outcome] = self.failures.get(outcome, 0) + 1

    def start(self):
        for thread in self.threads:
            thread.start()

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=self.timeout + 5)

    @property
    def failed(self):
        with self.lock:
            return sum(self.failures.values())

    @property
    def total(self):
        with self.lock:
            return self.succeeded + sum(self.failures.values())


def wait_for_traffic(balancer, name, requests_wanted=20, seconds=30):
    """Until HAProxy has sent `requests_wanted` more requests to the replica."""
    start = balancer.servers()[name][1]
    wait_until(lambda: balancer.servers()[name][1] >= start + requests_wanted, seconds, "traffic to %s" % name)


def rolling_restart(binary, clients=4, drain_seconds=1.0, arguments=(), log=print):
    """Runs the rolling restart; returns (succeeded, failures by kind, per-step log lines)."""
    repository = os.path.join(ROOT, "config", "models")
    common = ["--model-repository", repository, "--drain-seconds", str(drain_seconds), *arguments]
    replicas = [Replica("a", binary, free_port(), common), Replica("b", binary, free_port(), common)]
    with tempfile.TemporaryDirectory() as directory:
        balancer = None
        load = None
        try:
            for replica in replicas:
                replica.start()
            balancer = HAProxy(replicas, directory)
            for replica in replicas:
                balancer.wait_status(replica.name, "UP")
            load = Load(balancer.url, clients)
            load.start()
            wait_until(lambda: load.total >= 50, 30, "the first requests")
            for replica in replicas:
                began = time.monotonic()
                code = replica.terminate()
                stopped = time.monotonic() - began
                if code != 0:
                    raise RuntimeError("%s exited with %d after SIGTERM" % (replica.name, code))
                balancer.wait_status(replica.name, "DOWN", seconds=5)
                replica.start()
                balancer.wait_status(replica.name, "UP")
                wait_for_traffic(balancer, replica.name)
                log("%s: stopped %.2f s after SIGTERM, restarted, back in rotation; %d requests, %d failed so far"
                    % (replica.name, stopped, load.total, load.failed))
            load.stop()
            return load.succeeded, dict(load.failures)
        finally:
            if load is not None:
                load.stop()
            if balancer is not None:
                balancer.stop()
            for replica in replicas:
                replica.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "onnx-serve"))
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--drain-seconds", type=float, default=1.0)
    options = parser.parse_args()
    succeeded, failures = rolling_restart(options.binary, options.clients, options.drain_seconds)
    total = succeeded + sum(failures.values())
    print("rolling restart: %d failed of %d requests %s" % (sum(failures.values()), total, failures or ""))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
