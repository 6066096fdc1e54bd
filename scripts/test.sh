#!/bin/bash
# The whole test suite: formatting, lints, unit and integration tests (including the
# differential tests against reference kmod 34.2 on real Debian module trees), then
# the end-to-end test that boots Debian's kernel in QEMU with our static binary.
set -euo pipefail
cd "$(dirname "$0")/.."
export KMOD_REFERENCE=${KMOD_REFERENCE:-$(scripts/fetch-reference.sh | tail -1)}
# depmod's durability test traces its system calls.
command -v strace >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked --release
scripts/vm-test.sh
