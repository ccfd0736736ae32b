"""Sequences and optionals in models built with onnx.helper: SplitToSequence, SequenceMap,
SequenceAt, ConcatFromSequence, a Loop carrying a sequence with an If that makes sequences, and a
sequence graph input, run by `onnx-serve run` (SequenceProto files in and out) and compared with
onnxruntime (rtol 1e-3, atol 1e-5; integers exactly); bad positions and element types fail with
a clear message."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_cli

FLOAT, INT64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def tensor(name, kind, dims):
    return helper.make_tensor_value_info(name, kind, dims)


def sequence(name, kind, dims=None):
    return helper.make_tensor_sequence_value_info(name, kind, dims)


def constant(name, array):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(array), name + "_value"))


def split_map_concat():
    """x [rows, 7] -> parts (SplitToSequence on axis 1 into 2, 4, 1 columns) -> SequenceMap (each part
    squared, plus its shape) -> y (ConcatFromSequence of the squares, axis 1), last (SequenceAt -1),
    count (SequenceLength), squares and shapes (sequence outputs)."""
    body = helper.make_graph(
        [helper.make_node("Mul", ["part", "part"], ["square"]), helper.make_node("Shape", ["part"], ["dims"])],
        "square", [tensor("part", FLOAT, ["rows", "columns"])], [tensor("square", FLOAT, ["rows", "columns"]), tensor("dims", INT64, [2])])
    nodes = [
        constant("sizes", np.array([2, 4, 1], dtype=np.int64)),
        constant("minus_one", np.array(-1, dtype=np.int64)),
        helper.make_node("SplitToSequence", ["x", "sizes"], ["parts"], axis=1),
        helper.make_node("SequenceMap", ["parts"], ["squares", "shapes"], body=body),
        helper.make_node("ConcatFromSequence", ["squares"], ["y"], axis=1),
        helper.make_node("SequenceAt", ["squares", "minus_one"], ["last"]),
        helper.make_node("SequenceLength", ["squares"], ["count"]),
    ]
    graph = helper.make_graph(nodes, "split_map_concat", [tensor("x", FLOAT, ["rows", 7])],
                              [tensor("y", FLOAT, ["rows", 7]), tensor("last", FLOAT, ["rows", 1]), tensor("count", INT64, []),
                               sequence("squares", FLOAT), sequence("shapes", INT64)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def loop_with_if():
    """A Loop of M iterations carrying a sequence: iteration i appends x * i when i is even (an If
    whose branches give the sequence with or without the new tensor), then the collected tensors
    are stacked on a new axis 0 (stacked) and returned as a sequence (collected)."""
    then_branch = helper.make_graph([helper.make_node("SequenceInsert", ["seq_in", "scaled"], ["appended"])],
                                    "append", [], [sequence("appended", FLOAT)])
    else_branch = helper.make_graph([helper.make_node("Identity", ["seq_in"], ["kept"])], "keep", [], [sequence("kept", FLOAT)])
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Cast", ["i"], ["i_float"], to=FLOAT),
         helper.make_node("Mul", ["x", "i_float"], ["scaled"]),
         constant("two", np.array(2, dtype=np.int64)),
         constant("zero", np.array(0, dtype=np.int64)),
         helper.make_node("Mod", ["i", "two"], ["parity"]),
         helper.make_node("Equal", ["parity", "zero"], ["even"]),
         helper.make_node("If", ["even"], ["seq_out"], then_branch=then_branch, else_branch=else_branch)],
        "body", [tensor("i", INT64, []), tensor("cond_in", BOOL, []), sequence("seq_in", FLOAT)],
        [tensor("cond_out", BOOL, []), sequence("seq_out", FLOAT)])
    nodes = [helper.make_node("SequenceEmpty", [], ["initial"], dtype=FLOAT),
             helper.make_node("Loop", ["M", "", "initial"], ["collected"], body=body),
             helper.make_node("ConcatFromSequence", ["collected"], ["stacked"], axis=0, new_axis=1)]
    graph = helper.make_graph(nodes, "loop_with_if", [tensor("x", FLOAT, [3]), tensor("M", INT64, [])],
                              [sequence("collected", FLOAT), tensor("stacked", FLOAT, ["kept", 3])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def sequence_input():
    """A sequence graph input: t inserted at `position`, then the length and the tensor at `position`."""
    nodes = [helper.make_node("SequenceInsert", ["seq", "t", "position"], ["inserted"]),
             helper.make_node("SequenceLength", ["inserted"], ["length"]),
             helper.make_node("SequenceAt", ["inserted", "position"], ["at"])]
    graph = helper.make_graph(nodes, "sequence_input",
                              [sequence("seq", FLOAT, ["n"]), tensor("t", FLOAT, ["n"]), tensor("position", INT64, [])],
                              [sequence("inserted", FLOAT), tensor("length", INT64, []), tensor("at", FLOAT, ["n"])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def write_feed(path, name, value, value_info):
    if value_info.type.HasField("sequence_type"):
        proto = numpy_helper.from_list([np.asarray(v) for v in value], name)
    else:
        proto = numpy_helper.from_array(np.asarray(value), name)
    path.write_bytes(proto.SerializeToString())


def run_ours(binary, tmp_path, model, feeds):
    """Runs `model` through `onnx-serve run`; returns each output as an array or a list of arrays."""
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    inputs = {i.name: i for i in model.graph.input}
    arguments = []
    for name, value in feeds.items():
        feed = tmp_path / ("%s.pb" % name)
        write_feed(feed, name, value, inputs[name])
        arguments += ["--input", "%s=%s" % (name, feed)]
    out = tmp_path / "out"
    code, _, err = run_cli(binary, "run", str(path), *arguments, "--output-dir", str(out))
    assert code == 0, err
    results = []
    for index, output in enumerate(model.graph.output):
        data = (out / ("output_%d.pb" % index)).read_bytes()
        if output.type.HasField("sequence_type"):
            proto = onnx.SequenceProto()
            proto.ParseFromString(data)
            assert proto.elem_type == onnx.SequenceProto.TENSOR
            results.append([numpy_helper.to_array(t) for t in proto.tensor_values])
        else:
            proto = onnx.TensorProto()
            proto.ParseFromString(data)
            results.append(numpy_helper.to_array(proto))
    return path, results


def assert_same(got, want, name):
    if isinstance(want, list):
        assert isinstance(got, list), name
        assert len(got) == len(want), name
        for index, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, np.asarray(w), "%s[%d]" % (name, index))
        return
    want = np.asarray(want)
    assert got.dtype == want.dtype, name
    assert got.shape == want.shape, name
    if want.dtype.kind in "iub":
        np.testing.assert_array_equal(got, want, err_msg=name)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5, err_msg=name)


def run_both(binary, tmp_path, model, feeds):
    path, ours = run_ours(binary, tmp_path, model, feeds)
    theirs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    assert len(ours) == len(theirs) == len(model.graph.output)
    for output, got, want in zip(model.graph.output, ours, theirs, strict=True):
        assert_same(got, want, output.name)
    return ours


@pytest.mark.parametrize("rows", [1, 3])
def test_split_map_concat(binary, tmp_path, rows):
    x = np.random.default_rng(rows).standard_normal((rows, 7)).astype(np.float32)
    y, last, count, squares, shapes = run_both(binary, tmp_path, split_map_concat(), {"x": x})
    # Independently of onnxruntime: the squares, joined again, are x squared.
    np.testing.assert_allclose(y, x * x, rtol=1e-6)
    assert [s.tolist() for s in shapes] == [[rows, 2], [rows, 4], [rows, 1]]
    assert int(count) == 3


@pytest.mark.parametrize("trips", [1, 5])
def test_loop_carries_a_sequence_through_an_if(binary, tmp_path, trips):
    x = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    collected, stacked = run_both(binary, tmp_path, loop_with_if(), {"x": x, "M": np.array(trips, dtype=np.int64)})
    evens = [i for i in range(trips) if i % 2 == 0]
    assert len(collected) == len(evens)
    np.testing.assert_allclose(stacked, np.stack([x * i for i in evens]), rtol=1e-6)


def test_loop_of_no_iterations_gives_an_empty_sequence(binary, tmp_path):
    # (ConcatFromSequence of an empty sequence fails in both engines: only the sequence is asked for.)
    model = with_outputs(loop_with_if(), ["collected"])
    feeds = {"x": np.array([1.0, -2.0, 0.5], dtype=np.float32), "M": np.array(0, dtype=np.int64)}
    (collected,) = run_both(binary, tmp_path, model, feeds)
    assert collected == []


def with_outputs(model, names):
    """The model with only the named graph outputs, and without the nodes that made only the others."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    kept = [o for o in model.graph.output if o.name in names]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    needed = set(names)
    nodes = []
    for node in reversed(model.graph.node):
        if needed.intersection(node.output):
            nodes.append(node)
            needed.update(node.input)
    del model.graph.node[:]
    model.graph.node.extend(reversed(nodes))
    return model


