"""Shared fixtures for the Python tests: the release binary and small ONNX model builders."""
import os
import subprocess

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.environ.get("ONNX_SERVE_BIN", os.path.join(ROOT, ".build", "release", "onnx-serve"))


@pytest.fixture(scope="session")
def binary():
    if not os.path.exists(BINARY):
        pytest.fail("%s not found: run `swift build -c release` (make test does)" % BINARY)
    return BINARY


def run_cli(binary, *args, timeout=120):
    """Runs onnx-serve; returns (exit code, stdout, stderr)."""
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


class Daemon:
    """A running `onnx-serve serve` on 127.0.0.1 with an ephemeral port; stop() sends SIGTERM."""

    def __init__(self, binary, *args, ready=True, timeout=120):
        import re
        import select
        import time

        self.process = subprocess.Popen([binary, "serve", "--host", "127.0.0.1", "--port", "0", "--drain-seconds", "0", *args],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log = []
        self.port = None
        deadline = time.time() + timeout
        while self.port is None:
            if time.time() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("daemon did not start: %s" % "".join(self.log))
            if select.select([self.process.stderr], [], [], 0.5)[0]:
                line = self.process.stderr.readline()
                self.log.append(line)
                match = re.search(r"listening on .* port (\d+)", line)
                if match:
                    self.port = int(match.group(1))
        self.url = "http://127.0.0.1:%d" % self.port
        import threading
        threading.Thread(target=self._drain_log, daemon=True).start()
        if ready:
            self.wait_ready(deadline)

    def _drain_log(self):
        for line in self.process.stderr:
            self.log.append(line)

    def wait_ready(self, deadline):
        import time
        import requests

        while time.time() < deadline:
            try:
                if requests.get(self.url + "/v2/health/ready", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError("daemon not ready: %s" % "".join(self.log))

    def memory_mib(self, field="VmRSS"):
        """A memory figure of the daemon from /proc (VmRSS now, VmHWM the peak), nan once it is gone."""
        try:
            with open("/proc/%d/status" % self.process.pid) as status:
                return int(next(l for l in status if l.startswith(field)).split()[1]) / 1024
        except (OSError, StopIteration):
            return float("nan")

    def reset_peak(self):
        """Starts VmHWM again from the current RSS."""
        with open("/proc/%d/clear_refs" % self.process.pid, "w") as refs:
            refs.write("5")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.returncode


def run_model(binary, path, feeds, directory):
    """`onnx-serve run` on the model at `path` with `feeds` (name: numpy array), which must succeed;
    returns the graph's outputs as numpy arrays, in order."""
    import onnx
    from onnx import numpy_helper
    arguments = []
    for name, value in feeds.items():
        file = os.path.join(directory, name + ".pb")
        with open(file, "wb") as f:
            f.write(numpy_helper.from_array(value, name).SerializeToString())
        arguments += ["--input", "%s=%s" % (name, file)]
    out = os.path.join(directory, "out")
    code, _, err = run_cli(binary, "run", path, *arguments, "--output-dir", out)
    assert code == 0, err
    count = len(onnx.load(path).graph.output)
    return [numpy_helper.to_array(onnx.load_tensor(os.path.join(out, "output_%d.pb" % k))) for k in range(count)]


def run_error(binary, tmp_path, model, feeds):
    """`onnx-serve run` on `model` (an onnx ModelProto) with `feeds` (name: numpy array), which
    must fail with exit code 1; returns what it wrote to stderr."""
    from onnx import numpy_helper
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    arguments = []
    for name, array in feeds.items():
        (tmp_path / (name + ".pb")).write_bytes(numpy_helper.from_array(array, name).SerializeToString())
        arguments += ["--input", "%s=%s" % (name, tmp_path / (name + ".pb"))]
    code, _, err = run_cli(binary, "run", str(path), *arguments, "--output-dir", str(tmp_path / "out"))
    assert code == 1
    return err
