"""Writes the fuzz harnesses' seed corpora (Tests/Fuzz/Corpus/TARGET) and Tests/Fuzz/Models.

Seeds are small real inputs: request bodies for the shipped digits model and for
Tests/Fuzz/Models/signature.onnx, encoded bodies as they arrive over HTTP, TensorProtos of every
element type, and small models with random weights (Tests/Python/models.py and a few built here).
Deterministic (fixed seeds, gzip mtime 0): rerunning rewrites the same bytes.

    python3 tools/make_fuzz_corpus.py
"""
import base64
import gzip
import json
import os
import shutil
import struct
import sys
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "Tests", "Python"))
import models  # noqa: E402

FUZZ = os.path.join(ROOT, "Tests", "Fuzz")
MODELS = os.path.join(FUZZ, "Models")
CORPUS = os.path.join(FUZZ, "Corpus")
OPSET = [helper.make_opsetid("", 13)]
ZERO_IMAGE = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0,
              0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]

# The signature model: one input of each element type the wire formats carry, each echoed.
SIGNATURE_INPUTS = [("pixels", TensorProto.FLOAT, ["batch", 4]), ("ids", TensorProto.INT64, ["batch", 2]),
                    ("count", TensorProto.INT32, ["batch"]), ("text", TensorProto.STRING, ["batch"]),
                    ("half", TensorProto.FLOAT16, ["batch", 2]), ("flags", TensorProto.BOOL, ["batch", 2]),
                    ("small", TensorProto.UINT8, ["batch", 2]), ("wide", TensorProto.DOUBLE, ["batch", 1])]


def signature_model():
    nodes = [helper.make_node("Identity", [name], [name + "_out"]) for name, _, _ in SIGNATURE_INPUTS]
    graph = helper.make_graph(nodes, "signature",
                              [helper.make_tensor_value_info(n, t, d) for n, t, d in SIGNATURE_INPUTS],
                              [helper.make_tensor_value_info(n + "_out", t, d) for n, t, d in SIGNATURE_INPUTS])
    return helper.make_model(graph, opset_imports=OPSET)


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def compact(value):
    return json.dumps(value, separators=(",", ":"))


# MARK: request bodies

def tf_serving_bodies():
    image = [float(v) for v in ZERO_IMAGE]
    row = {"pixels": [0.5, -1.0, 2.0, 1e-3], "ids": [1, -2], "count": 3, "text": "hello", "half": [0.5, -2.0],
           "flags": [True, False], "small": [0, 255], "wide": [1e300]}
    return {
        "digits_row": compact({"instances": [ZERO_IMAGE]}),
        "digits_row_floats": json.dumps({"instances": [image, image]}),
        "digits_row_named": compact({"signature_name": "serving_default", "instances": [{"pixels": image}]}),
        "digits_columnar": compact({"inputs": [image]}),
        "digits_columnar_named": compact({"inputs": {"pixels": [image]}}),
        "signature_row": compact({"instances": [row, row]}),
        "signature_row_b64": compact({"instances": [dict(row, text={"b64": base64.b64encode(b"\x00bytes\xff").decode()})]}),
        "signature_columnar": compact({"inputs": {k: [v] for k, v in row.items()}}),
        "numbers": '{"inputs": [[NaN, Infinity, -Infinity, -0.0, 1.5e-320, 1.7976931348623157e308, 1E+2, 0.1]]}',
        "escapes": '{"instances": [{"text": "a\\u00e9\\ud83d\\ude00\\n\\"\\\\", "pixels": [1, 2, 3, 4]}]}',
    }


