"""A small detector whose post-processing is NonMaxSuppression, against onnxruntime.

A convolutional head over a 16x16 image predicts a box ([y1, x1, y2, x2] corners, or centre and
size) and two class scores at every position; NonMaxSuppression keeps the best boxes per class
and a Gather reads their coordinates. The selected indices must equal ORT's exactly.
"""
import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_cli


def detector(center_point_box, rng):
    weights = {
        "box_w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.5,
        "box_b": np.array([0, 0, 4, 4], np.float32),
        "score_w": rng.standard_normal((2, 3, 3, 3)).astype(np.float32),
        "boxes_shape": np.array([1, 4, 256], np.int64),
        "scores_shape": np.array([1, 2, 256], np.int64),
        "max_boxes": np.array([6], np.int64),
        "iou": np.array([0.3], np.float32),
        "score_min": np.array([0.4], np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["image", "box_w", "box_b"], ["box_map"], pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["box_map", "boxes_shape"], ["boxes_cf"]),
        helper.make_node("Transpose", ["boxes_cf"], ["boxes"], perm=[0, 2, 1]),
        helper.make_node("Conv", ["image", "score_w"], ["score_map"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["score_map"], ["score_probs"]),
        helper.make_node("Reshape", ["score_probs", "scores_shape"], ["scores"]),
        helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_boxes", "iou", "score_min"], ["selected"],
                         center_point_box=center_point_box),
        helper.make_node("Gather", ["selected", "two"], ["box_index"], axis=1),
        helper.make_node("Squeeze", ["boxes", "zero"], ["all_boxes"]),
        helper.make_node("Gather", ["all_boxes", "box_index"], ["kept_boxes"], axis=0),
    ]
    initializers = [numpy_helper.from_array(value, name) for name, value in weights.items()]
    initializers += [numpy_helper.from_array(np.array(2, np.int64), "two"), numpy_helper.from_array(np.array([0], np.int64), "zero")]
    graph = helper.make_graph(nodes, "detector", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("selected", TensorProto.INT64, None),
                               helper.make_tensor_value_info("kept_boxes", TensorProto.FLOAT, None)], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("center_point_box", [0, 1])
def test_detector_with_non_max_suppression_matches_onnxruntime(binary, tmp_path, center_point_box):
    rng = np.random.default_rng(center_point_box)
    model = detector(center_point_box, rng)
    image = rng.random((1, 3, 16, 16), dtype=np.float32)
    path = tmp_path / "detector.onnx"
    path.write_bytes(model.SerializeToString())
    image_path = tmp_path / "image.pb"
    image_path.write_bytes(numpy_helper.from_array(image, "image").SerializeToString())
    code, _, err = run_cli(binary, "run", str(path), "--input", "image=%s" % image_path, "--output-dir", str(tmp_path / "out"))
    assert code == 0, err
    selected = numpy_helper.to_array(onnx.load_tensor(str(tmp_path / "out" / "output_0.pb")))
    kept = numpy_helper.to_array(onnx.load_tensor(str(tmp_path / "out" / "output_1.pb")))
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected_selected, expected_kept = session.run(None, {"image": image})
    assert len(expected_selected) > 2  # the case selects several boxes per class
    np.testing.assert_array_equal(selected, expected_selected)
    np.testing.assert_allclose(kept, expected_kept, rtol=1e-3, atol=1e-5)
