"""Open Inference Protocol (KServe v2) with Triton's extensions, driven by the real clients
(tritonclient.http and KServe's Python SDK, InferenceRESTClient) and by plain requests with the
exact bodies clients send; outputs compared with onnxruntime."""
import json
import struct

import numpy as np
import onnxruntime as ort
import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

import models
from conftest import Daemon


ADMIN = ("admin-key", "s3cret")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return models.repository(str(tmp_path_factory.mktemp("repository")))


@pytest.fixture(scope="module")
def daemon(binary, repo):
    # Explicit control mode, behind a required header: the repository extension is tested here
    # (test_repository_control.py covers the default, where it is off).
    server = Daemon(binary, "--model-repository", repo, "--max-body-bytes", "4194304",
                    "--model-control-mode", "explicit", "--repository-api-restriction", "%s=%s" % ADMIN)
    yield server
    assert server.stop() == 0, "".join(server.log)


@pytest.fixture
def client(daemon):
    return httpclient.InferenceServerClient("127.0.0.1:%d" % daemon.port, concurrency=4)


def reference(path, feeds):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def images(count, seed=0):
    return np.random.default_rng(seed).standard_normal((count, 3, 16, 16)).astype(np.float32)


# MARK: tritonclient

def test_health_and_server_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "onnx-serve"
    assert {"binary_tensor_data", "model_repository", "statistics", "model_configuration"} <= set(metadata["extensions"])


