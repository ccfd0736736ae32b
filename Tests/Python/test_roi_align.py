"""A two-stage detector's second stage, RoiAlign over a convolutional feature map, against onnxruntime.

A strided Conv turns two 16x16 images into 8x8 feature maps; RoiAlign (spatial_scale 1/2) pools the
regions fed in (some partly outside the image, some on the second image) to 3x3 maps, and a Gemm
head scores them. Checked for opset 10 (output_half_pixel) and 16 (half_pixel, output_half_pixel),
average and max pooling, adaptive and fixed sampling; then regions naming an image that does not
exist, coordinates that are not finite, or more indices than regions must be refused with a clear error.
"""
import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_error, run_model


def second_stage(opset, rng, **attributes):
    weights = {
        "conv_w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.5,
        "conv_b": rng.standard_normal(4).astype(np.float32),
        "head_w": rng.standard_normal((36, 5)).astype(np.float32) * 0.3,
        "head_b": rng.standard_normal(5).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["images", "conv_w", "conv_b"], ["features_linear"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["features_linear"], ["features"]),
        helper.make_node("RoiAlign", ["features", "rois", "batch_indices"], ["pooled"], output_height=3, output_width=3,
                         spatial_scale=0.5, **attributes),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "head_w", "head_b"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes, "second_stage",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [2, 3, 16, 16]),
         helper.make_tensor_value_info("rois", TensorProto.FLOAT, ["R", 4]),
         helper.make_tensor_value_info("batch_indices", TensorProto.INT64, ["R"])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(value, name) for name, value in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


ROIS = np.array([[0, 0, 15, 15], [2.5, 3, 9, 7.5], [10, 12, 20, 18], [-4, -2, 6, 5], [5, 5, 5.5, 6], [1, 8, 14, 15]], np.float32)
BATCH = np.array([0, 0, 1, 1, 0, 1], np.int64)


def feeds(rng):
    return {"images": rng.random((2, 3, 16, 16), dtype=np.float32), "rois": ROIS, "batch_indices": BATCH}


def run_ours(binary, tmp_path, model, inputs):
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return run_model(binary, str(path), inputs, str(tmp_path))


@pytest.mark.parametrize("opset,attributes", [
    (10, {}),
    (10, {"mode": "max", "sampling_ratio": 2}),
    (16, {}),
    (16, {"coordinate_transformation_mode": "output_half_pixel", "sampling_ratio": 3}),
    (16, {"mode": "max"}),
])
def test_roi_align_matches_onnxruntime(binary, tmp_path, opset, attributes):
    rng = np.random.default_rng(opset + len(attributes))
    model = second_stage(opset, rng, **attributes)
    inputs = feeds(rng)
    pooled, scores = run_ours(binary, tmp_path, model, inputs)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected_pooled, expected_scores = session.run(None, inputs)
    assert pooled.shape == (6, 4, 3, 3) and scores.shape == (6, 5)
    np.testing.assert_allclose(pooled, expected_pooled, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-3, atol=1e-5)


def test_roi_align_refuses_bad_regions(binary, tmp_path):
    rng = np.random.default_rng(7)
    model = second_stage(16, rng)
    inputs = feeds(rng)
    err = run_error(binary, tmp_path, model, dict(inputs, batch_indices=np.array([0, 0, 2, 1, 0, 1], np.int64)))
    assert "batch_indices[2] = 2 is out of range for 2 images" in err
    err = run_error(binary, tmp_path, model, dict(inputs, rois=np.where(ROIS == 9, np.inf, ROIS).astype(np.float32)))
    assert "roi 1 has a coordinate that is not finite" in err
    err = run_error(binary, tmp_path, model, dict(inputs, batch_indices=BATCH[:5]))
    assert "dimension 'R' is 6 in input 'rois' but 5 in input 'batch_indices'" in err
