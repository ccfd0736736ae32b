"""Transformer models and ONNX Runtime's fused com.microsoft operators, checked against onnxruntime.

* A tiny BERT and a tiny GPT-2 (Hugging Face configs, random weights; exported once by
  tools/export_transformer_fixtures.py into Tests/Python/data) go through
  onnxruntime.transformers.optimizer, which rewrites them into fused com.microsoft operators
  (EmbedLayerNormalization, Attention, SkipLayerNormalization, BiasGelu, FastGelu); `onnx-serve
  run` must then give ONNX Runtime's outputs (rtol 1e-3, atol 1e-5), padding masks included.
* Each fused operator also runs alone, built with onnx.helper over odd sizes, masks and caches.
"""
import collections
import os

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_cli

DATA = os.path.join(os.path.dirname(__file__), "data")
MS = "com.microsoft"


def run_both(binary, tmp_path, model, feeds):
    """Outputs of onnx-serve (`run`) and of onnxruntime for the same feeds, in graph output order."""
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    args = ["run", str(path), "--output-dir", str(tmp_path / "out")]
    for index, (name, value) in enumerate(feeds.items()):
        tensor_path = tmp_path / ("input_%d.pb" % index)
        tensor_path.write_bytes(numpy_helper.from_array(value, name).SerializeToString())
        args += ["--input", "%s=%s" % (name, tensor_path)]
    code, _, err = run_cli(binary, *args)
    assert code == 0, err
    ours = [numpy_helper.to_array(onnx.load_tensor(str(tmp_path / "out" / ("output_%d.pb" % i))))
            for i in range(len(model.graph.output))]
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    theirs = session.run(None, feeds)
    return ours, theirs


def assert_same(binary, tmp_path, model, feeds):
    ours, theirs = run_both(binary, tmp_path, model, feeds)
    assert len(ours) == len(theirs)
    for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a.shape == b.shape, "output %d: %s vs %s" % (index, a.shape, b.shape)
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5, err_msg="output %d" % index)


def optimized(name, model_type):
    from onnxruntime.transformers import optimizer

    result = optimizer.optimize_model(os.path.join(DATA, name), model_type=model_type, num_heads=4, hidden_size=32,
                                      opt_level=0)
    return result.model


def fused_ops(model):
    return collections.Counter(node.op_type for node in model.graph.node if node.domain == MS)


# MARK: whole models


