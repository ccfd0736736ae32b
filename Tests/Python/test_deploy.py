"""deploy/install.sh into a staging root, and the systemd unit checked by systemd-analyze."""
import os
import shutil
import subprocess

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def staged(tmp_path_factory, binary):
    root = tmp_path_factory.mktemp("stage")
    env = dict(os.environ, DESTDIR=str(root), SKIP_BUILD="1")
    subprocess.run([os.path.join(ROOT, "deploy", "install.sh")], env=env, check=True, capture_output=True, text=True)
    return root


def test_install_puts_every_file_in_place(staged):
    assert os.access(staged / "usr/local/bin/onnx-serve", os.X_OK)
    config = (staged / "etc/onnx-serve/onnx-serve.yaml").read_text()
    assert "model_repository: /var/lib/onnx-serve/models" in config
    assert (staged / "var/lib/onnx-serve/models/digits/1/model.onnx").exists()
    assert (staged / "etc/systemd/system/onnx-serve.service").exists()


def test_install_keeps_existing_config(staged):
    path = staged / "etc/onnx-serve/onnx-serve.yaml"
    path.write_text("port: 9999\n")
    env = dict(os.environ, DESTDIR=str(staged), SKIP_BUILD="1")
    subprocess.run([os.path.join(ROOT, "deploy", "install.sh")], env=env, check=True, capture_output=True)
    assert path.read_text() == "port: 9999\n"


def test_unit_has_the_required_settings():
    unit = open(os.path.join(ROOT, "deploy", "onnx-serve.service")).read()
    for setting in ["Type=notify", "Restart=on-failure", "DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict",
                    "ProtectHome=yes", "PrivateTmp=yes", "LimitNOFILE=", "ExecReload=/bin/kill -HUP $MAINPID", "ReadOnlyPaths=/etc/onnx-serve /var/lib/onnx-serve/models"]:
        assert setting in unit, setting


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed on this machine")
def test_systemd_analyze_verify(staged, tmp_path):
    # verify checks that ExecStart's binary exists: point it at the staged one.
    unit = open(os.path.join(ROOT, "deploy", "onnx-serve.service")).read()
    unit = unit.replace("ExecStart=/usr/local/bin/onnx-serve", "ExecStart=%s/usr/local/bin/onnx-serve" % staged)
    path = tmp_path / "onnx-serve.service"
    path.write_text(unit)
    done = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
