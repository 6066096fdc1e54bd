#!/bin/bash
# End-to-end test through a real Debian initramfs: Debian trixie's own
# initramfs-tools (mkinitramfs, run in a private mount namespace on a private,
# read-only trixie tree) builds an image in which our static kmod is the only
# module tool; Debian's cloud kernel boots it under QEMU; the image's init loads
# the disk drivers with our modprobe, mounts an ext4 root file system from a
# virtio disk and hands over to that file system's init, which checks our lsmod
# against /proc/modules and reports on the serial console.  See docs/vm-test.md.
#
# Usage: scripts/initramfs-test.sh [options]
#
# Options:
#   -b BIN    use this static kmod binary instead of building one
#             (default: scripts/build-static.sh)
#   -n MODE   negative control: build the image with a broken modprobe and
#             succeed only if the boot fails the way it must.  MODE is
#             "index" (modules.dep.bin overwritten at boot, before the drivers
#             are loaded) or "wrapper" (modprobe replaced by a script that
#             exits 1)
#   -B        build and check the images, do not boot
#   -t SECS   hard timeout for the boot (default 240)
#   -a ARGS   extra kernel command-line arguments (e.g. "debug=y" for
#             initramfs-tools' shell trace on the console)
#   -v        stream the guest console while it runs (default: shown on failure)
#   -k        keep the work directory and print its path
#   -h        this help
#
# Exit status: 0 when the test passed (with -n: when the boot failed as it
# must); 1 when it failed; 124 on timeout; 2 when the harness could not run.
#
# Caches: the trixie packages and the tree unpacked from them under
# $KMOD_REFERENCE/initramfs-tools (default ~/.cache/kmod-reference); the images,
# keyed on everything they are built from, under target/initramfs-test.
set -euo pipefail

prog=initramfs-test
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/common.sh
. "$ROOT/scripts/common.sh"
BIN='' NEGATIVE='' BOOT=1 TIMEOUT=240 EXTRA_APPEND='' VERBOSE=0 KEEP=0
while getopts 'b:n:Bt:a:vkh' opt; do
    case $opt in
        b) BIN=$OPTARG ;;
        n) NEGATIVE=$OPTARG ;;
        B) BOOT=0 ;;
        t) TIMEOUT=$OPTARG ;;
        a) EXTRA_APPEND=$OPTARG ;;
        v) VERBOSE=1 ;;
        k) KEEP=1 ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
case $NEGATIVE in '' | index | wrapper) ;; *) die "-n takes index or wrapper" ;; esac
TESTDIR=$ROOT/tests/initramfs
SECONDS=0
step() { say "[$SECONDS s] $*"; }

# --- host prerequisites -----------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v mke2fs >/dev/null || need+=(e2fsprogs)
command -v unshare >/dev/null || need+=(util-linux)
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v file >/dev/null || need+=(file)
command -v sha256sum >/dev/null || need+=(coreutils)
install_with_static_busybox ${need[@]+"${need[@]}"}
[ "$(id -u)" = 0 ] || die "needs root: mkinitramfs runs in a private mount namespace, chrooted"

# --- kernel, module tree, reference kmod ------------------------------------
step "fetching the reference kernel and kmod (scripts/fetch-reference.sh)"
find_reference_kernel
[ -d "$TREE/pristine/usr/lib/modules/$KVER" ] || die "no module tree for $KVER"
REFMODPROBE=$REFDIR/kmod/bin/modprobe REFDEPMOD=$REFDIR/kmod/bin/depmod
if [ ! -x "$REFMODPROBE" ] || [ ! -x "$REFDEPMOD" ]; then die "reference kmod missing in $REFDIR/kmod"; fi

# --- our static binary -------------------------------------------------------
if [ -z "$BIN" ]; then
    step "building the static binary (scripts/build-static.sh)"
    BIN=$("$ROOT/scripts/build-static.sh" | tail -n1) || die "scripts/build-static.sh failed"
fi
[ -f "$BIN" ] || die "no such binary: $BIN"
BIN=$(realpath "$BIN")
is_static "$BIN" || die "$BIN is not statically linked: $(file -bL "$BIN")"
BIN_SHA=$(sha256sum < "$BIN" | cut -d' ' -f1)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/initramfs-test.XXXXXX") || die "mktemp failed"
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    if [ "$KEEP" = 1 ]; then say "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 2' INT TERM

