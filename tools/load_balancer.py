#!/usr/bin/env python3
"""Two onnx-serve replicas behind HAProxy on loopback, under constant load, counting the requests
that failed (the target is zero) in two scenarios:
- restart: a rolling restart (SIGTERM one replica, wait for it to stop, start it again, then the other);
- swap: both replicas in poll mode on one repository; a new version folder is renamed into it,
  and both swap to it. It also prints the time from the rename to the first answer of the new version.

    python3 tools/load_balancer.py restart [--binary .build/release/onnx-serve] [--clients 4] [--drain-seconds 1]
    python3 tools/load_balancer.py swap [--clients 4] [--poll-seconds 1]

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


def open_inference_digit(response):
    """The version that answered an Open Inference request for the digit zero; raises on a wrong answer."""
    answer = response.json()
    digit = next(output for output in answer["outputs"] if output["name"] == "digit")
    if digit["data"] != [0]:
        raise ValueError("wrong digit %s" % digit["data"])
    return answer["model_version"]


OPEN_INFERENCE_ZERO = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": DIGIT_ZERO}]}


class Load:
    """Clients sending Open Inference requests for the digit zero through the balancer back to
    back, counting answers by the version that gave them, and failures by kind."""

    def __init__(self, url, clients, request_timeout=30):
        self.url = url + "/v2/models/digits/infer"
        self.timeout = request_timeout
        self.lock = threading.Lock()
        self.versions = {}
        self.first_answer = {}
        self.failures = {}
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self):
        session = requests.Session()
        while not self.stopping.is_set():
            version = None
            try:
                response = session.post(self.url, json=OPEN_INFERENCE_ZERO, timeout=self.timeout)
                if response.status_code == 200:
                    version = open_inference_digit(response)
                    outcome = None
                else:
                    outcome = "HTTP %d" % response.status_code
            except (requests.RequestException, ValueError, KeyError, StopIteration) as error:
                outcome = type(error).__name__
            answered = time.monotonic()
            with self.lock:
                if outcome is None:
                    self.versions[version] = self.versions.get(version, 0) + 1
                    self.first_answer.setdefault(version, answered)
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
    def succeeded(self):
        with self.lock:
            return sum(self.versions.values())

    @property
    def failed(self):
        with self.lock:
            return sum(self.failures.values())

    @property
    def total(self):
        return self.succeeded + self.failed


def wait_for_traffic(balancer, name, requests_wanted=20, seconds=30):
    """Until HAProxy has sent `requests_wanted` more requests to the replica."""
    start = balancer.servers()[name][1]
    wait_until(lambda: balancer.servers()[name][1] >= start + requests_wanted, seconds, "traffic to %s" % name)


class Cluster:
    """Two replicas and HAProxy in front, torn down on exit; `load` runs while inside."""

    def __init__(self, binary, arguments, clients):
        self.replicas = [Replica("a", binary, free_port(), arguments), Replica("b", binary, free_port(), arguments)]
        self.clients = clients
        self.balancer = None
        self.load = None

    def __enter__(self):
        self.directory = tempfile.TemporaryDirectory()
        try:
            for replica in self.replicas:
                replica.start()
            self.balancer = HAProxy(self.replicas, self.directory.name)
            for replica in self.replicas:
                self.balancer.wait_status(replica.name, "UP")
            self.load = Load(self.balancer.url, self.clients)
            self.load.start()
            wait_until(lambda: self.load.total >= 50, 30, "the first requests")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_):
        if self.load is not None:
            self.load.stop()
        if self.balancer is not None:
            self.balancer.stop()
        for replica in self.replicas:
            replica.kill()
        self.directory.cleanup()


def rolling_restart(binary, clients=4, drain_seconds=1.0, log=print):
    """Restarts one replica, then the other, under load; returns (answers by version, failures by kind)."""
    arguments = ["--model-repository", os.path.join(ROOT, "config", "models"), "--drain-seconds", str(drain_seconds)]
    with Cluster(binary, arguments, clients) as cluster:
        for replica in cluster.replicas:
            began = time.monotonic()
            code = replica.terminate()
            stopped = time.monotonic() - began
            if code != 0:
                raise RuntimeError("%s exited with %d after SIGTERM" % (replica.name, code))
            cluster.balancer.wait_status(replica.name, "DOWN", seconds=5)
            replica.start()
            cluster.balancer.wait_status(replica.name, "UP")
            wait_for_traffic(cluster.balancer, replica.name)
            log("%s: stopped %.2f s after SIGTERM, restarted, back in rotation; %d requests, %d failed so far"
                % (replica.name, stopped, cluster.load.total, cluster.load.failed))
        cluster.load.stop()
        return dict(cluster.load.versions), dict(cluster.load.failures)


def publish_version(repository, model, version, source):
    """Copies `source` into a folder beside the repository's models, then renames it into place."""
    staging = os.path.join(repository, ".staging-%d" % version)
    os.makedirs(staging)
    shutil.copyfile(source, os.path.join(staging, "model.onnx"))
    os.rename(staging, os.path.join(repository, model, str(version)))
    return time.monotonic()


def answers_version(replica, version):
    response = requests.post("http://127.0.0.1:%d/v2/models/digits/infer" % replica.port, json=OPEN_INFERENCE_ZERO, timeout=10)
    return response.status_code == 200 and open_inference_digit(response) == str(version)


def version_swap(binary, clients=4, poll_seconds=1.0, log=print):
    """Both replicas poll one repository; version 2 of digits is renamed into it under load.
    Returns (answers by version, failures by kind, seconds from the rename to version 2's first answer)."""
    with tempfile.TemporaryDirectory() as repository:
        digits = os.path.join(ROOT, "config", "models", "digits", "1", "model.onnx")
        os.makedirs(os.path.join(repository, "digits"))
        publish_version(repository, "digits", 1, digits)
        arguments = ["--model-repository", repository, "--drain-seconds", "1",
                     "--model-control-mode", "poll", "--repository-poll-seconds", str(poll_seconds)]
        with Cluster(binary, arguments, clients) as cluster:
            published = publish_version(repository, "digits", 2, digits)
            for replica in cluster.replicas:
                wait_until(lambda: answers_version(replica, 2), 60, "%s to answer with version 2" % replica.name)
            # Every replica has swapped; some more requests, all of which version 2 must answer.
            wait_until(lambda: cluster.load.versions.get("2", 0) >= 100, 30, "answers from version 2")
            cluster.load.stop()
            first = cluster.load.first_answer["2"] - published
            log("version 2 published; first answer %.3f s later; both replicas swapped; %d requests, %d failed"
                % (first, cluster.load.total, cluster.load.failed))
            return dict(cluster.load.versions), dict(cluster.load.failures), first


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["restart", "swap"])
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "onnx-serve"))
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--drain-seconds", type=float, default=1.0, help="restart: the replicas' drain")
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="swap: the replicas' repository_poll_seconds")
    options = parser.parse_args()
    if options.scenario == "restart":
        versions, failures = rolling_restart(options.binary, options.clients, options.drain_seconds)
    else:
        versions, failures, _ = version_swap(options.binary, options.clients, options.poll_seconds)
    total = sum(versions.values()) + sum(failures.values())
    print("%s: %d failed of %d requests; answers by version %s%s" % (
        options.scenario, sum(failures.values()), total, versions, "; failures %s" % failures if failures else ""))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
