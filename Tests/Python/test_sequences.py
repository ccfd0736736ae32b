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


def optional_outputs():
    """x -> some (an optional holding 2x), none (an optional with no value), y (x + 1)."""
    nodes = [constant("two", np.array(2, dtype=np.float32)), constant("one", np.array(1, dtype=np.float32)),
             helper.make_node("Mul", ["x", "two"], ["doubled"]),
             helper.make_node("Optional", ["doubled"], ["some"]),
             helper.make_node("Optional", [], ["none"], type=helper.make_tensor_type_proto(FLOAT, shape=None)),
             helper.make_node("Add", ["x", "one"], ["y"])]
    optional = helper.make_optional_type_proto(helper.make_tensor_type_proto(FLOAT, ["n"]))
    graph = helper.make_graph(nodes, "optional_outputs", [tensor("x", FLOAT, ["n"])],
                              [helper.make_value_info("some", optional), helper.make_value_info("none", optional), tensor("y", FLOAT, ["n"])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def clashing_names():
    """A sequence output 'parts' and a tensor output named 'parts/0', which Open Inference could not tell apart."""
    model = split_map_concat()
    model.graph.node.append(helper.make_node("Identity", ["y"], ["squares/0"]))
    model.graph.output.append(tensor("squares/0", FLOAT, ["rows", 7]))
    return model


def test_daemon_serves_sequence_and_optional_outputs(binary, tmp_path):
    """Over HTTP a sequence output is a JSON list of tensors (TF Serving's columnar form) or one output
    per element named <name>/<index> (Open Inference, JSON and binary); an optional is its value, or
    null / no output when empty. Results match onnxruntime. The row form, which splits outputs into
    instances, refuses them; sequence inputs and element names that clash with an output are refused
    at load with a message naming the value; a model using sequences only inside is batched as before."""
    import requests
    import tritonclient.http as httpclient

    from conftest import Daemon

    repo = tmp_path / "repo"
    models = {"sequence_input": sequence_input(), "sequences": split_map_concat(), "optionals": optional_outputs(),
              "clash": clashing_names(), "internal": with_outputs(split_map_concat(), ["y"]),
              "rows_and_sequence": with_outputs(split_map_concat(), ["y", "squares"])}
    for name, model in models.items():
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.onnx").write_bytes(model.SerializeToString())
    x = np.arange(14, dtype=np.float32).reshape(2, 7) / 7
    expected = dict(zip([o.name for o in models["sequences"].graph.output],
                        ort.InferenceSession(models["sequences"].SerializeToString()).run(None, {"x": x})))
    assert len(expected["squares"]) == 3 and len(expected["shapes"]) == 3
    v = np.array([0.5, -1.5, 2.0], dtype=np.float32)
    optional_expected = ort.InferenceSession(models["optionals"].SerializeToString()).run(None, {"x": v})
    assert optional_expected[1] is None
    daemon = Daemon(binary, "--model-repository", str(repo))
    try:
        for name, message in [("sequence_input", "input 'seq' is a seq(float[n]); the HTTP APIs take tensor and map inputs"),
                              ("clash", "output 'squares/0' could be confused with an element of the sequence output 'squares'")]:
            status = requests.get(daemon.url + "/v1/models/" + name, timeout=10).json()["model_version_status"][0]
            assert status["state"] == "END", (name, status)
            assert message in status["status"]["error_message"], status

        # TF Serving, columnar: a list of tensors per sequence output.
        answer = requests.post(daemon.url + "/v1/models/sequences:predict", json={"inputs": x.tolist()}, timeout=10)
        assert answer.status_code == 200, answer.text
        outputs = answer.json()["outputs"]
        assert sorted(outputs) == sorted(expected)
        np.testing.assert_allclose(np.array(outputs["y"], dtype=np.float32), expected["y"], rtol=1e-5)
        assert outputs["count"] == 3
        for name in ["squares", "shapes"]:
            assert len(outputs[name]) == len(expected[name])
            for got, want in zip(outputs[name], expected[name]):
                np.testing.assert_allclose(np.array(got, dtype=want.dtype), want, rtol=1e-5)
        # The row form cannot split a sequence into instances.
        answer = requests.post(daemon.url + "/v1/models/rows_and_sequence:predict", json={"instances": x.tolist()}, timeout=10)
        assert answer.status_code == 400, answer.text
        assert "output 'squares' is a sequence, which the row format cannot split into instances" in answer.json()["error"]

        # Open Inference, JSON: one output per element.
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 7], "data": x.ravel().tolist()}],
                "outputs": [{"name": "squares"}, {"name": "count"}]}
        answer = requests.post(daemon.url + "/v2/models/sequences/infer", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        got = answer.json()["outputs"]
        assert [o["name"] for o in got] == ["squares/0", "squares/1", "squares/2", "count"]
        for output, want in zip(got[:3], expected["squares"]):
            assert output["shape"] == list(want.shape) and output["datatype"] == "FP32"
            np.testing.assert_allclose(np.array(output["data"], dtype=np.float32).reshape(want.shape), want, rtol=1e-5)
        assert got[3]["data"] == [3]
        # Open Inference, binary extension, through tritonclient.
        client = httpclient.InferenceServerClient(daemon.url.replace("http://", ""))
        feed = httpclient.InferInput("x", [2, 7], "FP32")
        feed.set_data_from_numpy(x, binary_data=True)
        result = client.infer("sequences", [feed], outputs=[httpclient.InferRequestedOutput("shapes", binary_data=True)])
        for index, want in enumerate(expected["shapes"]):
            np.testing.assert_array_equal(result.as_numpy("shapes/%d" % index), want)
        assert result.as_numpy("shapes/3") is None
        # Metadata lists a sequence output with its elements' type.
        metadata = requests.get(daemon.url + "/v2/models/sequences", timeout=10).json()
        assert {"name": "shapes", "datatype": "INT64", "shape": []} in metadata["outputs"], metadata

        # Optionals: the value, or null (TF Serving) / no output (Open Inference) when empty.
        answer = requests.post(daemon.url + "/v1/models/optionals:predict", json={"inputs": v.tolist()}, timeout=10)
        assert answer.status_code == 200, answer.text
        outputs = answer.json()["outputs"]
        np.testing.assert_allclose(np.array(outputs["some"], dtype=np.float32), optional_expected[0], rtol=1e-6)
        assert outputs["none"] is None
        np.testing.assert_allclose(np.array(outputs["y"], dtype=np.float32), optional_expected[2], rtol=1e-6)
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [3], "data": v.tolist()}]}
        answer = requests.post(daemon.url + "/v2/models/optionals/infer", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        got = answer.json()["outputs"]
        assert [o["name"] for o in got] == ["some", "y"]
        np.testing.assert_allclose(np.array(got[0]["data"], dtype=np.float32), optional_expected[0], rtol=1e-6)

        # Sequences only inside: tensors in and out, batched and answered in the row form as before.
        answer = requests.post(daemon.url + "/v1/models/internal:predict", json={"instances": x.tolist()}, timeout=10)
        assert answer.status_code == 200, answer.text
        np.testing.assert_allclose(np.array(answer.json()["predictions"], dtype=np.float32), x * x, rtol=1e-5)
    finally:
        assert daemon.stop() == 0
