"""deploy/kubernetes/, offline: core kinds against Kubernetes' schemas (kubernetes-validate), KServe's
kinds against the CRD schemas vendored in data/kserve/ (check-jsonschema), and the settings that
make rolling restarts lossless (probes, drain shorter than the grace period)."""
import copy
import json
import os
import shutil
import subprocess

import pytest
import requests
import yaml

from conftest import ROOT, Daemon

KUBERNETES = os.path.join(ROOT, "deploy", "kubernetes")
KSERVE = os.path.join(KUBERNETES, "kserve")
SCHEMAS = os.path.join(ROOT, "Tests", "Python", "data", "kserve")
# The HTTP server's grace period for in-flight requests after the drain (ServeCommand.swift: server.stop).
SERVER_STOP_GRACE_SECONDS = 10


def load(path):
    with open(path) as file:
        return yaml.safe_load(file)


def core_manifests():
    return load(os.path.join(KUBERNETES, "kustomization.yaml"))["resources"]


def manifests_of_kind(kind):
    found = [load(os.path.join(KUBERNETES, name)) for name in core_manifests()]
    found = [document for document in found if document["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


def tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail("%s not found: deploy/setup.sh installs it (requirements.txt)" % name)
    return path


# MARK: Schemas

def test_kustomization_lists_every_core_manifest():
    on_disk = sorted(name for name in os.listdir(KUBERNETES) if name.endswith(".yaml") and name != "kustomization.yaml")
    assert sorted(core_manifests()) == on_disk
    kinds = {load(os.path.join(KUBERNETES, name))["kind"] for name in on_disk}
    assert kinds == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                     "PersistentVolumeClaim"}


def test_core_manifests_are_valid_kubernetes():
    names = core_manifests()
    done = subprocess.run([tool("kubernetes-validate"), "--strict", *[os.path.join(KUBERNETES, name) for name in names]],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in names:
        assert "%s passed" % name in done.stdout, done.stdout


def test_kubernetes_validate_rejects_a_misspelt_field(tmp_path):
    text = open(os.path.join(KUBERNETES, "deployment.yaml")).read()
    path = tmp_path / "deployment.yaml"
    path.write_text(text.replace("failureThreshold: 3", "failureTreshold: 3"))
    done = subprocess.run([tool("kubernetes-validate"), "--strict", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "failureTreshold" in done.stdout + done.stderr


def strict(schema):
    """The CRD schema as `kubectl apply` checks it (field validation `Strict`, its default): an
    object with declared properties takes no others, unless it preserves unknown fields."""
    schema = copy.deepcopy(schema)

    def visit(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)
    visit(schema)
    return schema


KSERVE_KINDS = {
    "clusterservingruntime.yaml": ("clusterservingruntime.v1alpha1.json", "serving.kserve.io/v1alpha1", "ClusterServingRuntime"),
    "inferenceservice.yaml": ("inferenceservice.v1beta1.json", "serving.kserve.io/v1beta1", "InferenceService"),
}


def check_kserve(manifest_path, schema_name, api_version, kind, tmp_path):
    schema = strict(json.load(open(os.path.join(SCHEMAS, schema_name))))
    schema["properties"]["apiVersion"] = {"const": api_version}
    schema["properties"]["kind"] = {"const": kind}
    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
    schema_path = tmp_path / schema_name
    schema_path.write_text(json.dumps(schema))
    return subprocess.run([tool("check-jsonschema"), "--schemafile", str(schema_path), str(manifest_path)],
                          capture_output=True, text=True, timeout=120)


def test_vendored_schemas_name_their_source():
    source = open(os.path.join(SCHEMAS, "SOURCE.txt")).read()
    assert "kserve/kserve, tag v0.20.0, commit " in source
    for schema_name, _, _ in KSERVE_KINDS.values():
        assert schema_name in source


@pytest.mark.parametrize("name", sorted(KSERVE_KINDS))
def test_kserve_manifest_matches_the_crd_schema(name, tmp_path):
    done = check_kserve(os.path.join(KSERVE, name), *KSERVE_KINDS[name], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_kserve_schema_check_rejects_a_misspelt_field(tmp_path):
    document = load(os.path.join(KSERVE, "clusterservingruntime.yaml"))
    document["spec"]["protocolVersion"] = document["spec"].pop("protocolVersions")
    path = tmp_path / "runtime.yaml"
    path.write_text(yaml.safe_dump(document))
    done = check_kserve(path, *KSERVE_KINDS["clusterservingruntime.yaml"], tmp_path)
    assert done.returncode != 0 and "protocolVersion" in done.stdout + done.stderr


# MARK: What the manifests promise

def daemon_config():
    return yaml.safe_load(manifests_of_kind("ConfigMap")["data"]["onnx-serve.yaml"])


def test_deployment_probes_resources_and_scrape_annotations():
    deployment = manifests_of_kind("Deployment")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) and {"cpu", "memory"} <= set(container["resources"]["limits"])
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(daemon_config()["port"])
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_grace_period_outlasts_the_drain():
    grace = manifests_of_kind("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > daemon_config()["drain_seconds"] + SERVER_STOP_GRACE_SECONDS


def test_service_pdb_and_autoscaler_select_the_deployment():
    labels = manifests_of_kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert manifests_of_kind("Service")["spec"]["selector"].items() <= labels.items()
    assert manifests_of_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = manifests_of_kind("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", manifests_of_kind("Deployment")["metadata"]["name"])


def test_kserve_runtime_serves_onnx_over_v1_and_v2():
    runtime = load(os.path.join(KSERVE, "clusterservingruntime.yaml"))
    assert [entry["name"] for entry in runtime["spec"]["supportedModelFormats"]] == ["onnx"]
    assert runtime["spec"]["protocolVersions"] == ["v1", "v2"]
    arguments = runtime["spec"]["containers"][0]["args"]
    assert any("/mnt/models" in argument for argument in arguments)
    service = load(os.path.join(KSERVE, "inferenceservice.yaml"))
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"] and model["modelFormat"]["name"] == "onnx"


def test_configmap_config_is_accepted_by_the_daemon(binary, tmp_path):
    # The daemon rejects unknown keys: start it on the ConfigMap's file (with this machine's
    # repository, address and port) and ask whether it is ready.
    path = tmp_path / "onnx-serve.yaml"
    path.write_text(manifests_of_kind("ConfigMap")["data"]["onnx-serve.yaml"])
    daemon = Daemon(binary, "--config", str(path), "--model-repository", os.path.join(ROOT, "config", "models"))
    try:
        assert requests.get(daemon.url + "/v2/health/ready", timeout=5).status_code == 200
    finally:
        assert daemon.stop() == 0, "".join(daemon.log)
