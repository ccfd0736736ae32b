"""Small ONNX models the daemon tests serve, built with onnx.helper (no downloads)."""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
DIGITS = os.path.join(ROOT, "config", "models", "digits", "1", "model.onnx")


def _save(model, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def cnn(path, seed=0):
    """image float [batch, 3, 16, 16] -> probabilities [batch, 10]: Conv, BatchNorm, Relu, MaxPool,
    depthwise Conv, Conv + residual Add, GlobalAveragePool, Flatten, Gemm, Softmax."""
    rng = np.random.default_rng(seed)
    w = lambda *shape: numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, None)
    inits = {
        "w1": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3, "b1": rng.standard_normal(8).astype(np.float32),
        "scale": rng.uniform(0.5, 1.5, 8).astype(np.float32), "bias": rng.standard_normal(8).astype(np.float32),
        "mean": rng.standard_normal(8).astype(np.float32) * 0.1, "var": rng.uniform(0.5, 1.5, 8).astype(np.float32),
        "wd": rng.standard_normal((8, 1, 3, 3)).astype(np.float32) * 0.3,
        "w2": rng.standard_normal((8, 8, 1, 1)).astype(np.float32) * 0.3,
        "wf": rng.standard_normal((10, 8)).astype(np.float32), "bf": rng.standard_normal(10).astype(np.float32),
    }
    del w
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "scale", "bias", "mean", "var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "wd"], ["dw"], group=8, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["dw", "w2"], ["pw"]),
        helper.make_node("Add", ["pw", "p1"], ["res"]),
        helper.make_node("Relu", ["res"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(nodes, "cnn",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 16, 16])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def mixed(path):
    """a float [batch, 3] and b int64 [batch, 3] -> total float [batch, 3] (a + b), doubled int64 [batch, 3]."""
    two = numpy_helper.from_array(np.array(2, dtype=np.int64), "two")
    nodes = [helper.make_node("Cast", ["b"], ["b_float"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["a", "b_float"], ["total"]),
             helper.make_node("Mul", ["b", "two"], ["doubled"])]
    graph = helper.make_graph(nodes, "mixed",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 3]),
                               helper.make_tensor_value_info("b", TensorProto.INT64, ["batch", 3])],
                              [helper.make_tensor_value_info("total", TensorProto.FLOAT, ["batch", 3]),
                               helper.make_tensor_value_info("doubled", TensorProto.INT64, ["batch", 3])], [two])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def text(path):
    """text string [batch] -> echo string [batch] and echo_bytes string [batch] (b64 in TF Serving JSON)."""
    nodes = [helper.make_node("Identity", ["text"], ["echo"]), helper.make_node("Identity", ["text"], ["echo_bytes"])]
    graph = helper.make_graph(nodes, "text", [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
                              [helper.make_tensor_value_info("echo", TensorProto.STRING, ["batch"]),
                               helper.make_tensor_value_info("echo_bytes", TensorProto.STRING, ["batch"])])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def types(path):
    """h FP16, flags BOOL, small UINT8 (each [batch, 2]) -> widened FP32, h_copy FP16, inverted BOOL,
    doubled UINT8: every element type path of the wire formats."""
    nodes = [helper.make_node("Cast", ["h"], ["widened"], to=TensorProto.FLOAT),
             helper.make_node("Identity", ["h"], ["h_copy"]),
             helper.make_node("Not", ["flags"], ["inverted"]),
             helper.make_node("Add", ["small", "small"], ["doubled"])]
    value = lambda name, kind: helper.make_tensor_value_info(name, kind, ["batch", 2])
    graph = helper.make_graph(nodes, "types",
                              [value("h", TensorProto.FLOAT16), value("flags", TensorProto.BOOL), value("small", TensorProto.UINT8)],
                              [value("widened", TensorProto.FLOAT), value("h_copy", TensorProto.FLOAT16),
                               value("inverted", TensorProto.BOOL), value("doubled", TensorProto.UINT8)])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def unnamed(path):
    """x float ["?", 2, "?"] -> doubled (x + x); z float [unset, 2] -> z_copy. PaddlePaddle writes an
    unnamed dynamic dimension as dim_param "?", and every one of them is a size of its own."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["?", 2, "?"])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 2])
    nodes = [helper.make_node("Add", ["x", "x"], ["doubled"]), helper.make_node("Identity", ["z"], ["z_copy"])]
    graph = helper.make_graph(nodes, "unnamed", [x, z],
                              [helper.make_tensor_value_info("doubled", TensorProto.FLOAT, ["?", 2, "?"]),
                               helper.make_tensor_value_info("z_copy", TensorProto.FLOAT, [None, 2])])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def constant(path, value):
    """x float [batch, 1] -> y = x * 0 + value: tells versions apart."""
    k = numpy_helper.from_array(np.array([value], dtype=np.float32), "k")
    zero = numpy_helper.from_array(np.array([0], dtype=np.float32), "zero")
    nodes = [helper.make_node("Mul", ["x", "zero"], ["z"]), helper.make_node("Add", ["z", "k"], ["y"])]
    graph = helper.make_graph(nodes, "constant", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])], [k, zero])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def repository(root):
    """A model repository exercising every feature the daemon tests look at."""
    import shutil

    shutil.copytree(os.path.join(ROOT, "config", "models", "digits"), os.path.join(root, "digits"))
    cnn(os.path.join(root, "cnn", "1", "model.onnx"))
    mixed(os.path.join(root, "mixed", "1", "model.onnx"))
    text(os.path.join(root, "text", "1", "model.onnx"))
    types(os.path.join(root, "types", "1", "model.onnx"))
    unnamed(os.path.join(root, "unnamed", "1", "model.onnx"))
    for version in (1, 2, 3):
        constant(os.path.join(root, "versioned", str(version), "model.onnx"), float(version))
    with open(os.path.join(root, "versioned", "config.yaml"), "w") as f:
        f.write("version_policy:\n  specific: [1, 2]\nlabels:\n  stable: 1\n  canary: 2\n")
    os.makedirs(os.path.join(root, "broken", "1"))
    with open(os.path.join(root, "broken", "1", "model.onnx"), "wb") as f:
        f.write(b"this is not a model")
    constant(os.path.join(root, "misconfigured", "1", "model.onnx"), 1.0)
    with open(os.path.join(root, "misconfigured", "config.yaml"), "w") as f:
        f.write("version_polcy:\n  latest: 1\n")
    return root


def slow(path, rows=128, width=1024, layers=16):
    """x float [batch, rows, width] -> y: `layers` MatMuls by one width x width matrix (a few GFLOP
    per batch row), so requests take long enough to queue behind each other."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array((rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32), "w")
    nodes, previous = [], "x"
    for layer in range(layers):
        nodes.append(helper.make_node("MatMul", [previous, "w"], ["h%d" % layer]))
        previous = "h%d" % layer
    nodes.append(helper.make_node("Identity", [previous], ["y"]))
    graph = helper.make_graph(nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", rows, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", rows, width])], [weight])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def lookup(path):
    """ids int64 [batch, 2] -> rows float [batch, 2, 4]: Gather from a 10-row table; an id out of
    range fails at run time."""
    table = numpy_helper.from_array(np.arange(40, dtype=np.float32).reshape(10, 4), "table")
    nodes = [helper.make_node("Gather", ["table", "ids"], ["rows"], axis=0)]
    graph = helper.make_graph(nodes, "lookup", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 2])],
                              [helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["batch", 2, 4])], [table])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def batching_repository(root):
    """Models and per-model batching settings for the batching tests."""
    cnn(os.path.join(root, "cnn", "1", "model.onnx"))
    with open(os.path.join(root, "cnn", "config.yaml"), "w") as f:
        f.write("batching:\n  max_batch_size: 16\n")
    lookup(os.path.join(root, "lookup", "1", "model.onnx"))
    path = slow(os.path.join(root, "slow", "1", "model.onnx"))
    # slow_fifo is four times deeper (~0.1 s per batch row here): its tests need one request to
    # still be running when the next arrives, with a wide margin on a fast or loaded machine.
    slow(os.path.join(root, "slow_fifo", "1", "model.onnx"), layers=64)
    for name, settings in [("slow", "  enabled: false\n  max_queue_length: 2\n"),
                           ("slow_deadline", "  enabled: false\n  default_deadline_ms: 5\n"),
                           ("slow_fifo", "  enabled: false\n")]:
        os.makedirs(os.path.join(root, name, "1"), exist_ok=True)
        if name == "slow_deadline":
            os.symlink(path, os.path.join(root, name, "1", "model.onnx"))
        with open(os.path.join(root, name, "config.yaml"), "w") as f:
            f.write("batching:\n" + settings)
    return root
