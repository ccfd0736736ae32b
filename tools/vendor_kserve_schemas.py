#!/usr/bin/env python3
"""Writes the OpenAPI schemas of KServe's ClusterServingRuntime and InferenceService CRDs into
Tests/Python/data/kserve/, where test_kubernetes.py checks deploy/kubernetes/kserve/ against them.

    python3 tools/vendor_kserve_schemas.py KSERVE_GIT_DIR v0.20.0

KSERVE_GIT_DIR is a clone of github.com/kserve/kserve (a bare one is fine); the schemas are read
from the tag's config/crd/full/ and written as JSON with their source in SOURCE.txt."""
import json
import os
import subprocess
import sys

import yaml

CRDS = {
    # file written: (CRD file in KServe's repository, API version whose schema is taken)
    "clusterservingruntime.v1alpha1.json": ("config/crd/full/serving.kserve.io_clusterservingruntimes.yaml", "v1alpha1"),
    "inferenceservice.v1beta1.json": ("config/crd/full/serving.kserve.io_inferenceservices.yaml", "v1beta1"),
}
OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "Python", "data", "kserve")


def main(git_dir, tag):
    commit = subprocess.run(["git", "-C", git_dir, "rev-parse", tag + "^{commit}"], check=True, capture_output=True,
                            text=True).stdout.strip()
    lines = ["KServe CRD schemas (spec.versions[].schema.openAPIV3Schema), unmodified, as JSON.",
             "Source: github.com/kserve/kserve, tag %s, commit %s" % (tag, commit),
             "Written by: python3 tools/vendor_kserve_schemas.py KSERVE_GIT_DIR %s" % tag, ""]
    for name, (path, version) in CRDS.items():
        text = subprocess.run(["git", "-C", git_dir, "show", "%s:%s" % (commit, path)], check=True, capture_output=True,
                              text=True).stdout
        crd = yaml.safe_load(text)
        schema = next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == version)
        with open(os.path.join(OUT, name), "w") as file:
            json.dump(schema, file, separators=(",", ":"), sort_keys=True)
            file.write("\n")
        lines.append("%s: %s, version %s (kind %s)" % (name, path, version, crd["spec"]["names"]["kind"]))
    with open(os.path.join(OUT, "SOURCE.txt"), "w") as file:
        file.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: vendor_kserve_schemas.py KSERVE_GIT_DIR TAG")
    main(sys.argv[1], sys.argv[2])
