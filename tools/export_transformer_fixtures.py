#!/usr/bin/env python3
"""Exports the tiny BERT and GPT-2 that Tests/Python/test_transformers.py runs through
onnxruntime.transformers.optimizer: Hugging Face models built from a config with random weights
(seeded; nothing is downloaded), 2 layers, hidden size 32, 4 heads, vocabulary 96, exported with
torch.onnx.export's TorchScript exporter at opset 17 (the graph shape ORT's optimiser fuses), with
dynamic batch and sequence. The two files (about 0.2 MB each) are committed under
Tests/Python/data, so tests and CI need neither torch nor transformers.

A one-off, run with the export environment (torch and transformers):
    /root/export-venv/bin/python tools/export_transformer_fixtures.py
"""
import os

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
DATA = os.path.join(ROOT, "Tests", "Python", "data")
SMALL = dict(hidden_size=32, num_attention_heads=4, vocab_size=96)


def export_bert(path):
    import torch
    import transformers

    config = transformers.BertConfig(num_hidden_layers=2, intermediate_size=64, max_position_embeddings=64,
                                     attn_implementation="eager", **SMALL)
    model = transformers.BertModel(config, add_pooling_layer=False).eval()

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    ids = torch.randint(0, SMALL["vocab_size"], (2, 7))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.no_grad():
        torch.onnx.export(Encoder().eval(), (ids, torch.ones_like(ids), torch.zeros_like(ids)), path, opset_version=17,
                          input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names},
                                        "last_hidden_state": {0: "batch", 1: "sequence"}},
                          dynamo=False)


def export_gpt2(path):
    import torch
    import transformers

    config = transformers.GPT2Config(n_layer=2, n_positions=64, n_embd=SMALL["hidden_size"], n_head=SMALL["num_attention_heads"],
                                     vocab_size=SMALL["vocab_size"], bos_token_id=1, eos_token_id=1,
                                     attn_implementation="eager")
    model = transformers.GPT2LMHeadModel(config).eval()
    model.config.use_cache = False

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    ids = torch.randint(0, SMALL["vocab_size"], (2, 7))
    names = ["input_ids", "attention_mask"]
    with torch.no_grad():
        torch.onnx.export(Decoder().eval(), (ids, torch.ones_like(ids)), path, opset_version=17,
                          input_names=names, output_names=["logits"],
                          dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names}, "logits": {0: "batch", 1: "sequence"}},
                          dynamo=False)


def main():
    import torch

    torch.backends.mha.set_fastpath_enabled(False)
    os.makedirs(DATA, exist_ok=True)
    for name, export in [("tiny_bert.onnx", export_bert), ("tiny_gpt2.onnx", export_gpt2)]:
        torch.manual_seed(0)
        path = os.path.join(DATA, name)
        export(path)
        print("exported", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
