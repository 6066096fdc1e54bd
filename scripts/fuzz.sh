#!/bin/bash
# Builds and runs every cargo-fuzz target in fuzz/ for SECONDS each (default 60).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs a nightly toolchain and cargo-fuzz: both are installed when missing (rustup,
# cargo install); the script stops with an error when that fails. Corpora are rebuilt
# in fuzz/corpus/TARGET (not committed) from the small committed seeds in
# fuzz/seeds/TARGET, synthetic modules (fixtures/kogen), and, when the reference trees
# of scripts/fetch-reference.sh are there, a few small real modules, index files and
# configuration files. Every input that crashes a target is copied to
# fuzz/regressions/TARGET/, which `cargo test --test fuzz_regressions` replays, and the
# script then exits 1. At the end it prints each target's number of executions.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_EACH=${1:-60}
shift || true
ALL=(module index modprobe_config cmdline depmod_config depmod_cache signature key_files kernel_image)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
REF=${KMOD_REFERENCE:-${XDG_CACHE_HOME:-$HOME/.cache}/kmod-reference}

die() { echo "fuzz.sh: $*" >&2; exit 1; }

# Toolchain.
command -v rustup >/dev/null || die "rustup is needed to install a nightly toolchain"
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal || die "could not install nightly"
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked || die "could not install cargo-fuzz"
fi

# Corpora.
CORPUS=$ROOT/fuzz/corpus
mkdir -p "$CORPUS"
for t in "${ALL[@]}"; do
  mkdir -p "$CORPUS/$t"
  if [ -d "fuzz/seeds/$t" ]; then cp -f fuzz/seeds/"$t"/* "$CORPUS/$t/"; fi
done
cargo run -q -p kogen --bin kogen-fuzz-seeds -- "$CORPUS/module" >/dev/null \
  || die "could not write the synthetic module seeds"
for tree in "$REF"/trees/*/; do
  [ -d "$tree/pristine" ] || continue
  # The smallest modules of each tree, as shipped (signed, maybe xz) and decompressed.
  mapfile -t small < <(find "$tree/pristine" -name '*.ko*' -printf '%s %p\n' | sort -n | head -4 | cut -d' ' -f2-)
  for ko in "${small[@]}"; do
    base=$(basename "$tree")-$(basename "$ko")
    cp -f "$ko" "$CORPUS/module/$base"
    case $ko in
      *.xz) xz -dc "$ko" > "$CORPUS/module/$base.ko" 2>/dev/null || true ;;
    esac
  done
  # Index files small enough to mutate quickly.
  mapfile -t bins < <(find "$tree/ref" -name 'modules.*.bin' -size -16k)
  for bin in "${bins[@]}"; do
    cp -f "$bin" "$CORPUS/index/$(basename "$tree")-$(basename "$bin")"
  done
  find "$tree/pristine" -path '*depmod.d/*' -type f -exec cp -f {} "$CORPUS/depmod_config/" \; 2>/dev/null || true
done
for f in fixtures/modprobe.d/*.conf /usr/lib/modprobe.d/*.conf /etc/modprobe.d/*.conf \
         "$REF"/kmod/root/usr/lib/modprobe.d/*.conf; do
  [ -f "$f" ] && cp -f "$f" "$CORPUS/modprobe_config/$(echo "$f" | tr / _)"
done
[ -r /proc/cmdline ] && cp -f /proc/cmdline "$CORPUS/cmdline/proc-cmdline"
# Signatures: the signed seed modules; keys and certificates: the test keys.
cp -f "$CORPUS"/module/*-signed* "$CORPUS/signature/" 2>/dev/null || true
for tree in "$REF"/trees/*/; do
  mapfile -t small < <(find "$tree/pristine" -name '*.ko' -printf '%s %p\n' 2>/dev/null | sort -n | head -2 | cut -d' ' -f2-)
  for ko in "${small[@]}"; do cp -f "$ko" "$CORPUS/signature/$(basename "$tree")-$(basename "$ko")"; done
done
cp -f fixtures/signing/* "$CORPUS/key_files/" 2>/dev/null || true
for f in /etc/depmod.d/*.conf /usr/lib/depmod.d/*.conf /lib/depmod.d/*.conf; do
  [ -f "$f" ] && cp -f "$f" "$CORPUS/depmod_config/$(echo "$f" | tr / _)"
done

# Release builds with debug assertions, so that integer overflows are findings too.
# No sanitizer: the code under test is safe Rust (the C decompressors are not
# instrumented either way), and AddressSanitizer's allocator would slow the
# allocation-heavy parsers down several times over.
FUZZ_FLAGS=(-O --debug-assertions --sanitizer none)
cargo +nightly fuzz build "${FUZZ_FLAGS[@]}" || die "build failed"

declare -A COUNT
failed=0
for t in "${TARGETS[@]}"; do
  log=$ROOT/fuzz/artifacts/$t.log
  mkdir -p "$ROOT/fuzz/artifacts/$t"
  # Findings of earlier runs are already in fuzz/regressions.
  rm -f "$ROOT/fuzz/artifacts/$t"/crash-* "$ROOT/fuzz/artifacts/$t"/oom-* \
        "$ROOT/fuzz/artifacts/$t"/timeout-* "$ROOT/fuzz/artifacts/$t"/leak-*
  echo "== $t: ${SECONDS_EACH}s"
  quiet=()
  # depmod.d parsing prints its diagnostics on stderr as depmod does, which would only
  # slow libFuzzer down; libFuzzer's own reports still come through.
  [ "$t" = depmod_config ] && quiet=(-close_fd_mask=2)
  if cargo +nightly fuzz run "${FUZZ_FLAGS[@]}" "$t" "$CORPUS/$t" -- \
       -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 "${quiet[@]}" >"$log" 2>&1; then
    :
  else
    failed=1
    echo "fuzz.sh: $t found a crash (log: $log)" >&2
    tail -40 "$log" >&2
  fi
  COUNT[$t]=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  # Keep every crashing input as a regression test.
  mkdir -p "$ROOT/fuzz/regressions/$t"
  for a in "$ROOT/fuzz/artifacts/$t"/crash-* "$ROOT/fuzz/artifacts/$t"/oom-* \
           "$ROOT/fuzz/artifacts/$t"/timeout-* "$ROOT/fuzz/artifacts/$t"/leak-*; do
    [ -f "$a" ] && cp -f "$a" "$ROOT/fuzz/regressions/$t/" && failed=1
  done
done

echo
printf '%-16s %s\n' target executions
for t in "${TARGETS[@]}"; do printf '%-16s %s\n' "$t" "${COUNT[$t]:-?}"; done
[ $failed -eq 0 ] || die "crashes saved under fuzz/regressions/; fix them, then run cargo test --test fuzz_regressions"
