"""Recurrent models as PyTorch exports them (nn.LSTM, nn.GRU, nn.RNN; stacked, bidirectional,
batch_first), built with onnx.helper in the same node structure, plus the ONNX options PyTorch
never writes (layout 1, sequence_lens, peepholes, clip, other activations), each run by
`onnx-serve run` and compared with onnxruntime (rtol 1e-3, atol 1e-5)."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_cli, run_error

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def layer_weights(rng, op, inputs, hidden, directions, name):
    """W, R, B initializers of one layer, scaled like PyTorch's uniform(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1 / np.sqrt(hidden)
    gates = GATES[op] * hidden
    make = lambda shape: rng.uniform(-bound, bound, shape).astype(np.float32)
    return [numpy_helper.from_array(make((directions, gates, inputs)), name + "_W"),
            numpy_helper.from_array(make((directions, gates, hidden)), name + "_R"),
            numpy_helper.from_array(make((directions, 2 * gates)), name + "_B")]


def stacked(op, layers, inputs, hidden, bidirectional=False, batch_first=False, initial_states=False, seed=0, **attributes):
    """PyTorch's export of nn.LSTM/GRU/RNN(inputs, hidden, layers, bidirectional, batch_first): per layer
    one ONNX node (layout 0), its Y [seq, dirs, batch, H] made [seq, batch, dirs*H] for the next
    layer by Transpose + Reshape (Squeeze for one direction), and the final states concatenated."""
    rng = np.random.default_rng(seed)
    directions = 2 if bidirectional else 1
    nodes, initializers = [], []
    x_dims = ["batch", "seq", inputs] if batch_first else ["seq", "batch", inputs]
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims)]
    state_names = ["h0", "c0"] if op == "LSTM" else ["h0"]
    if initial_states:
        for state in state_names:
            graph_inputs.append(helper.make_tensor_value_info(state, TensorProto.FLOAT, [layers * directions, "batch", hidden]))
    current = "x"
    if batch_first:
        nodes.append(helper.make_node("Transpose", ["x"], ["x_seq_first"], perm=[1, 0, 2]))
        current = "x_seq_first"
    finals = {state: [] for state in state_names}
    shape = numpy_helper.from_array(np.array([0, 0, -1], dtype=np.int64), "merge_directions")
    initializers.append(shape)
    for layer in range(layers):
        name = "l%d" % layer
        initializers += layer_weights(rng, op, inputs if layer == 0 else directions * hidden, hidden, directions, name)
        node_inputs = [current, name + "_W", name + "_R", name + "_B", ""]
        if initial_states:
            starts = numpy_helper.from_array(np.array([layer * directions], dtype=np.int64), name + "_start")
            ends = numpy_helper.from_array(np.array([(layer + 1) * directions], dtype=np.int64), name + "_end")
            axes = numpy_helper.from_array(np.array([0], dtype=np.int64), name + "_axes")
            initializers += [starts, ends, axes]
            for state in state_names:
                nodes.append(helper.make_node("Slice", [state, name + "_start", name + "_end", name + "_axes"], [name + "_" + state]))
                node_inputs.append(name + "_" + state)
        outputs = [name + "_Y", name + "_Yh"] + ([name + "_Yc"] if op == "LSTM" else [])
        nodes.append(helper.make_node(op, node_inputs, outputs, hidden_size=hidden,
                                      direction="bidirectional" if bidirectional else "forward", **attributes))
        finals["h0"].append(name + "_Yh")
        if op == "LSTM":
            finals["c0"].append(name + "_Yc")
        if bidirectional:
            nodes.append(helper.make_node("Transpose", [name + "_Y"], [name + "_Yt"], perm=[0, 2, 1, 3]))
            nodes.append(helper.make_node("Reshape", [name + "_Yt", "merge_directions"], [name + "_out"]))
        else:
            squeeze_axes = numpy_helper.from_array(np.array([1], dtype=np.int64), name + "_squeeze")
            initializers.append(squeeze_axes)
            nodes.append(helper.make_node("Squeeze", [name + "_Y", name + "_squeeze"], [name + "_out"]))
        current = name + "_out"
    output = current
    if batch_first:
        nodes.append(helper.make_node("Transpose", [current], ["y_batch_first"], perm=[1, 0, 2]))
        output = "y_batch_first"
    nodes.append(helper.make_node("Identity", [output], ["y"]))
    graph_outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 3)]
    for state, parts in finals.items():
        nodes.append(helper.make_node("Concat", parts, [state + "_n"], axis=0))
        graph_outputs.append(helper.make_tensor_value_info(state + "_n", TensorProto.FLOAT, [None] * 3))
    graph = helper.make_graph(nodes, op.lower(), graph_inputs, graph_outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def single(op, inputs, hidden, opset=14, seed=1, with_lengths=False, with_peepholes=False, initial_states=True,
           layout=0, direction="forward", **attributes):
    """One ONNX node with every input it takes, as no exporter writes it."""
    rng = np.random.default_rng(seed)
    directions = 2 if direction == "bidirectional" else 1
    initializers = layer_weights(rng, op, inputs, hidden, directions, "n")
    x_dims = ["batch", "seq", inputs] if layout else ["seq", "batch", inputs]
    state_dims = ["batch", directions, hidden] if layout else [directions, "batch", hidden]
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims)]
    node_inputs = ["x", "n_W", "n_R", "n_B", ""]
    if with_lengths:
        graph_inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, ["batch"]))
        node_inputs[4] = "lengths"
    for state in (["h0", "c0"] if op == "LSTM" else ["h0"]):
        if initial_states:
            graph_inputs.append(helper.make_tensor_value_info(state, TensorProto.FLOAT, state_dims))
        node_inputs.append(state if initial_states else "")
    if with_peepholes:
        initializers.append(numpy_helper.from_array(rng.uniform(-0.5, 0.5, (directions, 3 * hidden)).astype(np.float32), "P"))
        node_inputs.append("P")
    outputs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    if layout:
        attributes["layout"] = 1
    node = helper.make_node(op, node_inputs, outputs, hidden_size=hidden, direction=direction, **attributes)
    graph = helper.make_graph([node], op.lower(), graph_inputs,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, [None] * (4 if o == "Y" else 3)) for o in outputs],
                              initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def feeds_for(model, seq, batch, seed=2):
    """Random feeds for the model's inputs: x and states in [-1, 1), lengths from 1 to seq (the first row full)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in model.graph.input:
        dims = []
        for dim in value.type.tensor_type.shape.dim:
            dims.append({"seq": seq, "batch": batch}.get(dim.dim_param, dim.dim_value))
        if value.name == "lengths":
            feeds[value.name] = np.concatenate([[seq], rng.integers(1, seq + 1, batch - 1)]).astype(np.int32)
        else:
            feeds[value.name] = rng.uniform(-1, 1, dims).astype(np.float32)
    return feeds


def run_both(binary, tmp_path, model, feeds, expected=None, threads=None):
    """Runs `model` on `feeds` with ours (on `threads` threads, or all cores) and compares with
    onnxruntime's outputs (or `expected`)."""
    onnx.checker.check_model(model)
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    arguments = []
    for name, array in feeds.items():
        tensor = tmp_path / ("%s.pb" % name)
        tensor.write_bytes(numpy_helper.from_array(array, name).SerializeToString())
        arguments += ["--input", "%s=%s" % (name, tensor)]
    if threads is not None:
        arguments += ["--threads", str(threads)]
    out = tmp_path / "out"
    code, _, err = run_cli(binary, "run", str(path), *arguments, "--output-dir", str(out))
    assert code == 0, err
    if expected is None:
        expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    assert len(expected) == len(model.graph.output)
    for index, (output, want) in enumerate(zip(model.graph.output, expected, strict=True)):
        got = numpy_helper.to_array(onnx.load_tensor(str(out / ("output_%d.pb" % index))))
        assert got.shape == want.shape, output.name
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5, err_msg=output.name)


