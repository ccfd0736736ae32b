"""float16 and bfloat16 tensors over HTTP: the Open Inference Protocol's binary tensor extension
(FP16, BF16, two bytes per element), its JSON form (numbers, converted to the nearest half value),
and TF Serving's JSON. A hand-built model checks the element paths bit for bit; a CNN converted to
fp16 by onnxconverter-common (keep_io_types=False: fp16 in and out) checks a real model against
onnxruntime through tritonclient."""
import json
import os

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import requests
import tritonclient.http as httpclient
from onnx import TensorProto, helper

from conftest import Daemon
from test_quantized_models import float_cnn, image


def halves(path):
    """h FP16 and b BF16 (each [batch, 2]) -> h_sum = h + h (FP16), b_copy (BF16), b_widened (FP32)."""
    value = lambda name, kind: helper.make_tensor_value_info(name, kind, ["batch", 2])
    nodes = [helper.make_node("Add", ["h", "h"], ["h_sum"]), helper.make_node("Identity", ["b"], ["b_copy"]),
             helper.make_node("Cast", ["b"], ["b_widened"], to=TensorProto.FLOAT)]
    graph = helper.make_graph(nodes, "halves", [value("h", TensorProto.FLOAT16), value("b", TensorProto.BFLOAT16)],
                              [value("h_sum", TensorProto.FLOAT16), value("b_copy", TensorProto.BFLOAT16),
                               value("b_widened", TensorProto.FLOAT)])
    os.makedirs(os.path.dirname(path))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    from onnxconverter_common import float16
    root = tmp_path_factory.mktemp("repository")
    halves(str(root / "halves" / "1" / "model.onnx"))
    float_cnn(str(root / "cnn.onnx"))
    os.makedirs(root / "cnn16" / "1")
    onnx.save(float16.convert_float_to_float16(onnx.load(str(root / "cnn.onnx")), keep_io_types=False),
              str(root / "cnn16" / "1" / "model.onnx"))
    os.remove(root / "cnn.onnx")
    return root


@pytest.fixture(scope="module")
def daemon(binary, repo):
    server = Daemon(binary, "--model-repository", str(repo))
    yield server
    assert server.stop() == 0, "".join(server.log)


@pytest.fixture
def client(daemon):
    return httpclient.InferenceServerClient("127.0.0.1:%d" % daemon.port)


# Values that are exact in their type, with a negative, a fraction, zero and a subnormal (fp16).
H = np.array([[0.5, -2.0], [6.1035156e-05, 0.0], [1.0009766, 65504 / 4]], dtype=np.float16)
B = np.array([[1.5, -3.25], [1e-20, 0.0], [3.3895314e38, -0.0078125]], dtype=ml_dtypes.bfloat16)


def bits(array):
    return array.view(np.uint16).tolist()


def test_binary_fp16_and_bf16_round_trip_bit_exact(client):
    given = [httpclient.InferInput("h", list(H.shape), "FP16"), httpclient.InferInput("b", list(B.shape), "BF16")]
    given[0].set_data_from_numpy(H)
    given[1].set_data_from_numpy(B)
    result = client.infer("halves", given)
    outputs = {o["name"]: o for o in result.get_response()["outputs"]}
    assert [outputs[n]["datatype"] for n in ("h_sum", "b_copy", "b_widened")] == ["FP16", "BF16", "FP32"]
    assert outputs["h_sum"]["parameters"]["binary_data_size"] == H.size * 2
    assert outputs["b_copy"]["parameters"]["binary_data_size"] == B.size * 2
    assert result.as_numpy("h_sum").dtype == np.float16
    assert bits(result.as_numpy("h_sum")) == bits(H + H)
    assert bits(result.as_numpy("b_copy")) == bits(B)
    np.testing.assert_array_equal(result.as_numpy("b_widened"), B.astype(np.float32))


