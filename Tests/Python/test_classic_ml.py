"""Classic ML (ai.onnx.ml): real scikit-learn, LightGBM and XGBoost models, converted with skl2onnx and
onnxmltools, run by `onnx-serve run` and by onnxruntime on the same rows. Labels must match exactly,
scores and probabilities within rtol 1e-3 / atol 1e-5. Models are small (tens of trees) to keep CI fast.
"""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import run_model

RTOL, ATOL = 1e-3, 1e-5


def _rows(seed=0, count=64, features=4):
    return np.random.default_rng(seed).normal(size=(count, features)).astype(np.float32)


def _iris():
    from sklearn.datasets import load_iris
    data = load_iris()
    return data.data.astype(np.float32), data.target


def _run_ours(binary, model, feeds, tmp_path):
    """Runs the model with `onnx-serve run`; returns the outputs in graph order as numpy arrays."""
    path = os.path.join(tmp_path, "model.onnx")
    onnx.save(model, path)
    return run_model(binary, path, feeds, str(tmp_path))


def _as_array(value, keys=None):
    """An onnxruntime output as an array: a ZipMap's list of dicts becomes [N, classes] in key order."""
    if isinstance(value, list):
        keys = keys if keys is not None else list(value[0].keys())
        return np.array([[row[key] for key in keys] for row in value], dtype=np.float32)
    return np.asarray(value)


