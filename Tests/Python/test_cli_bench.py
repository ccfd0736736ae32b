"""`onnx-serve bench`: figures in text and JSON, and --profile's per-node times."""
import json
import os

from conftest import ROOT, run_cli

DIGITS = os.path.join(ROOT, "config", "models", "digits", "1", "model.onnx")


def test_bench_json_reports_latency_and_every_node_with_profile(binary):
    code, out, err = run_cli(binary, "bench", DIGITS, "--batch", "3", "--threads", "1", "--seconds", "0.2", "--profile", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["batch"] == 3 and result["threads"] == 1 and result["runs"] >= 10
    assert 0 < result["minMilliseconds"] <= result["medianMilliseconds"] <= result["p99Milliseconds"]
    assert result["inputs"] == ["pixels[3, 64]"]
    nodes = result["profile"]
    # The shipped model's nodes after optimisation (Gemm + Relu fused), in execution order.
    assert [n["opType"] for n in nodes] == ["Mul", "FusedGemm", "Gemm", "Softmax", "ArgMax"]
    assert nodes[-1]["outputShape"] == "[3]"
    assert all(n["milliseconds"] > 0 for n in nodes)


def test_bench_text_profile_lists_op_types_and_slowest_nodes(binary):
    code, out, err = run_cli(binary, "bench", DIGITS, "--seconds", "0.1", "--profile")
    assert code == 0, err
    assert "latency: min" in out and "profile:" in out and "by op type:" in out and "slowest nodes:" in out
    assert "ArgMax 'argmax'" in out


def test_bench_without_profile_has_no_profile(binary):
    code, out, err = run_cli(binary, "bench", DIGITS, "--seconds", "0.1", "--json")
    assert code == 0, err
    assert json.loads(out).get("profile") is None


def test_bench_bad_dim_is_one_line_error(binary):
    code, out, err = run_cli(binary, "bench", DIGITS, "--dim", "batch")
    assert code != 0
    assert "NAME=VALUE" in err