def test_json_fp16_and_bf16_in_and_out(daemon):
    body = {"inputs": [{"name": "h", "shape": list(H.shape), "datatype": "FP16", "data": H.astype(float).ravel().tolist()},
                       {"name": "b", "shape": list(B.shape), "datatype": "BF16", "data": B.astype(float).ravel().tolist()}]}
    answer = requests.post("http://127.0.0.1:%d/v2/models/halves/infer" % daemon.port, json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert outputs["h_sum"]["datatype"] == "FP16" and outputs["b_copy"]["datatype"] == "BF16"
    # Each number read back into its type gives the same bits: nothing was rounded on the way.
    assert bits(np.array(outputs["h_sum"]["data"], dtype=np.float16)) == bits((H + H).ravel())
    assert bits(np.array(outputs["b_copy"]["data"], dtype=ml_dtypes.bfloat16)) == bits(B.ravel())
    np.testing.assert_array_equal(np.array(outputs["b_widened"]["data"], dtype=np.float32), B.astype(np.float32).ravel())


def test_json_numbers_round_to_the_nearest_half_value(daemon):
    # 0.1 is not a float16 or bfloat16 value: the server rounds to nearest even, as numpy does.
    body = {"inputs": [{"name": "h", "shape": [1, 2], "datatype": "FP16", "data": [0.1, -1e-3]},
                       {"name": "b", "shape": [1, 2], "datatype": "BF16", "data": [0.1, 300.7]}],
            "outputs": [{"name": "h_sum"}, {"name": "b_copy", "parameters": {"binary_data": False}}]}
    answer = requests.post("http://127.0.0.1:%d/v2/models/halves/infer" % daemon.port, json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    h = np.array([0.1, -1e-3], dtype=np.float16)
    assert bits(np.array(outputs["h_sum"]["data"], dtype=np.float16)) == bits(h + h)
    assert bits(np.array(outputs["b_copy"]["data"], dtype=ml_dtypes.bfloat16)) == bits(np.array([0.1, 300.7], dtype=ml_dtypes.bfloat16))


def test_tf_serving_json_fp16_and_bf16(daemon):
    url = "http://127.0.0.1:%d/v1/models/halves:predict" % daemon.port
    answer = requests.post(url, json={"inputs": {"h": H.astype(float).tolist(), "b": B.astype(float).tolist()}}, timeout=30)
    assert answer.status_code == 200, answer.text
    outputs = answer.json()["outputs"]
    assert bits(np.array(outputs["h_sum"], dtype=np.float16)) == bits(H + H)
    assert bits(np.array(outputs["b_copy"], dtype=ml_dtypes.bfloat16)) == bits(B)
    rows = requests.post(url, json={"instances": [{"h": [0.5, -2.0], "b": [1.5, -3.25]}]}, timeout=30)
    assert rows.status_code == 200, rows.text
    assert rows.json() == {"predictions": [{"h_sum": [1.0, -4.0], "b_copy": [1.5, -3.25], "b_widened": [1.5, -3.25]}]}


@pytest.mark.parametrize("case, body, message", [
    ("binary size not two bytes per element",
     {"inputs": [{"name": "h", "shape": [1, 2], "datatype": "FP16", "parameters": {"binary_data_size": 6}},
                 {"name": "b", "shape": [1, 2], "datatype": "BF16", "parameters": {"binary_data_size": 4}}]},
     "input 'h' has binary_data_size 6; FP16 [1, 2] needs 4 bytes"),
    ("declared type is not the model's", {"inputs": [{"name": "h", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]},
                                                   {"name": "b", "shape": [1, 2], "datatype": "BF16", "data": [1, 2]}]},
     "input 'h' has datatype FP32; the model expects FP16"),
    ("a string where a number belongs", {"inputs": [{"name": "h", "shape": [1, 2], "datatype": "FP16", "data": [1, "x"]},
                                                  {"name": "b", "shape": [1, 2], "datatype": "BF16", "data": [1, 2]}]},
     "not of expected type: float16 (input 'h')"),
    ("too few values", {"inputs": [{"name": "h", "shape": [1, 2], "datatype": "FP16", "data": [1, 2]},
                                   {"name": "b", "shape": [1, 2], "datatype": "BF16", "data": [1]}]},
     "input 'b' has 1 values in 'data' but shape [1, 2] needs 2"),
])
def test_bad_half_precision_requests_get_400(daemon, case, body, message):
    head = json.dumps(body).encode()
    payload = head + bytes(10) if "binary_data_size" in head.decode() else head
    headers = {"Inference-Header-Content-Length": str(len(head))} if payload != head else {"Content-Type": "application/json"}
    answer = requests.post("http://127.0.0.1:%d/v2/models/halves/infer" % daemon.port, data=payload, headers=headers, timeout=30)
    assert answer.status_code == 400, (case, answer.text)
    assert message in answer.json()["error"], (case, answer.text)
    assert requests.get("http://127.0.0.1:%d/v2/health/live" % daemon.port, timeout=10).status_code == 200


@pytest.mark.parametrize("binary_data", [True, False])
def test_fp16_converted_cnn_over_open_inference(client, repo, binary_data):
    x = image(3)["x"].astype(np.float16)
    session = ort.InferenceSession(str(repo / "cnn16" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    (theirs,) = session.run(None, {"x": x})
    given = httpclient.InferInput("x", list(x.shape), "FP16")
    given.set_data_from_numpy(x, binary_data=binary_data)
    result = client.infer("cnn16", [given], outputs=[httpclient.InferRequestedOutput("logits", binary_data=binary_data)])
    ours = result.as_numpy("logits")
    assert ours.dtype == np.float16 and ours.shape == theirs.shape
    np.testing.assert_allclose(ours.astype(np.float32), theirs.astype(np.float32), rtol=1e-3,
                               atol=2e-3 * float(np.abs(theirs).max()))
