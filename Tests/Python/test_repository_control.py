"""Repository control as Triton's --model-control-mode: the repository API (index, load,
unload) is off by default, so no unauthenticated request can unload a model."""
import requests

import models
from conftest import Daemon, run_cli

DIGITS = [[0.0] * 64]


def predict(daemon):
    return requests.post(daemon.url + "/v1/models/digits:predict", json={"instances": DIGITS}, timeout=30)


def test_repository_api_is_off_by_default(binary, tmp_path):
    repo = models.repository(str(tmp_path))
    daemon = Daemon(binary, "--model-repository", repo)
    try:
        for path in ("/v2/repository/index", "/v2/repository/models/digits/unload", "/v2/repository/models/digits/load"):
            answer = requests.post(daemon.url + path, data="{}", timeout=30)
            assert answer.status_code == 403, (path, answer.text)
            assert "model_control_mode is 'none'" in answer.json()["error"], answer.text
        assert predict(daemon).status_code == 200
        assert requests.get(daemon.url + "/v2/models/digits/ready", timeout=10).status_code == 200
        assert "model_repository" not in requests.get(daemon.url + "/v2", timeout=10).json()["extensions"]
    finally:
        assert daemon.stop() == 0, "".join(daemon.log)


def test_explicit_mode_unloads_and_the_model_reports_not_ready(binary, tmp_path):
    repo = models.repository(str(tmp_path))
    daemon = Daemon(binary, "--model-repository", repo, "--model-control-mode", "explicit")
    try:
        assert "model_repository" in requests.get(daemon.url + "/v2", timeout=10).json()["extensions"]
        assert requests.post(daemon.url + "/v2/repository/models/digits/unload", data="{}", timeout=30).status_code == 200
        assert predict(daemon).status_code == 404
        ready = requests.get(daemon.url + "/v2/models/digits/ready", timeout=10)
        assert ready.status_code == 503 and ready.json()["ready"] is False, ready.text
        # The server stays ready: an explicit unload is the operator's choice, not a failure.
        assert requests.get(daemon.url + "/v2/health/ready", timeout=10).status_code == 200
        assert requests.post(daemon.url + "/v2/repository/models/digits/load", data="{}", timeout=60).status_code == 200
        assert predict(daemon).status_code == 200
    finally:
        assert daemon.stop() == 0, "".join(daemon.log)


def test_restriction_needs_explicit_mode_and_a_header_value(binary, tmp_path):
    repo = models.repository(str(tmp_path))
    code, _, error = run_cli(binary, "serve", "--model-repository", repo, "--port", "0", "--repository-api-restriction", "k=v")
    assert code == 1 and "needs model_control_mode: explicit" in error, error
    code, _, error = run_cli(binary, "serve", "--model-repository", repo, "--port", "0", "--model-control-mode", "explicit",
                             "--repository-api-restriction", "novalue=")
    assert code == 1 and "HEADER=VALUE" in error, error
    code, _, error = run_cli(binary, "serve", "--model-repository", repo, "--port", "0", "--model-control-mode", "poll-me")
    assert code != 0 and "poll-me" in error, error