PYTORCH_LIKE = [
    ("lstm 2 layers", dict(op="LSTM", layers=2, inputs=8, hidden=16)),
    ("lstm bidirectional batch_first with h0 c0", dict(op="LSTM", layers=2, inputs=8, hidden=12, bidirectional=True,
                                                         batch_first=True, initial_states=True)),
    ("gru", dict(op="GRU", layers=1, inputs=8, hidden=16, linear_before_reset=1)),
    ("gru bidirectional 2 layers with h0", dict(op="GRU", layers=2, inputs=5, hidden=9, bidirectional=True,
                                                 initial_states=True, linear_before_reset=1)),
    ("rnn relu batch_first", dict(op="RNN", layers=2, inputs=6, hidden=10, batch_first=True, activations=["Relu"])),
    ("rnn tanh bidirectional", dict(op="RNN", layers=1, inputs=6, hidden=10, bidirectional=True)),
]


@pytest.mark.parametrize("case, spec", PYTORCH_LIKE, ids=[c[0] for c in PYTORCH_LIKE])
@pytest.mark.parametrize("seq, batch", [(7, 1), (5, 3)])
def test_pytorch_like_exports_match_onnxruntime(binary, tmp_path, case, spec, seq, batch):
    spec = dict(spec)
    model = stacked(spec.pop("op"), spec.pop("layers"), spec.pop("inputs"), spec.pop("hidden"), **spec)
    run_both(binary, tmp_path, model, feeds_for(model, seq, batch))