def open_inference_bodies():
    """(name, header length or None, body) triples."""
    image = [float(v) for v in ZERO_IMAGE]
    seeds = [
        ("digits_json", None, compact({"id": "1", "inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32",
                                                              "data": image}]})),
        ("digits_json_outputs", None, compact({
            "inputs": [{"name": "pixels", "shape": [2, 64], "datatype": "FP32", "data": [image, image]}],
            "outputs": [{"name": "digit"}, {"name": "probabilities", "parameters": {"classification": 3}}],
            "parameters": {"binary_data_output": True, "timeout": 1000000}})),
    ]
    json_inputs = [
        {"name": "pixels", "shape": [1, 4], "datatype": "FP32", "data": [0.5, -1, 2, 3]},
        {"name": "ids", "shape": [1, 2], "datatype": "INT64", "data": [1, -9007199254740993]},
        {"name": "count", "shape": [1], "datatype": "INT32", "data": [7]},
        {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hello"]},
        {"name": "half", "shape": [1, 2], "datatype": "FP16", "data": [0.5, 65504]},
        {"name": "flags", "shape": [1, 2], "datatype": "BOOL", "data": [True, False]},
        {"name": "small", "shape": [1, 2], "datatype": "UINT8", "data": [0, 255]},
        {"name": "wide", "shape": [1, 1], "datatype": "FP64", "data": [1e-300]},
    ]
    seeds.append(("signature_json", None, compact({"inputs": json_inputs})))

    # Triton's binary extension: the JSON header, then each input's bytes (BYTES: 4-byte length + bytes each).
    binary = [
        ("pixels", "FP32", [1, 4], np.array([0.5, -1, 2, 3], dtype=np.float32).tobytes()),
        ("ids", "INT64", [1, 2], np.array([1, -2], dtype=np.int64).tobytes()),
        ("count", "INT32", [1], np.array([7], dtype=np.int32).tobytes()),
        ("text", "BYTES", [1], struct.pack("<I", 5) + b"hello"),
        ("half", "FP16", [1, 2], np.array([0.5, -2], dtype=np.float16).tobytes()),
        ("flags", "BOOL", [1, 2], bytes([1, 0])),
        ("small", "UINT8", [1, 2], bytes([0, 255])),
        ("wide", "FP64", [1, 1], np.array([1e300], dtype=np.float64).tobytes()),
    ]
    header = compact({"inputs": [{"name": n, "shape": s, "datatype": d, "parameters": {"binary_data_size": len(b)}}
                                 for n, d, s, b in binary],
                      "outputs": [{"name": "text_out", "parameters": {"binary_data": True}}]})
    seeds.append(("signature_binary", len(header), header + "".join(b.decode("latin-1") for _, _, _, b in binary)))
    pixels = np.array(ZERO_IMAGE, dtype=np.float32).tobytes()
    header = compact({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32",
                                  "parameters": {"binary_data_size": len(pixels)}}]})
    seeds.append(("digits_binary", len(header), header + pixels.decode("latin-1")))
    # Inference-Header-Content-Length: 0: the body is the only input's raw bytes.
    seeds.append(("digits_raw", 0, (pixels * 2).decode("latin-1")))
    return seeds


def encoded(header_lines, body):
    return ("\r\n".join(header_lines) + "\r\n\r\n").encode() + body