def check(binary, model, feeds, tmp_path):
    """Our outputs against onnxruntime's: exact for labels (ints, strings), close for floats."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, feeds)
    ours = _run_ours(binary, model, feeds, tmp_path)
    assert len(ours) == len(expected)
    for output, want, got in zip(model.graph.output, expected, ours, strict=True):
        want = _as_array(want)
        if want.dtype.kind in "OUS" or got.dtype.kind in "OUS":
            assert [str(v) for v in got.reshape(-1)] == [str(v) for v in want.reshape(-1)], output.name
        elif want.dtype.kind in "iub":
            np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=output.name)
        else:
            np.testing.assert_allclose(got.reshape(want.shape), want, rtol=RTOL, atol=ATOL, err_msg=output.name)
    return expected, ours


def _skl(model, sample, **options):
    from skl2onnx import to_onnx
    return to_onnx(model, sample[:1], target_opset={"": 17, "ai.onnx.ml": 3}, **options)


# MARK: scikit-learn

def test_scaler_logistic_regression_with_zipmap(binary, tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    x, y = _iris()
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    model = _skl(pipeline, x)
    assert any(node.op_type == "ZipMap" for node in model.graph.node)
    expected, ours = check(binary, model, {"X": x}, tmp_path)
    np.testing.assert_array_equal(ours[0], pipeline.predict(x))
    np.testing.assert_allclose(ours[1], pipeline.predict_proba(x), rtol=RTOL, atol=1e-4)


def test_binary_logistic_regression(binary, tmp_path):
    from sklearn.linear_model import LogisticRegression
    x = _rows(1, 80)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    check(binary, _skl(LogisticRegression().fit(x, y), x, options={"zipmap": False}), {"X": x}, tmp_path)


def test_random_forest_classifier(binary, tmp_path):
    from sklearn.ensemble import RandomForestClassifier
    x, y = _iris()
    forest = RandomForestClassifier(n_estimators=12, max_depth=6, random_state=0).fit(x, y)
    _, ours = check(binary, _skl(forest, x), {"X": x}, tmp_path)
    np.testing.assert_array_equal(ours[0], forest.predict(x))


def test_random_forest_binary_with_string_labels(binary, tmp_path):
    from sklearn.ensemble import RandomForestClassifier
    x = _rows(2, 100)
    y = np.where(x[:, 0] * x[:, 2] > 0, "yes", "no")
    forest = RandomForestClassifier(n_estimators=8, max_depth=5, random_state=0).fit(x, y)
    check(binary, _skl(forest, x), {"X": x}, tmp_path)


def test_random_forest_regressor_multi_target(binary, tmp_path):
    from sklearn.ensemble import RandomForestRegressor
    x = _rows(3, 90)
    y = np.stack([x[:, 0] * 2 + x[:, 1], np.sin(x[:, 2])], axis=1)
    check(binary, _skl(RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0).fit(x, y), x), {"X": x}, tmp_path)


def test_svc_with_probabilities(binary, tmp_path):
    from sklearn.svm import SVC
    x, y = _iris()
    svc = SVC(probability=True, random_state=0).fit(x, y)
    _, ours = check(binary, _skl(svc, x), {"X": x}, tmp_path)
    np.testing.assert_array_equal(ours[0], svc.predict(x))


@pytest.mark.parametrize("kernel", ["linear", "poly", "sigmoid"])
def test_svc_kernels_binary_decision(binary, tmp_path, kernel):
    from sklearn.svm import SVC
    x = _rows(4, 60)
    y = (x[:, 0] - x[:, 3] > 0).astype(np.int64)
    check(binary, _skl(SVC(kernel=kernel).fit(x, y), x, options={"zipmap": False}), {"X": x}, tmp_path)


def test_svr_and_linear_regression(binary, tmp_path):
    from sklearn.linear_model import LinearRegression
    from sklearn.svm import SVR
    x = _rows(5, 50)
    y = x @ np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32) + 0.1
    check(binary, _skl(SVR().fit(x, y), x), {"X": x}, tmp_path)
    os.makedirs(tmp_path / "linear")
    check(binary, _skl(LinearRegression().fit(x, y), x), {"X": x}, tmp_path / "linear")


def test_gradient_boosted_regressor(binary, tmp_path):
    from sklearn.ensemble import GradientBoostingRegressor
    x = _rows(6, 120)
    y = x[:, 0] ** 2 + x[:, 1] - x[:, 2] * x[:, 3]
    check(binary, _skl(GradientBoostingRegressor(n_estimators=25, max_depth=3, random_state=0).fit(x, y), x), {"X": x}, tmp_path)


def test_gradient_boosted_classifier_multiclass(binary, tmp_path):
    from sklearn.ensemble import GradientBoostingClassifier
    x, y = _iris()
    check(binary, _skl(GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0).fit(x, y), x), {"X": x}, tmp_path)


def test_feature_pipeline_with_strings(binary, tmp_path):
    """Imputer, scaling, normalizer, binarizer and one-hot encoding of a string column in one model."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.preprocessing import Binarizer, Normalizer, OneHotEncoder, StandardScaler
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    rng = np.random.default_rng(7)
    numbers = rng.normal(size=(60, 3)).astype(np.float32)
    numbers[::7, 1] = np.nan
    colours = rng.choice(["red", "green", "blue"], size=(60, 1)).astype(object)
    y = ((np.nan_to_num(numbers[:, 0]) > 0) ^ (colours[:, 0] == "red")).astype(np.int64)
    frame = pd.DataFrame({"a": numbers[:, 0], "b": numbers[:, 1], "c": numbers[:, 2], "colour": colours[:, 0]})
    numeric = make_pipeline(SimpleImputer(), make_union(make_pipeline(StandardScaler(), Normalizer()), Binarizer(threshold=0.2)))
    full = make_pipeline(ColumnTransformer([("n", numeric, ["a", "b", "c"]), ("c", OneHotEncoder(handle_unknown="ignore"), ["colour"])]),
                         LogisticRegression()).fit(frame, y)
    model = to_onnx(full, initial_types=[("a", FloatTensorType([None, 1])), ("b", FloatTensorType([None, 1])),
                                         ("c", FloatTensorType([None, 1])), ("colour", StringTensorType([None, 1]))],
                    target_opset={"": 17, "ai.onnx.ml": 3})
    feeds = {"a": numbers[:, :1], "b": numbers[:, 1:2], "c": numbers[:, 2:3], "colour": colours}
    _, ours = check(binary, model, feeds, tmp_path)
    np.testing.assert_array_equal(ours[0], full.predict(frame))


