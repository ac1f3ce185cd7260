#!/usr/bin/env bash
# README's main command: on the embedded default backbone, synthesise an inspection data set,
# train PatchCore and a GMM, test both (figures and heatmaps), then compile each to C and to Rust,
# build and run the generated code, and print its agreement with the reference executor.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-demo-out}

cargo build --release --quiet --bin fomo-ad
fomo_ad=target/release/fomo-ad

rm -rf "$out"
mkdir -p "$out"
echo "== synthesising a data set in $out/data"
"$fomo_ad" synth --out "$out/data"

for scorer in patchcore gmm; do
  model="$out/$scorer.safetensors"
  echo
  echo "== $scorer: train"
  "$fomo_ad" train --data "$out/data" --scorer "$scorer" --out "$model"
  echo "== $scorer: test"
  "$fomo_ad" test --model "$model" --data "$out/data" --heatmaps "$out/heatmaps-$scorer"
  echo "== $scorer: compile to C, build it with cc, run it and compare with the reference"
  "$fomo_ad" compile --model "$model" --lang c --out "$out/c-$scorer"
  "$fomo_ad" verify --model "$model" --lang c --generated "$out/c-$scorer" --data "$out/data"
  # The PatchCore crate uses this repository's runtime crate by path; the GMM crate is standalone.
  if [ "$scorer" = patchcore ]; then runtime=(--runtime-path "$PWD/runtime"); else runtime=(--standalone); fi
  echo "== $scorer: compile to Rust (${runtime[0]}), build it with cargo, run it and compare with the reference"
  "$fomo_ad" compile --model "$model" --lang rust --out "$out/rust-$scorer" "${runtime[@]}"
  "$fomo_ad" verify --model "$model" --lang rust --generated "$out/rust-$scorer" --data "$out/data"
done
echo
echo "demo finished: everything is in $out/"
