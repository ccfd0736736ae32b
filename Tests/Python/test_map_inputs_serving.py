"""Map inputs through the daemon: skl2onnx DictVectorizer pipelines (string and int64 keys) and a
CastMap model (string values), with the map sent as a JSON object over TF Serving REST (columnar,
named, and a single row instance) and the Open Inference Protocol (JSON), answers compared with
onnxruntime (labels exactly, probabilities within rtol 1e-3 / atol 1e-5). Bad maps are 400 with a
message naming the problem, and the daemon keeps serving."""
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
ML = "ai.onnx.ml"
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon"]


def word_maps(seed, count):
    rng = np.random.default_rng(seed)
    return [{str(w): float(np.float32(rng.normal())) for w in rng.choice(WORDS, size=3, replace=False)} for _ in range(count)]


def id_maps(seed, count):
    rng = np.random.default_rng(seed)
    return [{int(k): float(np.float32(rng.normal())) for k in rng.choice([3, 7, 11, 20, 42], size=3, replace=False)} for _ in range(count)]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DictionaryType, FloatTensorType, Int64TensorType, StringTensorType
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    root = tmp_path_factory.mktemp("repository")

    def save(name, model):
        os.makedirs(root / name / "1")
        onnx.save(model, str(root / name / "1" / "model.onnx"))

    x = word_maps(0, 80)
    y = [int(sum(row.values()) > 0) + int("beta" in row) for row in x]
    words = make_pipeline(DictVectorizer(sparse=False), LogisticRegression(max_iter=500)).fit(x, y)
    save("words", convert_sklearn(words, initial_types=[("input", DictionaryType(StringTensorType([]), FloatTensorType([])))],
                                  target_opset={"": 17, ML: 3}))
    x = id_maps(1, 80)
    y = [int(row.get(7, 0.0) + row.get(20, 0.0) > 0) for row in x]
    ids = make_pipeline(DictVectorizer(sparse=False), RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0)).fit(x, y)
    save("ids", convert_sklearn(ids, initial_types=[("input", DictionaryType(Int64TensorType([]), FloatTensorType([])))],
                                target_opset={"": 17, ML: 3}))
    node = helper.make_node("CastMap", ["input"], ["output"], domain=ML, cast_to="TO_FLOAT", map_form="SPARSE", max_map=4)
    graph = helper.make_graph([node], "cast_map",
                              [helper.make_value_info("input", helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.STRING, None)))],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)])
    save("castmap", helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ML, 1)]))
    map_type = helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.STRING, None))
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["same"])], "identity",
                              [helper.make_value_info("input", map_type)], [helper.make_value_info("same", map_type)])
    save("identity", helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    return root


@pytest.fixture(scope="module")
def daemon(binary, repo):
    server = Daemon(binary, "--model-repository", str(repo))
    yield server
    assert server.stop() == 0, "".join(server.log)


def reference(repo, name, entries):
    session = ort.InferenceSession(str(repo / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    label, probabilities = session.run(None, {"input": entries})
    return label.tolist(), probabilities[0]


def assert_map(got, want):
    """A JSON object of probabilities against onnxruntime's dict (JSON keys are strings)."""
    assert sorted(got) == sorted(str(key) for key in want)
    np.testing.assert_allclose([got[str(key)] for key in want], list(want.values()), rtol=RTOL, atol=ATOL)


def predict(daemon, model, body):
    return requests.post(daemon.url + "/v1/models/%s:predict" % model, json=body, timeout=60)


def infer(daemon, model, body):
    return requests.post(daemon.url + "/v2/models/%s/infer" % model, json=body, timeout=60)


def json_map(entries):
    return {str(key): value for key, value in entries.items()}


@pytest.mark.parametrize("model, maps", [("words", word_maps(5, 3) + [{"alpha": 0.5, "zeta": 9.0}]), ("ids", id_maps(6, 3) + [{7: 1.5, 99: -3.0}])])
def test_tf_serving_columnar_and_row(daemon, repo, model, maps):
    for entries in maps:
        label, probabilities = reference(repo, model, entries)
        for body in ({"inputs": json_map(entries)}, {"inputs": {"input": json_map(entries)}}):
            answer = predict(daemon, model, body)
            assert answer.status_code == 200, answer.text
            outputs = answer.json()["outputs"]
            assert outputs["output_label"] == label
            assert len(outputs["output_probability"]) == 1
            assert_map(outputs["output_probability"][0], probabilities)
        answer = predict(daemon, model, {"instances": [json_map(entries)]})
        assert answer.status_code == 200, answer.text
        (row,) = answer.json()["predictions"]
        assert row["output_label"] == label[0]
        assert_map(row["output_probability"], probabilities)


@pytest.mark.parametrize("model, maps", [("words", word_maps(7, 2)), ("ids", id_maps(8, 2))])
def test_open_inference_json(daemon, repo, model, maps):
    for entries in maps:
        label, probabilities = reference(repo, model, entries)
        answer = infer(daemon, model, {"inputs": [{"name": "input", "datatype": "FP32", "shape": [len(entries)], "data": json_map(entries)}]})
        assert answer.status_code == 200, answer.text
        outputs = {output["name"]: output for output in answer.json()["outputs"]}
        assert outputs["output_label"]["data"] == label
        assert outputs["output_probability"]["datatype"] == "BYTES"
        assert outputs["output_probability"]["shape"] == [1]
        assert_map(json.loads(outputs["output_probability"]["data"][0]), probabilities)


def test_metadata_describes_the_map_input(daemon):
    answer = requests.get(daemon.url + "/v2/models/words", timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1]}]
    answer = requests.get(daemon.url + "/v2/models/castmap", timeout=60)
    assert answer.json()["inputs"] == [{"name": "input", "datatype": "BYTES", "shape": [-1]}]


def test_cast_map_of_strings(daemon):
    """map(int64, string) (onnxruntime's Python binding cannot feed it): hand-computed."""
    answer = predict(daemon, "castmap", {"inputs": {"3": "2.5", "0": "-1", "9": "7"}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"] == [[-1.0, 0.0, 0.0, 2.5]]
    answer = infer(daemon, "castmap", {"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1], "data": {"1": "0.25"}}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == [0.0, 0.25, 0.0, 0.0]


def test_map_output(daemon):
    """A map output (passed through by Identity): an object over TF Serving (columnar), one BYTES
    element holding its JSON text over Open Inference; the row form cannot split it."""
    answer = predict(daemon, "identity", {"inputs": {"7": "seven", "-1": "minus one"}})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"outputs": {"7": "seven", "-1": "minus one"}}
    expect_400(predict(daemon, "identity", {"instances": [{"7": "seven"}]}), "output 'same' is a map, which the row format cannot split")
    answer = infer(daemon, "identity", {"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1], "data": {"3": "x"}}]})
    assert answer.status_code == 200, answer.text
    (output,) = answer.json()["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("same", "BYTES", [])
    assert json.loads(output["data"][0]) == {"3": "x"}


def expect_400(answer, fragment):
    assert answer.status_code == 400, answer.text
    assert fragment in answer.json()["error"], answer.json()["error"]


def test_bad_maps_are_400(daemon):
    raw = lambda path, text: requests.post(daemon.url + path, data=text, headers={"Content-Type": "application/json"}, timeout=60)
    expect_400(raw("/v1/models/words:predict", '{"inputs": {"alpha": 1.0, "alpha": 2.0}}'), "key 'alpha' is given twice")
    expect_400(raw("/v1/models/ids:predict", '{"inputs": {"7": 1.0, "07": 2.0}}'), "key 7 is given twice")
    expect_400(predict(daemon, "ids", {"inputs": {"seven": 1.0}}), "key 'seven' is not an integer")
    expect_400(predict(daemon, "ids", {"inputs": {"99999999999999999999": 1.0}}), "is not an integer")
    expect_400(predict(daemon, "words", {"inputs": {"alpha": "one"}}), "the value under key 'alpha' is a string; the model's map has float (number) values")
    expect_400(predict(daemon, "words", {"inputs": {"alpha": [1.0]}}), "the value under key 'alpha' is a list")
    expect_400(predict(daemon, "castmap", {"inputs": {"1": 2.0}}), "the value under key '1' is a number; the model's map has string values")
    expect_400(predict(daemon, "words", {"inputs": [1.0, 2.0]}), "input 'input' is a map: send a JSON object")
    expect_400(predict(daemon, "words", {"instances": [{"alpha": 1.0}, {"beta": 1.0}]}), "send 'instances' as a list of exactly one instance")
    expect_400(predict(daemon, "castmap", {"inputs": {"-1": "1"}}), "CastMap SPARSE takes keys from 0; the map has key -1")
    expect_400(predict(daemon, "castmap", {"inputs": {"1": "x"}}), "map value 'x' is not a float")
    expect_400(raw("/v1/models/words:predict", '{"inputs": {"alpha": ' + "[" * 300 + "]" * 300 + "}}"), "nesting deeper than")
    expect_400(raw("/v1/models/words:predict", '{"inputs": ' + '{"a": ' * 300 + "1" + "}" * 300 + "}"), "nesting deeper than")
    entries = {"alpha": 1.0, "beta": 2.0}
    expect_400(infer(daemon, "words", {"inputs": [{"name": "input", "datatype": "FP32", "shape": [3], "data": entries}]}),
               "input 'input' has 2 entries in 'data' but shape [3]; a map's shape is [entries]")
    expect_400(infer(daemon, "words", {"inputs": [{"name": "input", "datatype": "FP64", "shape": [2], "data": entries}]}),
               "input 'input' has datatype FP64; the model expects FP32")
    expect_400(infer(daemon, "words", {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}]}),
               "input 'input' is a map: send a JSON object")
    header = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}]}).encode()
    answer = requests.post(daemon.url + "/v2/models/words/infer", data=header + np.zeros(2, dtype=np.float32).tobytes(),
                           headers={"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}, timeout=60)
    expect_400(answer, "input 'input' is a map, which the binary extension cannot carry")
    # Still serving.
    assert requests.get(daemon.url + "/v2/health/ready", timeout=10).status_code == 200
    assert predict(daemon, "words", {"inputs": {"alpha": 1.0}}).status_code == 200