@pytest.mark.parametrize("batch,length", [(1, 5), (3, 11)])
def test_optimized_bert_matches_onnxruntime(binary, tmp_path, batch, length):
    model = optimized("tiny_bert.onnx", "bert")
    ops = fused_ops(model)
    assert ops["Attention"] == 2 and ops["SkipLayerNormalization"] == 4 and ops["EmbedLayerNormalization"] == 1, ops
    assert ops["BiasGelu"] == 2, ops
    rng = np.random.default_rng(batch)
    mask = np.ones((batch, length), np.int64)
    mask[-1, length - 2:] = 0  # right padding on the last sequence
    feeds = {"input_ids": rng.integers(0, 96, (batch, length)).astype(np.int64), "attention_mask": mask,
             "token_type_ids": (np.arange(length) >= length // 2).astype(np.int64)[None].repeat(batch, 0)}
    assert_same(binary, tmp_path, model, feeds)


def test_optimized_gpt2_matches_onnxruntime(binary, tmp_path):
    model = optimized("tiny_gpt2.onnx", "gpt2")
    ops = fused_ops(model)
    # The optimiser fuses GPT-2's layer norms and GELU; its attention stays as exported (the
    # causal-mask pattern of current transformers releases is not one it recognises).
    assert ops["SkipLayerNormalization"] == 4 and ops["FastGelu"] == 2, ops
    rng = np.random.default_rng(5)
    mask = np.ones((2, 9), np.int64)
    mask[1, 7:] = 0
    feeds = {"input_ids": rng.integers(0, 96, (2, 9)).astype(np.int64), "attention_mask": mask}
    assert_same(binary, tmp_path, model, feeds)


# MARK: single operators


def single(node, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph([node], "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(MS, 1)])


def value(name, shape, element=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, element, shape)


@pytest.mark.parametrize("mask_kind", ["none", "lengths", "raw2d", "raw3d", "start_end"])
@pytest.mark.parametrize("unidirectional", [0, 1])
def test_packed_attention(binary, tmp_path, mask_kind, unidirectional):
    rng = np.random.default_rng(7)
    batch, length, hidden, heads = 2, 70, 24, 3  # 70 queries: two query tiles
    weights = numpy_helper.from_array(rng.standard_normal((hidden, 3 * hidden)).astype(np.float32) * 0.3, "w")
    bias = numpy_helper.from_array(rng.standard_normal(3 * hidden).astype(np.float32), "b")
    feeds = {"x": rng.standard_normal((batch, length, hidden)).astype(np.float32)}
    inputs = [value("x", [batch, length, hidden])]
    names = ["x", "w", "b"]
    if mask_kind != "none":
        if mask_kind == "lengths":
            mask = np.array([length, 40], np.int32)
        elif mask_kind == "start_end":
            mask = np.array([length, 50, 0, 3], np.int32)
        elif mask_kind == "raw2d":
            mask = (rng.random((batch, length)) > 0.3).astype(np.int32)
            mask[:, 0] = 1
        else:
            mask = (rng.random((batch, length, length)) > 0.3).astype(np.int32)
            mask[:, :, 0] = 1
        feeds["mask"] = mask
        inputs.append(value("mask", list(mask.shape), TensorProto.INT32))
        names.append("mask")
    node = helper.make_node("Attention", names, ["y"], domain=MS, num_heads=heads, unidirectional=unidirectional)
    assert_same(binary, tmp_path, single(node, inputs, [value("y", None)], [weights, bias]), feeds)


def test_packed_attention_with_past_and_present(binary, tmp_path):
    rng = np.random.default_rng(8)
    batch, length, past, hidden, heads = 2, 3, 5, 16, 2
    weights = numpy_helper.from_array(rng.standard_normal((hidden, 3 * hidden)).astype(np.float32) * 0.3, "w")
    bias = numpy_helper.from_array(rng.standard_normal(3 * hidden).astype(np.float32), "b")
    feeds = {"x": rng.standard_normal((batch, length, hidden)).astype(np.float32),
             "mask": np.ones((batch, past + length), np.int32),
             "past": rng.standard_normal((2, batch, heads, past, hidden // heads)).astype(np.float32)}
    feeds["mask"][1, :2] = 0
    node = helper.make_node("Attention", ["x", "w", "b", "mask", "past"], ["y", "present"], domain=MS, num_heads=heads,
                            unidirectional=1)
    inputs = [value("x", [batch, length, hidden]), value("mask", [batch, past + length], TensorProto.INT32),
              value("past", [2, batch, heads, past, hidden // heads])]
    model = single(node, inputs, [value("y", None), value("present", None)], [weights, bias])
    assert_same(binary, tmp_path, model, feeds)


@pytest.mark.parametrize("with_bias,with_cache", [(False, False), (True, False), (False, True)])
def test_multi_head_attention(binary, tmp_path, with_bias, with_cache):
    rng = np.random.default_rng(9)
    batch, length, keys, hidden, heads = 2, 6, 9, 20, 4
    feeds = {"q": rng.standard_normal((batch, length, hidden)).astype(np.float32),
             "k": rng.standard_normal((batch, keys, hidden)).astype(np.float32),
             "v": rng.standard_normal((batch, keys, hidden)).astype(np.float32),
             "padding": np.array([[1] * keys, [1] * 6 + [0] * 3], np.int32)}
    names = ["q", "k", "v", "bias" if with_bias else "", "padding"]
    inputs = [value("q", [batch, length, hidden]), value("k", [batch, keys, hidden]), value("v", [batch, keys, hidden]),
              value("padding", [batch, keys + (4 if with_cache else 0)], TensorProto.INT32)]
    initializers = []
    if with_bias:
        initializers.append(numpy_helper.from_array(rng.standard_normal(3 * hidden).astype(np.float32), "bias"))
    outputs = [value("y", None)]
    if with_cache:
        feeds["past_key"] = rng.standard_normal((batch, heads, 4, hidden // heads)).astype(np.float32)
        feeds["past_value"] = rng.standard_normal((batch, heads, 4, hidden // heads)).astype(np.float32)
        feeds["padding"] = np.ones((batch, keys + 4), np.int32)
        names += ["", "past_key", "past_value"]
        inputs += [value("past_key", [batch, heads, 4, hidden // heads]), value("past_value", [batch, heads, 4, hidden // heads])]
        outputs += [value("present_key", None), value("present_value", None)]
    node = helper.make_node("MultiHeadAttention", names, [o.name for o in outputs], domain=MS, num_heads=heads)
    assert_same(binary, tmp_path, single(node, inputs, outputs, initializers), feeds)


@pytest.mark.parametrize("op,with_bias", [("Gelu", False), ("BiasGelu", True), ("FastGelu", False), ("FastGelu", True),
                                          ("QuickGelu", False)])
def test_gelu_family(binary, tmp_path, op, with_bias):
    rng = np.random.default_rng(10)
    feeds = {"x": (rng.standard_normal((3, 5, 13)) * 3).astype(np.float32)}
    inputs = [value("x", [3, 5, 13])]
    if with_bias:
        feeds["b"] = rng.standard_normal(13).astype(np.float32)
        inputs.append(value("b", [13]))
    node = helper.make_node(op, list(feeds), ["y"], domain=MS)
    assert_same(binary, tmp_path, single(node, inputs, [value("y", None)]), feeds)


@pytest.mark.parametrize("simplified", [False, True])
def test_skip_layer_normalization(binary, tmp_path, simplified):
    rng = np.random.default_rng(11)
    hidden = 19
    feeds = {name: rng.standard_normal((2, 5, hidden)).astype(np.float32) for name in ["x", "skip"]}
    initializers = [numpy_helper.from_array(rng.standard_normal(hidden).astype(np.float32), n) for n in ["gamma", "beta", "bias"]]
    names = ["x", "skip", "gamma", "bias"] if simplified else ["x", "skip", "gamma", "beta", "bias"]
    op = "SkipSimplifiedLayerNormalization" if simplified else "SkipLayerNormalization"
    outputs = [value("y", None), value("", None), value("", None), value("sum", None)]
    node = helper.make_node(op, names, ["y", "", "", "sum"], domain=MS, epsilon=1e-5)
    model = single(node, [value("x", [2, 5, hidden]), value("skip", [2, 5, hidden])], [outputs[0], outputs[3]], initializers)
    assert_same(binary, tmp_path, model, feeds)


def test_simplified_layer_normalization(binary, tmp_path):
    rng = np.random.default_rng(12)
    feeds = {"x": rng.standard_normal((4, 3, 10)).astype(np.float32)}
    scale = numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "scale")
    node = helper.make_node("SimplifiedLayerNormalization", ["x", "scale"], ["y"], axis=-1, epsilon=1e-6)
    assert_same(binary, tmp_path, single(node, [value("x", [4, 3, 10])], [value("y", None)], [scale]), feeds)


def test_embed_layer_normalization(binary, tmp_path):
    rng = np.random.default_rng(13)
    batch, length, hidden = 2, 6, 12
    tables = {"word": (50, hidden), "position": (16, hidden), "segment": (2, hidden)}
    initializers = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name) for name, shape in tables.items()]
    initializers += [numpy_helper.from_array(rng.standard_normal(hidden).astype(np.float32), n) for n in ["gamma", "beta"]]
    feeds = {"ids": rng.integers(0, 50, (batch, length)).astype(np.int32),
             "segments": rng.integers(0, 2, (batch, length)).astype(np.int32),
             "mask": np.array([[1] * 6, [1] * 4 + [0] * 2], np.int32)}
    node = helper.make_node("EmbedLayerNormalization", ["ids", "segments", "word", "position", "segment", "gamma", "beta", "mask"],
                            ["y", "mask_index"], domain=MS, epsilon=1e-12)
    inputs = [value("ids", [batch, length], TensorProto.INT32), value("segments", [batch, length], TensorProto.INT32),
              value("mask", [batch, length], TensorProto.INT32)]
    model = single(node, inputs, [value("y", None), value("mask_index", None, TensorProto.INT32)], initializers)
    assert_same(binary, tmp_path, model, feeds)


@pytest.mark.parametrize("interleaved", [0, 1])
def test_microsoft_rotary_embedding(binary, tmp_path, interleaved):
    rng = np.random.default_rng(14)
    batch, length, heads, size = 2, 5, 3, 8
    feeds = {"x": rng.standard_normal((batch, length, heads * size)).astype(np.float32),
             "positions": np.array([[0, 1, 2, 3, 4], [3, 4, 5, 6, 7]], np.int64)}
    angles = np.arange(10)[:, None] * (1.0 / 10000 ** (np.arange(0, size, 2) / size))[None]
    initializers = [numpy_helper.from_array(np.cos(angles).astype(np.float32), "cos"),
                    numpy_helper.from_array(np.sin(angles).astype(np.float32), "sin")]
    node = helper.make_node("RotaryEmbedding", ["x", "positions", "cos", "sin"], ["y"], domain=MS, interleaved=interleaved,
                            num_heads=heads)
    inputs = [value("x", [batch, length, heads * size]), value("positions", [batch, length], TensorProto.INT64)]
    assert_same(binary, tmp_path, single(node, inputs, [value("y", None)], initializers), feeds)


def test_attention_heads_that_do_not_divide_the_hidden_size_are_refused(binary, tmp_path):
    rng = np.random.default_rng(15)
    weights = numpy_helper.from_array(rng.standard_normal((10, 30)).astype(np.float32), "w")
    node = helper.make_node("Attention", ["x", "w"], ["y"], domain=MS, num_heads=4)
    model = single(node, [value("x", [1, 3, 10])], [value("y", None)], [weights])
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    input_path = tmp_path / "x.pb"
    input_path.write_bytes(numpy_helper.from_array(np.zeros((1, 3, 10), np.float32), "x").SerializeToString())
    code, _, err = run_cli(binary, "run", str(path), "--input", str(input_path), "--output-dir", str(tmp_path / "out"))
    assert code != 0
    assert "do not split" in err and "4 heads" in err, err


def test_layer_normalization_before_opset_17(binary, tmp_path):
    # ORT's optimiser writes LayerNormalization into opset 13 models (its contrib op in the default domain).
    rng = np.random.default_rng(16)
    feeds = {"x": rng.standard_normal((2, 3, 10)).astype(np.float32)}
    initializers = [numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), n) for n in ["scale", "bias"]]
    node = helper.make_node("LayerNormalization", ["x", "scale", "bias"], ["y"], axis=-1, epsilon=1e-5)
    model = single(node, [value("x", [2, 3, 10])], [value("y", None)], initializers, opset=13)
    assert_same(binary, tmp_path, model, feeds)
