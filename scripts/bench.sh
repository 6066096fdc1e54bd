#!/bin/bash
# Side-by-side timings of kmod-rs and reference kmod 34.2 on the same real module tree,
# whole-process wall time with hyperfine. Prints each pair and the ratio ours/kmod.
# Usage: scripts/bench.sh [modinfo|modprobe|depmod|size|all]
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null
REF=${KMOD_REFERENCE:-$(scripts/fetch-reference.sh | tail -1)}
cargo build --release --quiet --bin kmod
bin=target/bench-bin
mkdir -p "$bin"
for tool in modinfo modprobe depmod; do ln -sf ../release/kmod "$bin/$tool"; done
tree=$REF/trees/trixie-amd64
kver=$(cat "$tree/KVER")
moddir=$tree/ref/lib/modules/$kver
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Reference kmod is run through its own dynamic loader directly (not the wrapper
# script), which costs the same as an ordinary dynamically linked start.
libs=$REF/kmod/root/usr/lib/x86_64-linux-gnu
kmod_cmd() { echo "$libs/ld-linux-x86-64.so.2 --library-path $libs --argv0 $1 $REF/kmod/root/usr/bin/kmod"; }

# compare NAME ARGS...: hyperfine both, print mean times and the ratio.
# WARMUP and RUNS override hyperfine's warm-up and minimum run counts.
compare() {
  local name=$1; shift
  hyperfine -N --warmup "${WARMUP:-3}" --min-runs "${RUNS:-30}" --export-json "$out/r.json" \
    -n ours "$bin/$name $*" -n kmod "$(kmod_cmd "$name") $*" >/dev/null
  python3 - "$out/r.json" "$name $*" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
o, k = r["ours"], r["kmod"]
print(f"{sys.argv[2][:90]:<90}\n    ours {o['mean']*1e3:8.2f} ± {o['stddev']*1e3:5.2f} ms   "
      f"kmod {k['mean']*1e3:8.2f} ± {k['stddev']*1e3:5.2f} ms   ratio {o['mean']/k['mean']:.2f}")
PY
}

if [ "$what" = modinfo ] || [ "$what" = all ]; then
  compare modinfo "$moddir/kernel/drivers/net/dummy.ko.xz"
  compare modinfo -F vermagic "$moddir/kernel/drivers/net/dummy.ko.xz"
  compare modinfo "$moddir/kernel/fs/btrfs/btrfs.ko.xz"
  compare modinfo -b "$tree/ref" -k "$kver" snd-hda-intel
  compare modinfo -F alias -b "$tree/ref" -k "$kver" e1000e
  compare modinfo -b "$tree/ref" -k "$kver" "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00"
fi

if [ "$what" = modprobe ] || [ "$what" = all ]; then
  # An empty configuration directory, so the host's modprobe.d is not measured.
  mkdir -p "$out/conf"
  compare modprobe -C "$out/conf" -d "$tree/ref" -S "$kver" --show-depends snd-hda-intel
  compare modprobe -C "$out/conf" -d "$tree/ref" -S "$kver" --show-depends btrfs
  compare modprobe -C "$out/conf" -d "$tree/ref" -S "$kver" -R "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00"
  compare modprobe -d "$tree/ref" -S "$kver" -c
fi

if [ "$what" = size ] || [ "$what" = all ]; then
  # What an initramfs must carry: our static binary, against kmod's binary plus
  # libkmod and every shared library it loads (compression and crypto included).
  static=$(scripts/build-static.sh | tail -1)
  ours_size=$(stat -c %s "$static")
  kmod_size=$(stat -c %s "$REF/kmod/root/usr/bin/kmod")
  libs_size=0
  for lib in libkmod.so.2 libc.so.6 ld-linux-x86-64.so.2 liblzma.so.5 libzstd.so.1 libz.so.1 libcrypto.so.3; do
    f=$(readlink -f "$libs/$lib")
    [ -f "$f" ] && libs_size=$((libs_size + $(stat -c %s "$f")))
  done
  echo "static kmod-rs: $ours_size bytes; kmod 34.2: $kmod_size bytes + libraries $libs_size bytes = $((kmod_size + libs_size)) bytes"
fi

# Peak resident set size in kB of a command, the largest of three runs.
peak_rss() {
  for _ in 1 2 3; do /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; done | sort -n | tail -1
}

if [ "$what" = depmod ] || [ "$what" = all ]; then
  # A private copy of each tree, hard-linked where possible: depmod only replaces its
  # output files (by renaming), it never writes into existing ones.
  for name in trixie-amd64 bookworm-amd64; do
    src=$REF/trees/$name
    v=$(cat "$src/KVER")
    root=$out/depmod-$name
    cp -al "$src/pristine" "$root" 2>/dev/null || cp -a "$src/pristine" "$root"
    WARMUP=1 RUNS=10 compare depmod -b "$root" "$v"
    # shellcheck disable=SC2046 # kmod_cmd's words are meant to be split
    echo "    peak RSS: ours $(peak_rss "$bin/depmod" -b "$root" "$v") kB   kmod $(peak_rss $(kmod_cmd depmod) -b "$root" "$v") kB"
  done
fi
