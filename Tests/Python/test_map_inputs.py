"""Map inputs (ai.onnx.ml CastMap and DictVectorizer): real scikit-learn DictVectorizer pipelines
converted by skl2onnx (string and int64 keys) and CastMap models built with onnx.helper, run by
`onnx-serve run` (MapProto input files) and compared with onnxruntime: labels exactly, floats within
rtol 1e-3 / atol 1e-5. onnxruntime's Python binding only feeds maps of float values, so the other
value types are checked against onnx.reference (DictVectorizer) or hand-computed values (CastMap of
strings). Bad maps (duplicate keys, wrong key or value types, negative SPARSE keys, non-numbers) and
bad models (huge max_map, sequences of maps as inputs) fail with a clear message, never a crash."""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from conftest import run_cli

RTOL, ATOL = 1e-3, 1e-5
ML = "ai.onnx.ml"
NUMPY = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64, TensorProto.INT64: np.int64, TensorProto.STRING: object}


def map_proto(entries, key_type, value_type):
    """A MapProto as onnx writes one: keys, and values as a SequenceProto of scalar tensors."""
    proto = onnx.MapProto()
    proto.key_type = key_type
    if key_type == TensorProto.STRING:
        proto.string_keys.extend(key.encode() for key in entries)
    else:
        proto.keys.extend(int(key) for key in entries)
    proto.values.elem_type = onnx.SequenceProto.TENSOR
    for value in entries.values():
        proto.values.tensor_values.append(numpy_helper.from_array(np.array(value, dtype=NUMPY[value_type])))
    return proto


def run(binary, tmp_path, model, proto, name="input"):
    """`onnx-serve run` with the map `proto` as the model's input: (exit code, outputs, stderr)."""
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    (tmp_path / "map.pb").write_bytes(proto if isinstance(proto, bytes) else proto.SerializeToString())
    out = tmp_path / "out"
    code, _, err = run_cli(binary, "run", str(path), "--input", "%s=%s" % (name, tmp_path / "map.pb"), "--output-dir", str(out))
    if code != 0:
        return code, None, err
    outputs = [numpy_helper.to_array(onnx.load_tensor(str(out / ("output_%d.pb" % k)))) for k in range(len(model.graph.output))]
    return code, outputs, err


def outputs_of(binary, tmp_path, model, proto):
    code, outputs, err = run(binary, tmp_path, model, proto)
    assert code == 0, err
    return outputs


def error_of(binary, tmp_path, model, proto):
    code, _, err = run(binary, tmp_path, model, proto)
    assert code == 1, err
    return err


def as_array(value):
    """An onnxruntime output as an array: a ZipMap's list of dicts becomes [N, classes] in key order."""
    if isinstance(value, list):
        return np.array([list(row.values()) for row in value], dtype=np.float32)
    return np.asarray(value)


def compare(got, want, name):
    want = as_array(want)
    if want.dtype.kind in "OUS":
        assert [str(v) for v in got.reshape(-1)] == [str(v) for v in want.reshape(-1)], name
    elif want.dtype.kind in "iub":
        np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=name)
    else:
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=RTOL, atol=ATOL, err_msg=name)


def check_with_ort(binary, tmp_path, model, entries, key_type):
    """Our outputs for the map `entries` (float values) against onnxruntime's."""
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {model.graph.input[0].name: entries})
    ours = outputs_of(binary, tmp_path, model, map_proto(entries, key_type, TensorProto.FLOAT))
    assert len(ours) == len(expected) == len(model.graph.output)
    for output, got, want in zip(model.graph.output, ours, expected, strict=True):
        compare(got, want, output.name)
    return ours


def ml_model(node, key_type, value_type, output_type):
    graph = helper.make_graph([node], "map_model",
                              [helper.make_value_info("input", helper.make_map_type_proto(key_type, helper.make_tensor_type_proto(value_type, None)))],
                              [helper.make_tensor_value_info("output", output_type, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ML, 1)])


# MARK: scikit-learn pipelines

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon"]


def word_maps(seed, count):
    rng = np.random.default_rng(seed)
    return [{str(w): float(rng.normal()) for w in rng.choice(WORDS, size=3, replace=False)} for _ in range(count)]


