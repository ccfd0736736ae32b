"""A scikit-learn classifier with ZipMap, and string tensors, through both protocols of the daemon.

ZipMap's output (a sequence of maps) is one JSON object per row over TF Serving REST, and one BYTES
element per row holding that object's JSON text over the Open Inference Protocol (JSON and binary).
Strings travel as TF Serving strings or {"b64": ...} and as Open Inference BYTES.
"""
import base64
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import requests
from onnx import TensorProto, helper

from conftest import Daemon

RTOL, ATOL = 1e-3, 1e-5


def _iris():
    from sklearn.datasets import load_iris
    data = load_iris()
    return data.data.astype(np.float32), np.array(data.target_names)[data.target]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    from sklearn.ensemble import RandomForestClassifier
    from skl2onnx import to_onnx
    root = str(tmp_path_factory.mktemp("repository"))
    x, y = _iris()
    forest = RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(x, y)
    model = to_onnx(forest, x[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    os.makedirs(os.path.join(root, "iris", "1"))
    onnx.save(model, os.path.join(root, "iris", "1", "model.onnx"))
    graph = helper.make_graph(
        [helper.make_node("LabelEncoder", ["words"], ["codes"], domain="ai.onnx.ml", keys_strings=["cat", "dog", "ünï"],
                          values_int64s=[1, 2, 3], default_int64=0),
         helper.make_node("CategoryMapper", ["codes"], ["names_bytes"], domain="ai.onnx.ml", cats_int64s=[1, 2, 3],
                          cats_strings=["Katze", "Hund", "üñí"], default_string="?")],
        "strings", [helper.make_tensor_value_info("words", TensorProto.STRING, [None])],
        [helper.make_tensor_value_info("codes", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("names_bytes", TensorProto.STRING, [None])])
    os.makedirs(os.path.join(root, "words", "1"))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 2)]),
              os.path.join(root, "words", "1", "model.onnx"))
    return root


@pytest.fixture(scope="module")
def daemon(binary, repo):
    server = Daemon(binary, "--model-repository", repo)
    yield server
    assert server.stop() == 0, "".join(server.log)


@pytest.fixture(scope="module")
def expected(repo):
    x, _ = _iris()
    rows = x[::10]
    session = ort.InferenceSession(os.path.join(repo, "iris", "1", "model.onnx"), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {"X": rows})
    return rows, list(labels), probabilities


def _assert_maps(got, want):
    assert len(got) == len(want)
    for row, reference in zip(got, want, strict=True):
        assert sorted(row) == sorted(reference)
        np.testing.assert_allclose([row[key] for key in reference], [reference[key] for key in reference], rtol=RTOL, atol=ATOL)


def test_tf_serving_rows_give_one_map_object_per_row(daemon, expected):
    rows, labels, probabilities = expected
    answer = requests.post(daemon.url + "/v1/models/iris:predict", json={"instances": rows.tolist()}, timeout=60)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [p["output_label"] for p in predictions] == labels
    _assert_maps([p["output_probability"] for p in predictions], probabilities)


def test_tf_serving_columnar_gives_a_list_of_maps(daemon, expected):
    rows, labels, probabilities = expected
    answer = requests.post(daemon.url + "/v1/models/iris:predict", json={"inputs": {"X": rows.tolist()}}, timeout=60)
    assert answer.status_code == 200, answer.text
    outputs = answer.json()["outputs"]
    assert outputs["output_label"] == labels
    _assert_maps(outputs["output_probability"], probabilities)


def test_open_inference_json_sends_each_map_as_json_text(daemon, expected):
    rows, labels, probabilities = expected
    body = {"inputs": [{"name": "X", "shape": list(rows.shape), "datatype": "FP32", "data": rows.reshape(-1).tolist()}]}
    answer = requests.post(daemon.url + "/v2/models/iris/infer", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert outputs["output_label"]["datatype"] == "BYTES" and outputs["output_label"]["data"] == labels
    maps = outputs["output_probability"]
    assert maps["datatype"] == "BYTES" and maps["shape"] == [len(rows)]
    _assert_maps([json.loads(text) for text in maps["data"]], probabilities)
    metadata = requests.get(daemon.url + "/v2/models/iris", timeout=10).json()
    described = {o["name"]: o for o in metadata["outputs"]}
    assert described["output_probability"]["datatype"] == "BYTES" and described["output_probability"]["shape"] == [-1]


def test_open_inference_binary_with_tritonclient(daemon, expected):
    import tritonclient.http as httpclient
    rows, labels, probabilities = expected
    client = httpclient.InferenceServerClient(daemon.url.replace("http://", ""))
    data = httpclient.InferInput("X", list(rows.shape), "FP32")
    data.set_data_from_numpy(rows, binary_data=True)
    result = client.infer("iris", [data], outputs=[httpclient.InferRequestedOutput("output_label", binary_data=True),
                                                   httpclient.InferRequestedOutput("output_probability", binary_data=True)])
    assert [label.decode() for label in result.as_numpy("output_label")] == labels
    _assert_maps([json.loads(text) for text in result.as_numpy("output_probability")], probabilities)


def test_strings_through_tf_serving_plain_and_b64(daemon):
    words = ["dog", "ünï", "fish"]
    plain = requests.post(daemon.url + "/v1/models/words:predict", json={"instances": words}, timeout=60)
    assert plain.status_code == 200, plain.text
    encoded = requests.post(daemon.url + "/v1/models/words:predict",
                            json={"instances": [{"b64": base64.b64encode(w.encode()).decode()} for w in words]}, timeout=60)
    assert encoded.status_code == 200, encoded.text
    for answer in (plain, encoded):
        predictions = answer.json()["predictions"]
        assert [p["codes"] for p in predictions] == [2, 3, 0]
        # An output whose name ends in _bytes comes back base64-encoded, as TF Serving does.
        assert [base64.b64decode(p["names_bytes"]["b64"]).decode() for p in predictions] == ["Hund", "üñí", "?"]


def test_strings_through_open_inference_bytes(daemon):
    import tritonclient.http as httpclient
    words = ["cat", "ünï", ""]
    body = {"inputs": [{"name": "words", "shape": [3], "datatype": "BYTES", "data": words}]}
    answer = requests.post(daemon.url + "/v2/models/words/infer", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert outputs["codes"]["data"] == [1, 3, 0] and outputs["names_bytes"]["data"] == ["Katze", "üñí", "?"]
    client = httpclient.InferenceServerClient(daemon.url.replace("http://", ""))
    data = httpclient.InferInput("words", [3], "BYTES")
    data.set_data_from_numpy(np.array([w.encode() for w in words], dtype=np.object_), binary_data=True)
    result = client.infer("words", [data])
    assert result.as_numpy("codes").tolist() == [1, 3, 0]
    assert [v.decode() for v in result.as_numpy("names_bytes")] == ["Katze", "üñí", "?"]
