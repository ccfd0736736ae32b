#!/usr/bin/env python3
"""A BERT as torch exports it (MatMul + Softmax + MatMul attention) against the same BERT after
onnxruntime.transformers.optimizer (fused com.microsoft Attention, SkipLayerNormalization, BiasGelu,
EmbedLayerNormalization...): onnx-serve (`onnx-serve bench --json`, a fresh process per figure) and
ONNX Runtime on both, median milliseconds per run at each batch size, interleaved rounds. Figures,
not tests; the machine is shared, read the ratios.

    /root/export-venv/bin/python benchmarks/fused_attention_bert.py --export .build/models/bert_base_masked.onnx
    python3 benchmarks/fused_attention_bert.py .build/models/bert_base_masked.onnx --threads 2 --batches 1,8

`--export` (torch and transformers needed, once) writes BERT-base (12 layers, hidden 768, 12 heads,
random weights from a config, nothing downloaded) with input_ids and attention_mask of dynamic batch
and sequence (token types all 0 inside, since `onnx-serve bench` feeds integers in [0, 10)), at opset 17 with the TorchScript exporter: the graph shape ORT's
optimiser fuses (without the mask input it leaves attention unfused). The optimised model is
written beside the original once (`<name>_fused.onnx`). Runs use --sequence tokens (default 128);
integer inputs are random in [0, 10) for both engines, as `onnx-serve bench` makes them.
"""
import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_vs_ort import BINARY, ort_session  # noqa: E402


def export(path):
    import torch
    import transformers

    torch.manual_seed(0)
    torch.backends.mha.set_fastpath_enabled(False)
    config = transformers.BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                                     attn_implementation="eager")
    model = transformers.BertModel(config, add_pooling_layer=False).eval()

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=torch.zeros_like(input_ids)).last_hidden_state

    ids = torch.randint(0, config.vocab_size, (2, 16))
    names = ["input_ids", "attention_mask"]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(Encoder().eval(), (ids, torch.ones_like(ids)), path, opset_version=17,
                          input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names},
                                        "last_hidden_state": {0: "batch", 1: "sequence"}},
                          dynamo=False)
    print("exported", path)


def ours_bench(binary, model, batch, sequence, threads, seconds):
    out = subprocess.run([binary, "bench", model, "--batch", str(batch), "--dim", "sequence=%d" % sequence,
                          "--threads", str(threads), "--seconds", str(seconds), "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("onnx-serve bench %s failed: %s" % (model, out.stderr.strip()))
    return json.loads(out.stdout)["medianMilliseconds"]


def ort_bench(model, batch, sequence, threads, seconds):
    session = ort_session(model, threads)
    rng = np.random.default_rng(0)
    feeds = {given.name: rng.integers(0, 10, (batch, sequence)).astype(np.int64) for given in session.get_inputs()}
    for _ in range(3):
        session.run(None, feeds)
    times = []
    start = time.perf_counter()
    while len(times) < 10 or time.perf_counter() - start < seconds:
        began = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def fused(model, heads, hidden):
    from onnxruntime.transformers import optimizer

    path = model[:-len(".onnx")] + "_fused.onnx"
    if not os.path.exists(path):
        optimizer.optimize_model(model, model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0).save_model_to_file(path)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--export", action="store_true", help="write the unoptimised model to MODEL and stop")
    parser.add_argument("--sequence", type=int, default=128)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--binary", default=BINARY)
    args = parser.parse_args()
    if args.export:
        return export(args.model)
    optimised = fused(args.model, args.heads, args.hidden)
    counts = collections.Counter(node.op_type for node in onnx.load(optimised, load_external_data=False).graph.node
                                 if node.domain == "com.microsoft")
    print("fused operators:", dict(sorted(counts.items())))
    models = {"unfused": args.model, "fused": optimised}
    for batch in [int(b) for b in args.batches.split(",")]:
        figures = collections.defaultdict(list)
        for _ in range(args.rounds):
            for kind, path in models.items():
                figures["ours " + kind].append(ours_bench(args.binary, path, batch, args.sequence, args.threads, args.seconds))
                figures["ort " + kind].append(ort_bench(path, batch, args.sequence, args.threads, args.seconds))
        best = {key: min(values) for key, values in figures.items()}
        print("batch %d, sequence %d, %d threads: ours unfused %.1f ms, fused %.1f ms (fused/unfused %.2f); ORT unfused %.1f ms, fused %.1f ms;"
              " ours/ORT fused %.2f" % (batch, args.sequence, args.threads, best["ours unfused"], best["ours fused"],
                                         best["ours fused"] / best["ours unfused"], best["ort unfused"], best["ort fused"],
                                         best["ours fused"] / best["ort fused"]))


if __name__ == "__main__":
    main()
