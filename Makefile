# Build, run and test onnx-serve. `deploy/setup.sh` installs what these need (see README).
SWIFT ?= swift
BINARY := .build/release/onnx-serve

.PHONY: build serve test test-swift test-python conformance clean

build:
	$(SWIFT) build -c release --product onnx-serve

# The daemon on the shipped config (config/onnx-serve.yaml: digits on port 8501).
serve: build
	exec $(BINARY) serve --config config/onnx-serve.yaml

# Every test: Swift unit tests (release build), Python CLI/daemon tests, ONNX conformance.
test: build test-swift test-python conformance

test-swift:
	$(SWIFT) build -c release --build-tests
	$(SWIFT) test -c release --skip-build

test-python: build
	python3 -m pytest -q Tests/Python

conformance: build
	python3 tools/conformance.py --binary $(BINARY) --manifest Tests/Conformance/manifest.txt

clean:
	rm -rf .build