BIDIRECTIONAL = [
    ("lstm", dict(op="LSTM", layers=2, inputs=8, hidden=21, bidirectional=True, initial_states=True)),
    ("lstm batch_first", dict(op="LSTM", layers=1, inputs=5, hidden=33, bidirectional=True, batch_first=True)),
    ("gru", dict(op="GRU", layers=2, inputs=8, hidden=17, bidirectional=True, linear_before_reset=1)),
    ("rnn", dict(op="RNN", layers=1, inputs=6, hidden=7, bidirectional=True, initial_states=True)),
]


@pytest.mark.parametrize("case, spec", BIDIRECTIONAL, ids=[c[0] for c in BIDIRECTIONAL])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_bidirectional_at_each_thread_count(binary, tmp_path, case, spec, threads):
    """At two threads the directions of a bidirectional layer run at once, each on one thread with
    scratch of its own; at one and three, one after the other."""
    spec = dict(spec)
    model = stacked(spec.pop("op"), spec.pop("layers"), spec.pop("inputs"), spec.pop("hidden"), **spec)
    run_both(binary, tmp_path, model, feeds_for(model, 9, 5), threads=threads)


OPTIONS = [
    ("lstm peepholes lengths reverse", dict(op="LSTM", with_lengths=True, with_peepholes=True, direction="reverse")),
    ("lstm layout 1 bidirectional lengths", dict(op="LSTM", layout=1, direction="bidirectional", with_lengths=True)),
    ("lstm clip input_forget", dict(op="LSTM", clip=0.5, input_forget=1, with_peepholes=True)),
    ("lstm activations", dict(op="LSTM", activations=["HardSigmoid", "Softsign", "LeakyRelu"],
                              activation_alpha=[0.3, 0.05], activation_beta=[0.4])),
    ("lstm no initial states opset 7", dict(op="LSTM", opset=7, initial_states=False, direction="bidirectional")),
    ("gru reset before product lengths", dict(op="GRU", with_lengths=True, direction="bidirectional")),
    ("gru linear before reset layout 1 reverse", dict(op="GRU", layout=1, linear_before_reset=1, direction="reverse",
                                                      with_lengths=True)),
    ("gru activations clip", dict(op="GRU", activations=["Sigmoid", "Elu"], activation_alpha=[0.7], clip=1.5)),
    ("rnn lengths layout 1", dict(op="RNN", layout=1, with_lengths=True, direction="bidirectional")),
    ("rnn affine", dict(op="RNN", activations=["Affine"], activation_alpha=[0.5], activation_beta=[0.1])),
    ("rnn scaled tanh thresholded relu", dict(op="RNN", direction="bidirectional", activations=["ScaledTanh", "ThresholdedRelu"],
                                              activation_alpha=[1.3, 0.2], activation_beta=[0.6])),
]


@pytest.mark.parametrize("case, spec", OPTIONS, ids=[c[0] for c in OPTIONS])
def test_every_option_matches_onnxruntime(binary, tmp_path, case, spec):
    spec = dict(spec)
    op = spec.pop("op")
    model = single(op, inputs=7, hidden=6, **spec)
    feeds = feeds_for(model, seq=6, batch=4)
    expected = None
    if spec.get("layout"):
        # onnxruntime has no layout 1: it runs the same weights in layout 0 on transposed feeds.
        spec["layout"] = 0
        twin = single(op, inputs=7, hidden=6, **spec)
        seq_first = {name: array if name == "lengths" else array.transpose(1, 0, 2) for name, array in feeds.items()}
        session = ort.InferenceSession(twin.SerializeToString(), providers=["CPUExecutionProvider"])
        y, *states = session.run(None, seq_first)
        expected = [y.transpose(2, 0, 1, 3)] + [state.transpose(1, 0, 2) for state in states]
    run_both(binary, tmp_path, model, feeds, expected)


def test_bad_sequence_lengths_are_refused(binary, tmp_path):
    model = single("GRU", inputs=3, hidden=4, with_lengths=True)
    feeds = feeds_for(model, seq=5, batch=2)
    feeds["lengths"] = np.array([5, 6], dtype=np.int32)
    err = run_error(binary, tmp_path, model, feeds)
    assert "invalid input" in err and "sequence_lens has 6; each length must be in 0...5" in err, err
