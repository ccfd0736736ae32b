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

from conftest import run_cli, run_error

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


# MARK: GroupQueryAttention (Llama-like decoders as onnxruntime.transformers writes them)


def gqa_case(rng, case):
    """A GroupQueryAttention node and feeds: by default 4 query heads over 2 KV heads of size 16."""
    batch, length, past = case["batch"], case["length"], case["past"]
    heads, kv_heads, size = case.get("heads", 4), case.get("kv_heads", 2), case.get("size", 16)
    dtype, element = (np.float16, TensorProto.FLOAT16) if case.get("half") else (np.float32, TensorProto.FLOAT)
    attributes = dict(num_heads=heads, kv_num_heads=kv_heads)
    attributes.update(case.get("attributes", {}))
    feeds, inputs, names = {}, [], []

    def add(name, array, element=element):
        feeds[name] = array
        inputs.append(value(name, list(array.shape), element))
        names.append(name)

    def normal(*shape):
        return rng.standard_normal(shape).astype(dtype)

    if case.get("packed"):
        add("qkv", normal(batch, length, (heads + 2 * kv_heads) * size))
        names += ["", ""]
    else:
        add("q", normal(batch, length, heads * size))
        add("k", normal(batch, length, kv_heads * size))
        add("v", normal(batch, length, kv_heads * size))
    if past:
        add("past_key", normal(batch, kv_heads, past, size))
        add("past_value", normal(batch, kv_heads, past, size))
    else:
        names += ["", ""]
    add("seqlens_k", np.array(case["seqlens"], np.int32), TensorProto.INT32)
    add("total_sequence_length", np.array(case["total"], np.int32), TensorProto.INT32)
    initializers = []
    if case.get("rotary"):
        rotary = case["rotary"]  # rotated elements per head
        angles = np.arange(32)[:, None] * (1.0 / 10000 ** (np.arange(0, rotary, 2) / rotary))[None]
        initializers = [numpy_helper.from_array(np.cos(angles).astype(dtype), "cos"),
                        numpy_helper.from_array(np.sin(angles).astype(dtype), "sin")]
        names += ["cos", "sin"]
        attributes["do_rotary"] = 1
    outputs = [value("y", None, element), value("present_key", None, element), value("present_value", None, element)]
    node = helper.make_node("GroupQueryAttention", names, [o.name for o in outputs], domain=MS, **attributes)
    return single(node, inputs, outputs, initializers), feeds


