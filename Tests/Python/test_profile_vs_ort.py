"""benchmarks/profile_vs_ort.py's matching of ONNX Runtime's fused node names to ours."""
import os
import sys

from onnx import helper

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from profile_vs_ort import original_node  # noqa: E402


def graph(*nodes):
    producers = {output: node for node in nodes for output in node.output}
    consumers = {}
    for node in nodes:
        for name in set(node.input):
            consumers.setdefault(name, []).append(node)
    return producers, {node.name: node for node in nodes}, consumers


# conv -> Clip (ReLU6) -> conv2 -> Add(residual x) ; conv3 -> Sigmoid, Mul (SiLU); conv4 -> HardSigmoid, Mul (HardSwish);
# conv5 -> HardSigmoid (an SE gate) ; Mul(y, gate) (the SE scale, not an activation of y)
NODES = [
    helper.make_node("Conv", ["x", "w"], ["c"], name="/conv/Conv"),
    helper.make_node("Clip", ["c", "lo", "hi"], ["/clip/Clip_output_0"], name="/clip/Clip"),
    helper.make_node("Conv", ["/clip/Clip_output_0", "w2"], ["c2"], name="/conv2/Conv"),
    helper.make_node("Add", ["x", "c2"], ["s"], name="/add/Add"),
    helper.make_node("Conv", ["s", "w3"], ["c3"], name="/conv3/Conv"),
    helper.make_node("Sigmoid", ["c3"], ["g3"], name="/act3/Sigmoid"),
    helper.make_node("Mul", ["c3", "g3"], ["y3"], name="/act3/Mul"),
    helper.make_node("Conv", ["y3", "w4"], ["c4"], name="/conv4/Conv"),
    helper.make_node("HardSigmoid", ["c4"], ["g4"], name="/act4/HardSigmoid"),
    helper.make_node("Mul", ["g4", "c4"], ["y4"], name="/act4/Mul"),
    helper.make_node("Conv", ["y4", "w5"], ["c5"], name="/fc2/Conv"),
    helper.make_node("HardSigmoid", ["c5"], ["/scale_activation/HardSigmoid_output_0"], name="/scale_activation/HardSigmoid"),
    helper.make_node("Mul", ["/scale_activation/HardSigmoid_output_0", "y4"], ["out"], name="/se/Mul"),
    helper.make_node("Conv", ["out", "w6"], ["c6"], name="/project/Conv"),
]
PRODUCERS, BY_NAME, CONSUMERS = graph(*NODES)
ALL_OURS = {node.name for node in NODES}
FUSED_OURS = {"/conv/Conv", "/conv2/Conv", "/conv3/Conv", "/conv4/Conv", "/fc2/Conv", "/se/Mul", "/project/Conv"}


def test_a_conv_fused_with_its_clip_is_matched_to_our_conv():
    assert original_node("/clip/Clip_output_0_nchwc", PRODUCERS, BY_NAME, FUSED_OURS) == "/conv/Conv"


def test_a_residual_add_is_walked_back_to_the_conv_on_its_product_side():
    assert original_node("s_nchwc", PRODUCERS, BY_NAME, FUSED_OURS) == "/conv2/Conv"


def test_a_silu_fusion_named_after_its_mul_is_matched_to_the_conv():
    assert original_node("/act3/Mul/QuickGeluFusion/", PRODUCERS, BY_NAME, FUSED_OURS) == "/conv3/Conv"


def test_a_hardswish_written_out_is_walked_back_either_way_round():
    assert original_node("y4_nchwc", PRODUCERS, BY_NAME, FUSED_OURS) == "/conv4/Conv"


def test_a_squeeze_excite_scale_is_not_taken_for_an_activation():
    assert original_node("/se/Mul", PRODUCERS, BY_NAME, FUSED_OURS) == "/se/Mul"
    assert original_node("/scale_activation/HardSigmoid_output_0_nchwc", PRODUCERS, BY_NAME, FUSED_OURS) == "/fc2/Conv"


def test_the_walk_takes_the_furthest_node_our_profile_has():
    # Had we not fused the Conv with its Clip, ONNX Runtime's fused node still goes to our Conv, its bulk.
    assert original_node("/clip/Clip_output_0_nchwc", PRODUCERS, BY_NAME, ALL_OURS) == "/conv/Conv"
    # A node our profile lacks entirely keeps the model's name for it.
    assert original_node("/act3/Mul/QuickGeluFusion/", PRODUCERS, BY_NAME, {"/other"}) == "/act3/Mul"


def test_names_of_nodes_not_in_the_model_are_kept():
    assert original_node("ReorderOutput_token_3", PRODUCERS, BY_NAME, FUSED_OURS) == "ReorderOutput_token_3"


def test_a_scale_we_folded_into_the_next_convolution_goes_to_that_convolution():
    folded = FUSED_OURS - {"/se/Mul"}
    assert original_node("/se/Mul", PRODUCERS, BY_NAME, folded, CONSUMERS) == "/project/Conv"
    # Not without the consumers, nor when we kept the Mul, nor for a value read by several nodes.
    assert original_node("/se/Mul", PRODUCERS, BY_NAME, folded) == "/se/Mul"
    assert original_node("/se/Mul", PRODUCERS, BY_NAME, FUSED_OURS, CONSUMERS) == "/se/Mul"
    assert original_node("/act4/Mul", PRODUCERS, BY_NAME, {"/fc2/Conv", "/se/Mul"}, CONSUMERS) == "/act4/Mul"
