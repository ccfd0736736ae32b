#!/usr/bin/env python3
"""ONNX conformance for onnx-serve: the backend node tests and the "light" real models.

Cases come from the installed `onnx` package (pinned in requirements.txt):
  * node tests: generated from `onnx.backend.test.case.node.collect_testcases()` (onnx no longer
    ships them on disk), written once per onnx version in the backend-test layout
    (model.onnx + test_data_set_N/input_K.pb, output_K.pb);
  * light models: onnx/backend/test/data/light/light_*.onnx with their shipped expected output,
    fed arange(n)/n in the input's shape as onnx's own test runner does.

Each case runs `onnx-serve run` in its own process (a crash fails only that case) and the outputs
are compared with the expected ones (rtol 1e-3, atol 1e-5; NaNs equal; exact for ints, bools and
strings). With --manifest, every case listed there must pass or the script exits 1. With --ort,
onnxruntime runs the same cases for comparison.

  python3 tools/conformance.py --binary .build/release/onnx-serve --manifest Tests/Conformance/manifest.txt
  python3 tools/conformance.py --filter 'conv|pool' --show-failures
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
RTOL, ATOL = 1e-3, 1e-5


# MARK: generating cases

def _value_proto(value, type_proto, name):
    """The proto of one value of this TypeProto: TensorProto, SequenceProto or OptionalProto;
    None for maps (onnx-serve has no map inputs or outputs)."""
    kind = type_proto.WhichOneof("value")
    if kind == "tensor_type":
        return value if isinstance(value, onnx.TensorProto) else numpy_helper.from_array(np.asarray(value), name)
    if kind == "sequence_type":
        if type_proto.sequence_type.elem_type.WhichOneof("value") != "tensor_type":
            return None
        return numpy_helper.from_list([np.asarray(v) for v in value], name)
    if kind == "optional_type":
        element = type_proto.optional_type.elem_type
        if value is None:
            proto = onnx.OptionalProto()
            proto.name = name
            proto.elem_type = (onnx.OptionalProto.SEQUENCE if element.WhichOneof("value") == "sequence_type"
                               else onnx.OptionalProto.TENSOR)
            return proto
        inner = _value_proto(value, element, "")
        if inner is None:
            return None
        proto = onnx.OptionalProto()
        proto.name = name
        if isinstance(inner, onnx.SequenceProto):
            proto.elem_type = onnx.OptionalProto.SEQUENCE
            proto.sequence_value.CopyFrom(inner)
        else:
            proto.elem_type = onnx.OptionalProto.TENSOR
            proto.tensor_value.CopyFrom(inner)
        return proto
    return None


def _write_value(path, value, value_info):
    """Writes one input/output in the backend-test format (TensorProto, SequenceProto or
    OptionalProto, as onnx's own test data); returns False for values onnx-serve cannot take (maps)."""
    proto = _value_proto(value, value_info.type, value_info.name)
    if proto is None:
        return False
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
    return True


def generate_node_cases(root):
    """Writes every node test case under root/node; skips work when already done for this onnx."""
    # The suffix names the data format: bump it when the way values are written changes.
    stamp = os.path.join(root, "node", ".generated-by-onnx-" + onnx.__version__ + "-sequences")
    if os.path.exists(stamp):
        return
    import warnings
    from onnx.backend.test.case.node import collect_testcases

    shutil.rmtree(os.path.join(root, "node"), ignore_errors=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    for case in cases:
        directory = os.path.join(root, "node", case.name)
        os.makedirs(directory)
        with open(os.path.join(directory, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        tensors_only = True
        for index, (inputs, outputs) in enumerate(case.data_sets):
            data_dir = os.path.join(directory, "test_data_set_%d" % index)
            os.makedirs(data_dir)
            for j, value in enumerate(inputs):
                tensors_only &= _write_value(os.path.join(data_dir, "input_%d.pb" % j), value, case.model.graph.input[j])
            for j, value in enumerate(outputs):
                tensors_only &= _write_value(os.path.join(data_dir, "output_%d.pb" % j), value, case.model.graph.output[j])
        if not tensors_only:
            # Maps (and sequences of them): onnx-serve takes tensors, sequences and optionals only.
            open(os.path.join(directory, "NOT_TENSORS"), "w").close()
    open(stamp, "w").close()


def generate_light_cases(root):
    light = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    for file in sorted(os.listdir(light)):
        if not file.endswith(".onnx"):
            continue
        name = file[: -len(".onnx")]
        directory = os.path.join(root, "light", name)
        if os.path.exists(os.path.join(directory, "test_data_set_0", "output_0.pb")):
            continue
        data_dir = os.path.join(directory, "test_data_set_0")
        os.makedirs(data_dir, exist_ok=True)
        shutil.copy(os.path.join(light, file), os.path.join(directory, "model.onnx"))
        model = onnx.load(os.path.join(directory, "model.onnx"), load_external_data=False)
        initializers = {t.name for t in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in initializers]
        for j, value_info in enumerate(inputs):
            dims = [d.dim_value for d in value_info.type.tensor_type.shape.dim]
            count = int(np.prod(dims))
            value = (np.arange(count) / count).astype(np.float32).reshape(dims)
            _write_value(os.path.join(data_dir, "input_%d.pb" % j), value, value_info)
        shutil.copy(os.path.join(light, name + "_output_0.pb"), os.path.join(data_dir, "output_0.pb"))


def list_cases(root):
    cases = []
    for kind in ("node", "light"):
        base = os.path.join(root, kind)
        for name in sorted(os.listdir(base)):
            if not name.startswith("."):
                cases.append((kind, name, os.path.join(base, name)))
    return cases


# MARK: comparing

def load_tensor(path):
    proto = onnx.TensorProto()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    return numpy_helper.to_array(proto)


def load_value(path, type_proto):
    """A value file as its TypeProto says: an array, a list of arrays, or (optional) None or either."""
    kind = type_proto.WhichOneof("value")
    with open(path, "rb") as f:
        data = f.read()
    if kind == "sequence_type":
        proto = onnx.SequenceProto()
        proto.ParseFromString(data)
        return [numpy_helper.to_array(t) for t in proto.tensor_values]
    if kind == "optional_type":
        proto = onnx.OptionalProto()
        proto.ParseFromString(data)
        if proto.HasField("tensor_value"):
            return numpy_helper.to_array(proto.tensor_value)
        if proto.HasField("sequence_value"):
            return [numpy_helper.to_array(t) for t in proto.sequence_value.tensor_values]
        return None
    return load_tensor(path)


def compare_values(expected, actual):
    """`compare` through sequences (lists) and optionals (None for none)."""
    if expected is None or actual is None:
        return None if expected is None and actual is None else "optional: %s, expected %s" % (
            "none" if actual is None else "a value", "none" if expected is None else "a value")
    if isinstance(expected, list) or isinstance(actual, list):
        if not (isinstance(expected, list) and isinstance(actual, list)):
            return "a %s, expected a %s" % (type(actual).__name__, type(expected).__name__)
        if len(expected) != len(actual):
            return "sequence of %d tensors, expected %d" % (len(actual), len(expected))
        for index, (e, a) in enumerate(zip(expected, actual)):
            reason = compare(e, a)
            if reason:
                return "tensor %d of the sequence: %s" % (index, reason)
        return None
    return compare(expected, actual)


def compare(expected, actual):
    """None when equal within tolerance, else a short reason."""
    if expected.dtype != actual.dtype:
        return "element type %s, expected %s" % (actual.dtype, expected.dtype)
    if expected.shape != actual.shape:
        return "shape %s, expected %s" % (list(actual.shape), list(expected.shape))
    # ml_dtypes' types (bfloat16, float8, float4, int4, int2) compare by value (NaNs equal).
    if expected.dtype.name.startswith(("bfloat16", "float8", "float4")):
        expected, actual = expected.astype(np.float32), actual.astype(np.float32)
    elif expected.dtype.name in ("int4", "uint4", "int2", "uint2"):
        expected, actual = expected.astype(np.int32), actual.astype(np.int32)
    if expected.dtype.kind in "fc":
        if not np.allclose(actual, expected, rtol=RTOL, atol=ATOL, equal_nan=True):
            diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
            diff = np.where(np.isnan(diff), np.inf, diff)
            return "values differ: max abs diff %.3g at %s" % (np.max(diff), np.unravel_index(np.argmax(diff), diff.shape))
        return None
    if not np.array_equal(actual, expected):
        mismatches = int(np.sum(actual != expected))
        return "values differ in %d of %d elements" % (mismatches, expected.size)
    return None


def data_sets(directory):
    return sorted(d for d in os.listdir(directory) if d.startswith("test_data_set_"))


def numbered(directory, prefix):
    files = [f for f in os.listdir(directory) if f.startswith(prefix) and f.endswith(".pb")]
    return [os.path.join(directory, f) for f in sorted(files, key=lambda f: int(f[len(prefix):-3]))]


# MARK: running

def classify(stderr):
    if "unsupported operator" in stderr:
        return "unsupported"
    if "invalid input" in stderr:
        return "input rejected"
    return "error"


def run_ours(binary, case_dir, timeout):
    if os.path.exists(os.path.join(case_dir, "NOT_TENSORS")):
        return "not tensors", "inputs or outputs are maps"
    output_types = [o.type for o in onnx.load(os.path.join(case_dir, "model.onnx"), load_external_data=False).graph.output]
    with tempfile.TemporaryDirectory() as scratch:
        for data_set in data_sets(case_dir):
            data_dir = os.path.join(case_dir, data_set)
            out_dir = os.path.join(scratch, data_set)
            command = [binary, "run", os.path.join(case_dir, "model.onnx"), "--output-dir", out_dir]
            for path in numbered(data_dir, "input_"):
                command += ["--input", path]
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                return "timeout", "no answer in %d s" % timeout
            if done.returncode < 0:
                return "crash", "killed by signal %d: %s" % (-done.returncode, done.stderr.strip()[-300:])
            if done.returncode != 0:
                message = done.stderr.strip().splitlines()
                message = message[-1] if message else "exit %d" % done.returncode
                return classify(message), message
            for index, expected_path in enumerate(numbered(data_dir, "output_")):
                actual_path = os.path.join(out_dir, os.path.basename(expected_path))
                if not os.path.exists(actual_path):
                    return "mismatch", "%s not written" % os.path.basename(expected_path)
                reason = compare_values(load_value(expected_path, output_types[index]), load_value(actual_path, output_types[index]))
                if reason:
                    return "mismatch", "%s: %s" % (os.path.basename(expected_path), reason)
    return "pass", ""


def run_ort(case_dir):
    import onnxruntime as ort

    if os.path.exists(os.path.join(case_dir, "NOT_TENSORS")):
        return "not tensors", ""
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 4
        session = ort.InferenceSession(os.path.join(case_dir, "model.onnx"), options, providers=["CPUExecutionProvider"])
        for data_set in data_sets(case_dir):
            data_dir = os.path.join(case_dir, data_set)
            graph = onnx.load(os.path.join(case_dir, "model.onnx"), load_external_data=False).graph
            input_types = {i.name: i.type for i in graph.input}
            feeds = {i.name: load_value(p, input_types[i.name]) for i, p in zip(session.get_inputs(), numbered(data_dir, "input_"))}
            results = session.run(None, feeds)
            for index, (expected_path, actual) in enumerate(zip(numbered(data_dir, "output_"), results)):
                if isinstance(actual, list):
                    actual = [np.asarray(a) for a in actual]
                elif actual is not None:
                    actual = np.asarray(actual)
                reason = compare_values(load_value(expected_path, graph.output[index].type), actual)
                if reason:
                    return "mismatch", reason
    except Exception as error:  # ORT raises many types; any is a failure of that case
        return "error", str(error).splitlines()[0][:200] if str(error) else type(error).__name__
    return "pass", ""


def read_manifest(path):
    names = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                names.append(line)
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "onnx-serve"))
    parser.add_argument("--cases", default=os.path.join(ROOT, ".build", "conformance"), help="where generated cases live")
    parser.add_argument("--filter", default=None, help="regex on case names (e.g. 'conv|pool')")
    parser.add_argument("--manifest", default=None, help="cases that must pass; exit 1 if one fails")
    parser.add_argument("--update-manifest", action="store_true", help="rewrite --manifest with the cases passing now")
    parser.add_argument("--only-manifest", action="store_true", help="run only the cases the manifest lists")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--timeout", type=int, default=300)
    parser.add_argument("--ort", action="store_true", help="also run onnxruntime on the same cases")
    parser.add_argument("--show-failures", action="store_true", help="print every failing case, not only manifest ones")
    args = parser.parse_args()

    started = time.time()
    os.makedirs(args.cases, exist_ok=True)
    generate_node_cases(args.cases)
    generate_light_cases(args.cases)
    cases = list_cases(args.cases)
    manifest = read_manifest(args.manifest) if args.manifest and os.path.exists(args.manifest) else []
    if args.filter:
        cases = [c for c in cases if re.search(args.filter, c[1])]
    if args.only_manifest:
        wanted = set(manifest)
        cases = [c for c in cases if c[1] in wanted]
    if not os.path.exists(args.binary):
        sys.exit("conformance: %s not found; build it first (swift build -c release)" % args.binary)

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        ours = dict(zip((c[1] for c in cases), pool.map(lambda c: run_ours(args.binary, c[2], args.timeout), cases)))
    theirs = {c[1]: run_ort(c[2]) for c in cases} if args.ort else {}

    counts = {}
    for status, _ in ours.values():
        counts[status] = counts.get(status, 0) + 1
    listed = set(manifest)
    regressions = sorted(name for name in listed if name in ours and ours[name][0] != "pass")
    missing = sorted(name for name in listed if name not in ours and not args.filter)
    for name in sorted(ours):
        status, reason = ours[name]
        if status != "pass" and (args.show_failures or name in listed):
            print("%-12s %s: %s" % (status, name, reason))

    passed = counts.get("pass", 0)
    for kind in ("node", "light"):
        names = [c[1] for c in cases if c[0] == kind]
        if names:
            ok = sum(1 for n in names if ours[n][0] == "pass")
            line = "%s: %d passed, %d failed of %d" % (kind, ok, len(names) - ok, len(names))
            if args.ort:
                line += "; onnxruntime %s passed %d" % (__import__("onnxruntime").__version__,
                                                        sum(1 for n in names if theirs[n][0] == "pass"))
            print(line)
    print("by outcome: " + ", ".join("%s %d" % (k, v) for k, v in sorted(counts.items())))
    if manifest:
        print("manifest: %d listed, %d failed, %d not found" % (len(listed), len(regressions), len(missing)))
    print("total: %d passed, %d failed (%.0f s)" % (passed, len(ours) - passed, time.time() - started))

    if args.update_manifest and args.manifest:
        with open(args.manifest, "w") as f:
            f.write("# ONNX conformance cases onnx-serve must pass (tools/conformance.py --manifest).\n")
            f.write("# Regenerate with --update-manifest after making more cases pass; never remove one to go green.\n")
            for name in sorted(n for n, (s, _) in ours.items() if s == "pass"):
                f.write(name + "\n")
        print("wrote %s" % args.manifest)
    if regressions or missing:
        for name in missing:
            print("missing      %s: listed in the manifest but not generated" % name)
        sys.exit(1)


if __name__ == "__main__":
    main()
