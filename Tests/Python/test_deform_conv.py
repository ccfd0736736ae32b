"""DeformConv as deformable networks use it, against onnxruntime (which runs it on CPU) and onnx.reference.

A Conv predicts the offsets (and, DCNv2-style, a Sigmoid'ed Conv the mask) from the image itself, and
DeformConv samples the image there: checked for opsets 19 and 22, several groups and offset groups,
stride 2, dilation, pads, with and without mask and bias; double through onnx.reference. Then inputs
whose sizes do not fit (offset or mask of the wrong shape, channels not divisible by offset_group or
group) must be refused with a clear error.
"""
import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from conftest import run_error, run_model


def deformable_block(opset, rng, channels, outputs, kernel, mask, bias, dtype=np.float32, **attributes):
    """Image [2, channels, 9, 10] -> offsets (and mask) by Conv -> DeformConv -> Relu."""
    kh, kw = kernel
    group, offset_group = attributes.get("group", 1), attributes.get("offset_group", 1)
    strides, pads, dilations = attributes.get("strides", [1, 1]), attributes.get("pads", [0, 0, 0, 0]), attributes.get("dilations", [1, 1])
    # The offset Conv has the DeformConv's window, so its output has the same spatial size.
    window = dict(kernel_shape=[kh, kw], strides=strides, pads=pads, dilations=dilations)
    weights = {
        "offset_w": rng.standard_normal((offset_group * 2 * kh * kw, channels, kh, kw)) * 0.4,
        "w": rng.standard_normal((outputs, channels // group, kh, kw)) * 0.5,
    }
    nodes = [helper.make_node("Conv", ["image", "offset_w"], ["offset"], **window)]
    inputs = ["image", "w", "offset", "", ""]
    if bias:
        weights["b"] = rng.standard_normal(outputs)
        inputs[3] = "b"
    if mask:
        weights["mask_w"] = rng.standard_normal((offset_group * kh * kw, channels, kh, kw)) * 0.4
        nodes += [helper.make_node("Conv", ["image", "mask_w"], ["mask_logits"], **window),
                  helper.make_node("Sigmoid", ["mask_logits"], ["mask"])]
        inputs[4] = "mask"
    while inputs[-1] == "":
        inputs.pop()
    nodes += [helper.make_node("DeformConv", inputs, ["deformed"], **attributes),
              helper.make_node("Relu", ["deformed"], ["y"])]
    element = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    graph = helper.make_graph(
        nodes, "deformable", [helper.make_tensor_value_info("image", element, [2, channels, 9, 10])],
        [helper.make_tensor_value_info("y", element, None)],
        [numpy_helper.from_array(value.astype(dtype), name) for name, value in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run_ours(binary, tmp_path, model, inputs):
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return run_model(binary, str(path), inputs, str(tmp_path))


CASES = [
    (19, 3, 4, (3, 3), False, False, {}),
    (19, 4, 6, (3, 3), True, True, {"group": 2, "offset_group": 2, "pads": [1, 1, 1, 1]}),
    (22, 6, 3, (2, 3), True, False, {"group": 3, "offset_group": 2, "strides": [2, 2], "pads": [1, 0, 2, 1]}),
    (22, 4, 4, (3, 2), False, True, {"offset_group": 4, "dilations": [2, 1], "strides": [1, 2], "pads": [2, 1, 1, 0]}),
]


@pytest.mark.parametrize("opset,channels,outputs,kernel,mask,bias,attributes", CASES)
def test_deform_conv_matches_onnxruntime(binary, tmp_path, opset, channels, outputs, kernel, mask, bias, attributes):
    rng = np.random.default_rng(opset + channels + outputs)
    model = deformable_block(opset, rng, channels, outputs, kernel, mask, bias, kernel_shape=list(kernel), **attributes)
    inputs = {"image": rng.standard_normal((2, channels, 9, 10)).astype(np.float32)}
    (ours,) = run_ours(binary, tmp_path, model, inputs)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, inputs)
    assert ours.shape == expected.shape and ours.dtype == np.float32
    assert np.count_nonzero(expected) > expected.size // 4  # the Relu leaves enough to compare
    np.testing.assert_allclose(ours, expected, rtol=1e-3, atol=1e-5)


def direct_model(channels, outputs, group=1, offset_group=1, element=TensorProto.FLOAT, **attributes):
    """DeformConv whose X, W, offset and mask are graph inputs of any shape."""
    names = ["X", "W", "offset", "B", "mask"]
    graph = helper.make_graph(
        [helper.make_node("DeformConv", names, ["Y"], group=group, offset_group=offset_group, **attributes)], "direct",
        [helper.make_tensor_value_info(name, element, None) for name in names],
        [helper.make_tensor_value_info("Y", element, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def direct_feeds(channels=4, outputs=2, group=1, offset_group=1, offset_shape=None, mask_shape=None, dtype=np.float32):
    rng = np.random.default_rng(5)
    return {"X": rng.random((1, channels, 5, 5)).astype(dtype),
            "W": rng.random((outputs, channels // group, 3, 3)).astype(dtype),
            "offset": (rng.random(offset_shape or (1, offset_group * 18, 3, 3)) * 4 - 2).astype(dtype),
            "B": rng.random(outputs).astype(dtype),
            "mask": rng.random(mask_shape or (1, offset_group * 9, 3, 3)).astype(dtype)}


def test_deform_conv_runs_direct_inputs(binary, tmp_path):
    model, feeds = direct_model(4, 2, offset_group=2), direct_feeds(offset_group=2)
    (ours,) = run_ours(binary, tmp_path, model, feeds)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(ours, session.run(None, feeds)[0], rtol=1e-3, atol=1e-5)


def test_deform_conv_double_matches_onnx_reference(binary, tmp_path):
    # Double runs the reference kernel, which computes in double. onnx.reference samples through its
    # GridSample, which loses about 1e-8 (relative) on the way: hence 1e-6, still far below float's 1e-3.
    model = direct_model(4, 2, group=2, offset_group=2, element=TensorProto.DOUBLE, pads=[1, 0, 0, 1], strides=[2, 1])
    feeds = direct_feeds(group=2, offset_group=2, offset_shape=(1, 36, 2, 4), mask_shape=(1, 18, 2, 4), dtype=np.float64)
    (ours,) = run_ours(binary, tmp_path, model, feeds)
    (expected,) = ReferenceEvaluator(model).run(None, feeds)
    assert ours.dtype == np.float64 and ours.shape == expected.shape == (1, 2, 2, 4)
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-9)


def test_deform_conv_refuses_sizes_that_do_not_fit(binary, tmp_path):
    err = run_error(binary, tmp_path, direct_model(4, 2), direct_feeds(offset_shape=(1, 18, 3, 4)))
    assert "offset must be [1, 18, 3, 3]" in err
    err = run_error(binary, tmp_path, direct_model(4, 2, offset_group=2), direct_feeds(offset_group=2, mask_shape=(1, 9, 3, 3)))
    assert "mask must be [1, 18, 3, 3], not [1, 9, 3, 3]" in err
    err = run_error(binary, tmp_path, direct_model(4, 2, offset_group=3), direct_feeds(offset_group=3))
    assert "X's 4 channels are not divisible by offset_group 3" in err
    err = run_error(binary, tmp_path, direct_model(4, 3, group=2), direct_feeds(outputs=3, group=2))
    assert "do not fit group 2" in err
    feeds = direct_feeds()
    feeds["X"] = feeds["X"][:, :, :2, :2]
    err = run_error(binary, tmp_path, direct_model(4, 2), feeds)
    assert "does not fit X [1, 4, 2, 2]" in err
