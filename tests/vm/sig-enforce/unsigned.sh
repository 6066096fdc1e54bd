#!/bin/sh
# With module.sig_enforce=1 (scripts/test.sh boots this test with it), a module
# whose signature was stripped is refused, and insmod says that signatures are
# enforced and that the module is not signed, after kmod's unchanged line.
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh

check "the kernel enforces module signatures" grep -qx Y /sys/module/module/parameters/sig_enforce

# dummy without its signature: the module, then signer, key id and signature
# lengths (12 bytes, the signature's length big-endian last), then the magic.
mkdir -p "$T/unsigned"
xz -dc "$MODDIR/kernel/drivers/net/dummy.ko.xz" > "$T/signed.ko"
size=$(wc -c < "$T/signed.ko")
siglen=$(od -An -tu1 -j $((size - 28 - 4)) -N 4 "$T/signed.ko" | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 }')
head -c $((size - 28 - 12 - siglen)) "$T/signed.ko" > "$T/unsigned/dummy.ko"
run info modinfo -F sig_id "$T/unsigned/dummy.ko"
check "the stripped module has no signature" test ! -s "$T/info.out"

run ours insmod "$T/unsigned/dummy.ko"
run ref /ref/bin/insmod "$T/unsigned/dummy.ko"
sed 's/^/    ours | /' "$T/ours.err"
sed 's/^/    ref  | /' "$T/ref.err"
if [ "$(cat "$T/ours.rc")" = "$(cat "$T/ref.rc")" ] && [ "$(head -n 1 "$T/ours.err")" = "$(head -n 1 "$T/ref.err")" ]; then
    pass "kmod's line and exit status, unchanged"
else
    fail "the first line or exit status differs from reference kmod"
fi
check "says signatures are enforced" grep -qx "insmod: ERROR: module signatures are enforced (module.sig_enforce=Y)" "$T/ours.err"
check "says the module is not signed" grep -qx "insmod: ERROR: dummy is not signed" "$T/ours.err"
check "the signed module still loads" insmod "$MODDIR/kernel/drivers/net/dummy.ko.xz"
rmmod dummy

finish
