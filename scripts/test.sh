#!/bin/bash
# The whole test suite: formatting, lints, unit and integration tests, and the
# differential tests against reference kmod 34.2 on real Debian module trees.
set -euo pipefail
cd "$(dirname "$0")/.."
export KMOD_REFERENCE=${KMOD_REFERENCE:-$(scripts/fetch-reference.sh | tail -1)}
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked --release
