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
    # com.microsoft.Tokenizer (ONNX Runtime's contrib text operator) is not implemented. The
    # examples before it (MaxRoiPool, then the Adagrad training operator) were implemented since.
    model = relu_model(opset=19)
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    model.graph.node[0].op_type = "Tokenizer"
    model.graph.node[0].domain = "com.microsoft"
    model.graph.node[0].name = "tokens"
    expect_error(binary, save(tmp_path, model), "unsupported operator com.microsoft.Tokenizer", "(opset 1)", "tokens")


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


def test_unused_domain_imports_load(binary, tmp_path):
    # onnxruntime.quantization declares ai.onnx.preview in every model it writes, using none of it.
    model = relu_model()
    model.opset_import.extend([helper.make_opsetid("ai.onnx.preview", 1), helper.make_opsetid("com.example.custom", 1)])
    path = save(tmp_path, model)
    x = np.array([[-1, 0, 1], [2, -3, 4]], dtype=np.float32)
    (tmp_path / "x.pb").write_bytes(numpy_helper.from_array(x, "x").SerializeToString())
    code, _, err = run_cli(binary, "run", path, "--input", str(tmp_path / "x.pb"), "--output-dir", str(tmp_path / "out"))
    assert code == 0, err
    y = numpy_helper.to_array(onnx.load_tensor(str(tmp_path / "out" / "output_0.pb")))
    np.testing.assert_array_equal(y, np.maximum(x, 0))


def test_node_of_unknown_domain(binary, tmp_path):
    model = relu_model()
    model.opset_import.append(helper.make_opsetid("com.example.custom", 1))
    model.graph.node[0].domain = "com.example.custom"
    expect_error(binary, save(tmp_path, model), "unsupported operator com.example.custom.Relu", "relu")


def test_unsupported_element_type(binary, tmp_path):
    model = relu_model()
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.COMPLEX64
    expect_error(binary, save(tmp_path, model), "input 'x'", "complex64")


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


# MARK: hostile files: huge sizes, absurd attributes, sparse and external data that lie

def one_node_model(node, inputs, outputs, initializers=(), sparse=(), opset=13):
    graph = helper.make_graph([node], "g", inputs, outputs, list(initializers), sparse_initializer=list(sparse))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def relu_of(tensor):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    return one_node_model(helper.make_node("Relu", [tensor.name], ["y"]), [x], [y], [tensor])


def raw_tensor(name, dims, raw, data_type=TensorProto.FLOAT):
    return TensorProto(name=name, data_type=data_type, dims=dims, raw_data=raw)


def sparse_of(dims, values, indices, index_type=np.int64):
    return helper.make_sparse_tensor(numpy_helper.from_array(np.array(values, dtype=np.float32), "k"),
                                     numpy_helper.from_array(np.array(indices, dtype=index_type), "k_indices"), dims)


def sparse_model(sparse):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    return one_node_model(helper.make_node("Relu", ["k"], ["y"]), [x], [y], sparse=[sparse])


HOSTILE = {
    # Sizes: the declared shape is not backed by data, or cannot even be counted.
    "huge_dims": (relu_of(raw_tensor("k", [2**31, 2**31, 2**31], b"\0" * 4)), ["tensor 'k'", "too many elements"]),
    "zero_and_huge_dims": (relu_of(raw_tensor("k", [0, 2**30, 2**30, 2**30], b"")), ["tensor 'k'", "too many elements"]),
    "raw_data_short": (relu_of(raw_tensor("k", [2**20], b"\0" * 4)), ["tensor 'k'", "4 bytes of raw_data", "needs 4194304"]),
    "sparse_huge": (sparse_model(sparse_of([2**33], [1.0], [0])), ["sparse tensor 'k'", "more than the file can justify"]),
    "sparse_index_outside": (sparse_model(sparse_of([4], [1.0], [9])), ["sparse tensor 'k'", "index 9 outside shape [4]"]),
    "sparse_float_indices": (sparse_model(sparse_of([4], [1.0], [1], np.float32)), ["sparse tensor 'k'", "float indices"]),
    "declared_input_overflow": (one_node_model(helper.make_node("Relu", ["x"], ["y"]),
                                               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2**31, 2**31, 2**31])],
                                               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]),
                                ["input 'x'", "more elements than onnx-serve can count"]),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_model_is_one_line_error(binary, tmp_path, name):
    model, fragments = HOSTILE[name]
    expect_error(binary, save(tmp_path, model.SerializeToString()), *fragments)


def test_external_offset_past_any_file(binary, tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0" * 16)
    expect_error(binary, save(tmp_path, external_model(tmp_path, "weights.bin", offset=2**63 - 1)),
                 "tensor 'w'", "16 bytes from offset 9223372036854775807", "which has 16")


def test_constant_of_huge_shape_is_not_folded_at_load(binary, tmp_path):
    """A few bytes of file asking for 16 GiB: loading must not build it (folding is bounded by what
    the file holds); `inspect` still describes the model."""
    dims = numpy_helper.from_array(np.array([2**32], dtype=np.int64), "dims")
    graph = helper.make_graph([helper.make_node("ConstantOfShape", ["dims"], ["big"]),
                               helper.make_node("ReduceSum", ["big"], ["y"], keepdims=0)], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [dims])
    path = save(tmp_path, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    code, out, err = run_cli(binary, "inspect", path)
    assert code == 0, err
    assert "ConstantOfShape" in out


def test_daemon_reports_each_hostile_model_and_serves_the_others(binary, tmp_path):
    import requests

    from conftest import Daemon

    repo = tmp_path / "repo"
    for name, (model, _) in HOSTILE.items():
        (repo / name / "1").mkdir(parents=True)
        save(repo / name / "1", model.SerializeToString())
    (repo / "relu" / "1").mkdir(parents=True)
    save(repo / "relu" / "1", relu_model())
    daemon = Daemon(binary, "--model-repository", str(repo))
    try:
        for name, (_, fragments) in sorted(HOSTILE.items()):
            status = requests.get(daemon.url + "/v1/models/" + name, timeout=10).json()["model_version_status"][0]
            assert status["state"] == "END", (name, status)
            message = status["status"]["error_message"]
            assert "\n" not in message and all(fragment in message for fragment in fragments), (name, message)
        answer = requests.post(daemon.url + "/v1/models/relu:predict", json={"instances": [[-1, 0, 1], [2, -3, 4]]}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == [[0, 0, 1], [2, 0, 4]]
    finally:
        assert daemon.stop() == 0


def test_element_type_unknown_at_load_is_refused_at_run(binary, tmp_path):
    # x declares no type: Sigmoid's contract passes at load and refuses the int32 fed at run, as
    # the feed's fault (invalid input, which the daemon answers with 400).
    x = onnx.ValueInfoProto(name="x")
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y"], name="act")], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 13)])
    path = save(tmp_path, model)
    for dtype, expected_code in [(np.float32, 0), (np.int32, 1)]:
        (tmp_path / "x.pb").write_bytes(numpy_helper.from_array(np.zeros([2], dtype), "x").SerializeToString())
        code, _, err = run_cli(binary, "run", path, "--input", str(tmp_path / "x.pb"), "--output-dir", str(tmp_path / "out"))
        assert code == expected_code, err
    assert "invalid input: Sigmoid 'act': input 'X' has element type int32; T must be one of: float, float16, double" in err
