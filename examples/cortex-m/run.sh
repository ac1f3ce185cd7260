#!/usr/bin/env bash
# Runs generated fomo-ad C on an emulated microcontroller and checks it against the reference
# executor: trains (or takes) models, compiles each to C with its Cortex-M footprint, cross-builds
# a bare-metal firmware with a few test images in flash, runs it in QEMU, compares the printed cell
# scores with the host reference (fomo-ad verify --device-scores) and checks the stack of
# fomo_ad_run. Exits 0 only when every model agrees and fits. See README.md beside this script.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

usage() {
  cat <<EOF
usage: $0 [options]
  --backbone B.onnx   backbone of the models (default: models/mobilenetv2_0.35_cut8.onnx)
  --model M           a trained model to run (repeatable; default: train a GMM with medium
                      capacity and a PatchCore with a 10% coreset on 100 synthetic images)
  --data DIR          data set whose test images are run (default: synthesised)
  --images N          test images compiled into each firmware (default: 4)
  --board B           QEMU board: mps2-an386 (Cortex-M4F, default) or mps2-an500 (Cortex-M7)
  --out DIR           work directory (default: target/cortex-m)
  --timeout S         seconds each emulated run may take (default: 120)
  --fomo-ad PATH      fomo-ad binary (default: \$FOMO_AD, else cargo build --release)
EOF
}

backbone=$root/models/mobilenetv2_0.35_cut8.onnx
models=()
data=
images=4
board=mps2-an386
out=$root/target/cortex-m
timeout=120
fomo_ad=${FOMO_AD:-}
stack_limit=1024
while [ $# -gt 0 ]; do
  case $1 in
    --backbone) backbone=$2; shift 2 ;;
    --model) models+=("$2"); shift 2 ;;
    --data) data=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --board) board=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --fomo-ad) fomo_ad=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "$0: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

case $board in
  mps2-an386) target=cortex-m4; cpu=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16) ;;
  mps2-an500) target=cortex-m7; cpu=(-mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-sp-d16) ;;
  *) echo "$0: --board must be mps2-an386 or mps2-an500" >&2; exit 2 ;;
esac
# The warnings the generated C promises to compile without, as errors, plus a per-function stack
# limit; -O2 as a firmware release build.
strict=(-std=c99 -O2 -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wdouble-promotion -Werror
  "-Wstack-usage=$stack_limit")

for tool in arm-none-eabi-gcc arm-none-eabi-size qemu-system-arm timeout od; do
  if ! command -v "$tool" >/dev/null; then
    echo "$0: $tool not found (Debian: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)" >&2
    exit 2
  fi
done

if [ -z "$fomo_ad" ]; then
  (cd "$root" && cargo build --release --quiet --bin fomo-ad)
  fomo_ad=${CARGO_TARGET_DIR:-$root/target}/release/fomo-ad
fi

# Only what this script writes is replaced: --model and --data may point into --out.
mkdir -p "$out"
if [ -z "$data" ]; then
  data=$out/data
  rm -rf "$data"
  echo "== synthesising 100 training images and 1 good + 1 per defect test images in $data"
  "$fomo_ad" synth --out "$data" --train 100 --test-good 1 --test-anomalous 1