def test_model_metadata_and_config(client):
    metadata = client.get_model_metadata("cnn")
    assert metadata["platform"] == "onnxruntime_onnx" and metadata["versions"] == ["1"]
    assert metadata["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 3, 16, 16]}]
    assert metadata["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    config = client.get_model_config("cnn")
    assert config["max_batch_size"] >= 1
    assert config["input"] == [{"name": "image", "data_type": "TYPE_FP32", "dims": [3, 16, 16]}]
    assert client.is_model_ready("cnn") and not client.is_model_ready("broken")
    assert client.get_model_metadata("versioned", "1")["versions"] == ["1", "2"]


@pytest.mark.parametrize("binary_data", [True, False])
def test_infer_matches_onnxruntime(client, repo, binary_data):
    x = images(3)
    given = httpclient.InferInput("image", list(x.shape), "FP32")
    given.set_data_from_numpy(x, binary_data=binary_data)
    result = client.infer("cnn", [given], outputs=[httpclient.InferRequestedOutput("probabilities", binary_data=binary_data)],
                          request_id="req-7")
    assert result.get_response()["id"] == "req-7"
    assert result.get_response()["model_name"] == "cnn" and result.get_response()["model_version"] == "1"
    expected = reference(repo + "/cnn/1/model.onnx", {"image": x})["probabilities"]
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, rtol=1e-4, atol=1e-6)


def test_infer_mixed_types_and_default_outputs(client):
    a = np.array([[1.5, 2, 3]], dtype=np.float32)
    b = np.array([[4, 5, 6]], dtype=np.int64)
    inputs = [httpclient.InferInput("a", [1, 3], "FP32"), httpclient.InferInput("b", [1, 3], "INT64")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    result = client.infer("mixed", inputs)
    np.testing.assert_array_equal(result.as_numpy("total"), a + b)
    np.testing.assert_array_equal(result.as_numpy("doubled"), b * 2)


def test_bytes_tensors(client):
    text = np.array([b"hello", b"", "unicod\u00e9".encode()], dtype=np.object_)
    given = httpclient.InferInput("text", [3], "BYTES")
    given.set_data_from_numpy(text)
    result = client.infer("text", [given])
    assert list(result.as_numpy("echo")) == list(text)


def test_every_element_type_in_binary(client):
    h = np.array([[0.5, -2]], dtype=np.float16)
    flags = np.array([[True, False]])
    small = np.array([[3, 100]], dtype=np.uint8)
    inputs = [httpclient.InferInput("h", [1, 2], "FP16"), httpclient.InferInput("flags", [1, 2], "BOOL"),
              httpclient.InferInput("small", [1, 2], "UINT8")]
    for given, value in zip(inputs, [h, flags, small]):
        given.set_data_from_numpy(value)
    result = client.infer("types", inputs)
    np.testing.assert_array_equal(result.as_numpy("widened"), h.astype(np.float32))
    np.testing.assert_array_equal(result.as_numpy("h_copy"), h)
    np.testing.assert_array_equal(result.as_numpy("inverted"), ~flags)
    np.testing.assert_array_equal(result.as_numpy("doubled"), small * 2)


def test_fp16_output_as_json(client):
    # Triton refuses FP16 in JSON; we send it as numbers (each exactly the half value), as the
    # JSON form of BF16 is (see test_half_precision.py).
    h = np.array([[0.5, -65504]], np.float16)
    given = [httpclient.InferInput("h", [1, 2], "FP16"), httpclient.InferInput("flags", [1, 2], "BOOL"),
             httpclient.InferInput("small", [1, 2], "UINT8")]
    given[0].set_data_from_numpy(h)
    given[1].set_data_from_numpy(np.zeros((1, 2), bool), binary_data=False)
    given[2].set_data_from_numpy(np.zeros((1, 2), np.uint8), binary_data=False)
    result = client.infer("types", given, outputs=[httpclient.InferRequestedOutput("h_copy", binary_data=False),
                                                   httpclient.InferRequestedOutput("inverted", binary_data=False)])
    (copy,) = [o for o in result.get_response()["outputs"] if o["name"] == "h_copy"]
    assert copy["datatype"] == "FP16" and copy["data"] == [0.5, -65504.0]
    assert result.as_numpy("inverted").tolist() == [[True, True]]


def test_classification_extension(client, repo):
    x = images(2, seed=3)
    given = httpclient.InferInput("image", list(x.shape), "FP32")
    given.set_data_from_numpy(x)
    result = client.infer("cnn", [given], outputs=[httpclient.InferRequestedOutput("probabilities", class_count=3)])
    top = result.as_numpy("probabilities")
    expected = reference(repo + "/cnn/1/model.onnx", {"image": x})["probabilities"]
    for row in range(2):
        indices = [int(entry.decode().split(":")[1]) for entry in top[row]]
        assert indices == list(np.argsort(-expected[row])[:3])


def test_async_infer_calls_in_flight(client, repo):
    batches = [images(1 + k % 3, seed=10 + k) for k in range(8)]
    pending = []
    for x in batches:
        given = httpclient.InferInput("image", list(x.shape), "FP32")
        given.set_data_from_numpy(x)
        pending.append(client.async_infer("cnn", [given]))
    for x, request in zip(batches, pending):
        expected = reference(repo + "/cnn/1/model.onnx", {"image": x})["probabilities"]
        np.testing.assert_allclose(request.get_result().as_numpy("probabilities"), expected, rtol=1e-4, atol=1e-6)


def test_repository_load_and_unload(client):
    admin = dict([ADMIN])
    index = {(m["name"], m.get("version")): m for m in client.get_model_repository_index(headers=admin)}
    assert index[("digits", "1")]["state"] == "READY"
    assert index[("broken", "1")]["state"] == "UNAVAILABLE"
    client.unload_model("versioned", headers=admin)
    assert not client.is_model_ready("versioned")
    with pytest.raises(InferenceServerException) as error:
        given = httpclient.InferInput("x", [1, 1], "FP32")
        given.set_data_from_numpy(np.zeros((1, 1), np.float32))
        client.infer("versioned", [given])
    assert error.value.status() == "404", error.value
    client.load_model("versioned", headers=admin)
    assert client.is_model_ready("versioned") and client.is_model_ready("versioned", "2")
    with pytest.raises(InferenceServerException) as error:
        client.load_model("absent", headers=admin)
    assert "not in the repository" in str(error.value)


@pytest.mark.parametrize("headers", [{}, {"admin-key": "wrong"}, {"admin-key": "s3cret "}, {"admin-key": "s3cre"}])
def test_repository_api_needs_the_configured_header(daemon, headers):
    for path in ("/v2/repository/index", "/v2/repository/models/digits/unload", "/v2/repository/models/digits/load"):
        answer = requests.post(daemon.url + path, data="{}", headers=headers, timeout=30)
        assert answer.status_code == 403, (path, answer.text)
        assert answer.json()["error"].startswith("This API is restricted, expecting header 'admin-key'"), answer.text
    assert requests.get(daemon.url + "/v2/models/digits/ready", timeout=10).status_code == 200


def test_inference_statistics(client):
    given = httpclient.InferInput("image", [2, 3, 16, 16], "FP32")
    given.set_data_from_numpy(images(2))
    before = client.get_inference_statistics("cnn")["model_stats"][0]
    client.infer("cnn", [given])
    after = client.get_inference_statistics("cnn")["model_stats"][0]
    assert after["inference_stats"]["success"]["count"] == before["inference_stats"]["success"]["count"] + 1
    assert int(after["inference_count"]) >= int(before["inference_count"]) + 2
    assert after["inference_stats"]["compute_infer"]["ns"] > 0
    every = client.get_inference_statistics()["model_stats"]
    assert {"cnn", "digits"} <= {m["name"] for m in every}


# MARK: plain requests: the exact bodies and the binary framing

def binary_request(header, *blobs):
    head = json.dumps(header).encode()
    return head + b"".join(blobs), {"Inference-Header-Content-Length": str(len(head))}


def test_binary_framing_by_hand(daemon):
    a = np.array([[1, 2, 3]], dtype=np.float32)
    body, headers = binary_request(
        {"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}},
                    {"name": "b", "shape": [1, 3], "datatype": "INT64", "data": [[1, 1, 1]]}],
         "outputs": [{"name": "total", "parameters": {"binary_data": True}}, {"name": "doubled"}]}, a.tobytes())
    answer = requests.post(daemon.url + "/v2/models/mixed/infer", data=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/octet-stream"
    length = int(answer.headers["Inference-Header-Content-Length"])
    header = json.loads(answer.content[:length])
    assert header["outputs"][0]["parameters"]["binary_data_size"] == 12
    assert header["outputs"][1]["data"] == [2, 2, 2]
    np.testing.assert_array_equal(np.frombuffer(answer.content[length:], dtype=np.float32), [2, 3, 4])


# MARK: KServe's Python SDK (kserve.InferenceRESTClient)

def kserve_call(daemon, protocol, method, *args, **kwargs):
    """Runs one call of KServe's async REST client against the daemon, in a fresh event loop."""
    import asyncio

    from kserve import InferenceRESTClient, RESTConfig

    async def call():
        client = InferenceRESTClient(RESTConfig(protocol=protocol, timeout=30, retries=0))
        try:
            return await getattr(client, method)(daemon.url, *args, **kwargs)
        finally:
            await client.close()

    return asyncio.run(call())


def test_kserve_client_health(daemon):
    assert kserve_call(daemon, "v2", "is_server_live")
    assert kserve_call(daemon, "v2", "is_server_ready")
    assert kserve_call(daemon, "v2", "is_model_ready", "cnn")
    assert not kserve_call(daemon, "v2", "is_model_ready", "broken")


@pytest.mark.parametrize("binary_data", [False, True])
def test_kserve_client_v2_infer_matches_onnxruntime(daemon, repo, binary_data):
    from kserve import InferInput, InferRequest
    from kserve.protocol.infer_type import RequestedOutput

    x = images(2, seed=5)
    given = InferInput("image", list(x.shape), "FP32")
    given.set_data_from_numpy(x, binary_data=binary_data)
    request = InferRequest("cnn", [given], request_id="kserve-1",
                           request_outputs=[RequestedOutput("probabilities", parameters={"binary_data": binary_data})])
    response = kserve_call(daemon, "v2", "infer", request, model_name="cnn")
    assert response.id == "kserve-1" and response.model_name == "cnn"
    expected = reference(repo + "/cnn/1/model.onnx", {"image": x})["probabilities"]
    np.testing.assert_allclose(response.outputs[0].as_numpy(), expected, rtol=1e-4, atol=1e-6)


def test_kserve_client_v1_predict(daemon, repo):
    """KServe's v1 protocol is TF Serving's :predict; its client gets the same answer."""
    x = images(2, seed=6)
    answer = kserve_call(daemon, "v1", "infer", {"instances": x.tolist()}, model_name="cnn")
    expected = reference(repo + "/cnn/1/model.onnx", {"image": x})["probabilities"]
    np.testing.assert_allclose(np.array(answer["predictions"], dtype=np.float32), expected, rtol=1e-4, atol=1e-6)


def test_kserve_client_errors_are_http_errors(daemon):
    import httpx
    from kserve import InferInput, InferRequest

    wrong = InferInput("image", [1, 3], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(httpx.HTTPStatusError) as failure:
        kserve_call(daemon, "v2", "infer", InferRequest("cnn", [wrong]), model_name="cnn")
    assert failure.value.response.status_code == 400 and "error" in failure.value.response.json()
    assert kserve_call(daemon, "v2", "is_model_ready", "cnn")


def test_kserve_sdk_json_body(daemon):
    """What kserve's InferRequest.to_rest() sends: id and model_name at top level, nested data."""
    body = {"id": "d1d6d4c8", "model_name": "mixed",
            "inputs": [{"name": "a", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2, 3], [4, 5, 6]]},
                       {"name": "b", "shape": [2, 3], "datatype": "INT64", "data": [0, 0, 0, 1, 1, 1]}]}
    answer = requests.post(daemon.url + "/v2/models/mixed/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["model_name"] == "mixed" and result["id"] == "d1d6d4c8"
    total = next(o for o in result["outputs"] if o["name"] == "total")
    assert total["shape"] == [2, 3] and total["data"] == [1, 2, 3, 5, 6, 7]


def test_raw_binary_request(daemon):
    x = np.array([[0.0], [0.0]], dtype=np.float32)
    answer = requests.post(daemon.url + "/v2/models/versioned/versions/1/infer", data=x.tobytes(),
                           headers={"Inference-Header-Content-Length": "0"}, timeout=30)
    assert answer.status_code == 200, answer.text
    length = int(answer.headers["Inference-Header-Content-Length"])
    np.testing.assert_array_equal(np.frombuffer(answer.content[length:], dtype=np.float32), [1, 1])


def test_health_bodies_satisfy_kserve_client(daemon):
    assert requests.get(daemon.url + "/v2/health/live", timeout=10).json()["live"] is True
    assert requests.get(daemon.url + "/v2/health/ready", timeout=10).json()["ready"] is True
    assert requests.get(daemon.url + "/v2/models/digits/ready", timeout=10).json() == {"name": "digits", "ready": True}


# MARK: bad input: 4xx with {"error": ...}; the daemon keeps serving

def still_serving(daemon):
    answer = requests.post(daemon.url + "/v2/models/mixed/infer", timeout=30, json={
        "inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
                   {"name": "b", "shape": [1, 3], "datatype": "INT64", "data": [1, 1, 1]}]})
    assert answer.status_code == 200, answer.text


A12 = np.arange(3, dtype=np.float32).tobytes()
BAD = [
    ("header longer than body", b'{"inputs": []}', {"Inference-Header-Content-Length": "500"}, 400, "Inference-Header-Content-Length"),
    ("header not a number", b'{"inputs": []}', {"Inference-Header-Content-Length": "ten"}, 400, "non-negative integer"),
    ("sizes do not add up", *binary_request({"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}},
                                                        {"name": "b", "shape": [1, 3], "datatype": "INT64", "data": [1, 1, 1]}]}, A12 + b"\0" * 4),
     400, "add up"),
    ("size runs past body", *binary_request({"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 40}},
                                                        {"name": "b", "shape": [1, 3], "datatype": "INT64", "data": [1, 1, 1]}]}, A12),
     400, "runs past the end"),
    ("size wrong for shape", *binary_request({"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 8}},
                                                         {"name": "b", "shape": [1, 3], "datatype": "INT64", "data": [1, 1, 1]}]}, A12[:8]),
     400, "needs 12"),
    ("datatype mismatch", json.dumps({"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]},
                                                 {"name": "b", "shape": [1, 3], "datatype": "INT64", "data": [1, 1, 1]}]}).encode(), {}, 400, "expects FP32"),
    ("unknown datatype", json.dumps({"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP33", "data": [1, 2, 3]}]}).encode(), {}, 400, "unknown datatype"),
    ("shape mismatch", json.dumps({"inputs": [{"name": "a", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
                                              {"name": "b", "shape": [1, 4], "datatype": "INT64", "data": [1, 1, 1, 1]}]}).encode(), {}, 400, "dimension 1 must be 3"),
    ("data count mismatch", json.dumps({"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 2]}]}).encode(), {}, 400, "needs 3"),
    ("unknown input", json.dumps({"inputs": [{"name": "z", "shape": [1], "datatype": "FP32", "data": [1]}]}).encode(), {}, 400, "unknown input 'z'"),
    ("unknown output", json.dumps({"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]},
                                              {"name": "b", "shape": [1, 3], "datatype": "INT64", "data": [1, 1, 1]}],
                                   "outputs": [{"name": "nope"}]}).encode(), {}, 400, "unknown output 'nope'"),
    ("missing input", json.dumps({"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}).encode(), {}, 400, "missing input 'b'"),
    ("fp16 as json", json.dumps({"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP16", "data": [1, 2, 3]}]}).encode(), {}, 400, "FP32"),
    ("no inputs list", b'{"id": "x"}', {}, 400, "'inputs' must be a list"),
    ("malformed json", b'{"inputs": [', {}, 400, "JSON Parse error"),
]


@pytest.mark.parametrize("case, body, headers, status, fragment", BAD, ids=[c[0] for c in BAD])
def test_bad_inference_requests(daemon, case, body, headers, status, fragment):
    answer = requests.post(daemon.url + "/v2/models/mixed/infer", data=body, headers=headers, timeout=30)
    assert answer.status_code == status, answer.text
    assert fragment in answer.json()["error"], answer.json()
    still_serving(daemon)


def test_bytes_element_running_past_its_buffer(daemon):
    element = struct.pack("<I", 100) + b"short"
    body, headers = binary_request({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                                "parameters": {"binary_data_size": len(element)}}]}, element)
    answer = requests.post(daemon.url + "/v2/models/text/infer", data=body, headers=headers, timeout=30)
    assert answer.status_code == 400 and "past the end of its data" in answer.json()["error"], answer.text
    still_serving(daemon)


@pytest.mark.parametrize("path, status, fragment", [
    ("/v2/repository/models/absent/load", 404, "not in the repository"),
    ("/v2/repository/models/..%2F..%2Fetc/load", 400, "invalid model name"),
    ("/v2/repository/models/%2E%2E/load", 400, "invalid model name '..'"),
])
def test_bad_load_requests(daemon, path, status, fragment):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    connection.request("POST", path, body="{}", headers=dict([ADMIN]))
    answer = connection.getresponse()
    body = json.loads(answer.read())
    connection.close()
    assert answer.status == status and fragment in body["error"], body
    still_serving(daemon)


def test_unknown_model_and_version(daemon):
    assert requests.post(daemon.url + "/v2/models/nope/infer", json={"inputs": []}, timeout=10).status_code == 404
    assert requests.get(daemon.url + "/v2/models/mixed/versions/7", timeout=10).status_code == 404
    assert requests.get(daemon.url + "/v2/models/mixed/versions/x", timeout=10).status_code == 400
    assert requests.get(daemon.url + "/v2/models/mixed/infer", timeout=10).status_code == 405
    still_serving(daemon)