def test_dict_vectorizer_logistic_regression_string_keys(binary, tmp_path):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DictionaryType, FloatTensorType, StringTensorType
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    x = word_maps(0, 80)
    y = [int(sum(row.values()) > 0) + int("beta" in row) for row in x]
    pipeline = make_pipeline(DictVectorizer(sparse=False), LogisticRegression(max_iter=500)).fit(x, y)
    model = convert_sklearn(pipeline, initial_types=[("input", DictionaryType(StringTensorType([]), FloatTensorType([])))],
                            target_opset={"": 17, ML: 3})
    assert [node.op_type for node in model.graph.node][0] == "DictVectorizer"
    # Rows the model saw, one with a key outside the vocabulary (ignored, as sklearn does), one with a single key.
    for entries in word_maps(1, 3) + [{"alpha": 0.5, "zeta": 9.0}, {"gamma": -1.25}]:
        ours = check_with_ort(binary, tmp_path, model, entries, TensorProto.STRING)
        assert ours[0].tolist() == pipeline.predict([entries]).tolist()
        np.testing.assert_allclose(ours[1].reshape(1, -1), pipeline.predict_proba([entries]), rtol=RTOL, atol=1e-4)


def test_dict_vectorizer_random_forest_int64_keys(binary, tmp_path):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DictionaryType, FloatTensorType, Int64TensorType
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.pipeline import make_pipeline
    rng = np.random.default_rng(2)
    x = [{int(k): float(rng.normal()) for k in rng.choice([3, 7, 11, 20, 42], size=3, replace=False)} for _ in range(80)]
    y = [int(row.get(7, 0.0) + row.get(20, 0.0) > 0) for row in x]
    pipeline = make_pipeline(DictVectorizer(sparse=False), RandomForestClassifier(n_estimators=7, max_depth=4, random_state=0)).fit(x, y)
    model = convert_sklearn(pipeline, initial_types=[("input", DictionaryType(Int64TensorType([]), FloatTensorType([])))],
                            target_opset={"": 17, ML: 3})
    vectorizer = next(node for node in model.graph.node if node.op_type == "DictVectorizer")
    assert any(attribute.name == "int64_vocabulary" for attribute in vectorizer.attribute)
    for entries in x[:4] + [{7: 1.5, 99: -3.0}, {20: -0.5}]:
        ours = check_with_ort(binary, tmp_path, model, entries, TensorProto.INT64)
        assert ours[0].tolist() == pipeline.predict([entries]).tolist()


# MARK: DictVectorizer, every value type

@pytest.mark.parametrize("key_type, value_type, vocabulary, entries", [
    (TensorProto.STRING, TensorProto.FLOAT, ["a", "b", "c", "a"], {"b": 2.5, "zz": 5.0, "a": -1.0}),
    (TensorProto.STRING, TensorProto.DOUBLE, ["a", "b", "c"], {"c": 1e-300, "b": -7.25}),
    (TensorProto.STRING, TensorProto.INT64, ["x", "y", "z"], {"z": -(2 ** 40), "x": 3}),
    (TensorProto.INT64, TensorProto.FLOAT, [5, 1, 3], {1: 2.0, 4: 1.0, 5: -0.5}),
    (TensorProto.INT64, TensorProto.DOUBLE, [5, 1, 3, 2 ** 40], {2 ** 40: 2.0, 3: 0.125}),
    (TensorProto.INT64, TensorProto.STRING, [5, 1, 3], {5: "five", 3: "", 8: "eight"}),
])
def test_dict_vectorizer_value_types(binary, tmp_path, key_type, value_type, vocabulary, entries):
    attribute = "string_vocabulary" if key_type == TensorProto.STRING else "int64_vocabulary"
    node = helper.make_node("DictVectorizer", ["input"], ["output"], domain=ML, **{attribute: vocabulary})
    model = ml_model(node, key_type, value_type, value_type)
    (ours,) = outputs_of(binary, tmp_path, model, map_proto(entries, key_type, value_type))
    dtype = NUMPY[value_type]
    feed = {k: (v if dtype is object else dtype(v)) for k, v in entries.items()}
    (want,) = ReferenceEvaluator(model).run(None, {"input": feed})
    assert ours.shape == (1, len(vocabulary))
    if dtype is object:
        assert ours.reshape(-1).tolist() == [entries.get(word, "").encode() if isinstance(ours.reshape(-1)[0], bytes) else entries.get(word, "") for word in vocabulary]
    else:
        np.testing.assert_array_equal(ours.reshape(-1), np.asarray(want, dtype=dtype).reshape(-1))
        assert ours.dtype == dtype
    if value_type == TensorProto.FLOAT:
        expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": entries})[0]
        compare(ours, expected, "output")


# MARK: CastMap

CAST_TO = {"TO_FLOAT": TensorProto.FLOAT, "TO_STRING": TensorProto.STRING, "TO_INT64": TensorProto.INT64}


