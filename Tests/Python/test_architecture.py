"""The one-way module flow of the README's table: no module imports one drawn above it."""
import os
import re

from conftest import ROOT

ALLOWED = {
    "Tensors": set(),
    "Kernels": {"Tensors", "COpenBLAS", "CPUDetection"},
    "Engine": {"Tensors", "Kernels", "CTurboJPEG", "CPNG", "CWebP", "CSTBImage", "CTIFF", "COpenJPEG"},
    "ONNX": {"Tensors", "Engine", "SwiftProtobuf"},
    "Serving": {"Engine", "ONNX", "Tensors", "Kernels", "Logging", "Prometheus", "Yams"},
    "HTTP": {"CMicroHTTPD", "CZlib"},
    "API": {"HTTP", "Serving", "Tensors", "Logging"},
}
SYSTEM = {"Foundation", "FoundationEssentials", "Dispatch", "Glibc", "Synchronization", "Darwin"}
IMPORT = re.compile(r"^\s*(?:@_exported\s+)?(?:public\s+|package\s+|internal\s+)?import\s+(?:(?:struct|class|enum|func)\s+)?(\w+)", re.M)


def test_imports_follow_the_module_table():
    problems = []
    for module, allowed in ALLOWED.items():
        for directory, _, files in os.walk(os.path.join(ROOT, "Sources", module)):
            for name in files:
                if not name.endswith(".swift"):
                    continue
                text = open(os.path.join(directory, name)).read()
                for imported in IMPORT.findall(text):
                    if imported not in allowed and imported not in SYSTEM:
                        problems.append("%s/%s imports %s" % (module, name, imported))
    assert not problems, "\n".join(problems)


def test_only_one_kernels_file_touches_openblas():
    users = []
    for directory, _, files in os.walk(os.path.join(ROOT, "Sources")):
        for name in files:
            if name.endswith(".swift") and re.search(r"^\s*(?:\w+\s+)?import\s+COpenBLAS\b", open(os.path.join(directory, name)).read(), re.M):
                users.append(os.path.relpath(os.path.join(directory, name), ROOT))
    assert users == ["Sources/Kernels/BLAS.swift"], users
