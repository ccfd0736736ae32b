#!/usr/bin/env python3
"""Trains the shipped default model: a digit classifier on scikit-learn's bundled 8x8 digits
(1797 images, no download), and exports it to config/models/digits/1/model.onnx.

The network is a small MLP (64 -> 128 ReLU -> 10) trained with scikit-learn's MLPClassifier and
written out by hand with onnx.helper (Mul to scale pixels 0..16 to 0..1, Gemm, Relu, Gemm,
Softmax, ArgMax). Inputs: "pixels" float32 [batch, 64] (the 8x8 image row by row, values 0..16).
Outputs: "probabilities" float32 [batch, 10] and "digit" int64 [batch].

The split is fixed (test_size=0.25, random_state=0); Tests/Python/test_daemon.py sends the
held-out quarter through the daemon and checks the accuracy.

    python3 tools/train_digits.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "config", "models", "digits", "1", "model.onnx")


def split():
    digits = load_digits()
    return train_test_split(digits.data.astype(np.float32), digits.target, test_size=0.25, random_state=0)


def main():
    x_train, x_test, y_train, y_test = split()
    classifier = MLPClassifier(hidden_layer_sizes=(128,), max_iter=600, random_state=0)
    classifier.fit(x_train / 16, y_train)
    accuracy = classifier.score(x_test / 16, y_test)

    w1, w2 = (w.astype(np.float32) for w in classifier.coefs_)
    b1, b2 = (b.astype(np.float32) for b in classifier.intercepts_)
    initializers = [
        numpy_helper.from_array(np.array([1 / 16], dtype=np.float32), "scale"),
        numpy_helper.from_array(w1, "hidden.weight"), numpy_helper.from_array(b1, "hidden.bias"),
        numpy_helper.from_array(w2, "output.weight"), numpy_helper.from_array(b2, "output.bias"),
    ]
    nodes = [
        helper.make_node("Mul", ["pixels", "scale"], ["scaled"], name="scale_pixels"),
        helper.make_node("Gemm", ["scaled", "hidden.weight", "hidden.bias"], ["hidden_linear"], name="hidden"),
        helper.make_node("Relu", ["hidden_linear"], ["hidden_activation"], name="hidden_relu"),
        helper.make_node("Gemm", ["hidden_activation", "output.weight", "output.bias"], ["logits"], name="output"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["digit"], name="argmax", axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "digits",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10]),
         helper.make_tensor_value_info("digit", TensorProto.INT64, ["batch"])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="onnx-serve tools/train_digits.py")
    model.doc_string = "8x8 handwritten digit classifier (scikit-learn digits data set)"
    for key, value in {"dataset": "sklearn.datasets.load_digits", "input": "64 pixels, row by row, values 0..16",
                       "held_out_accuracy": "%.4f" % accuracy}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    onnx.save(model, OUT)
    print("wrote %s (%d bytes); held-out accuracy %.4f on %d images" % (os.path.relpath(OUT, ROOT), os.path.getsize(OUT), accuracy, len(y_test)))


if __name__ == "__main__":
    main()
