#!/usr/bin/env python3
"""A float model, its static QDQ quantization (onnxruntime.quantization, per-channel int8
weights, uint8 activations, calibrated on two random inputs) or its dynamic quantization
(`--qoperator`: the same in QOperator format, QLinearConv and friends; `--dynamic`: int8 weights, MatMulInteger/DynamicQuantizeLinear, as for transformers) and onnx-serve
against ONNX Runtime on both, side by side in one run: median milliseconds per run at each batch
size, interleaved rounds (ours as `onnx-serve bench --json` in a fresh process, ORT in a fresh
session with the same thread count). Figures, not tests; the machine is shared, read the ratios.

    python3 benchmarks/quantized_vs_ort.py MODEL.onnx --threads 2 --batches 1,8 --seconds 3 --rounds 2
    python3 benchmarks/quantized_vs_ort.py .build/models/minilm_l6.onnx --dynamic
    python3 benchmarks/quantized_vs_ort.py .build/models/resnet50.onnx --qoperator --batches 1,8
    python3 benchmarks/quantized_vs_ort.py .build/models/resnet50.onnx --batches 8 --rounds 3 --control

MODEL has one input whose leading dimension is the batch (benchmarks/export_models.py writes such
models, e.g. .build/models/resnet50.onnx; static quantization needs a float input). The quantized
model is written beside it once.
"""
import argparse
import os
import statistics
import sys

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_vs_ort import BINARY, ort_bench, ours_bench  # noqa: E402


def quantized(model, operator_format=False):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    path = model[:-len(".onnx")] + ("_qoperator.onnx" if operator_format else "_qdq.onnx")
    if os.path.exists(path):
        return path
    graph_input = onnx.load(model, load_external_data=False).graph.input[0]
    shape = [1] + [d.dim_value for d in graph_input.type.tensor_type.shape.dim[1:]]

    class RandomInputs(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.batches = iter([{graph_input.name: rng.random(shape, dtype=np.float32)} for _ in range(2)])

        def get_next(self):
            return next(self.batches, None)

    source = model
    if operator_format:
        # torch exports share biases through Identity nodes, which the QOperator quantizer cannot
        # read as initializers: its pre-processing (ORT's basic graph optimisations) folds them.
        from onnxruntime.quantization.shape_inference import quant_pre_process

        source = path[:-len(".onnx")] + "_preprocessed.onnx"
        quant_pre_process(model, source, skip_symbolic_shape=True)
    quantize_static(source, path, RandomInputs(), quant_format=QuantFormat.QOperator if operator_format else QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True)
    return path


def dynamically_quantized(model):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = model[:-len(".onnx")] + "_dynamic.onnx"
    if not os.path.exists(path):
        quantize_dynamic(model, path, weight_type=QuantType.QInt8)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--binary", default=BINARY)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dynamic", action="store_true", help="quantize dynamically instead of static QDQ")
    parser.add_argument("--qoperator", action="store_true",
                        help="quantize statically in QOperator format (QLinearConv, QLinearMatMul...) instead of QDQ")
    parser.add_argument("--control", action="store_true",
                        help="also run the float model a second time in each round (an A/A pair: its ratio to the first is the noise)")
    args = parser.parse_args()
    quantized_name = "dynamic" if args.dynamic else "qoperator" if args.qoperator else "qdq"
    models = {"float": args.model,
              quantized_name: dynamically_quantized(args.model) if args.dynamic else quantized(args.model, args.qoperator)}
    if args.control:
        models["float-AA"] = args.model
    batches = [int(b) for b in args.batches.split(",")]
    times = {}
    for round_index in range(args.rounds):
        for name, path in models.items():
            for batch in batches:
                runners = [("ours", lambda: ours_bench(args.binary, path, batch, args.threads, args.seconds)),
                           ("ort", lambda: ort_bench(path, batch, args.threads, args.seconds))]
                if round_index % 2:
                    runners.reverse()
                for engine, run in runners:
                    times.setdefault((name, batch, engine), []).append(run()["medianMilliseconds"])
    print("%-8s %5s %10s %10s %9s" % ("model", "batch", "ours ms", "ORT ms", "ours/ORT"))
    for name in models:
        for batch in batches:
            ours = statistics.median(times[(name, batch, "ours")])
            ort = statistics.median(times[(name, batch, "ort")])
            print("%-8s %5d %10.2f %10.2f %9.2f" % (name, batch, ours, ort, ours / ort))
    for batch in batches:
        for name in [n for n in models if n != "float"]:
            ratio = statistics.median(times[(name, batch, "ours")]) / statistics.median(times[("float", batch, "ours")])
            rounds = [x / y for x, y in zip(times[(name, batch, "ours")], times[("float", batch, "ours")])]
            print("ours, batch %d: %s / float = %.2f (per round: %s)" % (batch, name, ratio, ", ".join("%.2f" % r for r in rounds)))


if __name__ == "__main__":
    main()