@pytest.mark.parametrize("position", [0, 2, -1])
def test_sequence_input(binary, tmp_path, position):
    seq = [np.array([1, 2], dtype=np.float32), np.array([3, 4], dtype=np.float32)]
    feeds = {"seq": seq, "t": np.array([9, 9], dtype=np.float32), "position": np.array(position, dtype=np.int64)}
    inserted, length, at = run_both(binary, tmp_path, sequence_input(), feeds)
    assert int(length) == 3
    # A negative position inserts before the tensor there, and SequenceAt then reads that tensor.
    assert at.tolist() == ([9, 9] if position >= 0 else [3, 4])


def run_failing(binary, tmp_path, model, feeds):
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    inputs = {i.name: i for i in model.graph.input}
    arguments = []
    for name, value in feeds.items():
        feed = tmp_path / ("%s.pb" % name)
        write_feed(feed, name, value, inputs[name])
        arguments += ["--input", "%s=%s" % (name, feed)]
    code, _, err = run_cli(binary, "run", str(path), *arguments, "--output-dir", str(tmp_path / "out"))
    assert code == 1
    return err


def test_position_out_of_range_is_refused(binary, tmp_path):
    seq = [np.array([1, 2], dtype=np.float32)]
    feeds = {"seq": seq, "t": np.array([9, 9], dtype=np.float32), "position": np.array(5, dtype=np.int64)}
    err = run_failing(binary, tmp_path, sequence_input(), feeds)
    assert "invalid input" in err and "position 5 is out of range for a sequence of 1 tensors (-1...1)" in err


