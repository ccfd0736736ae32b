#!/usr/bin/env python3
"""Exports the benchmark set to ONNX: torchvision CNNs and ViT, two BERT-style encoders built from
Hugging Face configs, and a small MNIST CNN. Weights are random (speed does not depend on them,
and nothing is downloaded); opset 13 (14 for ViT, whose attention needs it), as a plain `torch.onnx.export` gives it (LayerNorm written
out as ReduceMean/Sub/Pow/Sqrt/Div, GELU as Erf, HardSwish as HardSigmoid + Mul), and a dynamic
batch dimension. The encoders take `input_ids` only (attention mask all ones), 128 tokens.

Needs torch, torchvision and transformers (several GB, not in requirements.txt; a one-off
export, not run by tests or CI):
    python3 -m venv --system-site-packages /tmp/export && /tmp/export/bin/pip install torch torchvision transformers
    /tmp/export/bin/python benchmarks/export_models.py        # writes .build/models/*.onnx
"""
import argparse
import os

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
SEQUENCE = 128

# name -> what builds it (see `build`), in the order the benchmarks list them.
MODELS = {
    "efficientnet_b0": "torchvision",
    "mobilenet_v3_small": "torchvision",
    "mnist_cnn": "mnist",
    "mobilenet_v2": "torchvision",
    "convnext_tiny": "torchvision",
    "googlenet": "torchvision",
    "squeezenet1_1": "torchvision",
    "minilm_l6": "bert",
    "shufflenet_v2_x1_0": "torchvision",
    "densenet121": "torchvision",
    "resnet18": "torchvision",
    "resnet50": "torchvision",
    "bert_base": "bert",
    "vit_b_16": "torchvision",
}

# BertConfig arguments: MiniLM-L6 (as sentence-transformers/all-MiniLM-L6-v2) and BERT-base.
BERT_CONFIGS = {
    "minilm_l6": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
    "bert_base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


def build(name):
    """The model in eval mode and an example input."""
    import torch

    kind = MODELS[name]
    if kind == "torchvision":
        import torchvision

        extra = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
        return getattr(torchvision.models, name)(weights=None, **extra).eval(), torch.randn(1, 3, 224, 224)
    if kind == "mnist":
        # The classic small MNIST CNN (as the ONNX model zoo's mnist-8): two 5x5 convolutions
        # with ReLU and max pooling, then one fully connected layer.
        model = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 16, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(3),
            torch.nn.Flatten(), torch.nn.Linear(16 * 4 * 4, 10))
        return model.eval(), torch.randn(1, 1, 28, 28)
    import transformers

    config = transformers.BertConfig(**BERT_CONFIGS[name], attn_implementation="eager")
    encoder = transformers.BertModel(config, add_pooling_layer=False).eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids):
            return self.encoder(input_ids=input_ids).last_hidden_state

    return LastHiddenState().eval(), torch.randint(0, config.vocab_size, (1, SEQUENCE))


def export(name, directory):
    import torch

    path = os.path.join(directory, name + ".onnx")
    if os.path.exists(path):
        return path
    torch.manual_seed(0)
    model, example = build(name)
    opset = 14 if name == "vit_b_16" else 13  # ViT's attention exports from opset 14 on
    os.makedirs(directory, exist_ok=True)
    input_name = "input_ids" if MODELS[name] == "bert" else "input"
    output_name = "last_hidden_state" if MODELS[name] == "bert" else "logits"
    # torch's fused attention kernel has no ONNX export; its plain path does.
    torch.backends.mha.set_fastpath_enabled(False)
    with torch.no_grad():
        torch.onnx.export(model, (example,), path, opset_version=opset, input_names=[input_name],
                          output_names=[output_name], dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
                          dynamo=False)
    print("exported", path)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(ROOT, ".build", "models"))
    parser.add_argument("models", nargs="*", default=list(MODELS), help="default: all of %s" % ", ".join(MODELS))
    args = parser.parse_args()
    for name in args.models:
        if name not in MODELS:
            parser.error("unknown model %s; known: %s" % (name, ", ".join(MODELS)))
        export(name, args.out)


if __name__ == "__main__":
    main()
