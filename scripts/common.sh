# shellcheck shell=bash
# Shell helpers shared by the scripts that set up their own prerequisites.
# Sourced, not run: the script sets `prog` (its name in messages) first, and
# `die_status` when a failure must exit with something other than 2.

# shellcheck disable=SC2154 # prog is the sourcing script's
say() { echo "$prog: $*" >&2; }
die() { say "ERROR: $*"; exit "${die_status:-2}"; }

# The script's header comment, from line 2 to `set -euo pipefail`, as its usage.
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

# apt-get install, refreshing the package lists once if the first try fails (a
# fresh machine may have none, or stale ones).
apt_install() {
    command -v apt-get >/dev/null || die "need packages $* but apt-get is not available"
    say "installing $*"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2; then
        apt-get update -qq >&2 || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 ||
            die "apt-get install $* failed"
    fi
}

is_static() { file -bL "$1" | grep -Eq 'statically linked|static-pie linked'; }

# install_with_static_busybox PACKAGE...: installs the packages given and, unless
# /bin/busybox is already a static binary, busybox-static. Debian's "busybox"
# package is dynamically linked and conflicts with busybox-static, so the binary
# is what is checked.
install_with_static_busybox() {
    local need=("$@")
    if [ ! -x /bin/busybox ] || ! { command -v file >/dev/null && is_static /bin/busybox; }; then
        need+=(busybox-static)
    fi
    [ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
    is_static /bin/busybox || die "/bin/busybox is not statically linked (install busybox-static)"
}

# Sets REFDIR (reference kmod and trees, fetched the first time), TREE (Debian's
# trixie cloud kernel package, unpacked), KVER and KERNEL (its vmlinuz).
find_reference_kernel() {
    REFDIR=$("$ROOT/scripts/fetch-reference.sh" | tail -n1) || die "scripts/fetch-reference.sh failed"
    TREE=$REFDIR/trees/trixie-cloud
    [ -f "$TREE/KVER" ] || die "no trixie-cloud tree under $REFDIR/trees"
    KVER=$(cat "$TREE/KVER")
    KERNEL=$TREE/pristine/boot/vmlinuz-$KVER
    [ -f "$KERNEL" ] || die "no kernel image $KERNEL"
}
