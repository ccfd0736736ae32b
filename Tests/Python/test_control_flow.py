"""Control flow (If, Loop, Scan) in models built with onnx.helper: a data-dependent Loop, nested Ifs
reading outer-scope values, Scans in every direction, run by `onnx-serve run` and compared with
onnxruntime (rtol 1e-3, atol 1e-5)."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_error
from test_recurrent import run_both

FLOAT, INT64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def value(name, kind, dims):
    return helper.make_tensor_value_info(name, kind, dims)


def constant(name, array):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(array), name + "_value"))


def while_loop(opset=17):
    """y = the Loop's carried v, doubled and shifted by an outer `bias` while sum(v) < limit (at most M
    times); sums = sum(v) of every iteration (a scan output); count = the iteration number carried."""
    body = helper.make_graph(
        [helper.make_node("Mul", ["v_in", "two"], ["doubled"]),
         helper.make_node("Add", ["doubled", "bias"], ["v_out"]),
         helper.make_node("ReduceSum", ["v_out"], ["sum"], keepdims=0),
         helper.make_node("Less", ["sum", "limit"], ["cond_out"]),
         helper.make_node("Identity", ["i"], ["count_out"])],
        "body",
        [value("i", INT64, []), value("cond_in", BOOL, []), value("v_in", FLOAT, [3]), value("count_in", INT64, [])],
        [value("cond_out", BOOL, []), value("v_out", FLOAT, [3]), value("count_out", INT64, []), value("sum", FLOAT, [])],
        [numpy_helper.from_array(np.array(2, dtype=np.float32), "two")])
    nodes = [helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array(0, dtype=np.int64), "z")),
             helper.make_node("ReduceSum", ["x"], ["start_sum"], keepdims=0),
             helper.make_node("Less", ["start_sum", "limit"], ["go"]),
             helper.make_node("Loop", ["M", "go", "x", "zero"], ["y", "count", "sums"], body=body)]
    graph = helper.make_graph(nodes, "while", [value("x", FLOAT, [3]), value("limit", FLOAT, []), value("M", INT64, [])],
                              [value("y", FLOAT, [3]), value("count", INT64, []), value("sums", FLOAT, ["iterations"])],
                              [numpy_helper.from_array(np.array([0.5, -0.25, 1], dtype=np.float32), "bias")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("x, limit, trips", [
    ([0.1, 0.2, 0.3], 100.0, 50),    # stops when the sum passes the limit
    ([0.1, 0.2, 0.3], 1e9, 7),       # stops at M
    ([5.0, 5.0, 5.0], 1.0, 50),      # never starts: zero iterations, an empty scan output
])
@pytest.mark.parametrize("opset", [11, 17])
def test_data_dependent_loop(binary, tmp_path, x, limit, trips, opset):
    feeds = {"x": np.array(x, dtype=np.float32), "limit": np.array(limit, dtype=np.float32), "M": np.array(trips, dtype=np.int64)}
    run_both(binary, tmp_path, while_loop(opset), feeds)


def nested_if():
    """x [batch, 4] -> y: if sum(x) > 0: (if max(x) > 1: x * w else x - w) else: x + Loop(3 times: acc + w)
    - the branches read x and w from two scopes out, and the else branch holds a Loop."""
    w = numpy_helper.from_array(np.array([0.5, 1.5, -2, 3], dtype=np.float32), "w")
    inner_then = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["a"])], "inner_then", [], [value("a", FLOAT, [None, 4])])
    inner_else = helper.make_graph([helper.make_node("Sub", ["x", "w"], ["b"])], "inner_else", [], [value("b", FLOAT, [None, 4])])
    then_branch = helper.make_graph(
        [helper.make_node("ReduceMax", ["x"], ["largest"], keepdims=0),
         helper.make_node("Greater", ["largest", "one"], ["big"]),
         helper.make_node("If", ["big"], ["t"], then_branch=inner_then, else_branch=inner_else)],
        "then", [], [value("t", FLOAT, [None, 4])], [numpy_helper.from_array(np.array(1, dtype=np.float32), "one")])
    loop_body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "w"], ["acc_out"]), helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "accumulate", [value("i", INT64, []), value("cond_in", BOOL, []), value("acc_in", FLOAT, [4])],
        [value("cond_out", BOOL, []), value("acc_out", FLOAT, [4])])
    else_branch = helper.make_graph(
        [constant("three", np.array(3, dtype=np.int64)), constant("zeros", np.zeros(4, dtype=np.float32)),
         helper.make_node("Loop", ["three", "", "zeros"], ["acc"], body=loop_body),
         helper.make_node("Add", ["x", "acc"], ["e"])],
        "else", [], [value("e", FLOAT, [None, 4])])
    nodes = [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0, axes=None),
             helper.make_node("Greater", ["total", "zero"], ["positive"]),
             helper.make_node("If", ["positive"], ["y"], then_branch=then_branch, else_branch=else_branch)]
    graph = helper.make_graph(nodes, "nested_if", [value("x", FLOAT, ["batch", 4])], [value("y", FLOAT, ["batch", 4])],
                              [w, numpy_helper.from_array(np.array(0, dtype=np.float32), "zero")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("x", [
    [[0.5, 2.0, 0.1, 0.1]],                     # then, inner then
    [[0.5, 0.2, 0.1, 0.1], [0.1, 0.1, 0.1, 0]],  # then, inner else
    [[-1.0, -2.0, 0.5, 0.25]],                  # else: the Loop
])
def test_nested_if_reads_outer_scopes(binary, tmp_path, x):
    run_both(binary, tmp_path, nested_if(), {"x": np.array(x, dtype=np.float32)})


def scan(opset, input_axis=0, input_direction=0, output_axis=0, output_direction=0):
    """Running sum and running product of the rows of x along `input_axis`, carried as state; the sums
    are a scan output (axis and direction as given), scaled by an outer-scope `scale`."""
    body = helper.make_graph(
        [helper.make_node("Add", ["sum_in", "row"], ["sum_out"]),
         helper.make_node("Mul", ["sum_out", "scale"], ["scaled"])],
        "body", [value("sum_in", FLOAT, [3]), value("row", FLOAT, [3])],
        [value("sum_out", FLOAT, [3]), value("scaled", FLOAT, [3])])
    attributes = dict(num_scan_inputs=1)
    if opset >= 9:
        attributes.update(scan_input_axes=[input_axis], scan_input_directions=[input_direction],
                          scan_output_axes=[output_axis], scan_output_directions=[output_direction])
    scale = numpy_helper.from_array(np.array([1, -2, 0.5], dtype=np.float32), "scale")
    if opset == 8:
        graph = helper.make_graph([helper.make_node("Scan", ["", "initial", "x"], ["final", "sums"], body=body, **attributes)],
                                  "scan8", [value("initial", FLOAT, [1, 3]), value("x", FLOAT, [1, 5, 3])],
                                  [value("final", FLOAT, [None] * (2 if opset == 8 else 1)), value("sums", FLOAT, [None] * (3 if opset == 8 else 2))], [scale])
    else:
        x_dims = [5, 3] if input_axis == 0 else [3, 5]
        nodes = [helper.make_node("Scan", ["initial", "x"], ["final", "sums"], body=body, **attributes)]
        graph = helper.make_graph(nodes, "scan", [value("initial", FLOAT, [3]), value("x", FLOAT, x_dims)],
                                  [value("final", FLOAT, [None] * (2 if opset == 8 else 1)), value("sums", FLOAT, [None] * (3 if opset == 8 else 2))], [scale])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("opset, axes", [(8, {}), (9, {}), (16, dict(input_direction=1)),
                                         (16, dict(input_axis=1, output_axis=1)), (19, dict(output_direction=1)),
                                         (11, dict(input_axis=-1, input_direction=1, output_axis=-1, output_direction=1))])
def test_scan_matches_onnxruntime(binary, tmp_path, opset, axes):
    model = scan(opset, **axes)
    rng = np.random.default_rng(3)
    x_shape = [1, 5, 3] if opset == 8 else ([3, 5] if axes.get("input_axis", 0) != 0 else [5, 3])
    feeds = {"initial": rng.uniform(-1, 1, [1, 3] if opset == 8 else [3]).astype(np.float32),
             "x": rng.uniform(-1, 1, x_shape).astype(np.float32)}
    run_both(binary, tmp_path, model, feeds)


def test_endless_loop_stops_at_the_iteration_limit(binary, tmp_path):
    body = helper.make_graph([helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Identity", ["v_in"], ["v_out"])],
                             "forever", [value("i", INT64, []), value("cond_in", BOOL, []), value("v_in", FLOAT, [1])],
                             [value("cond_out", BOOL, []), value("v_out", FLOAT, [1])])
    graph = helper.make_graph([helper.make_node("Loop", ["", "go", "x"], ["y"], body=body)], "endless",
                              [value("go", BOOL, []), value("x", FLOAT, [1])], [value("y", FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    err = run_error(binary, tmp_path, model, {"go": np.array(True), "x": np.array([1], dtype=np.float32)})
    assert "1048576 iterations, the engine's limit" in err, err


def test_deeply_nested_subgraphs_are_refused(binary, tmp_path):
    leaf = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "leaf", [], [value("y", FLOAT, [1])])
    graph = leaf
    for depth in range(20):
        graph = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=graph, else_branch=leaf)],
                                  "level%d" % depth, [], [value("y", FLOAT, [1])])
    outer = helper.make_graph(graph.node, "outer", [value("c", BOOL, []), value("x", FLOAT, [1])], [value("y", FLOAT, [1])])
    model = helper.make_model(outer, opset_imports=[helper.make_opsetid("", 17)])
    err = run_error(binary, tmp_path, model, {"c": np.array(True), "x": np.array([1], dtype=np.float32)})
    assert "nested more than 16 deep" in err, err
