"""A short soak (tools/soak.py): valid and hostile requests of both protocols on 16 connections,
then SIGTERM with the load still running. Nothing may crash or answer wrongly, and every request
sent before the signal gets its answer."""
import json
import os
import subprocess
import sys

from conftest import ROOT


def test_short_soak_and_sigterm_under_load(binary, tmp_path):
    figures_path = tmp_path / "soak.json"
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "soak.py"), "--binary", binary, "--seconds", "10",
                           "--connections", "16", "--json", str(figures_path)], capture_output=True, text=True, timeout=300)
    assert figures_path.exists(), done.stdout + done.stderr
    figures = json.loads(figures_path.read_text())
    soak, stop = figures["soak"], figures["sigterm_under_load"]
    assert soak["daemon_survived"] and soak["wrong_answers"] == {}, soak
    assert soak["valid"] > 0 and soak["invalid"] > 0 and soak["statuses"].get("200") == soak["valid"], soak
    assert stop["exit"] == 0 and stop["wrong_answers"] == {}, stop
    assert stop["sent_before_signal"] > 0 and stop["answered_as_expected"] == stop["sent_before_signal"], stop
    assert stop["valid_answered_200"] == stop["valid_sent_before_signal"], stop
    assert done.returncode == 0, done.stdout + done.stderr