GQA_CASES = {
    # A prompt (no past), separate Q, K, V; a batch of two.
    "prompt": dict(batch=2, length=7, past=0, seqlens=[6, 6], total=7),
    # Right-padded prompts: 5 and 3 real tokens of 5.
    "prompt_padded": dict(batch=2, length=5, past=0, seqlens=[4, 2], total=5),
    # A long prompt: two query tiles and two key blocks of the fused kernel, odd length.
    "prompt_long": dict(batch=1, length=131, past=0, seqlens=[130], total=131, heads=3, kv_heads=1, size=8),
    # Bidirectional attention (causal 0).
    "bidirectional": dict(batch=2, length=6, past=0, seqlens=[5, 5], total=6, attributes=dict(causal=0)),
    # Every head its own KV head (MHA), and all query heads on one KV head (MQA); head size 24.
    "mha": dict(batch=1, length=5, past=3, seqlens=[7], total=8, heads=3, kv_heads=3, size=24),
    "mqa": dict(batch=2, length=1, past=4, seqlens=[4, 1], total=5, heads=6, kv_heads=1, size=24),
    # One new token over a cache of 5 (buffer) holding 5 and 3 tokens: ragged totals 6 and 4.
    "token": dict(batch=2, length=1, past=5, seqlens=[5, 3], total=6),
    # A cache buffer longer than the total: present keeps the buffer's length.
    "token_large_buffer": dict(batch=2, length=1, past=12, seqlens=[5, 3], total=6),
    # Packed QKV with rotary embedding (half-split, and interleaved pairs), and a partial rotary dimension.
    "packed_rotary": dict(batch=2, length=5, past=0, seqlens=[4, 4], total=5, packed=True, rotary=16),
    "token_rotary_interleaved": dict(batch=2, length=1, past=6, seqlens=[6, 2], total=7, rotary=16,
                                     attributes=dict(rotary_interleaved=1)),
    "partial_rotary": dict(batch=1, length=4, past=0, seqlens=[3], total=4, size=32, rotary=16),
    # A second chunk of a prompt (batch 1): 3 tokens after 4 cached, rotary at positions 4-6.
    "subsequent_prompt": dict(batch=1, length=3, past=4, seqlens=[6], total=7, rotary=16),
    "subsequent_prompt_packed_interleaved": dict(batch=1, length=4, past=6, seqlens=[9], total=10, rotary=16, packed=True,
                                                 attributes=dict(rotary_interleaved=1)),
    # Mistral's local window, Gemma's soft cap, a custom scale.
    "local_window": dict(batch=2, length=9, past=0, seqlens=[8, 8], total=9, attributes=dict(local_window_size=3)),
    "local_window_one": dict(batch=1, length=5, past=0, seqlens=[4], total=5, attributes=dict(local_window_size=1)),
    "softcap_scale": dict(batch=2, length=6, past=0, seqlens=[5, 5], total=6,
                          attributes=dict(softcap=1.5, scale=0.3)),
    "token_window_softcap": dict(batch=2, length=1, past=8, seqlens=[8, 5], total=9, packed=True,
                                 attributes=dict(local_window_size=4, softcap=2.0)),
    # float16 in and out (computed in float32).
    "half_token_rotary": dict(batch=2, length=1, past=4, seqlens=[4, 2], total=5, rotary=16, half=True),
}


@pytest.mark.parametrize("name", sorted(GQA_CASES))
def test_group_query_attention(binary, tmp_path, name):
    model, feeds = gqa_case(np.random.default_rng(20), GQA_CASES[name])
    ours, theirs = run_both(binary, tmp_path, model, feeds)
    tolerance = dict(rtol=1e-3, atol=1e-3) if GQA_CASES[name].get("half") else dict(rtol=1e-3, atol=1e-5)
    assert len(ours) == len(theirs) == 3
    for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a.dtype == b.dtype and a.shape == b.shape, "output %d: %s %s vs %s %s" % (index, a.dtype, a.shape, b.dtype, b.shape)
        np.testing.assert_allclose(a.astype(np.float32), b.astype(np.float32), err_msg="output %d" % index, **tolerance)


GQA_REFUSALS = {
    # seqlens_k beyond the cache the step makes, or a token step whose cache has no room for it.
    "seqlens_past_total": (dict(batch=2, length=1, past=5, seqlens=[5, 6], total=6),
                           "seqlens_k[1] = 6 does not fit 1 new tokens after a past of 5 rows in a cache of 6"),
    "seqlens_negative": (dict(batch=2, length=1, past=5, seqlens=[5, -3], total=6),
                         "seqlens_k[1] = -3 does not fit 1 new tokens after a past of 5 rows in a cache of 6"),
    "seqlens_no_room": (dict(batch=1, length=1, past=4, seqlens=[8], total=5),
                        "seqlens_k[0] = 8 does not fit 1 new tokens after a past of 4 rows in a cache of 5"),
    # A total that is neither the past plus the new rows nor within a fixed buffer.
    "total_beyond_past": (dict(batch=1, length=1, past=4, seqlens=[4], total=9),
                          "total_sequence_length 9 must be the past's 4 rows plus the 1 new ones"),
    "total_zero": (dict(batch=1, length=1, past=4, seqlens=[4], total=0), "total_sequence_length 0 must be positive"),
    # A chunk of a prompt after cached tokens is batch 1 only.
    "chunk_batch": (dict(batch=2, length=3, past=4, seqlens=[6, 6], total=7),
                    "a prompt chunk after cached tokens (sequence length 3, total 7) needs batch 1, got 2"),
    # Rotary positions past the caches' 32 rows.
    "rotary_position": (dict(batch=1, length=1, past=40, seqlens=[40], total=41, rotary=16),
                        "position 40 is outside the rotary caches' 32 rows"),
}


