#!/bin/bash
# End-to-end tests on a real kernel: boots Debian's trixie cloud kernel under QEMU
# (TCG) with an initramfs in which our statically linked kmod is the only module
# tool, runs guest test scripts from tests/vm/ in it, and exits with their status.
# See docs/vm-test.md.
#
# Usage: scripts/vm-test.sh [options] [GUEST_TEST...]
#
#   GUEST_TEST   POSIX sh scripts run in the guest, in order, in one boot
#                (default: every tests/vm/*.sh except tests/vm/lib.sh)
#
# Options:
#   -b BIN    use this static kmod binary instead of building one
#             (default: scripts/build-static.sh)
#   -t SECS   hard timeout for the boot and the tests (default 240)
#   -m MEM    guest memory (default 512M)
#   -s N      guest CPUs (default 2)
#   -c CPU    QEMU CPU model (default max,cx16=off; see below)
#   -a ARGS   extra kernel command-line arguments
#   -v        stream the guest console while it runs (default: shown on failure)
#   -k        keep the work directory (initramfs, console log) and print its path
#   -h        this help
#
# Exit status: 0 when every guest test passed; the guest's status (1) when one
# failed; 124 on timeout; 2 when the harness could not run or the guest died
# without reporting (kernel panic, broken /init).
#
# Installs what is missing on a Debian host: qemu-system-x86, cpio,
# busybox-static, dash, file.  Downloads the kernel and reference kmod 34.2
# through scripts/fetch-reference.sh the first time.
set -euo pipefail

prog=vm-test
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/common.sh
. "$ROOT/scripts/common.sh"
BIN='' CPU=max,cx16=off TIMEOUT=240 MEM=512M SMP=2 EXTRA_APPEND='' VERBOSE=0 KEEP=0
while getopts 'b:t:m:s:c:a:vkh' opt; do
    case $opt in
        b) BIN=$OPTARG ;;
        t) TIMEOUT=$OPTARG ;;
        m) MEM=$OPTARG ;;
        s) SMP=$OPTARG ;;
        c) CPU=$OPTARG ;;
        a) EXTRA_APPEND=$OPTARG ;;
        v) VERBOSE=1 ;;
        k) KEEP=1 ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))

TESTS=()
if [ $# -gt 0 ]; then
    TESTS=("$@")
else
    for t in "$ROOT"/tests/vm/*.sh; do
        [ "${t##*/}" = lib.sh ] || TESTS+=("$t")
    done
