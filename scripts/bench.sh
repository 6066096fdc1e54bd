#!/bin/bash
# Side-by-side timings of kmod-rs and reference kmod 34.2 on the same real module tree,
# whole-process wall time with hyperfine. Prints each pair and the ratio ours/kmod.
# Usage: scripts/bench.sh [modinfo|modprobe|depmod|depmod-cache|size|all]
# (depmod includes depmod-cache, the runs with the module cache)
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

# versus TITLE NAME_A CMD_A NAME_B CMD_B: hyperfine both, print mean times and the ratio
# A/B. WARMUP and RUNS override hyperfine's warm-up and minimum run counts; PREPARE is
# run (without a shell) before each run of either.
versus() {
  local title=$1
  hyperfine -N --warmup "${WARMUP:-3}" --min-runs "${RUNS:-30}" ${PREPARE:+--prepare "$PREPARE"} \
    --export-json "$out/r.json" -n "$2" "$3" -n "$4" "$5" >/dev/null
  python3 - "$out/r.json" "$title" "$2" "$4" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
a, b = r[sys.argv[3]], r[sys.argv[4]]
print(f"{sys.argv[2][:90]:<90}\n    {sys.argv[3]} {a['mean']*1e3:8.2f} ± {a['stddev']*1e3:5.2f} ms   "
      f"{sys.argv[4]} {b['mean']*1e3:8.2f} ± {b['stddev']*1e3:5.2f} ms   ratio {a['mean']/b['mean']:.3f}")
PY
}

# compare NAME ARGS...: ours against kmod with the same arguments.
compare() {
  local name=$1; shift
  versus "$name $*" ours "$bin/$name $*" kmod "$(kmod_cmd "$name") $*"
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

if [ "$what" = depmod ] || [ "$what" = depmod-cache ] || [ "$what" = all ]; then
  # The module cache, on a real copy of the trixie tree (hard links would share the
  # inodes, whose ctimes other processes' links change). Each timed run starts from
  # the cache as it was before the change (PREPARE puts it back), so it measures the
  # first run after the change, which reads the changed modules and writes a new cache.
  name=trixie-amd64
  v=$(cat "$REF/trees/$name/KVER")
  root=$out/cache-$name
  cp -a "$REF/trees/$name/pristine" "$root"
  dir=$root/lib/modules/$v
  # A run keeps no entry for a file changed in the last two seconds.
  settle() { sleep 2.2; "$bin/depmod" --cache -b "$root" "$v"; cp "$dir/modules.cache" "$out/cache.before"; }
  settle
  echo "depmod -b ROOT --cache, trixie: cache size $(stat -c %s "$dir/modules.cache") bytes," \
    "the eleven files $(cat "$dir"/modules.{dep,alias,softdep,weakdep,symbols,devname} "$dir"/modules.*.bin | wc -c) bytes"
  kmod_depmod="$(kmod_cmd depmod) -b $root $v"
  WARMUP=1 RUNS=10 versus "nothing changed (--cache)" ours "$bin/depmod --cache -b $root $v" \
    kmod "$kmod_depmod"
  e1000e=$dir/kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko.xz
  cp "$e1000e" "$out/new.ko.xz" && mv "$out/new.ko.xz" "$e1000e"
  PREPARE="cp $out/cache.before $dir/modules.cache" WARMUP=1 RUNS=10 \
    versus "one module replaced (e1000e.ko.xz, --cache)" ours "$bin/depmod --cache -b $root $v" \
    kmod "$kmod_depmod"
  settle
  mkdir -p "$dir/extra"
  # (sed reads to the end: with pipefail, head would fail the pipeline with SIGPIPE)
  find "$dir/kernel/drivers/net" -name '*.ko.xz' | sort | sed -n 1,30p > "$out/picked"
  i=0
  while read -r f; do
    i=$((i + 1))
    if [ $i -le 20 ]; then cp "$f" "$dir/extra/cachebench$i.ko.xz"; else rm "$f"; fi
  done < "$out/picked"
  PREPARE="cp $out/cache.before $dir/modules.cache" WARMUP=1 RUNS=10 \
    versus "20 modules added, 10 removed (--cache)" ours "$bin/depmod --cache -b $root $v" \
    kmod "$kmod_depmod"
  # The first run, without a cache to read, against a full run that does not use one.
  PREPARE="rm -f $dir/modules.cache" WARMUP=1 RUNS=10 \
    versus "first run: --cache without a cache, against --no-cache" first "$bin/depmod --cache -b $root $v" \
    no-cache "$bin/depmod --no-cache -b $root $v"
  first_rss=$(peak_rss sh -c "rm -f $dir/modules.cache; exec $bin/depmod --cache -b $root $v")
  echo "    peak RSS: first run $first_rss kB   no cache $(peak_rss "$bin/depmod" --no-cache -b "$root" "$v") kB"
fi
