# Helpers for guest tests (POSIX sh, run by dash in the vm-test initramfs; see
# docs/vm-test.md).  A test script sources this file, makes its checks, and ends
# with `finish`, which prints "RESULT <test>.sh: N passed, N failed" and exits
# non-zero if any check failed.  A script that exits without calling finish
# fails too, so an early `exit 0` or a dying shell cannot pass by accident.
#
# In the guest:
#   /sbin/kmod and /sbin/{insmod,rmmod,lsmod,modinfo,modprobe,depmod} -> kmod
#   /ref/bin/TOOL     reference kmod 34.2 under that name
#   /lib/modules/$(uname -r)  the kernel's module tree, indexes from reference depmod
#   /vm/data/         extra files (dummy-<other kver>.ko: a module for another kernel)
# Call the module tools by name or full path, never through a busybox applet
# (env, timeout, xargs, find -exec): Debian's busybox runs its own applet of the
# same name in preference to PATH.

# shellcheck disable=SC2034  # KVER, MODDIR are for the tests
set -u

TEST_NAME=${0##*/}
TEST_NAME=${TEST_NAME%.sh}
KVER=$(uname -r)
MODDIR=/lib/modules/$KVER
T=/tmp/vm-$TEST_NAME
rm -rf "$T"
mkdir -p "$T"

_passed=0
_failed=0
_finished=0
_on_exit() {
    if [ "$_finished" = 0 ]; then
        fail "$TEST_NAME exited before finish (status $1)"
        _finished=1
        echo "RESULT ${0##*/}: $_passed passed, $_failed failed"
        exit 1
    fi
}
trap '_on_exit $?' EXIT

pass() { _passed=$((_passed + 1)); echo "ok: $*"; }
fail() { _failed=$((_failed + 1)); echo "FAIL: $*"; }

# Print a captured file, indented, under a caption; nothing if empty.
_show() {
    [ -s "$2" ] || return 0
    echo "  $1:"
    sed 's/^/    | /' "$2"
}

# run ID CMD...: runs CMD with stdout in $T/ID.out, stderr in $T/ID.err and the
# exit status in $T/ID.rc; returns that status.
run() {
    _id=$1
    shift
    "$@" > "$T/$_id.out" 2> "$T/$_id.err"
    _rc=$?
    echo "$_rc" > "$T/$_id.rc"
    return $_rc
}

# check DESC CMD...: passes when CMD exits 0, else shows its output.
check() {
    _desc=$1
    shift
    if run check "$@"; then
        pass "$_desc"
    else
        fail "$_desc (exit $(cat "$T/check.rc"): $*)"
        _show stdout "$T/check.out"
        _show stderr "$T/check.err"
    fi
}

# expect_status N DESC CMD...: passes when CMD exits with status N.
expect_status() {
    _want=$1 _desc=$2
    shift 2
    run check "$@"
    _got=$(cat "$T/check.rc")
    if [ "$_got" = "$_want" ]; then
        pass "$_desc"
    else
        fail "$_desc (exit $_got, expected $_want: $*)"
        _show stdout "$T/check.out"
        _show stderr "$T/check.err"
    fi
}

# expect_output DESC EXPECTED CMD...: passes when CMD exits 0 and prints exactly
# EXPECTED (plus the final newline) on stdout.
expect_output() {
    _desc=$1 _want=$2
    shift 2
    printf '%s\n' "$_want" > "$T/want.out"
    if run check "$@" && cmp -s "$T/want.out" "$T/check.out"; then
        pass "$_desc"
    else
        fail "$_desc (exit $(cat "$T/check.rc"): $*)"
        diff -u "$T/want.out" "$T/check.out" | sed 's/^/    | /'
        _show stderr "$T/check.err"
    fi
}

# same_as_ref DESC TOOL ARGS...: runs our TOOL and reference kmod's TOOL with the
# same arguments; passes when stdout, stderr and exit status are identical.  Only
# for commands whose effect does not change the next run's result (lookups,
# listings, failing loads).  TOOL may be "kmod" for kmod's own front end.
same_as_ref() {
    _desc=$1 _tool=$2
    shift 2
    _run_both "$_tool" "$@"
    if cmp -s "$T/ours.out" "$T/ref.out" && cmp -s "$T/ours.err" "$T/ref.err" &&
        cmp -s "$T/ours.rc" "$T/ref.rc"; then
        pass "$_desc"
    else
        _differs "$_desc: $_tool${*:+ $*} differs from reference kmod"
    fi
}

# same_as_ref_explained DESC TOOL ARGS...: for a load the kernel refuses.  Like
# same_as_ref, except that after reference kmod's stderr, which ours must begin
# with byte for byte, ours may add the explanation: lines that all begin with
# "TOOL: ERROR: ", as kmod's own error lines do.
same_as_ref_explained() {
    _desc=$1 _tool=$2
    shift 2
    _run_both "$_tool" "$@"
    _n=$(wc -l < "$T/ref.err")
    head -n "$_n" "$T/ours.err" > "$T/ours.kmod.err"
    tail -n +"$((_n + 1))" "$T/ours.err" > "$T/ours.extra.err"
    if cmp -s "$T/ours.out" "$T/ref.out" && cmp -s "$T/ours.kmod.err" "$T/ref.err" &&
        cmp -s "$T/ours.rc" "$T/ref.rc" && ! grep -qv "^$_tool: ERROR: " "$T/ours.extra.err"; then
        pass "$_desc"
        sed 's/^/    explained | /' "$T/ours.extra.err"
    else
        _differs "$_desc: $_tool${*:+ $*} differs from reference kmod, or adds lines that are not explanations"
    fi
}

# _run_both TOOL ARGS...: our TOOL and reference kmod's, as the runs ours and ref.
_run_both() {
    _tool=$1
    shift
    run ours "/sbin/$_tool" "$@"
    run ref "/ref/bin/$_tool" "$@"
}

# _differs WHAT: fails with WHAT, both exit statuses and the differences.
_differs() {
    fail "$1 (exit $(cat "$T/ours.rc"), reference $(cat "$T/ref.rc"))"
    for _s in out err; do
        cmp -s "$T/ours.$_s" "$T/ref.$_s" ||
            diff -u "$T/ref.$_s" "$T/ours.$_s" | sed "s/^/    std$_s | /"
    done
}

# Module names in /proc/modules, one a line, sorted.
loaded_modules() { cut -d' ' -f1 /proc/modules | sort; }

# is_loaded NAME: the kernel lists NAME in /proc/modules.
is_loaded() { grep -q "^$1 " /proc/modules; }

finish() {
    _finished=1
    echo "RESULT ${0##*/}: $_passed passed, $_failed failed"
    [ "$_failed" = 0 ] || exit 1
    exit 0
}