def test_label_encoder_and_category_mapping(binary, tmp_path):
    """LabelEncoder (opset 2 keys/values) string → int64 and int64 → string in one graph."""
    from onnx import helper, TensorProto
    graph = helper.make_graph(
        [helper.make_node("LabelEncoder", ["x"], ["codes"], domain="ai.onnx.ml", keys_strings=["a", "b", "c"], values_int64s=[7, 8, 9],
                          default_int64=-5),
         helper.make_node("CategoryMapper", ["codes"], ["names"], domain="ai.onnx.ml", cats_int64s=[7, 9], cats_strings=["seven", "nine"],
                          default_string="other")],
        "encoders", [helper.make_tensor_value_info("x", TensorProto.STRING, [None])],
        [helper.make_tensor_value_info("codes", TensorProto.INT64, [None]), helper.make_tensor_value_info("names", TensorProto.STRING, [None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 2)])
    check(binary, model, {"x": np.array(["a", "c", "zz", "b", ""], dtype=object)}, tmp_path)


# MARK: LightGBM and XGBoost

def _onnxmltools(model, features):
    from onnxmltools.convert.common.data_types import FloatTensorType
    import onnxmltools
    if type(model).__module__.startswith("lightgbm"):
        return onnxmltools.convert_lightgbm(model, initial_types=[("X", FloatTensorType([None, features]))], target_opset=15, zipmap=False)
    return onnxmltools.convert_xgboost(model, initial_types=[("X", FloatTensorType([None, features]))], target_opset=15)


def test_lightgbm_binary_classifier(binary, tmp_path):
    import lightgbm
    x = _rows(8, 200)
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 > 0.3).astype(np.int64)
    model = lightgbm.LGBMClassifier(n_estimators=20, num_leaves=8, verbose=-1).fit(x, y)
    _, ours = check(binary, _onnxmltools(model, 4), {"X": x}, tmp_path)
    np.testing.assert_array_equal(ours[0], model.predict(x))


def test_lightgbm_multiclass_classifier(binary, tmp_path):
    import lightgbm
    x, y = _iris()
    model = lightgbm.LGBMClassifier(n_estimators=10, num_leaves=6, verbose=-1, min_child_samples=5).fit(x, y)
    check(binary, _onnxmltools(model, 4), {"X": x}, tmp_path)


def test_xgboost_regressor(binary, tmp_path):
    import xgboost
    x = _rows(9, 150)
    y = x[:, 0] * 3 - x[:, 1] + np.abs(x[:, 2])
    model = xgboost.XGBRegressor(n_estimators=20, max_depth=4).fit(x, y)
    _, ours = check(binary, _onnxmltools(model, 4), {"X": x}, tmp_path)
    np.testing.assert_allclose(ours[0].reshape(-1), model.predict(x), rtol=1e-3, atol=1e-4)


def test_xgboost_with_missing_values(binary, tmp_path):
    """NaN features follow each split's learnt default direction (nodes_missing_value_tracks_true)."""
    import xgboost
    x = _rows(10, 150)
    x[::3, 1] = np.nan
    y = np.nan_to_num(x[:, 1], nan=2.0) + x[:, 0]
    model = xgboost.XGBRegressor(n_estimators=15, max_depth=3).fit(x, y)
    check(binary, _onnxmltools(model, 4), {"X": x}, tmp_path)


def test_tfidf_text_pipeline(binary, tmp_path):
    """TfidfVectorizer (words and bigrams) + logistic regression: StringNormalizer, TfIdfVectorizer,
    Normalizer, LinearClassifier and ZipMap. skl2onnx tokenizes with com.microsoft's Tokenizer; on
    texts of lowercase words split by single spaces that is StringSplit's whitespace split, which
    the test puts in its place (onnxruntime runs the same rewritten model, with the "C" locale)."""
    from onnx import helper
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import StringTensorType
    texts = np.array(["the cat sat on the mat", "dogs chase cats", "the dog sat", "cats and dogs play",
                      "birds fly high", "the bird sat on the cat", "Dogs and birds", "a mat for the dog"])
    labels = np.array([0, 1, 0, 1, 2, 0, 2, 1])
    pipeline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=300)).fit(texts, labels)
    model = to_onnx(pipeline, initial_types=[("text", StringTensorType([None, 1]))], target_opset={"": 20, "ai.onnx.ml": 3})
    nodes = []
    for node in model.graph.node:
        if node.op_type == "Tokenizer":
            node = helper.make_node("StringSplit", [node.input[0]], [node.output[0], node.output[0] + "_counts"], name=node.name)
        if node.op_type == "StringNormalizer":
            # onnxruntime builds the node's locale (en_US.UTF-8 by default), which this machine lacks.
            node.attribute.append(helper.make_attribute("locale", "C"))
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    for opset in list(model.opset_import):
        if opset.domain == "com.microsoft":
            model.opset_import.remove(opset)
    queries = np.array([["the cat sat"], ["dogs and cats play"], ["unknown words only"], ["birds sat on the mat"]], dtype=object)
    _, ours = check(binary, model, {"text": queries}, tmp_path)
    np.testing.assert_array_equal(ours[0], pipeline.predict(queries[:, 0]))
    np.testing.assert_allclose(ours[1], pipeline.predict_proba(queries[:, 0]), rtol=RTOL, atol=1e-4)
