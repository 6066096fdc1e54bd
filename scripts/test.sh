#!/bin/bash
# The whole test suite, on a fresh Debian machine: installs what the tests drive, then
# runs formatting and lints, the hermetic tests (what plain `cargo test` runs), the
# differential group against reference kmod 34.2 on real Debian module trees
# (fetched into the cache the first time, ~250 MB; module signing against Debian's
# sign-file, with keys openssl makes), the host-tools group (manual pages, shell
# completions, make install, depmod's traced system calls), and the end-to-end tests
# that boot Debian's kernel in QEMU with our static binary: the guest tests, a boot
# with module signatures enforced, a boot through an initramfs made by Debian's
# initramfs-tools, and that boot's negative control (a broken module index, which
# must make it fail).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

# Host programs the tests run. A missing one is installed, never skipped.
declare -A package=(
  [man]=man-db [groff]=groff-base [zsh]=zsh [fish]=fish [make]=make
  [strace]=strace [prlimit]=util-linux [dpkg-deb]=dpkg [openssl]=openssl
)
need=()
for cmd in "${!package[@]}"; do
  command -v "$cmd" >/dev/null || need+=("${package[$cmd]}")
done
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { echo "test.sh: needs apt-get to install: ${need[*]}" >&2; exit 1; }
  echo "test.sh: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
fi
rustup component add clippy rustfmt >/dev/null 2>&1 || true
command -v cargo-clippy >/dev/null || { echo "test.sh: clippy is not installed" >&2; exit 1; }

export KMOD_REFERENCE=${KMOD_REFERENCE:-$(scripts/fetch-reference.sh | tail -1)}
cargo fmt --all --check
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
cargo test --workspace --locked --profile ci --all-features
scripts/vm-test.sh
# A boot that enforces module signatures, for the explanation of a refused module.
scripts/vm-test.sh -a module.sig_enforce=1 tests/vm/sig-enforce/unsigned.sh
scripts/initramfs-test.sh
scripts/initramfs-test.sh -n index