def cast_map(value_type, cast_to, map_form, max_map=None):
    attributes = {"cast_to": cast_to, "map_form": map_form}
    if max_map is not None:
        attributes["max_map"] = max_map
    node = helper.make_node("CastMap", ["input"], ["output"], domain=ML, **attributes)
    return ml_model(node, TensorProto.INT64, value_type, CAST_TO.get(cast_to, TensorProto.FLOAT))


@pytest.mark.parametrize("cast_to", list(CAST_TO))
@pytest.mark.parametrize("map_form, max_map", [("DENSE", None), ("SPARSE", None), ("SPARSE", 6), ("SPARSE", 2)])
def test_cast_map_float_values_against_onnxruntime(binary, tmp_path, cast_to, map_form, max_map):
    model = cast_map(TensorProto.FLOAT, cast_to, map_form, max_map)
    # Out of key order, a key past max_map, values a string and an int64 cast must write exactly.
    entries = {3: 1.5, 0: -2.75, 7: 1e10, 1: 123456789.0, 4: -0.0}
    (ours,) = check_with_ort(binary, tmp_path, model, entries, TensorProto.INT64)
    width = len(entries) if map_form == "DENSE" else (max_map or 1)
    assert ours.shape == (1, width)


@pytest.mark.parametrize("cast_to, map_form, expected", [
    ("TO_FLOAT", "DENSE", np.array([[-2.5, 1e-3, 7.0]], dtype=np.float32)),
    ("TO_FLOAT", "SPARSE", np.array([[-2.5, 0.0, 1e-3, 0.0]], dtype=np.float32)),
    ("TO_INT64", "DENSE", None),
    ("TO_STRING", "DENSE", np.array([["-2.5", "1e-3", "7"]], dtype=object)),
    ("TO_STRING", "SPARSE", np.array([["-2.5", "0.f", "1e-3", "0.f"]], dtype=object)),
])
def test_cast_map_string_values(binary, tmp_path, cast_to, map_form, expected):
    """map(int64, string): onnxruntime's Python binding cannot feed it, so the values are hand-computed."""
    model = cast_map(TensorProto.STRING, cast_to, map_form, 4 if map_form == "SPARSE" else None)
    entries = {2: "1e-3", 0: "-2.5", 9: "7"} if cast_to != "TO_INT64" else {2: "12", 0: "-3", 9: "9000000000"}
    if map_form == "SPARSE":
        del entries[9]
    (ours,) = outputs_of(binary, tmp_path, model, map_proto(entries, TensorProto.INT64, TensorProto.STRING))
    if cast_to == "TO_INT64":
        np.testing.assert_array_equal(ours, np.array([[-3, 12, 9000000000]], dtype=np.int64))
    elif cast_to == "TO_STRING":
        assert [v.decode() if isinstance(v, bytes) else v for v in ours.reshape(-1)] == expected.reshape(-1).tolist()
    else:
        np.testing.assert_array_equal(ours, expected)


