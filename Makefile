# Build, run and test onnx-serve. `deploy/setup.sh` installs what these need (see README).
SWIFT ?= swift
BINARY := .build/release/onnx-serve

.PHONY: build test test-swift test-python conformance clean

build:
	$(SWIFT) build -c release --product onnx-serve

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