def test_sequence_of_the_wrong_element_type_is_refused(binary, tmp_path):
    seq = [np.array([1, 2], dtype=np.int64)]
    feeds = {"seq": seq, "t": np.array([9, 9], dtype=np.float32), "position": np.array(0, dtype=np.int64)}
    err = run_failing(binary, tmp_path, sequence_input(), feeds)
    assert "the sequence's tensors are not all float" in err


def test_inspect_names_sequence_types(binary, tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(sequence_input().SerializeToString())
    code, out, err = run_cli(binary, "inspect", str(path))
    assert code == 0, err
    assert "  seq: seq(float[n])" in out
    assert "  inserted: seq(float[?])" in out


def test_daemon_refuses_sequence_inputs_and_outputs_and_serves_internal_sequences(binary, tmp_path):
    """The HTTP APIs carry tensors: a model with a sequence graph input or output fails to load with
    a message naming it; a model that uses sequences only inside (tensors in and out) is served."""
    import requests

    from conftest import Daemon

    repo = tmp_path / "repo"
    internal = with_outputs(split_map_concat(), ["y"])
    for name, model in {"sequence_input": sequence_input(), "sequence_output": split_map_concat(), "internal": internal}.items():
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.onnx").write_bytes(model.SerializeToString())
    daemon = Daemon(binary, "--model-repository", str(repo))
    try:
        for name, value in [("sequence_input", "'seq' is a seq(float[n])"), ("sequence_output", "'squares' is a seq(float[?])")]:
            status = requests.get(daemon.url + "/v1/models/" + name, timeout=10).json()["model_version_status"][0]
            assert status["state"] == "END", (name, status)
            assert value + "; the HTTP APIs serve models whose inputs and outputs are tensors" in status["status"]["error_message"]
        x = np.arange(14, dtype=np.float32).reshape(2, 7) / 7
        answer = requests.post(daemon.url + "/v1/models/internal:predict", json={"instances": x.tolist()}, timeout=10)
        assert answer.status_code == 200, answer.text
        np.testing.assert_allclose(np.array(answer.json()["predictions"], dtype=np.float32), x * x, rtol=1e-5)
    finally:
        assert daemon.stop() == 0
