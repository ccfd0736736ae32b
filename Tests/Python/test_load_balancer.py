"""Two replicas behind HAProxy on loopback (tools/load_balancer.py), under constant load: a rolling
restart loses no request, the same restart without the drain does (so the count can fail), and a
poll-mode version swap on both replicas loses none."""
import os
import shutil
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import load_balancer  # noqa: E402


def quiet(line):
    pass


@pytest.fixture(scope="module")
def haproxy():
    if shutil.which("haproxy") is None and not os.path.exists("/usr/sbin/haproxy"):
        pytest.fail("haproxy not found: deploy/setup.sh installs it")


def test_rolling_restart_loses_no_request(binary, haproxy):
    versions, failures = load_balancer.rolling_restart(binary, clients=2, drain_seconds=1.0, log=quiet)
    assert failures == {}
    assert versions["1"] >= 100


def test_restart_without_drain_loses_requests(binary, haproxy):
    # SIGTERM with drain_seconds 0 stops accepting before the balancer's next health check.
    versions, failures = load_balancer.rolling_restart(binary, clients=2, drain_seconds=0, log=quiet)
    assert sum(failures.values()) > 0 and versions["1"] > 0


def test_version_swap_under_load_loses_no_request(binary, haproxy):
    versions, failures, _ = load_balancer.version_swap(binary, clients=2, poll_seconds=0.2, log=quiet)
    assert failures == {}
    assert versions["1"] > 0 and versions["2"] >= 100
