"""Operators at the old opset versions that converted models still carry, MaxRoiPool, and casts
to and from float8e8m0, run by `onnx-serve run` and compared with onnxruntime (or, for e8m0,
onnx.numpy_helper). onnxruntime has no kernels for Dropout 1/6 and
Upsample 1, so their oracle is the same graph written with the newer form of the operator (what
onnx's version converter produces), run by onnxruntime."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_error, run_model

FLOAT = TensorProto.FLOAT


def model(nodes, inputs, outputs, opset, initializers=()):
    graph = helper.make_graph(nodes, "old", [helper.make_tensor_value_info(n, FLOAT, None) for n in inputs],
                              [helper.make_tensor_value_info(n, FLOAT, None) for n in outputs], list(initializers))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7
    return m


def ours(binary, tmp_path, m, feeds):
    path = tmp_path / "model.onnx"
    path.write_bytes(m.SerializeToString())
    return run_model(binary, str(path), feeds, str(tmp_path))


def theirs(m, feeds):
    return ort.InferenceSession(m.SerializeToString()).run(None, feeds)


def max_roi_pool_twin(x, rois, pooled, scale):
    """Fast R-CNN's ROI pooling in numpy: the bins of ONNX Runtime's kernel, the maximum of each."""
    out = np.zeros((len(rois), x.shape[1], *pooled), dtype=np.float32)
    height, width = x.shape[2:]
    for r, (b, x1, y1, x2, y2) in enumerate(rois):
        def pixel(v):
            v = np.float32(v) * np.float32(scale)
            return int(np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)))
        sw, sh, ew, eh = pixel(x1), pixel(y1), pixel(x2), pixel(y2)
        bh = np.float32(max(eh - sh + 1, 1)) / np.float32(pooled[0])
        bw = np.float32(max(ew - sw + 1, 1)) / np.float32(pooled[1])
        for ph in range(pooled[0]):
            h0 = min(max(int(np.floor(np.float32(ph) * bh)) + sh, 0), height)
            h1 = min(max(int(np.ceil(np.float32(ph + 1) * bh)) + sh, 0), height)
            for pw in range(pooled[1]):
                w0 = min(max(int(np.floor(np.float32(pw) * bw)) + sw, 0), width)
                w1 = min(max(int(np.ceil(np.float32(pw + 1) * bw)) + sw, 0), width)
                if h1 > h0 and w1 > w0:
                    out[r, :, ph, pw] = x[int(b), :, h0:h1, w0:w1].max(axis=(1, 2))
    return out


ROIS = np.array([[0, 0, 0, 10, 10], [1, 2.5, 1.5, 7.4, 12], [1, -4, -4, 3, 3], [0, 9, 9, 30, 30],
                 [1, 11, 0, 2, 5], [0, 12.5, 12.5, 12.5, 12.5]], dtype=np.float32)


@pytest.mark.parametrize("pooled,scale", [((2, 2), 0.5), ((3, 2), 1.0), ((1, 1), 0.25), ((4, 5), 0.75)])
def test_max_roi_pool_matches_onnxruntime(binary, tmp_path, pooled, scale):
    # Positive values: onnxruntime starts each maximum at the smallest positive float, not -inf.
    x = np.random.default_rng(1).uniform(0.1, 1, (2, 3, 13, 11)).astype(np.float32)
    for opset in (21, 22):
        m = model([helper.make_node("MaxRoiPool", ["x", "rois"], ["y"], pooled_shape=list(pooled), spatial_scale=scale)],
                  ["x", "rois"], ["y"], opset)
        (got,) = ours(binary, tmp_path, m, {"x": x, "rois": ROIS})
        np.testing.assert_array_equal(got, max_roi_pool_twin(x, ROIS, pooled, scale))
        if opset == 21:
            (want,) = theirs(m, {"x": x, "rois": ROIS})
            np.testing.assert_array_equal(got, want)


def test_max_roi_pool_negative_values_and_bad_regions(binary, tmp_path):
    x = -np.random.default_rng(2).uniform(0.1, 1, (2, 2, 8, 9)).astype(np.float32)
    m = model([helper.make_node("MaxRoiPool", ["x", "rois"], ["y"], pooled_shape=[3, 3], spatial_scale=1.0)], ["x", "rois"], ["y"], 22)
    (got,) = ours(binary, tmp_path, m, {"x": x, "rois": ROIS})
    np.testing.assert_array_equal(got, max_roi_pool_twin(x, ROIS, (3, 3), 1.0))
    assert (got[0] < 0).all()
    for rois, message in [(np.array([[2, 0, 0, 1, 1]], np.float32), "roi 0's batch index 2.0 is out of range for 2 images"),
                          (np.array([[0, 0, 0, np.inf, 1]], np.float32), "roi 0 has a coordinate (inf) that is not finite"),
                          (np.array([[0, 0, 0, 3e9, 1]], np.float32), "beyond 2^30 pixels"),
                          (np.array([[0, 0, 0, 1]], np.float32), "rois must be [R, 5]")]:
        assert message in run_error(binary, tmp_path, m, {"x": x, "rois": rois})


@pytest.mark.parametrize("opset", [1, 6])
def test_dropout_1_and_6_pass_the_input_through(binary, tmp_path, opset):
    x = np.random.default_rng(3).standard_normal((3, 5)).astype(np.float32)
    attributes = {"is_test": 0, "ratio": 0.3}
    if opset == 1:
        attributes["consumed_inputs"] = [0]
    m = model([helper.make_node("Dropout", ["x"], ["y", "mask"], **attributes), helper.make_node("Relu", ["y"], ["z"])],
              ["x"], ["z", "mask"], opset)
    z, mask = ours(binary, tmp_path, m, {"x": x})
    newer = model([helper.make_node("Dropout", ["x"], ["y", "mask"], ratio=0.3), helper.make_node("Relu", ["y"], ["z"])],
                  ["x"], ["z", "mask"], 7)
    want_z, _ = theirs(newer, {"x": x})
    np.testing.assert_array_equal(z, want_z)
    # The mask keeps everything. onnxruntime's Dropout 7 answers zeros for it; ONNX's reference
    # (and its node tests, which we pass at 7 and later) answers ones.
    from onnx.reference import ReferenceEvaluator
    _, want_mask = ReferenceEvaluator(newer).run(None, {"x": x})
    assert mask.dtype == np.float32
    np.testing.assert_array_equal(mask, want_mask.astype(np.float32))
    assert (mask == 1).all()


@pytest.mark.parametrize("mode,newer_mode", [("nearest", "nearest"), ("bilinear", "linear")])
def test_upsample_1_matches_upsample_9(binary, tmp_path, mode, newer_mode):
    x = np.random.default_rng(4).standard_normal((2, 3, 4, 5)).astype(np.float32)
    m = model([helper.make_node("Upsample", ["x"], ["y"], mode=mode, height_scale=2.0, width_scale=3.0)], ["x"], ["y"], 1)
    (got,) = ours(binary, tmp_path, m, {"x": x})
    scales = numpy_helper.from_array(np.array([1, 1, 2, 3], dtype=np.float32), "scales")
    newer = model([helper.make_node("Upsample", ["x", "scales"], ["y"], mode=newer_mode)], ["x"], ["y"], 9, [scales])
    (want,) = theirs(newer, {"x": x})
    assert got.shape == (2, 3, 8, 15)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_upsample_1_without_scales_is_refused(binary, tmp_path):
    m = model([helper.make_node("Upsample", ["x"], ["y"], width_scale=2.0)], ["x"], ["y"], 1)
    err = run_error(binary, tmp_path, m, {"x": np.zeros((1, 1, 2, 2), np.float32)})
    assert "missing required attribute 'height_scale'" in err, err


@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [1, 0])
def test_cast_to_and_from_float8e8m0(binary, tmp_path, round_mode, saturate):
    """Cast (opset 25) to float8e8m0 by each round_mode, against onnx.numpy_helper.to_float8e8m0 (the
    reference the node tests use; onnxruntime has no e8m0 kernels), and back to float (2^(code-127))."""
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.standard_normal(200) * np.exp2(rng.integers(-60, 60, 200)),
                        [0, -0.0, 1, 1.5, 1.75, 1.25, 0.75, 3, -3, 2 ** 127, 2 ** 127 * 1.5, 3e38, np.inf, -np.inf, np.nan,
                         1e-40, 2 ** -127, 2 ** -126]]).astype(np.float32)
    m = model([helper.make_node("Cast", ["x"], ["e"], to=TensorProto.FLOAT8E8M0, round_mode=round_mode, saturate=saturate),
               helper.make_node("Cast", ["e"], ["y"], to=FLOAT)], ["x"], ["y"], 25)
    m.graph.value_info.append(helper.make_tensor_value_info("e", TensorProto.FLOAT8E8M0, [len(x)]))
    m.ir_version = 11
    (got,) = ours(binary, tmp_path, m, {"x": x})
    want = numpy_helper.to_float8e8m0(x, saturate=bool(saturate), round_mode=round_mode).astype(np.float32)
    np.testing.assert_array_equal(got, want)
