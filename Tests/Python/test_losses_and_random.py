"""Evaluation and sampling operators in small models: SoftmaxCrossEntropyLoss and
NegativeLogLikelihoodLoss (checked against onnxruntime over reductions, weights, ignore_index and
extra dimensions; the ONNX node tests cover the rest), MaxUnpool after MaxPool, and the random
generators (RandomUniform/Normal and their *Like forms, Bernoulli, Multinomial), whose numbers no
two runtimes share: they are checked for what `seed` promises (the same numbers on every run),
their ranges and their distributions (bounds of many standard deviations, so they cannot fail by
chance in practice), and that constant folding leaves them alone."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from conftest import run_cli, run_error, run_model


def save(tmp_path, nodes, inputs, outputs, opset=13, name="model.onnx"):
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    path = str(tmp_path / name)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), path)
    return path


def value(name, kind, dims):
    return helper.make_tensor_value_info(name, kind, dims)


def ort_run(path, feeds):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)


# MARK: losses

@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [None, 2])
def test_softmax_cross_entropy_matches_onnxruntime(binary, tmp_path, reduction, weighted, ignore_index):
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((4, 5, 3)).astype(np.float32)
    labels = rng.integers(0, 5, (4, 3)).astype(np.int64)
    labels[0, 0] = 2  # at least one ignored element when ignore_index is 2
    feeds = {"scores": scores, "labels": labels}
    inputs = [value("scores", TensorProto.FLOAT, [4, 5, 3]), value("labels", TensorProto.INT64, [4, 3])]
    names = ["scores", "labels"]
    if weighted:
        feeds["weights"] = rng.uniform(0.5, 2, 5).astype(np.float32)
        inputs.append(value("weights", TensorProto.FLOAT, [5]))
        names.append("weights")
    attributes = {"reduction": reduction} | ({"ignore_index": ignore_index} if ignore_index is not None else {})
    nodes = [helper.make_node("SoftmaxCrossEntropyLoss", names, ["loss", "log_prob"], **attributes),
             # The same loss written as LogSoftmax + NegativeLogLikelihoodLoss, as exporters do.
             helper.make_node("LogSoftmax", ["scores"], ["log_softmax"], axis=1),
             helper.make_node("NegativeLogLikelihoodLoss", ["log_softmax"] + names[1:], ["nll"], **attributes)]
    outputs = [value("loss", TensorProto.FLOAT, None), value("log_prob", TensorProto.FLOAT, None),
               value("nll", TensorProto.FLOAT, None)]
    path = save(tmp_path, nodes, inputs, outputs)
    ours, theirs = run_model(binary, path, feeds, str(tmp_path)), ort_run(path, feeds)
    assert len(ours) == len(theirs) == 3
    for mine, reference in zip(ours, theirs):
        assert mine.shape == reference.shape and mine.dtype == reference.dtype
        np.testing.assert_allclose(mine, reference, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(ours[0], ours[2], rtol=1e-5)


def test_nll_loss_of_a_classifier_batch_in_double(binary, tmp_path):
    rng = np.random.default_rng(4)
    log_probabilities = np.log(rng.dirichlet(np.ones(6), size=7))
    labels = rng.integers(0, 6, 7).astype(np.int32)
    nodes = [helper.make_node("NegativeLogLikelihoodLoss", ["x", "t"], ["loss"], reduction="sum")]
    path = save(tmp_path, nodes, [value("x", TensorProto.DOUBLE, [7, 6]), value("t", TensorProto.INT32, [7])],
                [value("loss", TensorProto.DOUBLE, [])], opset=22)
    (ours,), (theirs,) = run_model(binary, path, {"x": log_probabilities, "t": labels}, str(tmp_path)), \
        ort_run(path, {"x": log_probabilities, "t": labels})
    assert ours.dtype == np.float64 and ours.shape == ()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    np.testing.assert_allclose(ours, -log_probabilities[np.arange(7), labels].sum(), rtol=1e-12)


@pytest.mark.parametrize("labels, message", [
    (np.array([0, 5, 1], np.int64), "target value 5 is not a class index in 0..<5"),
    (np.array([0, -1, 1], np.int64), "target value -1 is not a class index in 0..<5"),
    (np.array([[0, 1, 2]], np.int64), "target shape [1, 3] must be [3] for input [3, 5]"),
])
def test_bad_targets_are_clear_errors(binary, tmp_path, labels, message):
    nodes = [helper.make_node("NegativeLogLikelihoodLoss", ["x", "t"], ["loss"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [value("x", TensorProto.FLOAT, None), value("t", TensorProto.INT64, None)],
                                                [value("loss", TensorProto.FLOAT, None)]),
                              opset_imports=[helper.make_opsetid("", 13)])
    error = run_error(binary, tmp_path, model, {"x": np.zeros((3, 5), np.float32), "t": labels})
    assert message in error


# MARK: MaxUnpool

@pytest.mark.parametrize("given_shape", [None, [2, 3, 9, 8]])
def test_max_unpool_inverts_max_pool(binary, tmp_path, given_shape):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 8, 7)).astype(np.float32)
    inputs = [value("x", TensorProto.FLOAT, [2, 3, 8, 7])]
    unpool_inputs = ["pooled", "indices"]
    feeds = {"x": x}
    if given_shape:
        inputs.append(value("shape", TensorProto.INT64, [4]))
        unpool_inputs.append("shape")
        feeds["shape"] = np.array(given_shape, np.int64)
    nodes = [helper.make_node("MaxPool", ["x"], ["pooled", "indices"], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 1]),
             helper.make_node("MaxUnpool", unpool_inputs, ["y"], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 1])]
    path = save(tmp_path, nodes, inputs, [value("y", TensorProto.FLOAT, None)], opset=22)
    # With output_shape, onnxruntime 1.32 reads the indices as positions in the larger output;
    # ONNX's reference (and its node test maxunpool_export_with_output_shape, which onnxruntime
    # fails) unpools into the inferred shape and places that at the output's origin. We follow ONNX.
    if given_shape:
        from onnx.reference import ReferenceEvaluator
        (theirs,) = ReferenceEvaluator(path).run(None, feeds)
    else:
        (theirs,) = ort_run(path, feeds)
    (ours,) = run_model(binary, path, feeds, str(tmp_path))
    assert ours.shape == theirs.shape == tuple(given_shape or [2, 3, 8, 7])
    np.testing.assert_array_equal(ours, theirs)


def test_max_unpool_refuses_indices_outside_the_output(binary, tmp_path):
    nodes = [helper.make_node("MaxUnpool", ["x", "i"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    model = helper.make_model(helper.make_graph(nodes, "g", [value("x", TensorProto.FLOAT, None), value("i", TensorProto.INT64, None)],
                                                [value("y", TensorProto.FLOAT, None)]), opset_imports=[helper.make_opsetid("", 22)])
    error = run_error(binary, tmp_path, model, {"x": np.ones((1, 1, 2, 2), np.float32),
                                                "i": np.array([[[[0, 1], [2, 16]]]], np.int64)})
    assert "index 16 in I is outside the output's 16 elements" in error


# MARK: random

def run_twice(binary, tmp_path, path, feeds):
    first = run_model(binary, path, feeds, str(tmp_path))
    (tmp_path / "again").mkdir(exist_ok=True)
    return first, run_model(binary, path, feeds, str(tmp_path / "again"))


def test_seeded_random_uniform_and_normal(binary, tmp_path):
    nodes = [helper.make_node("RandomUniform", [], ["u"], shape=[100, 100], low=-2.0, high=3.0, seed=7.0),
             helper.make_node("RandomNormal", [], ["n"], shape=[100, 100], mean=1.5, scale=0.5, seed=7.0,
                              dtype=TensorProto.DOUBLE)]
    path = save(tmp_path, nodes, [], [value("u", TensorProto.FLOAT, [100, 100]), value("n", TensorProto.DOUBLE, [100, 100])],
                opset=22)
    (u, n), (u2, n2) = run_twice(binary, tmp_path, path, {})
    assert u.dtype == np.float32 and n.dtype == np.float64
    np.testing.assert_array_equal(u, u2)
    np.testing.assert_array_equal(n, n2)
    assert u.min() >= -2 and u.max() < 3 and len(np.unique(u)) > 9900
    # 10,000 samples: the mean's standard deviation is 5/sqrt(12)/100 = 0.0144 (uniform) and
    # 0.005 (normal); the bounds are over 10 of them.
    assert abs(u.mean() - 0.5) < 0.15
    assert abs(n.mean() - 1.5) < 0.05 and abs(n.std() - 0.5) < 0.05


def test_unseeded_random_differs_between_runs_and_is_not_folded(binary, tmp_path):
    # RandomUniformLike of a constant-shaped input + 1: folding would freeze it into the model.
    nodes = [helper.make_node("Constant", [], ["zeros"], value=helper.make_tensor("z", TensorProto.FLOAT, [64], [0.0] * 64)),
             helper.make_node("RandomUniformLike", ["zeros"], ["r"]),
             helper.make_node("Add", ["r", "x"], ["y"])]
    path = save(tmp_path, nodes, [value("x", TensorProto.FLOAT, [64])], [value("y", TensorProto.FLOAT, [64])], opset=22)
    feeds = {"x": np.ones(64, np.float32)}
    (first,), (second,) = run_twice(binary, tmp_path, path, feeds)
    assert first.min() >= 1 and first.max() < 2 and second.min() >= 1
    assert not np.array_equal(first, second)


def test_random_normal_like_takes_the_input_type_and_shape(binary, tmp_path):
    nodes = [helper.make_node("RandomNormalLike", ["x"], ["y"], seed=1.0)]
    path = save(tmp_path, nodes, [value("x", TensorProto.FLOAT16, [3, 50])], [value("y", TensorProto.FLOAT16, [3, 50])], opset=22)
    (y,) = run_model(binary, path, {"x": np.zeros((3, 50), np.float16)}, str(tmp_path))
    assert y.dtype == np.float16 and y.shape == (3, 50) and np.isfinite(y).all() and y.std() > 0.5


def test_bernoulli(binary, tmp_path):
    p = np.concatenate([np.zeros(1000), np.ones(1000), np.full(10000, 0.3)]).astype(np.float32)
    nodes = [helper.make_node("Bernoulli", ["p"], ["draws"], seed=3.0),
             helper.make_node("Bernoulli", ["p"], ["flags"], dtype=TensorProto.BOOL)]
    path = save(tmp_path, nodes, [value("p", TensorProto.FLOAT, [12000])],
                [value("draws", TensorProto.FLOAT, [12000]), value("flags", TensorProto.BOOL, [12000])], opset=22)
    (draws, flags), (draws2, _) = run_twice(binary, tmp_path, path, {"p": p})
    assert draws.dtype == np.float32 and flags.dtype == np.bool_
    np.testing.assert_array_equal(draws, draws2)
    for values in (draws.astype(np.float64), flags.astype(np.float64)):
        assert set(np.unique(values)) <= {0.0, 1.0}
        assert values[:1000].sum() == 0 and values[1000:2000].sum() == 1000
        # 10,000 draws at 0.3: standard deviation of the mean 0.0046; bound 0.03.
        assert abs(values[2000:].mean() - 0.3) < 0.03


def test_bernoulli_refuses_probabilities_outside_zero_to_one(binary, tmp_path):
    nodes = [helper.make_node("Bernoulli", ["p"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [value("p", TensorProto.FLOAT, [3])], [value("y", TensorProto.FLOAT, [3])]),
                              opset_imports=[helper.make_opsetid("", 22)])
    error = run_error(binary, tmp_path, model, {"p": np.array([0.5, 1.5, 0], np.float32)})
    assert "probability 1.5 at element 1 is not in [0, 1]" in error


def test_multinomial(binary, tmp_path):
    # Row 0: class 2 only (the others have probability 0); row 1: classes with probability 0.1/0.2/0.7.
    logits = np.log(np.array([[0, 0, 1, 0], [0.1, 0.2, 0.7, 0]], np.float64) + 1e-300).astype(np.float32)
    logits[0, [0, 1, 3]] = -np.inf
    logits[1, 3] = -np.inf
    nodes = [helper.make_node("Multinomial", ["x"], ["y"], sample_size=20000, seed=5.0, dtype=TensorProto.INT64)]
    path = save(tmp_path, nodes, [value("x", TensorProto.FLOAT, [2, 4])], [value("y", TensorProto.INT64, [2, 20000])], opset=22)
    (y,), (y2,) = run_twice(binary, tmp_path, path, {"x": logits})
    assert y.dtype == np.int64 and y.shape == (2, 20000)
    np.testing.assert_array_equal(y, y2)
    assert (y[0] == 2).all()
    frequencies = np.bincount(y[1], minlength=4) / 20000
    # Standard deviations of the frequencies are at most 0.0033; bounds 0.03.
    np.testing.assert_allclose(frequencies, [0.1, 0.2, 0.7, 0], atol=0.03)


def test_random_shapes_from_the_model_are_checked(binary, tmp_path):
    nodes = [helper.make_node("RandomUniform", [], ["u"], shape=[4, -1])]
    path = save(tmp_path, nodes, [], [value("u", TensorProto.FLOAT, None)], opset=22)
    code, _, error = run_cli(binary, "run", path, "--output-dir", str(tmp_path / "out"))
    assert code == 1 and "shape [4, -1] has a negative dimension" in error
