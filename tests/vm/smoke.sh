#!/bin/sh
# Smoke test on the real kernel: our kmod is the only module tool, modinfo reads
# the installed tree like reference kmod, and insmod/rmmod/lsmod load, list and
# unload real modules (dummy; xfs, btrfs and nf_tables with their dependencies
# loaded by hand), with lsmod compared byte for byte with reference kmod's.
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh

DUMMY=$MODDIR/kernel/drivers/net/dummy.ko.xz
XFS=$MODDIR/kernel/fs/xfs/xfs.ko.xz
BTRFS=$MODDIR/kernel/fs/btrfs/btrfs.ko.xz
NFT=$MODDIR/kernel/net/netfilter/nf_tables.ko.xz
LIBCRC=$MODDIR/kernel/lib/libcrc32c.ko.xz
NFNL=$MODDIR/kernel/net/netfilter/nfnetlink.ko.xz
XOR=$MODDIR/kernel/crypto/xor.ko.xz
RAID6=$MODDIR/kernel/lib/raid6/raid6_pq.ko.xz

echo "--- the environment"
for f in "$DUMMY" "$XFS" "$BTRFS" "$NFT" "$LIBCRC" "$NFNL" "$XOR" "$RAID6"; do
    [ -f "$f" ] || fail "missing module file $f"
done
# Our binary must be the one answering to every tool name, with no other
# module tool on PATH.
for t in insmod rmmod lsmod modinfo modprobe depmod; do
    p=$(command -v "$t")
    if [ "$p" = "/sbin/$t" ] && [ "$(readlink "/sbin/$t")" = kmod ]; then
        pass "$t is /sbin/$t -> kmod"
    else
        fail "$t resolves to '$p' ($(ls -l "$p" 2>&1)), not to /sbin/kmod"
    fi
    for d in /bin /usr/bin /usr/sbin; do
        [ ! -e "$d/$t" ] || fail "another $t in the guest: $d/$t"
    done
done
run version kmod --version
if [ "$(head -n1 "$T/version.out")" = "kmod version 34.2" ] && grep -q '^kmod-rs ' "$T/version.out"; then
    pass "kmod --version: kmod version 34.2, kmod-rs"
else
    fail "kmod --version printed:"
    _show stdout "$T/version.out"
    _show stderr "$T/version.err"
fi
# The feature line differs on purpose: we read gzip modules (+ZLIB), Debian's
# kmod is built without zlib (see README.md), so compare the version line only.
expect_output "insmod --version names kmod 34.2" "$(/ref/bin/insmod --version | head -n1)" \
    sh -c 'insmod --version | head -n1'
check "reference kmod runs in the guest" /ref/bin/kmod --version
initial=$(loaded_modules)
echo "modules loaded at boot: ${initial:-none}"

echo "--- modinfo on the installed tree"
same_as_ref "modinfo of a module file" modinfo "$DUMMY"
same_as_ref "modinfo of a signed module by name" modinfo xfs
same_as_ref "modinfo -F depends by name" modinfo -F depends btrfs
same_as_ref "modinfo of an alias" modinfo rtnl-link-dummy
same_as_ref "modinfo of a builtin module" modinfo ext4
same_as_ref "modinfo of an unknown name" modinfo no_such_module
expect_output "modinfo -F vermagic matches the running kernel" \
    "$(modinfo -F vermagic "$DUMMY")" modinfo -F vermagic dummy
case $(modinfo -F vermagic dummy) in
    "$KVER "*) pass "vermagic of dummy starts with $KVER" ;;
    *) fail "vermagic of dummy is '$(modinfo -F vermagic dummy)', kernel $KVER" ;;
esac

echo "--- lsmod before loading anything"
same_as_ref "lsmod" lsmod
same_as_ref "kmod list" kmod list

echo "--- insmod and rmmod of dummy"
check "insmod dummy.ko.xz" insmod "$DUMMY"
if is_loaded dummy; then pass "dummy is in /proc/modules"; else fail "dummy is not in /proc/modules"; fi
expect_output "/sys/module/dummy/initstate is live" live cat /sys/module/dummy/initstate
check "dummy created dummy0" test -e /sys/class/net/dummy0
same_as_ref "lsmod with dummy" lsmod
same_as_ref "kmod list with dummy" kmod list
same_as_ref "insmod of a loaded module fails the same way" insmod "$DUMMY"
check "rmmod dummy" rmmod dummy
if is_loaded dummy; then fail "dummy still in /proc/modules after rmmod"; else pass "dummy gone from /proc/modules"; fi
check "/sys/module/dummy is gone" test ! -e /sys/module/dummy
same_as_ref "rmmod of a module that is not loaded" rmmod dummy