fi
[ ${#TESTS[@]} -gt 0 ] || die "no guest tests given or found in tests/vm/"
for t in "${TESTS[@]}"; do
    [ -f "$t" ] || die "no such guest test: $t"
done
# Names must be unique in the guest, which keeps them in one directory.
dups=$(for t in "${TESTS[@]}"; do basename "$t"; done | sort | uniq -d)
[ -z "$dups" ] || die "guest tests with the same file name: $dups"

# --- host prerequisites -----------------------------------------------------
# Each command is installed from its Debian package when missing.
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
command -v dash >/dev/null || need+=(dash)
command -v file >/dev/null || need+=(file)
command -v timeout >/dev/null || need+=(coreutils)
# The guest's utilities come from a static busybox.
install_with_static_busybox ${need[@]+"${need[@]}"}
DASH=$(command -v dash)

# --- kernel, module tree, reference kmod ------------------------------------
say "fetching the reference kernel and kmod (scripts/fetch-reference.sh)"
find_reference_kernel
# The "ref" copy of the tree holds the module files plus the indexes reference
# depmod wrote, so name lookups work in the guest before our depmod exists.
# (The package is merged-/usr; lib is a symlink to usr/lib there.)
MODSRC=$TREE/ref/lib/modules/$KVER
[ -f "$MODSRC/modules.dep.bin" ] || die "no depmod indexes in $MODSRC"
OLDTREE=$REFDIR/trees/bookworm-amd64
OLDKVER=$(cat "$OLDTREE/KVER" 2>/dev/null) || die "no bookworm-amd64 tree under $REFDIR/trees"
OLDDUMMY=$OLDTREE/pristine/lib/modules/$OLDKVER/kernel/drivers/net/dummy.ko
[ -f "$OLDDUMMY" ] || die "no $OLDDUMMY"
REFKMOD=$REFDIR/kmod/root/usr/bin/kmod
REFLIBS=$REFDIR/kmod/root/usr/lib/x86_64-linux-gnu
if [ ! -x "$REFKMOD" ] || [ ! -f "$REFLIBS/ld-linux-x86-64.so.2" ]; then
    die "reference kmod missing in $REFDIR/kmod"
fi

# --- our static binary -------------------------------------------------------
if [ -z "$BIN" ]; then
    say "building the static binary (scripts/build-static.sh)"
    BIN=$("$ROOT/scripts/build-static.sh" | tail -n1) || die "scripts/build-static.sh failed"
fi
[ -f "$BIN" ] || die "no such binary: $BIN"
# The guest has a glibc (for dash), so a dynamic binary could run there and hide
# a broken static build: insist on static here, on the host.
is_static "$BIN" || die "$BIN is not statically linked: $(file -bL "$BIN")"

# --- initramfs ---------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vm-test.XXXXXX") || die "mktemp failed"
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    if [ "$KEEP" = 1 ]; then say "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 2' INT TERM
STAGE=$WORK/root
mkdir -p "$STAGE"/{bin,sbin,usr/bin,usr/sbin,lib/modules,dev,proc,sys,tmp,root,etc} \
         "$STAGE"/vm/{tests,data} "$STAGE"/ref/{bin,lib}

# copy_with_libs SRC DST: a dynamically linked host program at DST in the guest,
# with the shared libraries ldd reports at their host paths.
copy_with_libs() {
    local src=$1 dst=$2 lib
    install -D -m 755 "$src" "$STAGE$dst"
    while read -r lib; do
        [ -e "$STAGE$lib" ] || install -D -m 755 "$(readlink -f "$lib")" "$STAGE$lib"
    done < <(ldd "$src" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}

# Our tool, under every name it answers to.  Debian ships the links in /usr/sbin
# (merged /usr); /sbin is where scripts and the kernel (kernel.modprobe) look.
TOOLS="insmod rmmod lsmod modinfo modprobe depmod"
install -m 755 "$BIN" "$STAGE/sbin/kmod"
for t in $TOOLS; do ln -s kmod "$STAGE/sbin/$t"; done

# The shell is dash, not busybox sh: Debian's busybox prefers its own applets to
# PATH, so its sh would run busybox insmod even with /sbin/insmod present.
copy_with_libs "$DASH" /bin/dash
ln -s dash "$STAGE/bin/sh"

# Busybox for everything else, without its module applets (they stay reachable
# only as "busybox insmod", which no test does).
install -m 755 /bin/busybox "$STAGE/bin/busybox"
while IFS= read -r applet; do
    case ${applet##*/} in insmod | rmmod | lsmod | modinfo | modprobe | depmod) continue ;; esac
    [ -e "$STAGE/$applet" ] || [ -L "$STAGE/$applet" ] || ln -s /bin/busybox "$STAGE/$applet"
done < <(/bin/busybox --list-full)

# The whole module tree of the cloud kernel (~25 MB: small enough for RAM).
cp -a "$MODSRC" "$STAGE/lib/modules/"

# Reference kmod 34.2, a dynamically linked trixie build, with its own loader
# and libraries (its glibc is newer than the host's dash one, so keep them
# apart under /ref/lib).  liblzma is dlopen()ed, so ldd does not list it.
install -m 755 "$REFKMOD" "$STAGE/ref/kmod"
reflibs=$("$REFLIBS/ld-linux-x86-64.so.2" --library-path "$REFLIBS" --list "$REFKMOD" |
    awk '$2 == "=>" && $3 ~ /^\// { print $3 }')
for lib in $reflibs "$REFLIBS/ld-linux-x86-64.so.2" "$REFLIBS/liblzma.so.5"; do
    [ -f "$lib" ] || die "reference library $lib missing"
    cp -L "$lib" "$STAGE/ref/lib/${lib##*/}"
done
for t in kmod $TOOLS; do
    cat > "$STAGE/ref/bin/$t" <<EOF
#!/bin/sh
# reference kmod 34.2 as "$t"
exec /ref/lib/ld-linux-x86-64.so.2 --library-path /ref/lib --argv0 $t /ref/kmod "\$@"
EOF
    chmod 755 "$STAGE/ref/bin/$t"
done

# Test data: a module built for another kernel (Debian bookworm's 6.1 dummy).
cp "$OLDDUMMY" "$STAGE/vm/data/dummy-$OLDKVER.ko"

# The tests, their helper library and PID 1.
install -m 644 "$ROOT/tests/vm/lib.sh" "$STAGE/vm/lib.sh"
: > "$STAGE/vm/tests/LIST"
for t in "${TESTS[@]}"; do
    install -m 755 "$t" "$STAGE/vm/tests/${t##*/}"
    echo "${t##*/}" >> "$STAGE/vm/tests/LIST"
done
install -m 755 "$ROOT/tests/vm/init" "$STAGE/init"

INITRD=$WORK/initrd.cpio
# Uncompressed: the modules are xz already, and the kernel unpacks plain cpio fastest.
(cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --owner=0:0 --quiet) \
    > "$INITRD" || die "cpio failed"
INITRD_MB=$(( ($(stat -c %s "$INITRD") + 1048575) / 1048576 ))

# --- boot --------------------------------------------------------------------
# KVM is not usable on these machines, so always TCG; -cpu max gives the guest
# every instruction-set extension TCG emulates, except CMPXCHG16B: with it,
# Debian's QEMU 7.2 crashed the guest kernel during boot in about one run of
# seven (double fault in __kmalloc right after SLUB's per-CPU cmpxchg16b; seen
# with -cpu max, max,la57=off and qemu64, with 1 and 2 CPUs), and none in 30
# runs without it.  The kernel falls back to its own emulation of the
# instruction.  No disks, no network, no display: the serial console is the
# only channel, and the guest's /init prints "VM-EXIT <status>" before
# powering off.
LOG=$WORK/console.log
# Module options on the command line for tests/vm/cmdline.sh, with bytes that are
# not UTF-8 and grub's quoting of a value with a space.
CMDLINE_OPTIONS=$'udf.kmodrs_bytes=caf\xe9\xff "udf.kmodrs_quoted=a b" modprobe.blacklist=kmodrs_\xfe,isofs'
APPEND="console=ttyS0 panic=-1 quiet rdinit=/init $CMDLINE_OPTIONS $EXTRA_APPEND"
say "kernel $KVER, initramfs ${INITRD_MB} MiB, mem $MEM, ${SMP} CPU(s) ($CPU), TCG, timeout ${TIMEOUT}s"
say "guest tests: $(tr '\n' ' ' < "$STAGE/vm/tests/LIST")"
t0=$(date +%s)
set +e
timeout -k 5 "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu "$CPU" -m "$MEM" -smp "$SMP" \
    -nodefaults -no-user-config -display none -no-reboot -serial stdio \
    -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND" \
    < /dev/null 2> "$WORK/qemu.err" |
    tr -d '\r' | if [ $VERBOSE = 1 ]; then tee "$LOG"; else cat > "$LOG"; fi
qrc=${PIPESTATUS[0]}
set -e
secs=$(( $(date +%s) - t0 ))
[ ! -s "$WORK/qemu.err" ] || sed "s/^/$prog: qemu: /" "$WORK/qemu.err" >&2

# --- verdict -----------------------------------------------------------------
marker=$(grep -a '^VM-EXIT [0-9]*$' "$LOG" | tail -n1 || true)
show_log() { [ $VERBOSE = 1 ] || { echo "----- guest console -----"; cat "$LOG"; echo "----- end of guest console -----"; } >&2; }
if [ -n "$marker" ]; then
    rc=${marker#VM-EXIT }
elif [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    show_log
    say "TIMEOUT after ${secs}s: the guest did not finish (raise -t?)"
    exit 124
else
    show_log
    grep -q 'Initramfs unpacking failed' "$LOG" && say "the kernel could not unpack the initramfs; raise -m"
    say "the guest ended without reporting a status after ${secs}s (qemu status $qrc)"
    exit 2
fi

# Per-test lines from the guest's /init: "VM-TEST <name> <status>".
[ "$rc" = 0 ] || show_log
grep -a '^RESULT ' "$LOG" | sed "s/^RESULT /$prog: /" >&2 || true
# Totals of the guest checks, in the plain "N passed, N failed" form; a test
# that failed without reporting a failed check (it crashed, or does not use
# lib.sh) counts as one failure.
grep -a -E '^(RESULT|VM-TEST) ' "$LOG" | awk -v p="$prog" '
    $1 == "RESULT" { name = $2; sub(/:$/, "", name); np += $3; nf += $5; failed[name] = $5 }
    $1 == "VM-TEST" && $3 != 0 && !failed[$2] { nf++ }
    END { printf "%s: %d passed, %d failed\n", p, np, nf }' >&2
grep -a '^VM-TEST ' "$LOG" | while read -r _ name st; do
    if [ "$st" = 0 ]; then say "PASS $name"; else say "FAIL $name (status $st)"; fi
done
if [ "$rc" = 0 ]; then
    say "all guest tests passed in ${secs}s"
else
    say "FAILED: guest status $rc after ${secs}s"
fi
exit "$rc"
