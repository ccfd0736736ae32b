"""ONNX models with random weights for the engine-memory figures, built with onnx.helper (no
torch, nothing downloaded). Their graphs follow what torch.onnx exports for the real models.

- `minilm`: a MiniLM-L6-H384 sentence encoder (BERT architecture: 6 layers, hidden 384, 12 heads,
  feed-forward 1536, vocabulary 30522, 512 positions), opset 14. Inputs input_ids and
  attention_mask int64 [batch, sequence]; output last_hidden_state float [batch, sequence, 384].
  As in the export, head reshapes take their target from Shape -> Gather -> Unsqueeze -> Concat
  chains, positions are a Slice of a [1, 512] constant up to the sequence length, LayerNorm is
  ReduceMean/Sub/Pow/Sqrt/Div, GELU is Erf.
- `mnist_cnn`: the PyTorch MNIST example network (Conv 1->32 3x3, ReLU, Conv 32->64 3x3, ReLU,
  MaxPool 2, Flatten, Linear 9216->128, ReLU, Linear 128->10, LogSoftmax), opset 13. Input
  image float [batch, 1, 28, 28]; output log_probabilities float [batch, 10].
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HIDDEN, HEADS, LAYERS, FEED_FORWARD, VOCABULARY, POSITIONS = 384, 12, 6, 1536, 30522, 512


class _Builder:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.initializers, self.count = [], [], 0

    def name(self, prefix):
        self.count += 1
        return "%s_%d" % (prefix, self.count)

    def constant(self, array, prefix="c"):
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, *shape, scale=0.05):
        return self.constant((self.rng.standard_normal(shape) * scale).astype(np.float32), "w")

    def op(self, op_type, inputs, outputs=1, **attributes):
        names = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, **attributes))
        return names[0] if outputs == 1 else names

    def dimension(self, value, axis):
        """Unsqueeze(Gather(Shape(value), axis)): one dimension as a 1-D int64, as exported."""
        shape = self.op("Shape", [value])
        size = self.op("Gather", [shape, self.constant(np.array(axis, np.int64))], axis=0)
        return self.op("Unsqueeze", [size, self.constant(np.array([0], np.int64))])


def _layer_norm(b, x):
    mean = b.op("ReduceMean", [x], axes=[-1])
    centered = b.op("Sub", [x, mean])
    variance = b.op("ReduceMean", [b.op("Pow", [centered, b.constant(np.array(2, np.float32))])], axes=[-1])
    deviation = b.op("Sqrt", [b.op("Add", [variance, b.constant(np.array(1e-12, np.float32))])])
    normalized = b.op("Div", [centered, deviation])
    return b.op("Add", [b.op("Mul", [normalized, b.constant(np.ones(HIDDEN, np.float32))]), b.weight(HIDDEN)])


def _dense(b, x, inputs, outputs):
    return b.op("Add", [b.op("MatMul", [x, b.weight(inputs, outputs)]), b.weight(outputs)])


def _heads(b, x, batch, sequence):
    """[B, S, 384] -> [B, S, 12, 32] with the target computed from shapes, as exported."""
    target = b.op("Concat", [batch, sequence, b.constant(np.array([HEADS], np.int64)),
                             b.constant(np.array([HIDDEN // HEADS], np.int64))], axis=0)
    return b.op("Reshape", [x, target])


def minilm(path, seed=0):
    b = _Builder(seed)
    batch, sequence = b.dimension("input_ids", 0), b.dimension("input_ids", 1)
    positions = b.op("Slice", [b.constant(np.arange(POSITIONS, dtype=np.int64)[None, :]),
                               b.constant(np.array([0], np.int64)), sequence, b.constant(np.array([1], np.int64))])
    token_types = b.op("Slice", [b.constant(np.zeros((1, POSITIONS), np.int64)), b.constant(np.array([0], np.int64)),
                                 sequence, b.constant(np.array([1], np.int64))])
    token_types = b.op("Expand", [token_types, b.op("Concat", [batch, sequence], axis=0)])
    embedded = b.op("Add", [b.op("Gather", [b.weight(VOCABULARY, HIDDEN), "input_ids"]),
                            b.op("Gather", [b.weight(2, HIDDEN), token_types])])
    hidden = _layer_norm(b, b.op("Add", [embedded, b.op("Gather", [b.weight(POSITIONS, HIDDEN), positions])]))
    mask = b.op("Cast", [b.op("Unsqueeze", ["attention_mask", b.constant(np.array([1, 2], np.int64))])], to=TensorProto.FLOAT)
    mask = b.op("Mul", [b.op("Sub", [b.constant(np.array(1, np.float32)), mask]),
                        b.constant(np.array(np.finfo(np.float32).min, np.float32))])
    for _ in range(LAYERS):
        batch, sequence = b.dimension(hidden, 0), b.dimension(hidden, 1)
        query = b.op("Transpose", [_heads(b, _dense(b, hidden, HIDDEN, HIDDEN), batch, sequence)], perm=[0, 2, 1, 3])
        key = b.op("Transpose", [_heads(b, _dense(b, hidden, HIDDEN, HIDDEN), batch, sequence)], perm=[0, 2, 3, 1])
        value = b.op("Transpose", [_heads(b, _dense(b, hidden, HIDDEN, HIDDEN), batch, sequence)], perm=[0, 2, 1, 3])
        scores = b.op("Div", [b.op("MatMul", [query, key]), b.constant(np.array(np.sqrt(HIDDEN // HEADS), np.float32))])
        probabilities = b.op("Softmax", [b.op("Add", [scores, mask])], axis=-1)
        context = b.op("Transpose", [b.op("MatMul", [probabilities, value])], perm=[0, 2, 1, 3])
        target = b.op("Concat", [b.dimension(context, 0), b.dimension(context, 1),
                                 b.constant(np.array([HIDDEN], np.int64))], axis=0)
        attended = _dense(b, b.op("Reshape", [context, target]), HIDDEN, HIDDEN)
        hidden = _layer_norm(b, b.op("Add", [attended, hidden]))
        inner = _dense(b, hidden, HIDDEN, FEED_FORWARD)
        erf = b.op("Erf", [b.op("Div", [inner, b.constant(np.array(np.sqrt(2), np.float32))])])
        gelu = b.op("Mul", [b.op("Mul", [inner, b.op("Add", [erf, b.constant(np.array(1, np.float32))])]),
                            b.constant(np.array(0.5, np.float32))])
        hidden = _layer_norm(b, b.op("Add", [_dense(b, gelu, FEED_FORWARD, HIDDEN), hidden]))
    b.nodes.append(helper.make_node("Identity", [hidden], ["last_hidden_state"]))
    graph = helper.make_graph(
        b.nodes, "minilm",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", HIDDEN])],
        b.initializers)
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)


def mnist_cnn(path, seed=0):
    b = _Builder(seed)
    x = b.op("Relu", [b.op("Conv", ["image", b.weight(32, 1, 3, 3, scale=0.3), b.weight(32)])])
    x = b.op("Relu", [b.op("Conv", [x, b.weight(64, 32, 3, 3), b.weight(64)])])
    x = b.op("Flatten", [b.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])], axis=1)
    x = b.op("Relu", [b.op("Gemm", [x, b.weight(128, 9216, scale=0.01), b.weight(128)], transB=1)])
    x = b.op("Gemm", [x, b.weight(10, 128), b.weight(10)], transB=1)
    b.nodes.append(helper.make_node("LogSoftmax", [x], ["log_probabilities"], axis=1))
    graph = helper.make_graph(
        b.nodes, "mnist_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("log_probabilities", TensorProto.FLOAT, ["batch", 10])],
        b.initializers)
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def _save(model, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path