echo "--- module parameters, file forms"
check "insmod dummy numdummies=3" insmod "$DUMMY" numdummies=3
check "numdummies=3 reached the module (dummy2 exists)" test -e /sys/class/net/dummy2
check "rmmod by file path" rmmod "$DUMMY"
if is_loaded dummy; then fail "rmmod by path left dummy loaded"; rmmod dummy; fi
xz -dc "$DUMMY" > "$T/dummy.ko"
check "insmod of an uncompressed module, relative path" sh -c "cd '$T' && insmod ./dummy.ko"
check "rmmod dummy (loaded from plain .ko)" rmmod dummy
gzip -c "$T/dummy.ko" > "$T/dummy.ko.gz"
check "insmod of a gzip-compressed module" insmod "$T/dummy.ko.gz"
check "rmmod dummy (loaded from .ko.gz)" rmmod dummy
# Reference loads, we unload: both sides agree on what the kernel holds.
check "reference insmod dummy" /ref/bin/insmod "$DUMMY"
same_as_ref "lsmod after reference insmod" lsmod
check "our rmmod of the reference-loaded dummy" rmmod dummy

echo "--- insmod errors, compared with reference kmod"
for old in /vm/data/dummy-*.ko; do
    [ -f "$old" ] || fail "no module for another kernel in /vm/data"
    same_as_ref_explained "insmod of a module for another kernel (${old##*/})" insmod "$old"
    check "insmod of a module for another kernel: the kernel it was built for" \
        grep -q "^insmod: ERROR: dummy was built for '[^']*'; this kernel is " "$T/ours.err"
done
same_as_ref_explained "insmod with missing dependencies" insmod "$XFS"
same_as_ref "insmod of a missing file" insmod /nonexistent.ko
same_as_ref "insmod of a non-module" insmod /vm/lib.sh
printf 'abc' > "$T/short.ko"
same_as_ref "insmod of a 3-byte file" insmod "$T/short.ko"
same_as_ref "insmod -" insmod -
same_as_ref "insmod without arguments" insmod
same_as_ref_explained "insmod with a bad parameter value" insmod "$DUMMY" numdummies=many
if is_loaded dummy; then fail "dummy loaded despite a bad parameter value"; rmmod dummy; fi
# The kernel ignores unknown parameters (and says so): the load succeeds.
check "insmod with an unknown parameter" insmod "$DUMMY" no_such_param=1
check "the kernel saw the unknown parameter" sh -c "dmesg | grep -q \"unknown parameter 'no_such_param' ignored\""
check "rmmod dummy (loaded with an unknown parameter)" rmmod dummy

echo "--- dependency chains loaded by hand: xfs, btrfs, nf_tables"
for m in "$LIBCRC" "$XFS" "$XOR" "$RAID6" "$BTRFS" "$NFNL" "$NFT"; do
    check "insmod ${m##*/}" insmod "$m"
done
for m in libcrc32c xfs xor raid6_pq btrfs nfnetlink nf_tables; do
    is_loaded "$m" || fail "$m not in /proc/modules"
done
same_as_ref "lsmod with holders" lsmod
same_as_ref "kmod list with holders" kmod list
same_as_ref "rmmod of a module in use" rmmod libcrc32c
same_as_ref "rmmod of a builtin module" rmmod ext4
check "rmmod of several modules at once" rmmod xfs btrfs nf_tables
same_as_ref "lsmod after removing the users" lsmod
check "rmmod of their dependencies" rmmod xor raid6_pq libcrc32c nfnetlink

echo "--- back to the state at boot"
if [ "$(loaded_modules)" = "$initial" ]; then
    pass "/proc/modules as at boot"
else
    fail "/proc/modules differs from boot: $(loaded_modules | tr '\n' ' ')"
fi
same_as_ref "lsmod at the end" lsmod
finish
