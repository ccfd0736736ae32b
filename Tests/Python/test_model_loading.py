"""What a valid model file may contain: initializers in every storage form (raw_data and the typed
*_data fields) for every element type, Constant nodes in all their attribute forms, metadata, and
symbolic dims. Each model's outputs are read back through `onnx-serve run` and compared with the
values the file holds (numpy_helper/onnx.reference decode them independently)."""
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_cli

# Element type -> (numpy dtype, typed field it is stored in without raw_data).
TYPED_FIELDS = {
    TensorProto.FLOAT: (np.float32, "float_data"),
    TensorProto.DOUBLE: (np.float64, "double_data"),
    TensorProto.FLOAT16: (np.float16, "int32_data"),
    TensorProto.INT8: (np.int8, "int32_data"),
    TensorProto.INT16: (np.int16, "int32_data"),
    TensorProto.INT32: (np.int32, "int32_data"),
    TensorProto.INT64: (np.int64, "int64_data"),
    TensorProto.UINT8: (np.uint8, "int32_data"),
    TensorProto.UINT16: (np.uint16, "int32_data"),
    TensorProto.UINT32: (np.uint32, "uint64_data"),
    TensorProto.UINT64: (np.uint64, "uint64_data"),
    TensorProto.BOOL: (np.bool_, "int32_data"),
}


