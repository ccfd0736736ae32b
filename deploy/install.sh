#!/bin/sh
# Installs onnx-serve as a systemd service: release build, binary, config under /etc/onnx-serve,
# the model repository under /var/lib/onnx-serve/models, and the unit file. Existing config and
# models are kept. DESTDIR installs into a staging root (no systemctl calls then).
#   sudo deploy/install.sh            # then: systemctl status onnx-serve; curl localhost:8501/v2/health/ready
set -eu
cd "$(dirname "$0")/.."
DESTDIR="${DESTDIR:-}"
BINDIR="$DESTDIR/usr/local/bin"
CONFDIR="$DESTDIR/etc/onnx-serve"
MODELDIR="$DESTDIR/var/lib/onnx-serve/models"
UNITDIR="$DESTDIR/etc/systemd/system"
DOCDIR="$DESTDIR/usr/local/share/doc/onnx-serve"

if [ -z "${SKIP_BUILD:-}" ]; then
    swift build -c release --product onnx-serve
fi
install -d "$BINDIR" "$CONFDIR" "$MODELDIR" "$UNITDIR" "$DOCDIR"
install -m 0755 .build/release/onnx-serve "$BINDIR/onnx-serve"
if [ ! -e "$CONFDIR/onnx-serve.yaml" ]; then
    sed 's|^model_repository: .*|model_repository: /var/lib/onnx-serve/models|' config/onnx-serve.yaml > "$CONFDIR/onnx-serve.yaml"
    chmod 0644 "$CONFDIR/onnx-serve.yaml"
fi
for model in config/models/*/; do
    name=$(basename "$model")
    [ -e "$MODELDIR/$name" ] || cp -R "$model" "$MODELDIR/$name"
done
chmod -R a+rX "$MODELDIR"
install -m 0644 deploy/onnx-serve.service "$UNITDIR/onnx-serve.service"
install -m 0644 README.md "$DOCDIR/README.md"

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable --now onnx-serve.service
    echo "install: onnx-serve enabled and started (systemctl status onnx-serve)"
else
    echo "install: files in place under ${DESTDIR:-/}; start with: systemctl daemon-reload && systemctl enable --now onnx-serve"
fi
