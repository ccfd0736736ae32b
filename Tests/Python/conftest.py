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
