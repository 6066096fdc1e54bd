#!/bin/bash
# Builds kmod-rs, writes a small demo module tree and runs the tools on it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bins --workspace
demo=target/demo
rm -rf "$demo"
target/release/kogen-demo "$demo" >/dev/null
kver=$(ls "$demo/lib/modules")
moddir="$demo/lib/modules/$kver"
bin=target/demo-bin
mkdir -p "$bin"
for tool in insmod rmmod lsmod modinfo modprobe depmod; do ln -sf ../release/kmod "$bin/$tool"; done
step() { printf '\n$ %s\n' "$*"; "$@" || true; }
step "$bin/modinfo" --version
for f in $(find "$moddir" -name '*.ko*' | sort | head -3); do step "$bin/modinfo" "$f"; done
step "$bin/modinfo" -F alias $(find "$moddir" -name '*.ko*' | sort)