def body_reader_seeds(body):
    gz = gzip.compress(body, mtime=0)
    deflated = zlib.compress(body)
    bomb = gzip.compress(b"0" * (2 << 20), mtime=0)  # inflates past the harness's 1 MiB limit
    return {
        "identity": encoded(["Content-Type: application/json", "Content-Length: %d" % len(body)], body),
        "identity_explicit": encoded(["Content-Encoding: identity"], body),
        "chunked": encoded(["Transfer-Encoding: chunked"], body),
        "gzip": encoded(["Content-Encoding: gzip", "Content-Length: %d" % len(gz)], gz),
        "gzip_chunked": encoded(["Content-Encoding: gzip", "Transfer-Encoding: chunked"], gz),
        "deflate": encoded(["Content-Encoding: deflate"], deflated),
        "gzip_truncated": encoded(["Content-Encoding: x-gzip"], gz[: len(gz) // 2]),
        "gzip_bomb": encoded(["Content-Encoding: gzip"], bomb),
        "too_long": encoded(["Content-Length: 18446744073709551615"], body),
    }


# MARK: tensors

def tensor_seeds():
    rng = np.random.default_rng(1)
    arrays = {
        "float": rng.standard_normal((2, 3)).astype(np.float32), "double": rng.standard_normal(4),
        "float16": rng.standard_normal((2, 2)).astype(np.float16), "int64": np.array([[1, -2], [3, 2**40]], dtype=np.int64),
        "int32": np.array([1, -2, 3], dtype=np.int32), "int16": np.array([-300, 7], dtype=np.int16),
        "int8": np.array([-1, 2], dtype=np.int8), "uint8": np.arange(6, dtype=np.uint8).reshape(1, 2, 3),
        "uint16": np.array([65535, 1], dtype=np.uint16), "uint32": np.array([2**32 - 1], dtype=np.uint32),
        "uint64": np.array([2**64 - 1, 0], dtype=np.uint64), "bool": np.array([True, False, True]),
        "scalar": np.array(2.5, dtype=np.float32), "empty": np.zeros((0, 4), dtype=np.float32),
        "string": np.array([b"a", b"\xffbytes"], dtype=object),
    }
    seeds = {}
    for name, array in arrays.items():
        raw = numpy_helper.from_array(array, name)
        seeds[name + "_raw"] = raw.SerializeToString()
        if name != "string":
            typed = helper.make_tensor(name, raw.data_type, array.shape, array.flatten().tolist(), raw=False)
            seeds[name + "_typed"] = typed.SerializeToString()
    external = TensorProto(name="external", data_type=TensorProto.FLOAT, dims=[4], data_location=TensorProto.EXTERNAL)
    external.external_data.add(key="location", value="weights.bin")
    seeds["external"] = external.SerializeToString()
    return seeds


# MARK: models

def model_seeds(folder):
    rng = np.random.default_rng(2)
    weights = lambda name, *shape: numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
    paths = {
        "digits": os.path.join(ROOT, "config", "models", "digits", "1", "model.onnx"),
        "relu": os.path.join(ROOT, "Tests", "Python", "data", "relu.onnx"),
        "cnn": models.cnn(os.path.join(folder, "cnn.onnx")),
        "mixed": models.mixed(os.path.join(folder, "mixed.onnx")),
        "text": models.text(os.path.join(folder, "text.onnx")),
        "types": models.types(os.path.join(folder, "types.onnx")),
        "lookup": models.lookup(os.path.join(folder, "lookup.onnx")),
    }
    seeds = {name: open(path, "rb").read() for name, path in paths.items()}

    def model(name, nodes, inputs, outputs, initializers=(), opset=13, **kwargs):
        graph = helper.make_graph(nodes, name, inputs, outputs, list(initializers), **kwargs)
        seeds[name] = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()

    value = helper.make_tensor_value_info
    x4 = value("x", TensorProto.FLOAT, ["batch", 4])

    # Shape arithmetic folded at load: Shape, Gather, Concat, Reshape, ConstantOfShape, Expand, Range, Tile.
    def const(name, array):
        return numpy_helper.from_array(np.array(array), name)
    model("shapes", [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        helper.make_node("Concat", ["b", "two", "two"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["r"]),
        helper.make_node("ConstantOfShape", ["dims"], ["filled"], value=numpy_helper.from_array(np.array([1.5], dtype=np.float32))),
        helper.make_node("Expand", ["filled", "dims"], ["e"]),
        helper.make_node("Range", ["start", "limit", "delta"], ["ramp"]),
        helper.make_node("Tile", ["ramp", "reps"], ["tiled"]),
        helper.make_node("Unsqueeze", ["tiled", "axes"], ["u"]),
        helper.make_node("Add", ["r", "e"], ["y"]),
        helper.make_node("Mul", ["u", "u"], ["z"]),
    ], [x4], [value("y", TensorProto.FLOAT, None), value("z", TensorProto.FLOAT, None)],
        [const("zero", np.int64(0)), const("two", np.array([2], dtype=np.int64)), const("dims", np.array([2, 2], dtype=np.int64)),
         const("start", np.float32(0)), const("limit", np.float32(6)), const("delta", np.float32(1.5)),
         const("reps", np.array([2], dtype=np.int64)), const("axes", np.array([0], dtype=np.int64))])

    # External data: `weights.bin` (Tests/Fuzz/Models) holds 256 float32 values 0..255.
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 4], data_location=TensorProto.EXTERNAL)
    for key, val in {"location": "weights.bin", "offset": "64", "length": "64"}.items():
        w.external_data.add(key=key, value=val)
    model("external", [helper.make_node("MatMul", ["x", "w"], ["y"])], [x4], [value("y", TensorProto.FLOAT, ["batch", 4])], [w])

    # A sparse initializer, a Constant node with each value attribute, Conv/Pool attributes.
    sparse = helper.make_sparse_tensor(numpy_helper.from_array(np.array([1.0, 2.0], dtype=np.float32), "sp"),
                                       numpy_helper.from_array(np.array([1, 6], dtype=np.int64), "sp_indices"), [2, 4])
    seeds_graph = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value_floats=[1.0, 2.0, 3.0, 4.0]),
         helper.make_node("Constant", [], ["k"], value_int=3),
         helper.make_node("Add", ["x", "c"], ["a"]),
         helper.make_node("MatMul", ["a", "spT"], ["m"]),
         helper.make_node("Transpose", ["sp"], ["spT"], perm=[1, 0]),
         helper.make_node("Cast", ["k"], ["kf"], to=TensorProto.FLOAT),
         helper.make_node("Mul", ["m", "kf"], ["y"])],
        "sparse", [x4], [value("y", TensorProto.FLOAT, ["batch", 2])], sparse_initializer=[sparse])
    seeds["sparse"] = helper.make_model(seeds_graph, opset_imports=OPSET).SerializeToString()

    image = value("image", TensorProto.FLOAT, ["batch", 2, 8, 8])
    model("windows", [
        helper.make_node("Conv", ["image", "cw", "cb"], ["c"], pads=[1, 0, 1, 0], strides=[2, 1], dilations=[1, 2], group=2),
        helper.make_node("ConvTranspose", ["c", "tw"], ["t"], strides=[2, 2], output_padding=[1, 1]),
        helper.make_node("MaxPool", ["t"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
        helper.make_node("AveragePool", ["p"], ["q"], kernel_shape=[2, 2], auto_pad="SAME_UPPER"),
        helper.make_node("Resize", ["q", "", "scales"], ["r"], mode="linear"),
        helper.make_node("Pad", ["r", "pads"], ["padded"], mode="reflect"),
        helper.make_node("Slice", ["padded", "starts", "ends", "axes", "steps"], ["sl"]),
        helper.make_node("Softmax", ["sl"], ["y"], axis=-1),
    ], [image], [value("y", TensorProto.FLOAT, None)],
        [weights("cw", 4, 1, 3, 3), weights("cb", 4), weights("tw", 4, 2, 2, 2),
         const("scales", np.array([1, 1, 2, 2], dtype=np.float32)), const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64)),
         const("starts", np.array([1], dtype=np.int64)), const("ends", np.array([-1], dtype=np.int64)),
         const("axes", np.array([3], dtype=np.int64)), const("steps", np.array([2], dtype=np.int64))])

    tokens = value("tokens", TensorProto.INT64, ["batch", "sequence"])
    model("encoder", [
        helper.make_node("Gather", ["table", "tokens"], ["e"], axis=0),
        helper.make_node("LayerNormalization", ["e", "gamma", "beta"], ["n"], axis=-1, epsilon=1e-5),
        helper.make_node("MatMul", ["n", "proj"], ["m"]),
        helper.make_node("Add", ["m", "bias"], ["a"]),
        helper.make_node("Erf", ["a"], ["g"]),
        helper.make_node("ReduceMean", ["g"], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("TopK", ["pooled", "k"], ["values", "indices"], axis=-1),
        helper.make_node("Split", ["values"], ["s1", "s2"], axis=1),
    ], [tokens], [value("s1", TensorProto.FLOAT, None), value("s2", TensorProto.FLOAT, None),
                  value("indices", TensorProto.INT64, None)],
        [weights("table", 16, 8), const("gamma", np.ones(8, dtype=np.float32)), const("beta", np.zeros(8, dtype=np.float32)),
         weights("proj", 8, 6), weights("bias", 6), const("k", np.array([4], dtype=np.int64))])
    return seeds


def main():
    os.makedirs(MODELS, exist_ok=True)
    onnx.save(signature_model(), os.path.join(MODELS, "signature.onnx"))
    with open(os.path.join(MODELS, "weights.bin"), "wb") as f:
        f.write(np.arange(256, dtype=np.float32).tobytes())
    shutil.rmtree(CORPUS, ignore_errors=True)

    for name, body in tf_serving_bodies().items():
        write("tfserving", name, body)
        write("json", name, body)
    for name, header_length, body in open_inference_bodies():
        prefix = struct.pack("<I", 0xFFFFFFFF if header_length is None else header_length)
        payload = body.encode("latin-1")
        write("openinference", name, prefix + payload)
        if header_length is None:
            write("json", "oi_" + name, payload)
    write("json", "deep", "[" * 100 + "]" * 100)
    write("json", "mixed_values", '{"a": [true, false, null, "x", {"b": []}, -1.5e-7], "": {}}')
    for name, data in body_reader_seeds(tf_serving_bodies()["digits_row"].encode()).items():
        write("bodyreader", name, data)
    for name, data in tensor_seeds().items():
        write("tensorproto", name, data)
    scratch = os.path.join(ROOT, ".build-fuzz", "seed-models")
    for name, data in model_seeds(scratch).items():
        write("modelloader", name, data)
    shutil.rmtree(scratch, ignore_errors=True)
    for target in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, target))
        size = sum(os.path.getsize(os.path.join(CORPUS, target, f)) for f in files)
        print("%s: %d seeds, %d bytes" % (target, len(files), size))


if __name__ == "__main__":
    main()
