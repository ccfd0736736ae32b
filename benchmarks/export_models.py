#!/usr/bin/env python3
"""Exports the torchvision models the benchmarks use to ONNX (random weights: speed does not
depend on them, and nothing is downloaded), opset 13, dynamic batch dimension.

Needs torch and torchvision (several GB, not in requirements.txt):
    pip install torch torchvision
    python3 benchmarks/export_models.py            # writes .build/models/*.onnx
"""
import argparse
import os

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
MODELS = ("resnet50", "mobilenet_v2", "resnet18")


def export(name, directory, opset=13):
    import torch
    import torchvision

    path = os.path.join(directory, name + ".onnx")
    if os.path.exists(path):
        return path
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    example = torch.randn(1, 3, 224, 224)
    os.makedirs(directory, exist_ok=True)
    torch.onnx.export(model, example, path, opset_version=opset, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    print("exported", path)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(ROOT, ".build", "models"))
    parser.add_argument("models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    for name in args.models:
        export(name, args.out)


if __name__ == "__main__":
    main()
