#!/usr/bin/env bash
# Runs one fuzz target under cargo-fuzz (libFuzzer, AddressSanitizer; overflow checks and debug
# assertions in fomo-ad, see Cargo.toml).
#
#   fuzz/run.sh TARGET [SECONDS] [libFuzzer flags...]    (default 600 s)
#
# New coverage goes to fuzz/corpus/TARGET (not committed); a crash is written to
# fuzz/artifacts/TARGET/ and must be fixed and then kept in fuzz/regressions/TARGET/, which
# `cargo test` replays (tests/tests/fuzz_regressions.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
target=$1
seconds=${2:-600}
shift $(( $# < 2 ? $# : 2 ))
# cargo-fuzz passes -Z flags to rustc; this lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
seeds=(fuzz/seeds/"$target")
if [ "$target" = onnx ]; then seeds=(tests/fixtures); fi
extra=()
if [ -f fuzz/dicts/"$target".dict ]; then extra+=(-dict=fuzz/dicts/"$target".dict); fi
mkdir -p fuzz/corpus/"$target" fuzz/seeds/"$target"
exec cargo fuzz run --fuzz-dir fuzz -O ${FUZZ_BUILD_FLAGS:-} "$target" fuzz/corpus/"$target" "${seeds[@]}" -- \
  -max_total_time="$seconds" -timeout=30 -rss_limit_mb=3072 -print_final_stats=1 "${extra[@]}" "$@"