@pytest.mark.parametrize("name", sorted(GQA_REFUSALS))
def test_group_query_attention_refuses_bad_steps(binary, tmp_path, name):
    case, message = GQA_REFUSALS[name]
    model, feeds = gqa_case(np.random.default_rng(20), case)
    assert message in run_error(binary, tmp_path, model, feeds)


def gqa_error(binary, tmp_path, case, name, replacement):
    """The error of a GroupQueryAttention run whose feed `name` is replaced (its declared type with it)."""
    model, feeds = gqa_case(np.random.default_rng(21), case)
    position = [graph_input.name for graph_input in model.graph.input].index(name)
    element = helper.np_dtype_to_tensor_dtype(replacement.dtype)
    model.graph.input[position].CopyFrom(value(name, list(replacement.shape), element))
    return run_error(binary, tmp_path, model, dict(feeds, **{name: replacement}))


def test_group_query_attention_refuses_bad_shapes(binary, tmp_path):
    token = dict(batch=2, length=1, past=5, seqlens=[5, 3], total=6)
    prompt = dict(batch=2, length=3, past=0, seqlens=[2, 2], total=3)
    assert "past_key [2, 2, 5, 8] and past_value [2, 2, 5, 16] must be [2, 2, past, 16]" in gqa_error(
        binary, tmp_path, token, "past_key", np.zeros((2, 2, 5, 8), np.float32))
    assert "past_key [2, 2, 5, 16] and past_value [2, 2, 4, 16] must be [2, 2, past, 16]" in gqa_error(
        binary, tmp_path, token, "past_value", np.zeros((2, 2, 4, 16), np.float32))
    assert "key [2, 2, 32] must be [2, 3, 32]" in gqa_error(binary, tmp_path, prompt, "k", np.zeros((2, 2, 32), np.float32))
    assert "value [2, 3, 16] must be [2, 3, 32]" in gqa_error(binary, tmp_path, prompt, "v", np.zeros((2, 3, 16), np.float32))
    assert "query [2, 3, 62] does not split into 4 heads" in gqa_error(binary, tmp_path, prompt, "q", np.zeros((2, 3, 62), np.float32))
    assert "seqlens_k [3] must be [2]" in gqa_error(binary, tmp_path, prompt, "seqlens_k", np.array([2, 2, 2], np.int32))
    assert "total_sequence_length must be one value, got shape [2]" in gqa_error(
        binary, tmp_path, prompt, "total_sequence_length", np.array([3, 3], np.int32))
    assert "inputs 'query' and 'key' must have one element type (T), got float and float16" in gqa_error(
        binary, tmp_path, prompt, "k", np.zeros((2, 3, 32), np.float16))
    assert "input 'seqlens_k' has element type int64; M must be one of: int32" in gqa_error(binary, tmp_path, prompt, "seqlens_k", np.array([2, 2], np.int64))


def test_group_query_attention_refuses_bad_attributes(binary, tmp_path):
    rng = np.random.default_rng(22)
    for attributes, message in [(dict(kv_num_heads=3), "num_heads 4 must be a multiple of kv_num_heads 3"),
                                (dict(kv_num_heads=0), "num_heads 4 must be a multiple of kv_num_heads 0"),
                                (dict(causal=0, local_window_size=2), "local_window_size must be -1 when causal is 0"),
                                (dict(causal=0, local_window_size=-5), "local_window_size must be -1 when causal is 0"),
                                (dict(softcap=float("nan")), "scale 0.0 and softcap nan must be finite"),
                                (dict(smooth_softmax=1), "GroupQueryAttention's smooth_softmax is not supported")]:
        model, feeds = gqa_case(rng, dict(batch=1, length=2, past=0, seqlens=[1], total=2, attributes=attributes))
        assert message in run_error(binary, tmp_path, model, feeds)
