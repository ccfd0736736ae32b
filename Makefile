# Build, run and test onnx-serve. `deploy/setup.sh` installs what these need (see README).
SWIFT ?= swift
BINARY := .build/release/onnx-serve

.PHONY: build serve test test-swift test-python conformance fuzz-smoke clean

# One build serves both `make serve` and `make test`: the daemon and the test bundle from one
# `swift build --build-tests`. (Planning `--product onnx-serve` and `--build-tests` in turn made
# SwiftPM write swift-protobuf's trait flags, -DBinaryDelimitedStreams -DFieldMaskUtilities, in a
# new order each time, so a switch recompiled SwiftProtobuf, at times with the modules above it.)
build:
	$(SWIFT) build -c release --build-tests

# The daemon on the shipped config (config/onnx-serve.yaml: digits on port 8501).
serve: build
	exec $(BINARY) serve --config config/onnx-serve.yaml

# Every test: Swift unit tests (release build), Python CLI/daemon tests, ONNX conformance, and a
# short run of every fuzz harness.
test: build test-swift test-python conformance fuzz-smoke

test-swift: build
	$(SWIFT) test -c release --skip-build

test-python: build
	python3 -m pytest -q Tests/Python

conformance: build
	python3 tools/conformance.py --binary $(BINARY) --manifest Tests/Conformance/manifest.txt

# Each libFuzzer harness (Tests/Fuzz) for FUZZ_SECONDS from its seeds; a crash fails. Builds into
# .build-fuzz. Longer runs of one target: tools/fuzz.sh TARGET SECONDS.
FUZZ_SECONDS ?= 20
fuzz-smoke:
	SWIFT=$(SWIFT) tools/fuzz.sh all $(FUZZ_SECONDS)

clean:
	rm -rf .build .build-fuzz