def test_map_output_is_written_as_map_proto(binary, tmp_path):
    """A map passed through (Identity) comes back as a MapProto, keys in the order given."""
    map_type = helper.make_map_type_proto(TensorProto.STRING, helper.make_tensor_type_proto(TensorProto.FLOAT, None))
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["same"])], "identity",
                              [helper.make_value_info("input", map_type)], [helper.make_value_info("same", map_type)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    (tmp_path / "map.pb").write_bytes(map_proto({"b": 2.5, "a": -1.0}, TensorProto.STRING, TensorProto.FLOAT).SerializeToString())
    code, _, err = run_cli(binary, "run", str(path), "--input", str(tmp_path / "map.pb"), "--output-dir", str(tmp_path / "out"))
    assert code == 0, err
    written = onnx.MapProto()
    written.ParseFromString((tmp_path / "out" / "output_0.pb").read_bytes())
    assert written.key_type == TensorProto.STRING and list(written.string_keys) == [b"b", b"a"]
    assert [float(numpy_helper.to_array(value)) for value in written.values.tensor_values] == [2.5, -1.0]
    code, out, err = run_cli(binary, "inspect", str(path))
    assert code == 0, err
    assert "input: map(string, float)" in out and "same: map(string, float)" in out


# MARK: Bad maps and bad models

def float_dict_vectorizer():
    node = helper.make_node("DictVectorizer", ["input"], ["output"], domain=ML, string_vocabulary=["a", "b"])
    return ml_model(node, TensorProto.STRING, TensorProto.FLOAT, TensorProto.FLOAT)


def test_duplicate_keys_are_refused(binary, tmp_path):
    proto = map_proto({"a": 1.0, "b": 2.0}, TensorProto.STRING, TensorProto.FLOAT)
    proto.string_keys[1] = b"a"
    assert "key 'a' is given twice" in error_of(binary, tmp_path, float_dict_vectorizer(), proto)


def test_wrong_key_and_value_types_are_refused(binary, tmp_path):
    model = float_dict_vectorizer()
    err = error_of(binary, tmp_path, model, map_proto({1: 1.0}, TensorProto.INT64, TensorProto.FLOAT))
    assert "the map has int64 keys; the model expects string keys" in err
    err = error_of(binary, tmp_path, model, map_proto({"a": 1.0}, TensorProto.STRING, TensorProto.DOUBLE))
    assert "value 0 of the map is double; the model expects float" in err
    proto = map_proto({"a": 1.0, "b": 2.0}, TensorProto.STRING, TensorProto.FLOAT)
    del proto.values.tensor_values[1]
    assert "the map has 2 keys and 1 values" in error_of(binary, tmp_path, model, proto)
    proto = map_proto({"a": 1.0}, TensorProto.STRING, TensorProto.FLOAT)
    proto.values.tensor_values[0].CopyFrom(numpy_helper.from_array(np.zeros(3, dtype=np.float32)))
    assert "value 0 of the map has shape [3]" in error_of(binary, tmp_path, model, proto)
    assert "not a serialized MapProto" in error_of(binary, tmp_path, model, b"\xff\xff\xff\xff")


def test_cast_map_bad_values(binary, tmp_path):
    sparse = cast_map(TensorProto.FLOAT, "TO_FLOAT", "SPARSE", 4)
    err = error_of(binary, tmp_path, sparse, map_proto({-1: 1.0, 2: 2.0}, TensorProto.INT64, TensorProto.FLOAT))
    assert "CastMap SPARSE takes keys from 0; the map has key -1" in err
    to_float = cast_map(TensorProto.STRING, "TO_FLOAT", "DENSE")
    assert "map value 'twelve' is not a float" in error_of(binary, tmp_path, to_float, map_proto({1: "twelve"}, TensorProto.INT64, TensorProto.STRING))
    to_int = cast_map(TensorProto.STRING, "TO_INT64", "DENSE")
    assert "map value '1.5' is not an int64" in error_of(binary, tmp_path, to_int, map_proto({1: "1.5"}, TensorProto.INT64, TensorProto.STRING))


def test_bad_models_are_refused_at_load(binary, tmp_path):
    entries = map_proto({1: 1.0}, TensorProto.INT64, TensorProto.FLOAT)
    err = error_of(binary, tmp_path, cast_map(TensorProto.FLOAT, "TO_FLOAT", "SPARSE", 2 ** 40), entries)
    assert "max_map 1099511627776 is more than onnx-serve's limit" in err
    assert "max_map must be positive" in error_of(binary, tmp_path, cast_map(TensorProto.FLOAT, "TO_FLOAT", "SPARSE", 0), entries)
    assert "cast_to must be TO_FLOAT, TO_STRING or TO_INT64" in error_of(binary, tmp_path, cast_map(TensorProto.FLOAT, "TO_DOUBLE", "DENSE"), entries)
    # A vocabulary of strings cannot read a map with int64 keys.
    node = helper.make_node("DictVectorizer", ["input"], ["output"], domain=ML, string_vocabulary=["a"])
    err = error_of(binary, tmp_path, ml_model(node, TensorProto.INT64, TensorProto.FLOAT, TensorProto.FLOAT), entries)
    assert "input 0 is a map with int64 keys; string keys are needed" in err
    # Maps with keys other than int64 and string, and sequences of maps, as graph inputs.
    node = helper.make_node("CastMap", ["input"], ["output"], domain=ML)
    err = error_of(binary, tmp_path, ml_model(node, TensorProto.INT32, TensorProto.FLOAT, TensorProto.FLOAT), entries)
    assert "is a map with int32 keys; onnx-serve supports maps with int64 or string keys" in err
    sequence_of_maps = helper.make_sequence_type_proto(helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, None)))
    graph = helper.make_graph([helper.make_node("SequenceLength", ["input"], ["output"])], "seq_of_maps",
                              [helper.make_value_info("input", sequence_of_maps)], [helper.make_tensor_value_info("output", TensorProto.INT64, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert "is a sequence of map; onnx-serve supports sequences of tensors only" in error_of(binary, tmp_path, model, entries)
