#!/bin/sh
# Regenerates Sources/ONNX/onnx.pb.swift and onnx-data.pb.swift from Sources/ONNX/onnx.proto and
# onnx-data.proto (copied from the `onnx` Python package pinned in requirements.txt; onnx-data.proto
# with its import changed to "onnx.proto"). Needs Debian's protobuf-compiler and swift-protobuf's
# plugin, which this package's dependency builds:
#   swift build -c release --product protoc-gen-swift
#   export PROTOC_GEN_SWIFT=$PWD/.build/release/protoc-gen-swift
set -eu
cd "$(dirname "$0")/../Sources/ONNX"
: "${PROTOC_GEN_SWIFT:?set PROTOC_GEN_SWIFT to the protoc-gen-swift binary}"
protoc --plugin=protoc-gen-swift="$PROTOC_GEN_SWIFT" --swift_out=. --swift_opt=Visibility=Internal onnx.proto onnx-data.proto
echo "wrote Sources/ONNX/onnx.pb.swift and onnx-data.pb.swift"
