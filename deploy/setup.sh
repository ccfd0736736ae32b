#!/bin/sh
# Installs everything building and testing onnx-serve needs on Debian 12, idempotently:
# system packages (apt) and the pinned Python packages (pip). Swift 6.3 must already be on PATH
# (https://www.swift.org/install/linux/debian/12/).
set -eu
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

# libturbojpeg0-dev, libpng-dev, libwebp-dev, libstb-dev, libtiff-dev, libopenjp2-7-dev: ImageDecoder's JPEG, PNG, WebP,
# BMP, PNM, TIFF and JPEG 2000 decoding.
# systemd: `systemd-analyze verify` in Tests/Python/test_deploy.py; haproxy: Tests/Python/test_load_balancer.py.
PACKAGES="libmicrohttpd-dev libopenblas-dev zlib1g-dev libturbojpeg0-dev libpng-dev libwebp-dev libstb-dev libtiff-dev libopenjp2-7-dev pkg-config protobuf-compiler curl wrk systemd haproxy"
missing=""
for package in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

if ! python3 -c "import sys" 2>/dev/null; then
    echo "setup: python3 is required" >&2
    exit 1
fi
if ! python3 - <<'PY' 2>/dev/null
import importlib.metadata as m, re, sys
for line in open("requirements.txt"):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, version = re.split(r"==", line)
    name = name.split("[")[0]
    if m.version(name) != version:
        sys.exit(1)
PY
then
    echo "setup: installing Python packages from requirements.txt"
    python3 -m pip install -q --disable-pip-version-check -r requirements.txt
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "setup: swift not found on PATH; install Swift 6.3 for Debian 12 first" >&2
    exit 1
fi
echo "setup: ready ($(swift --version 2>/dev/null | head -n 1))"
