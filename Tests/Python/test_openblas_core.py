"""The OpenBLAS kernel is chosen before OpenBLAS loads, unless the environment chose one."""
import os

from conftest import run_cli, ROOT

MODEL = os.path.join(ROOT, "Tests", "Python", "data", "relu.onnx")


def core_line(binary, env):
    import subprocess
    done = subprocess.run([binary, "inspect", MODEL], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return next(line for line in done.stdout.splitlines() if line.startswith("OpenBLAS core:"))


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        return set(next(l for l in f if l.startswith("flags")).split(":", 1)[1].split())


def test_core_is_chosen_from_the_cpu_when_unset(binary):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    line = core_line(binary, env)
    flags = cpu_flags()
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        assert "SkylakeX" in line and "chosen from CPUID" in line, line
    elif {"avx2", "fma"} <= flags:
        assert "Haswell" in line, line
    assert "Prescott" not in line or "avx2" not in flags, line


def test_environment_wins(binary):
    env = dict(os.environ, OPENBLAS_CORETYPE="Haswell")
    line = core_line(binary, env)
    assert "Haswell" in line and "from the environment" in line, line
