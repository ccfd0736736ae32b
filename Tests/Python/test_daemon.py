"""The daemon over real HTTP: TF Serving REST API, health, metrics, repository, bad input.

One daemon serves a repository built by models.repository(); outputs are compared with
onnxruntime's for the same inputs.
"""
import base64
import json
import socket
import subprocess

import numpy as np
import onnxruntime as ort
import pytest
import requests

import models
from conftest import Daemon


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return models.repository(str(tmp_path_factory.mktemp("repository")))


@pytest.fixture(scope="module")
def daemon(binary, repo):
    server = Daemon(binary, "--model-repository", repo, "--max-body-bytes", "1048576", "--access-log")
    yield server
    assert server.stop() == 0, "".join(server.log)


def ort_run(path, feeds):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def predict(daemon, model, body, path_suffix=""):
    return requests.post("%s/v1/models/%s%s:predict" % (daemon.url, model, path_suffix), data=json.dumps(body), timeout=60)


def assert_still_serving(daemon):
    answer = predict(daemon, "mixed", {"instances": [{"a": [1, 2, 3], "b": [1, 1, 1]}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["doubled"] == [2, 2, 2]


# MARK: the shipped default model

def digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    return train_test_split(digits.data.astype(np.float32), digits.target, test_size=0.25, random_state=0)


def test_held_out_digits_are_recognised(daemon):
    _, x_test, _, y_test = digits_split()
    predicted = []
    for start in range(0, len(x_test), 50):
        answer = predict(daemon, "digits", {"instances": x_test[start:start + 50].tolist()})
        assert answer.status_code == 200, answer.text
        predicted += [row["digit"] for row in answer.json()["predictions"]]
    accuracy = float(np.mean(np.array(predicted) == y_test))
    assert accuracy >= 0.95, accuracy


def test_digits_match_onnxruntime(daemon):
    _, x_test, _, _ = digits_split()
    batch = x_test[:20]
    answer = predict(daemon, "digits", {"inputs": {"pixels": batch.tolist()}})
    assert answer.status_code == 200, answer.text
    outputs = answer.json()["outputs"]
    expected = ort_run(models.DIGITS, {"pixels": batch})
    np.testing.assert_allclose(np.array(outputs["probabilities"], dtype=np.float32), expected["probabilities"], rtol=1e-4, atol=1e-6)
    assert outputs["digit"] == expected["digit"].tolist()


def test_curl_predict(daemon):
    _, x_test, _, y_test = digits_split()
    body = json.dumps({"instances": [x_test[0].tolist()]})
    done = subprocess.run(["curl", "-s", "-d", body, daemon.url + "/v1/models/digits:predict"], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["predictions"][0]["digit"] == y_test[0]


def test_convolutional_network_matches_onnxruntime(daemon, repo):
    rng = np.random.default_rng(1)
    images = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    answer = predict(daemon, "cnn", {"instances": images.tolist()})
    assert answer.status_code == 200, answer.text
    expected = ort_run(repo + "/cnn/1/model.onnx", {"image": images})["probabilities"]
    np.testing.assert_allclose(np.array(answer.json()["predictions"], dtype=np.float32), expected, rtol=1e-4, atol=1e-6)
    assert "engine;dur=" in answer.headers["Server-Timing"]


# MARK: request and response forms

def test_row_and_columnar_forms(daemon):
    row = predict(daemon, "mixed", {"instances": [{"a": [0.5, 1, 2], "b": [1, 2, 3]}, {"a": [0, 0, 0], "b": [4, 5, 6]}]})
    assert row.status_code == 200, row.text
    assert row.json() == {"predictions": [{"total": [1.5, 3.0, 5.0], "doubled": [2, 4, 6]},
                                          {"total": [4.0, 5.0, 6.0], "doubled": [8, 10, 12]}]}
    columnar = predict(daemon, "mixed", {"signature_name": "serving_default", "inputs": {"a": [[0.5, 1, 2]], "b": [[1, 2, 3]]}})
    assert columnar.status_code == 200, columnar.text
    assert columnar.json() == {"outputs": {"total": [[1.5, 3.0, 5.0]], "doubled": [[2, 4, 6]]}}


def test_single_unnamed_input_and_single_output(daemon):
    unnamed = predict(daemon, "versioned", {"instances": [[7.0], [8.0]]})
    assert unnamed.json() == {"predictions": [[2.0], [2.0]]}
    columnar = predict(daemon, "versioned", {"inputs": [[7.0]]})
    assert columnar.json() == {"outputs": [[2.0]]}
    named = predict(daemon, "versioned", {"instances": [{"x": [1.0]}]})
    assert named.json() == {"predictions": [[2.0]]}


def test_strings_and_base64(daemon):
    answer = predict(daemon, "text", {"instances": ["hello", {"b64": base64.b64encode(b"bytes!").decode()}]})
    assert answer.status_code == 200, answer.text
    rows = answer.json()["predictions"]
    assert rows[0]["echo"] == "hello" and rows[1]["echo"] == "bytes!"
    assert rows[1]["echo_bytes"] == {"b64": base64.b64encode(b"bytes!").decode()}


def test_non_finite_numbers_round_trip(daemon):
    answer = requests.post(daemon.url + "/v1/models/mixed:predict",
                           data='{"inputs": {"a": [[NaN, Infinity, -Infinity]], "b": [[0, 0, 0]]}}', timeout=30)
    assert answer.status_code == 200, answer.text
    assert '"total":[[NaN,Infinity,-Infinity]]' in answer.text


def test_floats_are_shortest_round_trip(daemon):
    answer = predict(daemon, "mixed", {"inputs": {"a": [[0.1, 1e-7, 3.4028235e38]], "b": [[0, 0, 0]]}})
    assert '"total":[[0.1,1e-07,3.4028235e+38]]' in answer.text


# MARK: status, metadata, versions, labels

def test_model_status_is_tf_servings(daemon):
    answer = requests.get(daemon.url + "/v1/models/digits", timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}


def test_metadata_is_a_signature_def(daemon):
    metadata = requests.get(daemon.url + "/v1/models/mixed/metadata", timeout=10).json()
    assert metadata["model_spec"] == {"name": "mixed", "signature_name": "", "version": "1"}
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"]["b"]["dtype"] == "DT_INT64"
    assert signature["inputs"]["a"]["tensor_shape"] == {"dim": [{"size": "-1", "name": "batch"}, {"size": "3", "name": ""}], "unknown_rank": False}
    assert set(signature["outputs"]) == {"total", "doubled"}


def test_unnamed_dimensions_are_independent(daemon):
    metadata = requests.get(daemon.url + "/v1/models/unnamed/metadata", timeout=10).json()
    inputs = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    unnamed = {"size": "-1", "name": ""}
    assert inputs["x"]["tensor_shape"] == {"dim": [unnamed, {"size": "2", "name": ""}, unnamed], "unknown_rank": False}
    assert inputs["z"]["tensor_shape"] == {"dim": [unnamed, {"size": "2", "name": ""}], "unknown_rank": False}
    v2 = requests.get(daemon.url + "/v2/models/unnamed", timeout=10).json()
    assert {i["name"]: i["shape"] for i in v2["inputs"]} == {"x": [-1, 2, -1], "z": [-1, 2]}
    # Every "?" and unset size takes its own value: 1 and 4 within x, 3 rows of z.
    x = np.arange(8, dtype=np.float32).reshape(1, 2, 4)
    z = np.arange(6, dtype=np.float32).reshape(3, 2)
    answer = predict(daemon, "unnamed", {"inputs": {"x": x.tolist(), "z": z.tolist()}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"] == {"doubled": (x + x).tolist(), "z_copy": z.tolist()}


def test_versions_and_labels(daemon):
    x = {"instances": [[0.0]]}
    assert predict(daemon, "versioned", x).json()["predictions"] == [[2.0]]
    assert predict(daemon, "versioned", x, "/versions/1").json()["predictions"] == [[1.0]]
    assert predict(daemon, "versioned", x, "/labels/canary").json()["predictions"] == [[2.0]]
    assert predict(daemon, "versioned", x, "/labels/stable").json()["predictions"] == [[1.0]]
    statuses = requests.get(daemon.url + "/v1/models/versioned", timeout=10).json()["model_version_status"]
    assert sorted(s["version"] for s in statuses) == ["1", "2"]
    one = requests.get(daemon.url + "/v1/models/versioned/versions/1", timeout=10).json()
    assert [s["version"] for s in one["model_version_status"]] == ["1"]
    assert requests.get(daemon.url + "/v1/models/versioned/labels/canary/metadata", timeout=10).json()["model_spec"]["version"] == "2"


def test_failed_models_are_reported_and_others_serve(daemon):
    broken = requests.get(daemon.url + "/v1/models/broken", timeout=10).json()["model_version_status"][0]
    assert broken["state"] == "END" and broken["status"]["error_code"] != "OK"
    assert "not a valid ONNX file" in broken["status"]["error_message"]
    misconfigured = requests.get(daemon.url + "/v1/models/misconfigured", timeout=10).json()["model_version_status"][0]
    assert "unknown key 'version_polcy'" in misconfigured["status"]["error_message"]
    assert predict(daemon, "broken", {"instances": [[1]]}).status_code == 404
    assert_still_serving(daemon)


# MARK: health and metrics

def test_health(daemon):
    assert requests.get(daemon.url + "/v2/health/live", timeout=10).json() == {"live": True}
    assert requests.get(daemon.url + "/v2/health/ready", timeout=10).json() == {"ready": True}


def test_metrics(daemon):
    predict(daemon, "digits", {"instances": [[0] * 64]})
    text = requests.get(daemon.url + "/metrics", timeout=10).text
    assert 'onnx_serve_requests_total{model="digits",api="predict",status="200"}' in text
    assert "onnx_serve_request_duration_seconds_bucket" in text
    assert "onnx_serve_engine_duration_seconds_bucket" in text
    assert "onnx_serve_models_loaded" in text


# MARK: bad input: a 4xx with {"error": ...}, and the daemon keeps serving

BAD_BODIES = [
    ("malformed JSON", "mixed", '{"instances": [1, 2', 400, "JSON Parse error"),
    ("not an object", "mixed", "[1, 2, 3]", 400, "JSON object"),
    ("neither key", "mixed", '{"examples": []}', 400, "Missing 'inputs' or 'instances' key"),
    ("both keys", "mixed", '{"instances": [], "inputs": {}}', 400, "only one of"),
    ("instances not a list", "mixed", '{"instances": 5}', 400, "Expecting 'instances' to be an list/array"),
    ("empty instances", "versioned", '{"instances": []}', 400, "No values in 'instances' array"),
    ("wrong shape", "mixed", '{"inputs": {"a": [[1, 2]], "b": [[1, 2]]}}', 400, "input 'a'"),
    ("ragged", "cnn", '{"instances": [[[1, 2], [3]]]}', 400, "ragged"),
    ("string for float", "mixed", '{"inputs": {"a": [["x", "y", "z"]], "b": [[1, 2, 3]]}}', 400, "float"),
    ("float for int", "mixed", '{"inputs": {"a": [[1, 2, 3]], "b": [[1.5, 2, 3]]}}', 400, "JSON Value: 1.5"),
    ("integer out of range", "mixed", '{"inputs": {"a": [[1, 2, 3]], "b": [[1, 2, 99999999999999999999]]}}', 400, "int64"),
    ("missing input", "mixed", '{"inputs": {"a": [[1, 2, 3]]}}', 400, "missing input 'b'"),
    ("unknown input", "mixed", '{"inputs": {"a": [[1, 2, 3]], "b": [[1, 2, 3]], "c": [[1]]}}', 400, "unknown input 'c'"),
    ("unnamed input for two", "mixed", '{"instances": [[1, 2, 3]]}', 400, "name each one"),
    ("bad signature", "mixed", '{"signature_name": "other", "instances": [{"a": [1, 2, 3], "b": [1, 2, 3]}]}', 400, "not found in signature def"),
    ("batch mismatch", "mixed", '{"inputs": {"a": [[1, 2, 3], [1, 2, 3]], "b": [[1, 2, 3]]}}', 400, "dimension 'batch'"),
    ("bad base64", "text", '{"instances": [{"b64": "***"}]}', 400, "base64"),
    ("bool for float", "mixed", '{"inputs": {"a": [[true, false, true]], "b": [[1, 2, 3]]}}', 400, "float"),
]


@pytest.mark.parametrize("case, model, body, status, fragment", BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_bodies(daemon, case, model, body, status, fragment):
    answer = requests.post("%s/v1/models/%s:predict" % (daemon.url, model), data=body, timeout=30)
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    assert fragment in answer.json()["error"], answer.json()
    assert_still_serving(daemon)


BAD_REQUESTS = [
    ("unknown model", "POST", "/v1/models/nope:predict", 404, "Servable not found"),
    ("unknown version", "POST", "/v1/models/mixed/versions/9:predict", 404, "Specific(mixed, 9)"),
    ("unknown label", "POST", "/v1/models/versioned/labels/beta:predict", 404, "Unrecognized servable version label: beta"),
    ("huge version", "POST", "/v1/models/mixed/versions/99999999999999999999:predict", 400, "Failed to convert version"),
    ("wrong method on predict", "GET", "/v1/models/mixed:predict", 405, "Method Not Allowed"),
    ("wrong method on status", "DELETE", "/v1/models/mixed", 405, "Method Not Allowed"),
    ("classify", "POST", "/v1/models/mixed:classify", 501, "classify"),
    ("missing name", "GET", "/v1/models", 400, "Missing model name"),
    ("malformed path", "GET", "/v1/models/mixed/extra/stuff", 400, "Malformed request"),
    ("dot-dot name", "POST", "/v1/models/..:predict", 400, "invalid model name '..'"),
    ("encoded slash", "POST", "/v1/models/a%2Fb:predict", 400, "invalid model name 'a/b'"),
    ("encoded dot-dot", "POST", "/v1/models/%2E%2E:predict", 400, "invalid model name '..'"),
    ("bad percent escape", "POST", "/v1/models/mix%zzed:predict", 400, "percent-encoding"),
    ("not utf-8", "POST", "/v1/models/%ff%fe:predict", 400, "percent-encoding"),
    ("unknown path", "GET", "/v3/anything", 404, "Not Found"),
]


@pytest.mark.parametrize("case, method, path, status, fragment", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests(daemon, case, method, path, status, fragment):
    import http.client

    # http.client sends the path as given (requests would re-encode a bad escape).
    connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    connection.request(method, path, body='{"instances": [[1.0]]}')
    answer = connection.getresponse()
    body = json.loads(answer.read())
    connection.close()
    assert answer.status == status, body
    assert fragment in body["error"], body
    assert_still_serving(daemon)


def test_body_over_the_limit(daemon):
    body = '{"instances": [' + ",".join(["[1.0]"] * 300000) + "]}"
    answer = requests.post(daemon.url + "/v1/models/versioned:predict", data=body, timeout=30)
    assert answer.status_code == 413
    assert "error" in answer.json()
    assert_still_serving(daemon)


def test_very_long_url(daemon):
    answer = requests.get(daemon.url + "/v1/models/" + "a" * 100000, timeout=30)
    assert 400 <= answer.status_code < 500
    assert_still_serving(daemon)


def test_content_length_larger_than_body(daemon):
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=60) as sock:
        sock.sendall(b"POST /v1/models/mixed:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"instances\": [")
        # The client stalls; others must be served meanwhile.
        assert_still_serving(daemon)
    assert_still_serving(daemon)


def test_requests_keep_alive_on_one_connection(daemon):
    with requests.Session() as session:
        for _ in range(5):
            answer = session.post(daemon.url + "/v1/models/versioned:predict", data='{"instances": [[1.0]]}', timeout=30)
            assert answer.status_code == 200


def test_explicit_model_flag(binary, tmp_path):
    path = models.constant(str(tmp_path / "k.onnx"), 5.0)
    server = Daemon(binary, "--model", "five=" + path)
    try:
        answer = requests.post(server.url + "/v1/models/five/versions/1:predict", data='{"instances": [[0.0]]}', timeout=30)
        assert answer.json() == {"predictions": [[5.0]]}
    finally:
        assert server.stop() == 0


def test_not_ready_until_loaded_then_not_ready_on_sigterm(binary, tmp_path):
    import signal
    import time

    path = models.constant(str(tmp_path / "k.onnx"), 5.0)
    server = Daemon(binary, "--model", "five=" + path, "--drain-seconds", "3", ready=False)
    try:
        server.wait_ready(time.time() + 60)
        server.process.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        while time.time() < deadline:
            if requests.get(server.url + "/v2/health/ready", timeout=5).status_code == 503:
                break
            time.sleep(0.05)
        assert requests.get(server.url + "/v2/health/ready", timeout=5).status_code == 503
        assert requests.get(server.url + "/v2/health/live", timeout=5).status_code == 200
    finally:
        assert server.stop() == 0


def test_missing_repository_is_a_one_line_error(binary, tmp_path):
    done = subprocess.run([binary, "serve", "--model-repository", str(tmp_path / "absent"), "--port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "cannot be read" in done.stderr.strip().splitlines()[-1]
