#!/bin/bash
# Builds kmod-rs, writes a small demo module tree (eight modules that depend on each
# other, mixed compressions, a signed one, builtin modules, modprobe.d and depmod.d
# configuration) and shows the main job on it: depmod writes the indexes, modprobe
# resolves names, aliases, dependencies and softdeps, modinfo reads modules, in text
# and in JSON. Where this machine has modules for its running kernel, lsmod too.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "demo.sh: needs cargo (https://rustup.rs)" >&2; exit 1; }
cargo build --release --quiet --bins --workspace
demo=$PWD/target/demo
rm -rf "$demo"
target/release/kogen-demo "$demo" >/dev/null
kver=$(ls "$demo/lib/modules")
bin=$PWD/target/demo-bin
mkdir -p "$bin"
for tool in kmod insmod rmmod lsmod modinfo modprobe depmod; do ln -sf ../release/kmod "$bin/$tool"; done
export PATH=$bin:$PATH

step() {
    printf '\n\033[1m$ %s\033[0m\n' "$*" | sed "s|$demo|\$DEMO|g; s|$bin/||g"
    "$@" 2>&1 | sed "s|$demo|\$DEMO|g" || true
}
# JSON, pretty-printed when python3 is at hand.
json() {
    printf '\n\033[1m$ %s\033[0m\n' "$*" | sed "s|$demo|\$DEMO|g"
    if command -v python3 >/dev/null; then
        "$@" | python3 -m json.tool | sed "s|$demo|\$DEMO|g"
    else
        "$@" | sed "s|$demo|\$DEMO|g"
    fi
}

echo "Demo tree: \$DEMO = $demo (kernel $kver)"
step kmod --version
# depmod: the eleven index files modprobe and modinfo read.
step depmod -b "$demo" -C "$demo/etc/depmod.d" "$kver"
step ls "$demo/lib/modules/$kver"
step cat "$demo/lib/modules/$kver/modules.dep"

mp=(modprobe -C "$demo/etc/modprobe.d" -d "$demo" -S "$kver")
# Dependencies (modules.dep) and softdeps (the module's own and modprobe.d's).
step "${mp[@]}" --show-depends snd-demo
# An alias from modprobe.d, with the options configured for the module.
step "${mp[@]}" -n -v demo-eth
# A device alias, the way udev asks for a driver.
step "${mp[@]}" -R 'pci:v00008086d000010D3sv00001234sd00005678bc02sc00i00'
step "${mp[@]}" --show-depends demo_console
step modinfo -b "$demo" -k "$kver" demonet
step modinfo "$demo/lib/modules/$kver/kernel/crypto/democrypto.ko"

# The same answers for scripts.
json modinfo -b "$demo" -k "$kver" --json demobus
json "${mp[@]}" --show-depends --json snd-demo

if [ -r /proc/modules ] && [ -d "/lib/modules/$(uname -r)" ]; then
    step lsmod
    json lsmod --json
else
    echo
    echo "(no modules for the running kernel here: lsmod has nothing to show)"
fi
