#!/bin/bash
# Builds the kmod multi-call binary as a fully static x86_64 musl executable, the
# form it takes in an initramfs (see docs/vm-test.md), and prints its path on the
# last line of stdout.
#
# Usage: scripts/build-static.sh
#
# Installs what is missing: the Rust musl target (rustup) and musl-gcc (Debian's
# musl-tools), which the C parts of liblzma-sys and zstd-sys are compiled with.
# Honours CARGO_TARGET_DIR like cargo does.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-musl
PROFILE=release-small

prog=build-static die_status=1
# shellcheck source=scripts/common.sh
. scripts/common.sh

command -v cargo >/dev/null || die "cargo not found"
command -v rustup >/dev/null || die "rustup not found (needed to add the $TARGET target)"
if ! rustup target list --installed | grep -qx "$TARGET"; then
    say "adding Rust target $TARGET"
    rustup target add "$TARGET" >&2 || die "rustup target add $TARGET failed"
fi
# The cc crate looks for x86_64-linux-musl-gcc, then musl-gcc.
if ! command -v musl-gcc >/dev/null && ! command -v x86_64-linux-musl-gcc >/dev/null; then
    apt_install musl-tools
fi
command -v file >/dev/null || apt_install file

say "cargo build --profile $PROFILE --target $TARGET"
cargo build --locked --profile "$PROFILE" --target "$TARGET" --bin kmod >&2

BIN=${CARGO_TARGET_DIR:-target}/$TARGET/$PROFILE/kmod
[ -x "$BIN" ] || die "cargo did not produce $BIN"
BIN=$(realpath "$BIN")

# Static means: no program interpreter and no shared-library dependencies. `file`
# says "statically linked" (or "static-pie linked"); ldd must find nothing to load.
desc=$(file -b "$BIN")
case $desc in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) die "$BIN is not static: $desc" ;;
esac
if ldd "$BIN" 2>/dev/null | grep -q '=>'; then
    die "$BIN needs shared libraries: $(ldd "$BIN" 2>&1 | tr '\n' ' ')"
fi
say "static: $desc"
say "size: $(stat -c %s "$BIN") bytes"
echo "$BIN"
