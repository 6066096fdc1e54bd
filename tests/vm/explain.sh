#!/bin/sh
# Load failures explained on the real kernel: after kmod's line, which must stay
# exactly reference kmod's, insmod names the module that exports a missing symbol
# and shows what the kernel said about a bad parameter; -q silences it all.  Also
# lsmod --json and kmod list --json against /proc/modules.
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh

XFS=$MODDIR/kernel/fs/xfs/xfs.ko.xz
DUMMY=$MODDIR/kernel/drivers/net/dummy.ko.xz
for m in xfs libcrc32c dummy; do
    is_loaded "$m" && rmmod "$m"
done

# first_line ID: the first line the run ID printed on stderr.
first_line() { head -n 1 "$T/$1.err"; }

# kmod_line DESC ARGS...: our insmod fails like reference kmod's, with the same
# first line; the explanation follows it.
kmod_line() {
    _desc=$1
    shift
    run ours insmod "$@"
    run ref /ref/bin/insmod "$@"
    if [ "$(cat "$T/ours.rc")" = "$(cat "$T/ref.rc")" ] && [ "$(first_line ours)" = "$(first_line ref)" ]; then
        pass "$_desc: kmod's line and exit status, unchanged"
    else
        fail "$_desc: first line or exit status differs from reference kmod"
    fi
    sed 's/^/    ours | /' "$T/ours.err"
    sed 's/^/    ref  | /' "$T/ref.err"
}

kmod_line "insmod xfs without libcrc32c" "$XFS"
check "insmod xfs: the kernel's words about xfs" grep -q "^insmod: ERROR: kernel log: xfs: Unknown symbol" "$T/ours.err"
check "insmod xfs: libcrc32c named as the provider" grep -q "is exported by libcrc32c, which is not loaded: .modprobe xfs. loads xfs with its dependencies" "$T/ours.err"

kmod_line "insmod dummy numdummies=abc" "$DUMMY" numdummies=abc
check "insmod dummy numdummies=abc: the kernel's complaint" grep -q "kernel log: dummy: .abc' invalid for parameter .numdummies'" "$T/ours.err"
check "insmod dummy numdummies=abc: the declared type" grep -qx "insmod: ERROR: parameter numdummies is of type int; 'abc' is not one" "$T/ours.err"

run quiet modprobe -q dummy numdummies=abc
check "modprobe -q: a failed load prints nothing" test ! -s "$T/quiet.err" -a "$(cat "$T/quiet.rc")" = 1
run loud modprobe dummy numdummies=abc
check "modprobe: the same explanation after kmod's line" grep -q "parameter numdummies is of type int" "$T/loud.err"

expect_loaded_nothing() {
    for m in xfs libcrc32c dummy; do
        ! is_loaded "$m" || return 1
    done
}
check "the failed loads loaded nothing" expect_loaded_nothing

# JSON names every module of /proc/modules.
modprobe dummy
for cmd in "lsmod --json" "kmod list --json"; do
    run json $cmd
    sed 's/},{/}\n{/g' "$T/json.out" | grep -o '"name":"[^"]*"' | sed 's/"name":"//; s/"$//' | sort > "$T/json.names"
    loaded_modules > "$T/proc.names"
    if [ "$(cat "$T/json.rc")" = 0 ] && [ -s "$T/proc.names" ] && cmp -s "$T/json.names" "$T/proc.names"; then
        pass "$cmd names every module of /proc/modules"
    else
        fail "$cmd: names differ from /proc/modules"
        diff -u "$T/proc.names" "$T/json.names" | sed 's/^/    | /'
    fi
    check "$cmd: dummy is live, with its use count" grep -q '{"name":"dummy","size":[0-9]*,"use_count":0,"holders":\[\],"state":"live","taint":""}' "$T/json.out"
done
rmmod dummy

finish
