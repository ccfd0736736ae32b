"""The batching queue over real HTTP: answers never mixed up, bounded queue, deadlines,
departed clients, and failures confined to the requests that cause them."""
import concurrent.futures
import json
import re
import socket
import struct
import time

import numpy as np
import pytest
import requests

import models
from conftest import Daemon


@pytest.fixture(scope="module")
def daemon(binary, tmp_path_factory):
    repo = models.batching_repository(str(tmp_path_factory.mktemp("repository")))
    server = Daemon(binary, "--model-repository", repo)
    yield server
    assert server.stop() == 0, "".join(server.log)


def infer(url, model, name, array, timeout=120):
    body = {"inputs": [{"name": name, "shape": list(array.shape),
                        "datatype": "FP32" if array.dtype == np.float32 else "INT64", "data": array.ravel().tolist()}]}
    return requests.post("%s/v2/models/%s/infer" % (url, model), json=body, timeout=timeout)


def output(answer):
    out = answer.json()["outputs"][0]
    return np.array(out["data"], dtype=np.float32).reshape(out["shape"])


def statistics(url, model):
    return requests.get("%s/v2/models/%s/stats" % (url, model), timeout=30).json()["model_stats"][0]


def test_concurrent_mixed_batches_get_their_own_answers(daemon):
    rng = np.random.default_rng(0)
    requests_ = [rng.standard_normal((int(rng.integers(1, 5)), 3, 16, 16)).astype(np.float32) for _ in range(96)]
    alone = [output(infer(daemon.url, "cnn", "image", x)) for x in requests_]
    before = statistics(daemon.url, "cnn")
    with concurrent.futures.ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(lambda x: infer(daemon.url, "cnn", "image", x), requests_))
    for x, answer, expected in zip(requests_, answers, alone):
        assert answer.status_code == 200, answer.text
        got = output(answer)
        assert got.shape == (x.shape[0], 10)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    after = statistics(daemon.url, "cnn")
    runs = int(after["execution_count"]) - int(before["execution_count"])
    assert runs < len(requests_), "no request was batched with another (%d runs for %d requests)" % (runs, len(requests_))
    assert max(int(b["batch_size"]) for b in after["batch_stats"]) <= 16


def test_full_queue_rejects_with_retry_after(daemon):
    x = np.zeros((1, 128, 1024), dtype=np.float32)
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda _: infer(daemon.url, "slow", "x", x), range(12)))
    rejected = [a for a in answers if a.status_code == 429]
    assert rejected, [a.status_code for a in answers]
    assert all(a.status_code in (200, 429) for a in answers), [a.status_code for a in answers]
    assert rejected[0].headers["Retry-After"] == "1" and "queue is full" in rejected[0].json()["error"]
    assert infer(daemon.url, "slow", "x", x).status_code == 200


def test_deadline_passes_before_running(daemon):
    x = np.zeros((1, 128, 1024), dtype=np.float32)
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: infer(daemon.url, "slow_deadline", "x", x), range(6)))
    codes = [a.status_code for a in answers]
    assert 504 in codes and 200 in codes, codes
    assert "deadline" in next(a for a in answers if a.status_code == 504).json()["error"]


def in_flight(url, model):
    """Requests `model` has accepted and not answered, from the daemon's metrics."""
    text = requests.get(url + "/metrics", timeout=30).text
    match = re.search(r'^onnx_serve_requests_in_flight\{model="%s",version="1"\} (\S+)$' % model, text, re.M)
    return int(float(match.group(1))) if match else 0


def wait_for(condition, what, timeout=60):
    """Waits for an event the daemon reports (polled), not for a guessed time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.005)


def test_request_timeout_parameter_sets_a_deadline(daemon):
    heavy = np.zeros((4, 128, 1024), dtype=np.float32)
    light = {"inputs": [{"name": "x", "shape": [1, 128, 1024], "datatype": "FP32", "data": [0.0] * (128 * 1024)}],
             "parameters": {"timeout": 1000}}  # microseconds, as in Triton
    light = json.dumps(light)
    with socket.create_connection(("127.0.0.1", daemon.port)) as running:
        running.sendall(binary_infer_request(heavy))
        # Once the model holds the heavy request, the light one queues behind it (no batching on
        # slow_fifo, one instance): its 1 ms passes in the queue.
        wait_for(lambda: in_flight(daemon.url, "slow_fifo") == 1, "the heavy request to reach the model")
        second = requests.post(daemon.url + "/v2/models/slow_fifo/infer", data=light, timeout=120)
        assert second.status_code == 504, second.text
        assert "deadline" in second.json()["error"]
        running.settimeout(120)
        assert running.recv(12).startswith(b"HTTP/1.1 200")


def binary_infer_request(array):
    header = json.dumps({"inputs": [{"name": "x", "shape": list(array.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": array.nbytes}}]}).encode()
    body = header + array.tobytes()
    return (b"POST /v2/models/slow_fifo/infer HTTP/1.1\r\nHost: x\r\nInference-Header-Content-Length: %d\r\n"
            b"Content-Length: %d\r\n\r\n" % (len(header), len(body))) + body


def test_departed_client_costs_no_compute(daemon):
    heavy = np.zeros((8, 128, 1024), dtype=np.float32)
    light = np.zeros((1, 128, 1024), dtype=np.float32)
    before = int(statistics(daemon.url, "slow_fifo")["execution_count"])
    with socket.create_connection(("127.0.0.1", daemon.port)) as running:
        running.sendall(binary_infer_request(heavy))
        wait_for(lambda: in_flight(daemon.url, "slow_fifo") == 1, "the heavy request to reach the model")
        departing = socket.create_connection(("127.0.0.1", daemon.port))
        departing.sendall(binary_infer_request(light))
        wait_for(lambda: in_flight(daemon.url, "slow_fifo") == 2, "the light request to queue behind it")
        # Gone for good: a reset (a clean close looks like a half-close, whose client still
        # wants its answer, so it does not cancel).
        departing.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        departing.close()
        running.settimeout(120)
        assert running.recv(12).startswith(b"HTTP/1.1 200")
    wait_for(lambda: in_flight(daemon.url, "slow_fifo") == 0, "every request to be answered or dropped")
    after = int(statistics(daemon.url, "slow_fifo")["execution_count"])
    assert after - before == 1, "the departed client's request ran"


def test_runtime_failure_is_confined_to_its_request(daemon):
    good = [np.array([[k % 10, (k + 1) % 10]], dtype=np.int64) for k in range(20)]
    bad = [np.array([[3, 50 + k]], dtype=np.int64) for k in range(5)]
    mixed = good[:10] + bad + good[10:]
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda ids: infer(daemon.url, "lookup", "ids", ids), mixed))
    for ids, answer in zip(mixed, answers):
        if ids.max() >= 10:
            # An index past the table is the client's mistake: 400 with the operator's message.
            assert answer.status_code == 400 and "is out of range" in answer.json()["error"], answer.text
        else:
            assert answer.status_code == 200, answer.text
            expected = np.arange(40, dtype=np.float32).reshape(10, 4)[ids]
            np.testing.assert_array_equal(output(answer), expected)
    assert infer(daemon.url, "lookup", "ids", good[0]).status_code == 200


def test_batching_metrics(daemon):
    text = requests.get(daemon.url + "/metrics", timeout=30).text
    for name in ["onnx_serve_queue_length", "onnx_serve_batch_size_bucket", "onnx_serve_queue_duration_seconds_bucket",
                 "onnx_serve_engine_duration_seconds_bucket", "onnx_serve_rejected_requests_total", "onnx_serve_timed_out_requests_total"]:
        assert name in text, name
