"""Quantized and fp16 models as users bring them, built here from small float models with random
weights (no downloads): static QDQ and QOperator quantization with onnxruntime.quantization
(calibrated on random data), dynamic quantization (as written, and as ONNX Runtime's optimizer
rewrites it into com.microsoft.DynamicQuantizeMatMul), and fp16 conversion with
onnxconverter-common (keep_io_types both ways). Each runs through `onnx-serve run` and through
onnxruntime on the same inputs.

Tolerances: fp16 and dynamically quantized outputs within rtol 1e-3 (atol 1e-5 for fp16 models'
float16 values: 1e-3 relative); statically quantized models end in DequantizeLinear, so their
outputs are multiples of the output scale. The QOperator model equals ONNX Runtime's output
exactly. The QDQ model is compared to within one such step: ONNX Runtime fuses DequantizeLinear
→ Conv → QuantizeLinear into integer kernels while the graph says float, so a value within
rounding of a half may land one step away (ONNX Runtime's fused and unfused runs of the same QDQ
model differ from each other in the same way). Integer outputs are compared exactly (the
DynamicQuantizeLinear case).
"""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_error, run_model

SEED = 7


def _init(rng, name, *shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def float_cnn(path):
    """x [1, 3, 16, 16] -> logits [1, 10]: Conv, Relu, LeakyRelu, residual Add, Sigmoid, Mul,
    AveragePool, MaxPool, Concat, 1x1 Conv, GlobalAveragePool, Flatten, MatMul, Add: every
    operator the quantizer has a QOperator form for, in a few kilobytes."""
    rng = np.random.default_rng(SEED)
    inits = [_init(rng, "w1", 8, 3, 3, 3), _init(rng, "b1", 8), _init(rng, "w2", 8, 8, 3, 3), _init(rng, "b2", 8),
             _init(rng, "w3", 8, 16, 1, 1), _init(rng, "wm", 8, 10), _init(rng, "bm", 10)]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("LeakyRelu", ["c2"], ["l2"], alpha=0.1),
        helper.make_node("Add", ["l2", "r1"], ["a2"]),
        helper.make_node("Sigmoid", ["a2"], ["s2"]),
        helper.make_node("Mul", ["a2", "s2"], ["m2"]),
        helper.make_node("AveragePool", ["m2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("MaxPool", ["m2"], ["q2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Concat", ["p2", "q2"], ["cat"], axis=1),
        helper.make_node("Conv", ["cat", "w3"], ["c3"]),
        helper.make_node("GlobalAveragePool", ["c3"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("MatMul", ["f", "wm"], ["mm"]),
        helper.make_node("Add", ["mm", "bm"], ["logits"]),
    ]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def float_ffn(path):
    """x [batch, 5, 16] -> y [batch, 5, 16]: MatMul, Add, Relu, MatMul, Add (a transformer's
    feed-forward block, the part dynamic quantization turns into integer products)."""
    rng = np.random.default_rng(SEED + 1)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["o"]),
             helper.make_node("Add", ["o", "b2"], ["y"])]
    graph = helper.make_graph(nodes, "ffn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 5, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 5, 16])],
                              [_init(rng, "w1", 16, 32, scale=0.2), _init(rng, "b1", 32), _init(rng, "w2", 32, 16, scale=0.2),
                               _init(rng, "b2", 16)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


class RandomImages:
    """Calibration data: a few random images (onnxruntime.quantization.CalibrationDataReader)."""

    def __init__(self, count=8):
        rng = np.random.default_rng(SEED + 2)
        self.batches = iter([{"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(count)])

    def get_next(self):
        return next(self.batches, None)


def run_ours(binary, path, feeds, directory):
    return run_model(binary, path, feeds, directory)


def run_ort(path, feeds, optimize=True):
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def ops(path):
    return {(n.domain or "ai.onnx", n.op_type) for n in onnx.load(path).graph.node}


def output_scale(path):
    """The scale of the DequantizeLinear that produces the model's (only) output."""
    model = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = next(n for n in model.graph.node if model.graph.output[0].name in n.output)
    assert producer.op_type == "DequantizeLinear", producer.op_type
    return float(inits[producer.input[1]])


def image(seed):
    return {"x": np.random.default_rng(seed).standard_normal((1, 3, 16, 16)).astype(np.float32)}


@pytest.fixture(scope="module")
def cnn_path(tmp_path_factory):
    return float_cnn(str(tmp_path_factory.mktemp("cnn") / "cnn.onnx"))


@pytest.mark.parametrize("form", ["QDQ", "QOperator"])
def test_static_quantized_cnn(binary, cnn_path, tmp_path, form):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    path = str(tmp_path / ("cnn_%s.onnx" % form))
    quantize_static(cnn_path, path, RandomImages(), quant_format=getattr(QuantFormat, form),
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=form == "QDQ")
    used = ops(path)
    if form == "QOperator":
        contrib = {op for domain, op in used if domain == "com.microsoft"}
        assert {"QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearAveragePool",
                "QLinearGlobalAveragePool", "QLinearConcat"} <= contrib, used
        assert {("ai.onnx", "QLinearConv"), ("ai.onnx", "QLinearMatMul")} <= used
    else:
        assert {("ai.onnx", "QuantizeLinear"), ("ai.onnx", "DequantizeLinear")} <= used
    step = output_scale(path)
    for seed in range(3):
        feeds = image(seed)
        (ours,) = run_ours(binary, path, feeds, str(tmp_path))
        (theirs,) = run_ort(path, feeds)
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        if form == "QOperator":
            # The QLinear operators requantize exactly as ONNX Runtime's do on these models.
            np.testing.assert_array_equal(ours, theirs)
        else:
            # Within one quantization step of ONNX Runtime's fused integer kernels and of its
            # unfused run of the same graph (which differ from each other as much; see the note).
            (unfused,) = run_ort(path, feeds, optimize=False)
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=step * 1.001)
            np.testing.assert_allclose(ours, unfused, rtol=0, atol=step * 1.001)


def float_deep_cnn(path):
    """x [1, 16, 16, 16] -> y [1, 4, 16, 16]: a 3x3 convolution that runs as Winograd in float
    (16 -> 24 channels), a 1x1 one to 512 channels, and a 3x3 one of depth 4,608 whose integer sums
    pass 2^24: the two layouts where a float convolution would not give exact integer sums."""
    rng = np.random.default_rng(SEED + 6)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"]), helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("Conv", ["r2", "w3", "b3"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "deep", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])],
                              [_init(rng, "w1", 24, 16, 3, 3), _init(rng, "b1", 24), _init(rng, "w2", 512, 24, 1, 1),
                               _init(rng, "b2", 512), _init(rng, "w3", 4, 512, 3, 3, scale=0.05), _init(rng, "b3", 4)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize("form", ["QOperator", "dynamic"])
def test_integer_convolutions_are_exact(binary, tmp_path, form):
    """QLinearConv (static QOperator) and ConvInteger (dynamic) on the layouts above equal ONNX
    Runtime's integer kernels exactly."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

    class Images(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(SEED + 7)
            self.batches = iter([{"x": rng.standard_normal((1, 16, 16, 16)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.batches, None)

    source = float_deep_cnn(str(tmp_path / "deep.onnx"))
    path = str(tmp_path / ("deep_%s.onnx" % form))
    if form == "QOperator":
        quantize_static(source, path, Images(), quant_format=QuantFormat.QOperator, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, per_channel=True)
        assert ("ai.onnx", "QLinearConv") in ops(path)
        # The last layer's weights: an activation of magnitude 128 (half the uint8 range) already
        # takes its sums past 2^24.
        model = onnx.load(path)
        inits = {t.name: numpy_helper.to_array(t).astype(np.int64) for t in model.graph.initializer}
        last = [n for n in model.graph.node if n.op_type == "QLinearConv"][-1]
        weights, zeros = inits[last.input[3]], inits[last.input[5]]
        assert np.abs(weights - zeros.reshape(-1, 1, 1, 1)).reshape(len(weights), -1).sum(axis=1).max() * 128 > 2 ** 24
    else:
        quantize_dynamic(source, path, weight_type=QuantType.QUInt8)
        assert ("ai.onnx", "ConvInteger") in ops(path)
    for seed in range(3):
        feeds = {"x": np.random.default_rng(seed).standard_normal((1, 16, 16, 16)).astype(np.float32)}
        (ours,) = run_ours(binary, path, feeds, str(tmp_path))
        (theirs,) = run_ort(path, feeds)
        if form == "QOperator":
            np.testing.assert_array_equal(ours, theirs)
        else:
            # Float after the integer product: the same int32 sums times the same scales, then the
            # float bias and activations.
            np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-5)


def float_mlp(path):
    """x [batch, 12] -> y [batch, 4]: Gemm (transB, bias), Relu, Gemm (bias), as torch exports
    nn.Linear layers: the quantizer writes com.microsoft.QGemm for them in QOperator format."""
    rng = np.random.default_rng(SEED + 3)
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
                              [_init(rng, "w1", 9, 12), _init(rng, "b1", 9), _init(rng, "w2", 9, 4), _init(rng, "b2", 4)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize("per_channel", [False, True])
def test_qoperator_gemm(binary, tmp_path, per_channel):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Rows(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(SEED + 4)
            self.batches = iter([{"x": rng.standard_normal((3, 12)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.batches, None)

    path = str(tmp_path / "mlp_qoperator.onnx")
    quantize_static(float_mlp(str(tmp_path / "mlp.onnx")), path, Rows(), quant_format=QuantFormat.QOperator,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=per_channel)
    assert ("com.microsoft", "QGemm") in ops(path)
    for seed in range(3):
        feeds = {"x": np.random.default_rng(seed).standard_normal((5, 12)).astype(np.float32)}
        (ours,) = run_ours(binary, path, feeds, str(tmp_path))
        (theirs,) = run_ort(path, feeds)
        np.testing.assert_array_equal(ours, theirs)


def qgemm_model(a_type, b_type, a_shape, b_shape, c_shape, output, trans_a, trans_b, alpha, constant_b, rng):
    """One com.microsoft.QGemm node and its feeds: A (and B unless constant) as inputs, C int32 of
    `c_shape` (None: absent), `output` "float" (no y_scale, y_zero_point), "scaled float" (y_scale
    only) or the quantized type of y_zero_point."""
    numpy_type = {TensorProto.UINT8: np.uint8, TensorProto.INT8: np.int8}
    low = {TensorProto.UINT8: 0, TensorProto.INT8: -128}
    a = rng.integers(low[a_type], low[a_type] + 256, a_shape).astype(numpy_type[a_type])
    b = rng.integers(low[b_type], low[b_type] + 256, b_shape).astype(numpy_type[b_type])
    n = b_shape[0] if trans_b else b_shape[1]
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "a_scale"),
             numpy_helper.from_array(np.array(low[a_type] + 131, numpy_type[a_type]), "a_zero"),
             numpy_helper.from_array(rng.uniform(0.005, 0.02, n).astype(np.float32), "b_scale"),
             numpy_helper.from_array(rng.integers(low[b_type] + 100, low[b_type] + 156, n).astype(numpy_type[b_type]), "b_zero")]
    feeds = {"a": a}
    if constant_b:
        inits.append(numpy_helper.from_array(b, "b"))
    else:
        feeds["b"] = b
    names = ["a", "a_scale", "a_zero", "b", "b_scale", "b_zero", "", "", ""]
    if c_shape is not None:
        inits.append(numpy_helper.from_array(rng.integers(-5000, 5000, c_shape).astype(np.int32), "c"))
        names[6] = "c"
    m = a_shape[1] if trans_a else a_shape[0]
    if output in ("float", "scaled float"):
        if output == "scaled float":
            inits.append(numpy_helper.from_array(np.array(0.5, np.float32), "y_scale"))
            names[7] = "y_scale"
        y_type = TensorProto.FLOAT
    else:
        inits += [numpy_helper.from_array(np.array(0.9, np.float32), "y_scale"),
                  numpy_helper.from_array(np.array(low[output] + 120, numpy_type[output]), "y_zero")]
        names[7], names[8] = "y_scale", "y_zero"
        y_type = output
    while names[-1] == "":
        names.pop()
    node = helper.make_node("QGemm", names, ["y"], domain="com.microsoft", transA=trans_a, transB=trans_b, alpha=alpha)
    inputs = [helper.make_tensor_value_info("a", a_type, list(a_shape))]
    if not constant_b:
        inputs.append(helper.make_tensor_value_info("b", b_type, list(b_shape)))
    graph = helper.make_graph([node], "qgemm", inputs, [helper.make_tensor_value_info("y", y_type, [m, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    return model, feeds


U8, I8 = TensorProto.UINT8, TensorProto.INT8


@pytest.mark.parametrize("case", [
    # a type, b type, A, B, C, output, transA, transB, alpha, constant B
    (U8, I8, (5, 300), (7, 300), (7,), U8, 0, 1, 1.0, True),
    (U8, I8, (300, 5), (300, 7), (5, 1), U8, 1, 0, 1.0, False),
    (U8, U8, (6, 33), (33, 10), (1, 10), "float", 0, 0, 0.5, True),
    (I8, I8, (4, 17), (9, 17), (4, 9), I8, 0, 1, 2.0, False),
    (I8, I8, (3, 2000), (2000, 5), (), "scaled float", 0, 0, 1.0, True),
    (U8, I8, (1, 8), (8, 3), None, U8, 0, 0, 1.0, True),
], ids=["transB-const", "transA-rowbias", "float-alpha", "int8-fullbias", "scaled-float-deep", "no-bias"])
def test_qgemm_node(binary, tmp_path, case):
    model, feeds = qgemm_model(*case, rng=np.random.default_rng(SEED + 5))
    path = str(tmp_path / "qgemm.onnx")
    onnx.save(model, path)
    (ours,) = run_ours(binary, path, feeds, str(tmp_path))
    (theirs,) = run_ort(path, feeds)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    # Integer outputs exactly; float outputs are the same int32 sum times the same scale.
    np.testing.assert_array_equal(ours, theirs)


def test_qgemm_refuses_a_bias_that_does_not_broadcast(binary, tmp_path):
    model, feeds = qgemm_model(U8, I8, (5, 8), (8, 3), (2, 3), U8, 0, 0, 1.0, True, rng=np.random.default_rng(0))
    message = run_error(binary, tmp_path, model, feeds)
    assert "C [2, 3] does not broadcast to [5, 3]" in message, message


def test_dynamic_quantized_cnn(binary, cnn_path, tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = str(tmp_path / "cnn_dynamic.onnx")
    quantize_dynamic(cnn_path, path, weight_type=QuantType.QInt8)
    assert {("ai.onnx", "ConvInteger"), ("ai.onnx", "MatMulInteger"), ("ai.onnx", "DynamicQuantizeLinear")} <= ops(path)
    for seed in range(3):
        feeds = image(seed)
        (ours,) = run_ours(binary, path, feeds, str(tmp_path))
        (theirs,) = run_ort(path, feeds)
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("optimized", [False, True])
def test_dynamic_quantized_ffn(binary, tmp_path, optimized):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = str(tmp_path / "ffn_dynamic.onnx")
    quantize_dynamic(float_ffn(str(tmp_path / "ffn.onnx")), path, weight_type=QuantType.QInt8)
    if optimized:
        # ONNX Runtime's optimizer fuses DynamicQuantizeLinear + MatMulInteger + Mul into its
        # com.microsoft.DynamicQuantizeMatMul; users ship models saved that way.
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(tmp_path / "ffn_ort.onnx")
        ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        path = options.optimized_model_filepath
        assert ("com.microsoft", "DynamicQuantizeMatMul") in ops(path)
    else:
        assert ("ai.onnx", "MatMulInteger") in ops(path)
    for batch in [1, 3]:
        feeds = {"x": np.random.default_rng(batch).standard_normal((batch, 5, 16)).astype(np.float32)}
        (ours,) = run_ours(binary, path, feeds, str(tmp_path))
        (theirs,) = run_ort(path, feeds)
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4)


def test_dynamic_quantize_linear_outputs_exactly(binary, tmp_path):
    # The integer outputs (y, zero point) equal ONNX Runtime's exactly.
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "scale", "zero"])
    graph = helper.make_graph([node], "dql", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 33])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [4, 33]),
                               helper.make_tensor_value_info("scale", TensorProto.FLOAT, []),
                               helper.make_tensor_value_info("zero", TensorProto.UINT8, [])])
    path = str(tmp_path / "dql.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    for seed in range(4):
        feeds = {"x": (np.random.default_rng(seed).standard_normal((4, 33)) * (seed + 1) + seed - 1).astype(np.float32)}
        ours = run_ours(binary, path, feeds, str(tmp_path))
        theirs = run_ort(path, feeds)
        np.testing.assert_array_equal(ours[0], theirs[0])
        np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-6)
        np.testing.assert_array_equal(ours[2], theirs[2])


@pytest.mark.parametrize("keep_io_types", [True, False])
def test_fp16_converted_cnn(binary, cnn_path, tmp_path, keep_io_types):
    from onnxconverter_common import float16

    model = float16.convert_float_to_float16(onnx.load(cnn_path), keep_io_types=keep_io_types)
    path = str(tmp_path / "cnn_fp16.onnx")
    onnx.save(model, path)
    input_type = np.float32 if keep_io_types else np.float16
    for seed in range(2):
        feeds = {"x": image(seed)["x"].astype(input_type)}
        (ours,) = run_ours(binary, path, feeds, str(tmp_path))
        (theirs,) = run_ort(path, feeds)
        assert ours.dtype == theirs.dtype == input_type
        # float16 keeps 11 significant bits: compare at float16's resolution of the logits.
        np.testing.assert_allclose(ours.astype(np.float32), theirs.astype(np.float32), rtol=1e-3,
                                   atol=2e-3 * float(np.abs(theirs).max()))