# --- the trixie tree mkinitramfs runs in -------------------------------------
# Debian trixie's initramfs-tools with what mkinitramfs and its hooks run, the
# userland of the distribution the kernel comes from (the host may be older:
# trixie's busybox needs trixie's glibc).  Debian's kmod package provides the
# kmod hook, its modprobe/rmmod links and aliases.conf; its binary is replaced
# by ours for each build (a bind mount).  libkmod2 is there for dracut-install,
# which initramfs-tools 0.148 copies modules with; it never enters the image.
PACKAGES=(
    initramfs-tools initramfs-tools-core initramfs-tools-bin klibc-utils libklibc
    busybox dracut-install kmod libkmod2
    libc6 libc-bin dash bash libtinfo6 coreutils libacl1 libattr1 libcap2 libgmp10
    libselinux1 libpcre2-8-0 libssl3t64 libsystemd0 findutils grep sed cpio
    gzip zstd libzstd1 liblz4-1 liblzma5 libstdc++6 libgcc-s1 zlib1g util-linux
    dpkg libbz2-1.0 libmd0 libxxhash0 debianutils
)
# Programs the build runs; each must find all its libraries in the tree.
PROGRAMS="mkinitramfs unmkinitramfs busybox /usr/lib/dracut/dracut-install ldd ldconfig getopt dpkg
    sh bash cpio zstd find grep sed sort uniq xargs cp ln mktemp readlink env ischroot"
# Bump when the tree's layout changes, to rebuild it.
TREE_FORMAT=1
ITDIR=$REFDIR/initramfs-tools
DEBS=$ITDIR/debs
SYSROOT=$ITDIR/sysroot
mkdir -p "$DEBS"
# One run at a time prepares the tree and builds in it.
exec 9> "$ITDIR/.lock"
flock 9
APT=(-o "Dir::Etc::SourceList=$REFDIR/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
     -o "Dir::State::Lists=$REFDIR/apt/lists" -o "Dir::Cache=$REFDIR/apt/cache"
     -o Debug::NoLocking=1 -o APT::Architectures::=amd64 -o APT::Sandbox::User=root)