fi
if [ ${#models[@]} -eq 0 ]; then
  echo "== training a GMM (medium capacity) and PatchCore (10% coreset) on $(basename "$backbone")"
  "$fomo_ad" train --backbone "$backbone" --data "$data" --scorer gmm --capacity medium \
    --out "$out/gmm.safetensors"
  "$fomo_ad" train --backbone "$backbone" --data "$data" --scorer patchcore --sampling-ratio 0.1 \
    --out "$out/patchcore.safetensors"
  models=("$out/gmm.safetensors" "$out/patchcore.safetensors")
fi

# Writes a C file with the raw images `fomo-ad verify --export-inputs` wrote, in their order.
write_inputs() {
  local dir=$1 count=0
  {
    echo "/* Written by run.sh: the test images, raw interleaved bytes at the model's input size. */"
    echo '#include "inputs.h"'
    echo
    echo "const uint8_t inputs[][FOMO_AD_INPUT_WIDTH * FOMO_AD_INPUT_HEIGHT * FOMO_AD_INPUT_CHANNELS] = {"
    while [ -f "$dir/image$count.u8" ]; do
      echo "    {"
      od -An -v -tu1 -w24 "$dir/image$count.u8" | sed 's/^ *//; s/  */, /g; s/^/        /; s/$/,/'
      echo "    },"
      count=$((count + 1))
    done
    echo "};"
    echo "const size_t input_count = $count;"
  }
}

summary=()
failures=0
for model in "${models[@]}"; do
  label=$(basename "$model" .safetensors)
  work=$out/run-$label
  rm -rf "$work"
  mkdir -p "$work"
  ok=1
  echo
  echo "== $label: compile to C and measure it for $target"
  "$fomo_ad" compile --model "$model" --backbone "$backbone" --lang c --out "$work/c" \
    --target "$target" | tee "$work/compile.txt"
  footprint=$(grep " footprint: " "$work/compile.txt")
  static_stack=$(sed -n 's/.* stack \([0-9]*\) bytes.*/\1/p' <<<"$footprint")

  echo "== $label: $images test images into flash"
  "$fomo_ad" verify --model "$model" --backbone "$backbone" --data "$data" --images "$images" \
    --export-inputs "$work/inputs"
  write_inputs "$work/inputs" >"$work/inputs.c"

  echo "== $label: cross-build the firmware for $board"
  arm-none-eabi-gcc "${cpu[@]}" "${strict[@]}" -ffunction-sections -fdata-sections \
    -I "$work/c" -I "$here" --specs=rdimon.specs -nostartfiles -T "$here/mps2.ld" \
    -Wl,--gc-sections -Wl,-Map="$work/firmware.map" \
    "$here/startup.c" "$here/main.c" "$work/inputs.c" "$work/c/fomo_ad.c" "$work/c/fomo_ad_weights.c" \
    -lm -o "$work/firmware.elf"
  arm-none-eabi-size "$work/firmware.elf"

  echo "== $label: run in QEMU ($board, timeout ${timeout}s)"
  start=$(date +%s%N)
  status=0
  timeout "$timeout" qemu-system-arm -M "$board" -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -kernel "$work/firmware.elf" >"$work/qemu.log" 2>&1 ||
    status=$?
  millis=$((($(date +%s%N) - start) / 1000000))
  cat "$work/qemu.log"
  seconds=$(printf '%d.%03d' $((millis / 1000)) $((millis % 1000)))
  if [ "$status" -ne 0 ]; then
    echo "FAIL $label: the emulated firmware exited with status $status (124: timeout)"
    ok=0
  fi
  measured_stack=$(sed -n 's/^stack used by fomo_ad_run: \([0-9]*\) bytes.*/\1/p' "$work/qemu.log")
  if [ -z "$measured_stack" ] || [ "$measured_stack" -gt "$stack_limit" ] || [ "$static_stack" -gt "$stack_limit" ]; then
    echo "FAIL $label: the stack of fomo_ad_run (static ${static_stack} bytes, measured ${measured_stack:-?} bytes) exceeds $stack_limit bytes"
    ok=0
  fi

  echo "== $label: compare with the host reference executor"
  if ! "$fomo_ad" verify --model "$model" --backbone "$backbone" --data "$data" --images "$images" \
    --device-scores "$work/qemu.log"; then
    echo "FAIL $label: the emulated scores disagree with the reference"
    ok=0
  fi

  code=$(sed -n 's/.*flash code \([0-9]*\) bytes.*/\1/p' <<<"$footprint")
  constants=$(sed -n 's/.*flash constants \([0-9]*\) bytes.*/\1/p' <<<"$footprint")
  arena=$(sed -n 's/.*RAM arena \([0-9]*\) bytes.*/\1/p' <<<"$footprint")
  verdict=$([ $ok -eq 1 ] && echo agrees || echo FAILED)
  summary+=("$(printf '| %-12s | %10s | %15s | %10s | %12s | %14s | %7ss | %7s |' \
    "$label" "$code" "$constants" "$arena" "$static_stack" "${measured_stack:-?}" "$seconds" "$verdict")")
  [ $ok -eq 1 ] || failures=$((failures + 1))
done

echo
echo "== footprint of the generated library on $target ($board), bytes; stack limit $stack_limit"
echo "| model        | flash code | flash constants | RAM arena  | stack static | stack measured | QEMU run | result  |"
echo "|--------------|-----------:|----------------:|-----------:|-------------:|---------------:|---------:|---------|"
printf '%s\n' "${summary[@]}"
echo "(flash code excludes the C library's expf/logf/sqrtf/memcpy/memset; the measured stack includes them)"
if [ $failures -ne 0 ]; then
  echo "$failures of ${#models[@]} model(s) failed"
  exit 1
fi
echo "all ${#models[@]} model(s) agree with the reference on $board"
