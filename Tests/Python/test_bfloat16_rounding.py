"""bfloat16 Softmax and Attention against onnx.reference, bit for bit.

ONNX Runtime's CPU provider has no bfloat16 kernel for either, so onnx.reference (numpy with
ml_dtypes) is the oracle, and a bfloat16 step (0.4%) is past any useful tolerance: the engine
rounds where the reference rounds (Kernels.BFloat16Rounding). Rows stay within the 64 terms whose
running sum the engine rounds as the reference does; past them it sums in float (checked against
a float sum here).
"""
import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from conftest import run_model

BF16 = ml_dtypes.bfloat16


def run_ours(binary, tmp_path, model, feeds):
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return run_model(binary, str(path), feeds, str(tmp_path))


def model_of(node, inputs, outputs, opset):
    def info(name, value):
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype), value.shape)

    graph = helper.make_graph([node], "g", [info(n, v) for n, v in inputs.items()],
                              [helper.make_tensor_value_info(name, TensorProto.BFLOAT16, None) for name in outputs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def assert_exact(binary, tmp_path, model, feeds):
    ours = run_ours(binary, tmp_path, model, feeds)
    theirs = ReferenceEvaluator(model).run(None, feeds)
    assert len(ours) == len(theirs) == len(model.graph.output)
    for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a.dtype == BF16 and a.shape == b.shape, "output %d: %s %s vs %s" % (index, a.dtype, a.shape, b.shape)
        np.testing.assert_array_equal(a.astype(np.float32), b.astype(np.float32), err_msg="output %d" % index)


def bf16(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(BF16)


ATTENTION_CASES = {
    # name: (attributes, shapes of Q, K, V, extra inputs builder, outputs, opset)
    "gqa_float_mask": dict(q=(2, 4, 5, 8), kv=(2, 2, 7, 8), attributes={}, mask=(5, 7), opset=23),
    "causal_3d": dict(q=(2, 6, 16), kv=(2, 6, 8), attributes={"is_causal": 1, "q_num_heads": 4, "kv_num_heads": 2},
                      opset=23),
    "bool_mask_causal_short_columns": dict(q=(1, 2, 4, 6), kv=(1, 2, 9, 6), attributes={"is_causal": 1},
                                           bool_mask=(1, 1, 4, 7), opset=24),
    "past_and_present": dict(q=(1, 2, 3, 4), kv=(1, 2, 3, 4), attributes={}, past=5, opset=23),
    "scaled_with_softmax_scores": dict(q=(1, 3, 4, 5), kv=(1, 3, 6, 5),
                                       attributes={"scale": 0.3, "qk_matmul_output_mode": 3}, scores=True, opset=23),
    "soft_cap": dict(q=(1, 2, 4, 8), kv=(1, 2, 6, 8), attributes={"softcap": 2.0, "is_causal": 1}, opset=23),
    "float_softmax_precision": dict(q=(1, 2, 4, 8), kv=(1, 2, 6, 8),
                                    attributes={"softmax_precision": TensorProto.FLOAT}, mask=(1, 2, 4, 6), opset=23),
}


@pytest.mark.parametrize("case", sorted(ATTENTION_CASES))
def test_attention_matches_reference_exactly(binary, tmp_path, case):
    spec = ATTENTION_CASES[case]
    rng = np.random.default_rng(sorted(ATTENTION_CASES).index(case))
    feeds = {"Q": bf16(rng, *spec["q"]), "K": bf16(rng, *spec["kv"]), "V": bf16(rng, *spec["kv"])}
    inputs = ["Q", "K", "V"]
    if "mask" in spec:
        feeds["attn_mask"] = bf16(rng, *spec["mask"])
        inputs.append("attn_mask")
    if "bool_mask" in spec:
        feeds["attn_mask"] = rng.random(spec["bool_mask"]) < 0.7
        inputs.append("attn_mask")
    outputs = ["Y"]
    if "past" in spec:
        b, h, _, d = spec["kv"]
        inputs += [""] * (4 - len(inputs)) + ["past_key", "past_value"]
        feeds["past_key"] = bf16(rng, b, h, spec["past"], d)
        feeds["past_value"] = bf16(rng, b, h, spec["past"], d)
        outputs += ["present_key", "present_value"]
    if spec.get("scores"):
        outputs += ["", "", "qk_output"]
    node = helper.make_node("Attention", inputs, outputs, **spec["attributes"])
    model = model_of(node, feeds, [name for name in outputs if name], spec["opset"])
    assert_exact(binary, tmp_path, model, feeds)


@pytest.mark.parametrize("shape, axis", [((3, 7), -1), ((2, 40, 3), 1), ((4, 64), 1), ((2, 1, 5), 0)])
def test_softmax_matches_reference_exactly(binary, tmp_path, shape, axis):
    rng = np.random.default_rng(len(shape) * 100 + shape[-1])
    feeds = {"x": bf16(rng, *shape, scale=3)}
    model = model_of(helper.make_node("Softmax", ["x"], ["y"], axis=axis), feeds, ["y"], 13)
    assert_exact(binary, tmp_path, model, feeds)


def test_long_softmax_rows_sum_in_float(binary, tmp_path):
    # 65 terms and more: the reference's running bfloat16 sum would lose terms; ours is a float sum.
    x = bf16(np.random.default_rng(5), 3, 300, scale=2)
    model = model_of(helper.make_node("Softmax", ["x"], ["y"]), {"x": x}, ["y"], 13)
    (ours,) = run_ours(binary, tmp_path, model, {"x": x})
    wide = x.astype(np.float32)
    e = np.exp((wide - wide.max(-1, keepdims=True)).astype(BF16).astype(np.float32)).astype(BF16).astype(np.float32)
    expected = (e / e.sum(-1, keepdims=True).astype(BF16).astype(np.float32)).astype(BF16)
    # Our float sum runs in order, numpy's pairwise: the rounded sums may differ by a step.
    np.testing.assert_allclose(ours.astype(np.float32), expected.astype(np.float32), rtol=2 ** -7, atol=0)
    assert abs(ours.astype(np.float32).sum(-1) - 1).max() < 0.02
