"""Bad model files: each must give exit code 1 and one stderr line naming the problem, never a crash."""
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_cli


def relu_model(opset=13, **graph_changes):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def save(tmp_path, model, name="model.onnx"):
    path = tmp_path / name
    path.write_bytes(model.SerializeToString() if not isinstance(model, bytes) else model)
    return str(path)


def expect_error(binary, path, *fragments):
    code, out, err = run_cli(binary, "inspect", path)
    # inspect loads the file; `run` must fail the same way.
    code_run, _, err_run = run_cli(binary, "run", path, "--output-dir", os.path.dirname(path) + "/out")
    assert code_run == 1, "run: exit %d, stderr %r" % (code_run, err_run)
    lines = err_run.strip().splitlines()
    assert len(lines) == 1, "expected one error line, got %r" % err_run
    for fragment in fragments:
        assert fragment in lines[0], "%r not in %r" % (fragment, lines[0])
    return lines[0]


def test_valid_model_runs(binary, tmp_path):
    path = save(tmp_path, relu_model())
    x = np.array([[-1, 0, 1], [2, -3, 4]], dtype=np.float32)
    (tmp_path / "x.pb").write_bytes(numpy_helper.from_array(x, "x").SerializeToString())
    code, _, err = run_cli(binary, "run", path, "--input", str(tmp_path / "x.pb"), "--output-dir", str(tmp_path / "out"))
    assert code == 0, err
    y = numpy_helper.to_array(onnx.load_tensor(str(tmp_path / "out" / "output_0.pb")))
    np.testing.assert_array_equal(y, np.maximum(x, 0))


def test_not_protobuf(binary, tmp_path):
    expect_error(binary, save(tmp_path, b"this is plain text, not a model\n" * 10), "not a valid ONNX file")


def test_empty_file(binary, tmp_path):
    expect_error(binary, save(tmp_path, b""), "empty")


def test_truncated_file(binary, tmp_path):
    data = relu_model().SerializeToString()
    expect_error(binary, save(tmp_path, data[: len(data) // 2]), "not a valid ONNX file")


def test_missing_file(binary, tmp_path):
    expect_error(binary, str(tmp_path / "nothing.onnx"), "cannot read", "No such file")


def test_unimplemented_operator_names_op_version_and_node(binary, tmp_path):
    model = relu_model(opset=17)
    model.graph.node[0].op_type = "DFT"
    model.graph.node[0].name = "spectrum"
    expect_error(binary, save(tmp_path, model), "unsupported operator DFT", "opset 17", "spectrum")


def test_input_nobody_produces(binary, tmp_path):
    model = relu_model()
    model.graph.node[0].input[0] = "ghost"
    expect_error(binary, save(tmp_path, model), "'ghost'", "no node, graph input or initializer produces")


def test_cycle(binary, tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    nodes = [helper.make_node("Add", ["x", "b"], ["a"], name="first"),
             helper.make_node("Relu", ["a"], ["b"], name="second"),
             helper.make_node("Relu", ["a"], ["y"], name="third")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 13)])
    expect_error(binary, save(tmp_path, model), "cycle")


def test_type_mismatch(binary, tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    k = numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "k")
    model = helper.make_model(helper.make_graph([helper.make_node("Add", ["x", "k"], ["y"], name="mix")], "g", [x], [y], [k]),
                              opset_imports=[helper.make_opsetid("", 13)])
    expect_error(binary, save(tmp_path, model), "mix", "int64", "float")


def test_opset_newer_than_known(binary, tmp_path):
    expect_error(binary, save(tmp_path, relu_model(opset=99)), "opset 99")


def test_unknown_domain(binary, tmp_path):
    model = relu_model()
    model.opset_import.append(helper.make_opsetid("com.example.custom", 1))
    expect_error(binary, save(tmp_path, model), "unknown operator domain 'com.example.custom'")


def test_unsupported_element_type(binary, tmp_path):
    model = relu_model()
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.BFLOAT16
    expect_error(binary, save(tmp_path, model), "input 'x'", "BFLOAT16".lower())


def external_model(tmp_path, location, offset=0, length=None):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4], data_location=TensorProto.EXTERNAL)
    entries = {"location": location, "offset": str(offset)}
    if length is not None:
        entries["length"] = str(length)
    for key, value in entries.items():
        w.external_data.add(key=key, value=value)
    graph = helper.make_graph([helper.make_node("Relu", ["w"], ["r"], name="relu"),
                               helper.make_node("Relu", ["x"], ["y"], name="relu2")], "g", [x], [y], [w])
    graph.output.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [4]))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_external_data_loads(binary, tmp_path):
    weights = np.array([-1, 2, -3, 4], dtype=np.float32)
    (tmp_path / "weights.bin").write_bytes(b"\0" * 4096 + weights.tobytes())
    path = save(tmp_path, external_model(tmp_path, "weights.bin", offset=4096, length=16))
    (tmp_path / "x.pb").write_bytes(numpy_helper.from_array(np.ones(4, dtype=np.float32), "x").SerializeToString())
    code, _, err = run_cli(binary, "run", path, "--input", str(tmp_path / "x.pb"), "--output-dir", str(tmp_path / "out"))
    assert code == 0, err
    r = numpy_helper.to_array(onnx.load_tensor(str(tmp_path / "out" / "output_1.pb")))
    np.testing.assert_array_equal(r, np.maximum(weights, 0))


def test_external_data_missing(binary, tmp_path):
    expect_error(binary, save(tmp_path, external_model(tmp_path, "absent.bin")), "tensor 'w'", "'absent.bin' not found")


def test_external_data_short(binary, tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0" * 10)
    expect_error(binary, save(tmp_path, external_model(tmp_path, "weights.bin")), "tensor 'w'", "which has 10")


def test_external_data_wrong_length(binary, tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0" * 64)
    expect_error(binary, save(tmp_path, external_model(tmp_path, "weights.bin", length=8)), "length 8", "16 bytes")


def test_external_path_escaping_folder(binary, tmp_path):
    inner = tmp_path / "models"
    inner.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    expect_error(binary, save(inner, external_model(inner, "../secret.bin")), "outside the model's folder")


def test_external_absolute_path(binary, tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0" * 16)
    expect_error(binary, save(tmp_path, external_model(tmp_path, str(tmp_path / "weights.bin"))), "absolute path")


def test_external_symlink_escaping_folder(binary, tmp_path):
    inner = tmp_path / "models"
    inner.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    os.symlink(tmp_path / "secret.bin", inner / "link.bin")
    expect_error(binary, save(inner, external_model(inner, "link.bin")), "outside the model's folder")


@pytest.mark.parametrize("field", ["raw_data", "float_data"])
def test_initializer_with_wrong_size(binary, tmp_path, field):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])
    k = TensorProto(name="k", data_type=TensorProto.FLOAT, dims=[3])
    if field == "raw_data":
        k.raw_data = b"\0" * 8
    else:
        k.float_data.extend([1.0, 2.0])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["k"], ["y"])], "g", [x], [y], [k]),
                              opset_imports=[helper.make_opsetid("", 13)])
    expect_error(binary, save(tmp_path, model), "tensor 'k'")


def test_bad_input_file_names_the_problem(binary, tmp_path):
    path = save(tmp_path, relu_model())
    (tmp_path / "x.pb").write_bytes(numpy_helper.from_array(np.ones((3, 3), dtype=np.float32), "x").SerializeToString())
    code, _, err = run_cli(binary, "run", path, "--input", str(tmp_path / "x.pb"), "--output-dir", str(tmp_path / "out"))
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "input 'x'" in err and "dimension 0 must be 2" in err