# The package lists fetch-reference.sh downloaded name one version of each.
if [ "$(cat "$DEBS/.packages" 2>/dev/null)" != "${PACKAGES[*]}" ]; then
    step "downloading ${#PACKAGES[@]} trixie packages into $DEBS"
    rm -f "$DEBS"/*.deb "$DEBS/.packages"
    download() { (cd "$DEBS" && apt-get "${APT[@]}" download -qq "${PACKAGES[@]}" >&2); }
    if ! download; then
        # Lists older than the archive name versions it no longer has.
        say "refreshing the trixie package lists and trying again"
        apt-get "${APT[@]}" update -qq >&2 || die "apt-get update failed"
        download || die "apt-get download failed"
    fi
    echo "${PACKAGES[*]}" > "$DEBS/.packages"
fi
TREE_KEY=$( (echo "format $TREE_FORMAT"; cd "$DEBS" && ls ./*.deb) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$SYSROOT/.key" 2>/dev/null)" != "$TREE_KEY" ]; then
    step "unpacking the packages into $SYSROOT"
    rm -rf "$SYSROOT"
    mkdir -p "$SYSROOT"/usr/{bin,sbin,lib,lib64}
    # merged /usr, as trixie's base-files sets it up
    for d in bin sbin lib lib64; do ln -s "usr/$d" "$SYSROOT/$d"; done
    for deb in "$DEBS"/*.deb; do
        dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$SYSROOT" ||
            die "unpacking $deb failed"
    done
    # Mount points for the build (the tree itself is mounted read-only then).
    mkdir -p "$SYSROOT"/{proc,dev,tmp,var/tmp,boot,out,usr/lib/modules}
    for p in $PROGRAMS; do
        # shellcheck disable=SC2016  # expanded by the tree's shell
        missing=$(unshare --mount --fork chroot "$SYSROOT" /bin/sh -c \
            'p=$(command -v "$1") || { echo "$1: not found"; exit; }
             ldd "$p" 2>&1 | grep "not found" | sed "s|^|$1: |"' sh "$p") ||
            die "cannot run the tree's shell"
        [ -z "$missing" ] || die "in the trixie tree: $missing"
    done
    echo "$TREE_KEY" > "$SYSROOT/.key"
fi
IT_VERSION=$(sed -n 's/^Version: //p' < <(dpkg-deb -f "$DEBS"/initramfs-tools-core_*.deb))

# --- the initramfs -----------------------------------------------------------
# The configuration directory (/etc/initramfs-tools in the tree): Debian's
# default, plus tests/initramfs/conf, plus the negative control's files.
IMGDIR=${CARGO_TARGET_DIR:-$ROOT/target}/initramfs-test
NAME=initrd${NEGATIVE:+-negative-$NEGATIVE}
mkdir -p "$IMGDIR"
CONF=$WORK/conf
cp -a "$SYSROOT/etc/initramfs-tools" "$CONF"
cp -a "$TESTDIR/conf/." "$CONF/"
[ -z "$NEGATIVE" ] || cp -a "$TESTDIR/negative/$NEGATIVE/." "$CONF/"
IMG_KEY=$( {
    echo "tree $TREE_KEY"; echo "kmod $BIN_SHA"; echo "kernel $KVER"
    sha256sum "$0"
    (cd "$CONF" && find . -type f | LC_ALL=C sort | xargs sha256sum)
} | sha256sum | cut -d' ' -f1)
INITRD=$IMGDIR/$NAME.img
if [ "$(cat "$IMGDIR/$NAME.key" 2>/dev/null)" = "$IMG_KEY" ] && [ -f "$INITRD" ]; then
    step "initramfs $INITRD is up to date"
else
    step "building $NAME with mkinitramfs (initramfs-tools $IT_VERSION) in a private mount namespace"
    rm -f "$INITRD" "$IMGDIR/$NAME.key"
    OUT=$WORK/out
    mkdir -p "$OUT"
    # In the namespace: the tree read-only; tmpfs for /tmp, /var/tmp, /dev (with
    # null, zero, random, urandom) and the module directory (a copy of the
    # kernel package's, for mkinitramfs to run depmod in); the kernel package's
    # /boot, our binary as /usr/bin/kmod and the configuration, all read-only;
    # /out the only directory written to on the host.  The mounts go away with
    # the namespace.  No network in there either.
    # shellcheck disable=SC2016  # expanded by the inner shell
    unshare --mount --pid --net --ipc --uts --fork --propagation private -- /bin/bash -euc '
        S=$1 BIN=$2 CONF=$3 OUT=$4 PRISTINE=$5 KVER=$6
        ro_bind() { mount --bind "$1" "$2"; mount -o remount,bind,ro "$2"; }
        ro_bind "$S" "$S"
        for d in tmp var/tmp dev usr/lib/modules; do mount -t tmpfs -o mode=1777 tmpfs "$S/$d"; done
        chmod 755 "$S/dev" "$S/usr/lib/modules"
        for n in null zero random urandom; do touch "$S/dev/$n"; mount --bind "/dev/$n" "$S/dev/$n"; done
        mount -t proc proc "$S/proc"
        cp -a "$PRISTINE/usr/lib/modules/$KVER" "$S/usr/lib/modules/"
        ro_bind "$PRISTINE/boot" "$S/boot"
        ro_bind "$BIN" "$S/usr/bin/kmod"
        ro_bind "$CONF" "$S/etc/initramfs-tools"
        mount --bind "$OUT" "$S/out"
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
            chroot "$S" mkinitramfs -v -o /out/initrd.img "$KVER" > "$OUT/mkinitramfs.log" 2>&1 ||
            { tail -n 40 "$OUT/mkinitramfs.log" >&2; echo "mkinitramfs failed" >&2; exit 1; }
        # Unpacked with Debian'"'"'s own tool, for the checks on the host.
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
            chroot "$S" unmkinitramfs /out/initrd.img /out/unpacked
        # Our depmod ran on the whole tree: keep its indexes for a comparison.
        mkdir "$OUT/tree-indexes"
        cp "$S/usr/lib/modules/$KVER"/modules.* "$OUT/tree-indexes/"
    ' inner "$SYSROOT" "$BIN" "$CONF" "$OUT" "$TREE/pristine" "$KVER" ||
        { say "FAILED: building the initramfs failed (log above)"; exit 1; }
    grep -E '^(W|E):' "$OUT/mkinitramfs.log" | sed "s/^/$prog: mkinitramfs: /" >&2 || true

    # --- what is in the image ---------------------------------------------
    # unmkinitramfs puts each cpio archive in its own directory when there are
    # several (the .xz modules travel uncompressed, ahead of the rest).
    U=$WORK/image
    mkdir -p "$U"
    if [ -d "$OUT/unpacked/main" ]; then
        for d in "$OUT/unpacked"/*/; do cp -a "$d." "$U/"; done
    else
        cp -a "$OUT/unpacked/." "$U/"
    fi
    problems=()
    problem() { problems+=("$*"); }
    if [ ! -f "$U/init" ] || [ ! -d "$U/scripts" ]; then problem "no initramfs-tools /init and /scripts"; fi
    if [ -z "$NEGATIVE" ]; then
        # The one module tool: our binary, byte for byte, under all six names.
        if [ "$(sha256sum < "$U/usr/bin/kmod" | cut -d' ' -f1)" != "$BIN_SHA" ]; then
            problem "usr/bin/kmod in the image is not our binary"
        fi
        kmod_inode=$(stat -c %i "$U/usr/bin/kmod")
        for t in insmod rmmod lsmod modinfo modprobe depmod; do
            for p in "usr/sbin/$t" "usr/bin/$t"; do
                [ -e "$U/$p" ] || [ -L "$U/$p" ] || continue
                # resolve inside the image, never on the host
                target=$(readlink "$U/$p" || true)
                case $target in
                    ../bin/kmod | /usr/bin/kmod | /bin/kmod) ;;
                    ?*) problem "$p is a link to $target, not to kmod" ;;
                    *) inode=$(stat -c %i "$U/$p")
                       if [ "$inode" = "$(stat -c %i "$U/usr/bin/busybox" 2>/dev/null)" ]; then
                           problem "$p is busybox, not kmod"
                       elif [ "$inode" != "$kmod_inode" ]; then
                           problem "$p is not kmod: $(file -b "$U/$p")"
                       fi ;;
                esac
            done
            [ -e "$U/usr/sbin/$t" ] || problem "no usr/sbin/$t"
        done
        # Nothing else that is a module tool, and no libkmod (usr/bin and
        # usr/sbin were checked above).
        while IFS= read -r f; do problem "unexpected $f"; done < <(cd "$U" &&
            find . \( -name 'libkmod*' -o -name 'insmod' -o -name 'rmmod' -o -name 'lsmod' \
                -o -name 'modinfo' -o -name 'modprobe' -o -name 'depmod' -o -name 'kmod' \) \
                ! -path './usr/bin/*' ! -path './usr/sbin/*' | sed 's|^\./||')
        # Every dependency of the listed drivers, as reference modprobe resolves
        # them on the full tree (dracut-install resolved them with libkmod from
        # the indexes our depmod wrote into the tree).
        MODLIST=$(grep -Ev '^[[:space:]]*(#|$)' "$TESTDIR/conf/modules" | awk '{print $1}')
        # shellcheck disable=SC2086
        while read -r _ path _; do
            [ -f "$U/usr/lib/modules/$KVER/${path#*/lib/modules/"$KVER"/}" ] ||
                problem "module ${path##*/} missing from the image"
        done < <("$REFMODPROBE" -d "$TREE/ref" -S "$KVER" -a --show-depends $MODLIST | grep '^insmod ')
        # The image's indexes (our depmod, run by mkinitramfs) and the tree's
        # (our depmod, run first) against reference depmod on the same modules.
        mkdir -p "$WORK/refimg"
        "$REFDEPMOD" -b "$U" -o "$WORK/refimg" "$KVER" || problem "reference depmod failed on the image"
        nidx=0
        for f in "$U/usr/lib/modules/$KVER"/modules.*; do
            case ${f##*/} in modules.builtin | modules.builtin.modinfo | modules.order) continue ;; esac
            if cmp -s "$f" "$WORK/refimg/lib/modules/$KVER/${f##*/}"; then nidx=$((nidx + 1)); else
                problem "image's ${f##*/} differs from reference depmod's"
            fi
        done
        ntree=0
        for f in "$TREE/ref/lib/modules/$KVER"/modules.*; do
            case ${f##*/} in modules.builtin | modules.builtin.modinfo | modules.order) continue ;; esac
            if cmp -s "$f" "$OUT/tree-indexes/${f##*/}"; then ntree=$((ntree + 1)); else
                problem "the tree's ${f##*/} (our depmod in mkinitramfs) differs from reference depmod's"
            fi
        done
        say "image: kmod is ours under all six names, no libkmod, no other module tool;" \
            "$nidx index files equal to reference depmod's (and $ntree of the full tree's)"
    fi
    if [ ${#problems[@]} -gt 0 ]; then
        for p in "${problems[@]}"; do say "image: $p"; done
        say "FAILED: the initramfs is not what the test needs (${#problems[@]} problems)"
        exit 1
    fi
    mv "$OUT/initrd.img" "$INITRD"
    echo "$IMG_KEY" > "$IMGDIR/$NAME.key"
    say "initramfs: $(stat -c %s "$INITRD") bytes, $(find "$U" -name '*.ko*' | wc -l) modules"
fi

exec 9>&-

# --- the root file system ------------------------------------------------------
# ext4, made by mke2fs -d from a directory (no mount, no loop device): merged
# /usr, a static busybox (without its module applets), our binary under the
# names Debian installs, and tests/initramfs/root-init as /sbin/init.
ROOTIMG=$IMGDIR/root.ext4
ROOT_KEY=$( {
    echo "kmod $BIN_SHA"; sha256sum /bin/busybox "$0" "$TESTDIR/root-init" "$TESTDIR/lsmod-check.sh"
} | sha256sum | cut -d' ' -f1)
if [ "$(cat "$IMGDIR/root.key" 2>/dev/null)" = "$ROOT_KEY" ] && [ -f "$ROOTIMG" ]; then
    step "root file system $ROOTIMG is up to date"
else
    step "building the root file system (mke2fs -d)"
    R=$WORK/rootfs
    mkdir -p "$R"/usr/{bin,sbin,lib} "$R"/{dev,proc,sys,run,tmp,root,etc}
    for d in bin sbin lib; do ln -s "usr/$d" "$R/$d"; done
    install -m 755 /bin/busybox "$R/usr/bin/busybox"
    while IFS= read -r applet; do
        case ${applet##*/} in insmod | rmmod | lsmod | modinfo | modprobe | depmod) continue ;; esac
        [ -e "$R/$applet" ] || [ -L "$R/$applet" ] || ln -s /usr/bin/busybox "$R/$applet"
    done < <(/bin/busybox --list-full)
    install -m 755 "$BIN" "$R/usr/bin/kmod"
    for t in insmod rmmod lsmod modinfo modprobe depmod; do ln -sfn ../bin/kmod "$R/usr/sbin/$t"; done
    ln -sfn kmod "$R/usr/bin/lsmod"
    rm -f "$R/usr/sbin/init"
    install -m 755 "$TESTDIR/root-init" "$R/usr/sbin/init"
    install -m 644 "$TESTDIR/lsmod-check.sh" "$R/lsmod-check.sh"
    rm -f "$ROOTIMG" "$IMGDIR/root.key"
    truncate -s 16M "$ROOTIMG.tmp"
    mke2fs -q -F -t ext4 -L kmodrs-root -E root_owner=0:0 -d "$R" "$ROOTIMG.tmp" ||
        die "mke2fs failed"
    mv "$ROOTIMG.tmp" "$ROOTIMG"
    echo "$ROOT_KEY" > "$IMGDIR/root.key"
fi

# --- the lsmod check can fail ----------------------------------------------------
# The root image's comparison, run here with busybox's sh and awk as in the
# guest: a real pair of /proc/modules and lsmod output must pass, and each
# breakage of the lsmod side must be reported.
if [ -z "$NEGATIVE" ]; then
    FIX=$TESTDIR/fixtures
    # shellcheck disable=SC2016  # expanded by busybox sh
    check() { /bin/busybox sh -c '. "$1"; lsmod_check "$2" "$3"' sh "$TESTDIR/lsmod-check.sh" "$@"; }
    check "$FIX/proc-modules" "$FIX/lsmod" > "$WORK/check.out" ||
        die "lsmod check rejects the fixture pair: $(cat "$WORK/check.out")"
    n=0
    while IFS='|' read -r what script; do
        sed "$script" "$FIX/lsmod" > "$WORK/lsmod.broken"
        cmp -s "$WORK/lsmod.broken" "$FIX/lsmod" && die "lsmod check self-test: \"$what\" changes nothing"
        if check "$FIX/proc-modules" "$WORK/lsmod.broken" > "$WORK/check.out"; then
            die "lsmod check passes a broken lsmod output: $what"
        fi
        n=$((n + 1))
    done <<'CASES'
last module missing|$d
first module's size|2s/^\([^ ]* *\)[0-9]/\19/
use count|3s/  \([0-9]\)/  9/
a holder missing|/,/s/,[a-z_]*$//
header|1s/Used by/Used_by/
a module twice|2p
two modules swapped|2{h;d};3G
column widths|2s/^\([^ ]*\) /\1/
CASES
    step "lsmod check: the fixture passes, $n broken variants fail"
fi

if [ $BOOT = 0 ]; then
    say "images ready in ${SECONDS}s: $INITRD, $ROOTIMG"
    exit 0
fi

# --- boot ----------------------------------------------------------------------
# TCG with -cpu max,cx16=off, as scripts/vm-test.sh (see docs/vm-test.md).  The
# disk is opened with snapshot=on, so the cached image is never written (the
# overlay goes to the work directory, TMPDIR).
# initramfs-tools reads panic=-1 too: on a failed boot it reboots at once,
# which ends QEMU (-no-reboot).
LOG=$WORK/console.log
APPEND="console=ttyS0 root=/dev/vda panic=-1 blacklist=virtio_net $EXTRA_APPEND"
step "booting $KVER with $NAME.img ($(( $(stat -c %s "$INITRD") / 1024 )) KiB) and root.ext4, TCG, timeout ${TIMEOUT}s"
t0=$SECONDS
set +e
TMPDIR=$WORK timeout -k 5 "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max,cx16=off -m 512M -smp 2 \
    -nodefaults -no-user-config -display none -no-reboot -serial stdio \
    -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND" \
    -drive "file=$ROOTIMG,if=virtio,format=raw,snapshot=on" \
    < /dev/null 2> "$WORK/qemu.err" |
    tr -d '\r' | if [ $VERBOSE = 1 ]; then tee "$LOG"; else cat > "$LOG"; fi
qrc=${PIPESTATUS[0]}
set -e
secs=$((SECONDS - t0))
[ ! -s "$WORK/qemu.err" ] || sed "s/^/$prog: qemu: /" "$WORK/qemu.err" >&2

# --- verdict ---------------------------------------------------------------------
show_log() {
    [ $VERBOSE = 1 ] ||
        { echo "----- guest console -----"; cat "$LOG"; echo "----- end of guest console -----"; } >&2
}
has() { grep -aqF -- "$1" "$LOG"; }
# fail_on_reasons PREFIX SUMMARY: when the array why lists anything, shows the
# console, each reason after PREFIX, then SUMMARY, and fails.
fail_on_reasons() {
    [ ${#why[@]} -gt 0 ] || return 0
    show_log
    for w in "${why[@]}"; do say "$1$w"; done
    say "$2"
    exit 1
}
grep -a -E '^KMODRS-(INITRAMFS|NEGATIVE|RESULT)|^KMODRS-ROOT (ok|FAIL)' "$LOG" | sed "s/^/$prog: guest: /" >&2 || true
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    show_log
    say "TIMEOUT after ${secs}s: the guest did not power off"
    exit 124
fi
if [ -n "$NEGATIVE" ]; then
    # The break must have happened, the drivers must not have loaded, and
    # initramfs-tools must have given up on the root device, never reaching it.
    why=()
    has "KMODRS-NEGATIVE" || why+=("no sign of the broken modprobe")
    has "KMODRS-INITRAMFS loaded since init-top: none" || why+=("modules were loaded all the same")
    has "ALERT!  /dev/vda does not exist" || why+=("initramfs-tools did not give up on /dev/vda")
    ! has "KMODRS-ROOT" || why+=("the root file system's init ran")
    ! has "KMODRS-RESULT PASS" || why+=("the test passed")
    fail_on_reasons "negative control ($NEGATIVE): " \
        "FAILED: the negative control did not fail the way it must (${secs}s)"
    say "negative control ($NEGATIVE): the boot failed as it must, after ${secs}s: no drivers loaded, initramfs-tools gave up on /dev/vda (total ${SECONDS}s)"
    exit 0
fi
why=()
has "KMODRS-INITRAMFS /sbin/modprobe is /usr/bin/kmod" || why+=("/sbin/modprobe in the initramfs is not /usr/bin/kmod")
has "KMODRS-INITRAMFS kmod sha256 $BIN_SHA" || why+=("the initramfs's kmod is not our binary")
grep -aq '^KMODRS-INITRAMFS kmod --version: .*kmod-rs' "$LOG" || why+=("kmod --version in the initramfs did not name kmod-rs")
has "KMODRS-RESULT PASS" || why+=("the root file system's init did not report PASS")
! has "KMODRS-RESULT FAIL" || why+=("the root file system's init reported FAIL")
fail_on_reasons "" "FAILED after ${secs}s of boot (qemu status $qrc)"
say "PASS: booted through initramfs-tools $IT_VERSION with our modprobe in ${secs}s (total ${SECONDS}s)"