def sample(dtype):
    if dtype == np.bool_:
        return np.array([[True, False, True], [False, False, True]])
    if np.issubdtype(dtype, np.floating):
        return np.array([[1.5, -2.25, 0.0], [65504.0 if dtype == np.float16 else 1e6, -0.0, 3.0]], dtype=dtype)
    info = np.iinfo(dtype)
    return np.array([[info.min, info.max, 0], [1, 2, info.max // 3]], dtype=dtype)


def typed_tensor(array, element_type, name):
    """A TensorProto holding `array` in its typed field (no raw_data)."""
    _, field = TYPED_FIELDS[element_type]
    tensor = TensorProto(name=name, data_type=element_type, dims=list(array.shape))
    flat = array.ravel()
    if element_type == TensorProto.FLOAT16:
        values = flat.view(np.uint16).astype(np.int64).tolist()  # the bits, as ONNX stores them
    elif element_type == TensorProto.BOOL:
        values = flat.astype(np.int64).tolist()
    else:
        values = flat.tolist()
    getattr(tensor, field).extend(values)
    return tensor


def outputs_model(tensors_and_types, nodes=(), metadata=None):
    """A model with no inputs whose outputs are the given initializers (through Identity)."""
    all_nodes, outputs = list(nodes), []
    for tensor, element_type in tensors_and_types:
        all_nodes.append(helper.make_node("Identity", [tensor.name], ["out_" + tensor.name]))
        outputs.append(helper.make_tensor_value_info("out_" + tensor.name, element_type, list(tensor.dims)))
    graph = helper.make_graph(all_nodes, "g", [], outputs, [t for t, _ in tensors_and_types])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="loading-test",
                              producer_version="1.2")
    if metadata:
        helper.set_model_props(model, metadata)
    return model


def run_outputs(binary, tmp_path, model):
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    out = tmp_path / "out"
    code, _, err = run_cli(binary, "run", str(path), "--output-dir", str(out))
    assert code == 0, err
    result = {}
    for index, output in enumerate(model.graph.output):
        tensor = onnx.load_tensor(str(out / ("output_%d.pb" % index)))
        assert tensor.name == output.name
        result[output.name] = numpy_helper.to_array(tensor)
    return result


@pytest.mark.parametrize("storage", ["raw", "typed"])
def test_initializers_in_every_storage_form_and_element_type(binary, tmp_path, storage):
    tensors = []
    for element_type, (dtype, _) in TYPED_FIELDS.items():
        array = sample(dtype)
        name = "t_%s" % TensorProto.DataType.Name(element_type).lower()
        tensor = numpy_helper.from_array(array, name) if storage == "raw" else typed_tensor(array, element_type, name)
        assert tensor.HasField("raw_data") == (storage == "raw")
        tensors.append((tensor, element_type))
    results = run_outputs(binary, tmp_path, outputs_model(tensors))
    for tensor, element_type in tensors:
        expected = numpy_helper.to_array(tensor)
        got = results["out_" + tensor.name]
        assert got.dtype == expected.dtype and got.shape == expected.shape, tensor.name
        np.testing.assert_array_equal(got, expected, err_msg=tensor.name)


def test_constant_node_in_every_attribute_form(binary, tmp_path):
    forms = {
        "value": helper.make_tensor("v", TensorProto.FLOAT, [2, 2], [1, 2, 3, 4]),
        "value_float": 2.5,
        "value_floats": [1.0, -1.0, 0.5],
        "value_int": 7,
        "value_ints": [3, -4, 5],
        "sparse_value": helper.make_sparse_tensor(
            helper.make_tensor("values", TensorProto.FLOAT, [2], [5.0, 6.0]),
            helper.make_tensor("indices", TensorProto.INT64, [2], [1, 4]), [2, 3]),
    }
    expected = {
        "value": np.array([[1, 2], [3, 4]], dtype=np.float32),
        "value_float": np.array(2.5, dtype=np.float32),
        "value_floats": np.array([1.0, -1.0, 0.5], dtype=np.float32),
        "value_int": np.array(7, dtype=np.int64),
        "value_ints": np.array([3, -4, 5], dtype=np.int64),
        "sparse_value": np.array([[0, 5, 0], [0, 6, 0]], dtype=np.float32),
    }
    nodes, outputs = [], []
    for form, value in forms.items():
        nodes.append(helper.make_node("Constant", [], [form], **{form: value}))
        outputs.append(helper.make_tensor_value_info(form, helper.np_dtype_to_tensor_dtype(expected[form].dtype),
                                                     list(expected[form].shape)))
    graph = helper.make_graph(nodes, "g", [], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    results = run_outputs(binary, tmp_path, model)
    for form, value in expected.items():
        assert results[form].dtype == value.dtype and results[form].shape == value.shape, form
        np.testing.assert_array_equal(results[form], value, err_msg=form)


def test_string_constants_pass_through_shape_ops(binary, tmp_path):
    words = helper.make_node("Constant", [], ["words"], value_strings=["alpha", "beta", "gamma", "delta"])
    reshape_to = numpy_helper.from_array(np.array([2, 2], dtype=np.int64), "shape")
    word = helper.make_node("Constant", [], ["word"], value_string="omega")
    nodes = [words, word, helper.make_node("Reshape", ["words", "shape"], ["grid"]),
             helper.make_node("Transpose", ["grid"], ["flipped"], perm=[1, 0])]
    graph = helper.make_graph(nodes, "g", [], [helper.make_tensor_value_info("flipped", TensorProto.STRING, [2, 2]),
                                               helper.make_tensor_value_info("word", TensorProto.STRING, [])],
                              [reshape_to])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    results = run_outputs(binary, tmp_path, model)
    assert results["flipped"].tolist() == [["alpha", "gamma"], ["beta", "delta"]]
    assert results["word"].shape == () and results["word"].item() == "omega"


def test_inspect_shows_metadata_symbolic_dims_and_opsets(binary, tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, None])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, None])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], producer_name="pytorch",
                              producer_version="2.1")
    helper.set_model_props(model, {"author": "tests", "license": "MIT"})
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    code, out, err = run_cli(binary, "inspect", str(path))
    assert code == 0, err
    for fragment in ["producer: pytorch 2.1", "batch", "ai.onnx 15", "author=tests", "license=MIT", "Relu"]:
        assert fragment in out, "%r not in inspect output:\n%s" % (fragment, out)
