#!/bin/sh
# Regenerates Sources/ONNX/onnx.pb.swift from Sources/ONNX/onnx.proto (copied from the `onnx`
# Python package pinned in requirements.txt). Needs Debian's protobuf-compiler and swift-protobuf's
# plugin, built once outside the repository:
#   git clone https://github.com/apple/swift-protobuf && cd swift-protobuf && git checkout 1.39.0
#   swift build -c release --product protoc-gen-swift
#   export PROTOC_GEN_SWIFT=$PWD/.build/release/protoc-gen-swift
set -eu
cd "$(dirname "$0")/../Sources/ONNX"
: "${PROTOC_GEN_SWIFT:?set PROTOC_GEN_SWIFT to the protoc-gen-swift binary}"
protoc --plugin=protoc-gen-swift="$PROTOC_GEN_SWIFT" --swift_out=. --swift_opt=Visibility=Internal onnx.proto
echo "wrote Sources/ONNX/onnx.pb.swift"
