#!/bin/sh
# libFuzzer harnesses (Tests/Fuzz): builds them into .build-fuzz (ONNX_SERVE_FUZZ=1, fuzzer + address
# sanitizers) and runs them.
#
#   tools/fuzz.sh TARGET SECONDS   run one target for SECONDS
#   tools/fuzz.sh all SECONDS      run every target for SECONDS each (CI's smoke run: make fuzz-smoke)
#   tools/fuzz.sh build            build every harness
#
# Targets: json, tfserving, openinference, bodyreader, tensorproto, modelloader. Each starts from
# its committed seeds (Tests/Fuzz/Corpus/TARGET, read only) plus what earlier runs found
# (.build-fuzz/runs/TARGET/corpus), and prints execs, execs/s, corpus size and crashes. A crash,
# timeout (FUZZ_TIMEOUT seconds per input, default 10) or input over 2 GiB of memory stops the target,
# leaves the input in .build-fuzz/runs/TARGET/ and makes the script exit 1.
# Extra libFuzzer flags can follow, e.g. `tools/fuzz.sh json 60 -only_ascii=1`.
set -eu
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
BUILD=.build-fuzz
TARGETS="json tfserving openinference bodyreader tensorproto modelloader"

check_target() {
    case " $TARGETS " in
        *" $1 "*) ;;
        *) echo "fuzz: unknown target '$1' (targets: $TARGETS)" >&2; exit 2 ;;
    esac
}

# One executable holds every harness (ONNX_SERVE_FUZZ_TARGET picks one). SwiftPM runs in a fixed
# environment: with another (under make, say) it rebuilt the whole package.
# The swift driver keeps only the last `-sanitize=` it is given, and SwiftPM writes one per
# `--sanitize` in no fixed order: half the builds were ASan without coverage (4,009 counters: the
# "uninstrumented" builds), the others coverage without ASan. The trailing combined flag wins.
compile() {
    mkdir -p "$BUILD"
    status=0
    env -i PATH="$PATH" HOME="$HOME" ONNX_SERVE_FUZZ=1 $SWIFT build -c release --scratch-path "$BUILD" \
        --sanitize fuzzer --sanitize address -Xswiftc -sanitize=fuzzer,address \
        --product FuzzHarnesses >"$BUILD/build.log" 2>&1 || status=$?
    grep -v "Cannot export local symbol '__asan_extra_spill_area'" "$BUILD/build.log" || true
    [ "$status" -eq 0 ] || { echo "fuzz: building the harnesses failed" >&2; exit 1; }
}

# The coverage counters libFuzzer finds in the harness (fuzzer and address sanitizers: about 437,000).
counters() {
    ONNX_SERVE_FUZZ_TARGET=json SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 \
        "$BUILD/release/FuzzHarnesses" -runs=0 2>&1 | sed -n 's/.*Loaded 1 modules *(\([0-9]*\) inline 8-bit counters.*/\1/p' | head -n 1
}

# Builds, and checks the build is instrumented (a guard: builds without coverage, from the
# sanitizer flag order above, explored nothing). Such a build is redone from scratch once; if it
# is still not instrumented, that is a failure.
build() {
    compile
    found=$(counters)
    if [ "${found:-0}" -lt 10000 ]; then
        echo "fuzz: the build has ${found:-no} coverage counters (not instrumented); rebuilding from scratch" >&2
        rm -rf "$BUILD/release" "$BUILD"/*-unknown-linux-gnu
        compile
        found=$(counters)
        [ "${found:-0}" -ge 10000 ] || { echo "fuzz: the rebuilt harness has ${found:-no} coverage counters: not instrumented" >&2; exit 1; }
    fi
}

# run TARGET SECONDS [libFuzzer flags]: returns libFuzzer's status.
run() {
    target=$1 seconds=$2
    shift 2
    work="$BUILD/runs/$target"
    mkdir -p "$work/corpus"
    set -- -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/" "$@"
    case $target in
        json|tfserving|openinference) set -- -dict=Tests/Fuzz/Dictionaries/json.dict "$@" ;;
    esac
    started=$(date +%s)
    status=0
    # The Swift runtime's crash handler would fight the sanitizers' own.
    ONNX_SERVE_FUZZ_TARGET=$target SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}" \
        "$BUILD/release/FuzzHarnesses" "$@" "$work/corpus" "Tests/Fuzz/Corpus/$target" >"$work/log" 2>&1 || status=$?
    elapsed=$(( $(date +%s) - started ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -n 1)
    corpus=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' "$work/log" | tail -n 1)
    seeds=$(ls "Tests/Fuzz/Corpus/$target" | wc -l)
    if [ "$status" -eq 0 ]; then
        echo "fuzz $target: ${execs:-?} execs in ${elapsed} s (${rate:-?}/s), corpus ${corpus:-?} (seeds $seeds), crashes 0"
    else
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$work/log" | tail -n 1)
        echo "fuzz $target: ${execs:-?} execs in ${elapsed} s (${rate:-?}/s), corpus ${corpus:-?} (seeds $seeds), CRASH (status $status): ${artifact:-see $work/log}"
        grep -E '^(==[0-9]+==|SUMMARY| *#[0-9]+ .* in |Fatal error|.*error:)' "$work/log" | head -n 40
    fi
    return "$status"
}

case "${1:-}" in
    build)
        build
        ;;
    all)
        [ $# -ge 2 ] || { echo "usage: tools/fuzz.sh all SECONDS" >&2; exit 2; }
        seconds=$2
        shift 2
        build
        failed=""
        for target in $TARGETS; do run "$target" "$seconds" "$@" || failed="$failed $target"; done
        if [ -n "$failed" ]; then echo "fuzz: crashes in:$failed" >&2; exit 1; fi
        ;;
    ""|-h|--help)
        sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
        ;;
    *)
        [ $# -ge 2 ] || { echo "usage: tools/fuzz.sh TARGET SECONDS [libFuzzer flags]" >&2; exit 2; }
        target=$1 seconds=$2
        shift 2
        check_target "$target"
        build
        run "$target" "$seconds" "$@" || exit 1
        ;;
esac
