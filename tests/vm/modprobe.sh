#!/bin/sh
# modprobe on the real kernel (issue 5): loads and unloads xfs, btrfs, nf_tables
# and dummy with their dependencies and softdeps, against reference kmod 34.2 in
# the same boot.  Each of those loads and removals is made once by our modprobe
# and once by the reference from the same state; the two must print the same and
# leave the same modules in /proc/modules; dry runs, listings and failures are
# compared byte for byte with same_as_ref.  Also: lsmod and kmod list, modinfo of
# loaded modules, modprobe.d via -C (options, install, remove, blacklist,
# softdep, alias), modules the kernel itself asks /sbin/modprobe for, rmmod and
# modprobe -r of modules in use, and insmod of broken files.  First of all our
# depmod rewrites the tree's indexes in place, and they must equal reference
# depmod's: everything after that runs on them.
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh

XFS=$MODDIR/kernel/fs/xfs/xfs.ko.xz
BTRFS=$MODDIR/kernel/fs/btrfs/btrfs.ko.xz
DUMMY=$MODDIR/kernel/drivers/net/dummy.ko.xz

# --- helpers -----------------------------------------------------------------

# set_of WORDS...: the words, one a line, sorted, without duplicates or blanks.
set_of() { printf '%s\n' "$@" | tr ' ' '\n' | sed '/^$/d' | sort -u; }

# minus A B: the lines of file B that are not lines of file A (both sets).
# (Busybox grep -vxF -f A would print nothing at all for an empty A.)
minus() { cat "$1" "$1" "$2" | sort | uniq -u; }

# dep_names FILE: module names of the "insmod PATH ..." lines in FILE (output of
# modprobe -v, -n or --show-depends), as /proc/modules spells them.
dep_names() {
    awk '$1 == "insmod" { n = $2; sub(/.*\//, "", n); sub(/\..*/, "", n); gsub(/-/, "_", n); print n }' "$1" |
        sort -u
}

# expect_loaded DESC WORDS...: /proc/modules holds exactly the modules named.
expect_loaded() {
    _desc=$1
    shift
    set_of "$@" > "$T/want.set"
    loaded_modules > "$T/got.set"
    if cmp -s "$T/want.set" "$T/got.set"; then
        pass "/proc/modules: $_desc"
    else
        fail "/proc/modules: $_desc (- expected, + loaded)"
        diff -u "$T/want.set" "$T/got.set" | sed -n 's/^\([-+][^-+]\)/    | \1/p'
    fi
}

# step ID DESC CMD...: a command that must succeed without a word on stderr;
# its output stays in $T/ID.out for later comparisons.
step() {
    _id=$1 _desc=$2
    shift 2
    run "$_id" "$@"
    if [ "$(cat "$T/$_id.rc")" = 0 ] && [ ! -s "$T/$_id.err" ]; then
        pass "$_desc"
    else
        fail "$_desc (exit $(cat "$T/$_id.rc"): $*)"
        _show stdout "$T/$_id.out"
        _show stderr "$T/$_id.err"
    fi
}

# same_file DESC EXPECTED ACTUAL: the two files are identical.
same_file() {
    if cmp -s "$2" "$3"; then
        pass "$1"
    else
        fail "$1 (- ${2##*/}, + ${3##*/})"
        diff -u "$2" "$3" | sed 's/^/    | /'
    fi
}

# expect_err DESC STATUS STDERR CMD...: CMD exits with STATUS, prints nothing
# on stdout and exactly STDERR on stderr (one line; nothing if STDERR is "").
expect_err() {
    _desc=$1 _want=$2
    if [ -n "$3" ]; then printf '%s\n' "$3"; fi > "$T/want.err"
    shift 3
    run check "$@"
    if [ "$(cat "$T/check.rc")" = "$_want" ] && [ ! -s "$T/check.out" ] && cmp -s "$T/want.err" "$T/check.err"; then
        pass "$_desc"
    else
        fail "$_desc (exit $(cat "$T/check.rc"), expected $_want: $*)"
        _show stdout "$T/check.out"
        diff -u "$T/want.err" "$T/check.err" | sed 's/^/    stderr | /'
    fi
}

# lists_agree DESC: lsmod and kmod list equal the reference's, and our kmod list
# equals our lsmod, for whatever is loaded now.
lists_agree() {
    same_as_ref "lsmod, $1" lsmod
    same_as_ref "kmod list, $1" kmod list
    run lsmod lsmod
    run kmodlist kmod list
    same_file "kmod list is lsmod, $1" "$T/lsmod.out" "$T/kmodlist.out"
}

# back_to DESC WORDS...: /proc/modules must hold exactly WORDS; if it holds more
# (a failed step), those are removed with reference rmmod so that the following
# checks, and the following test scripts, start from a known state.
back_to() {
    _desc=$1
    shift
    expect_loaded "$_desc" "$@"
    set_of "$@" > "$T/keep.set"
    _tries=0
    while [ $_tries -lt 10 ]; do
        loaded_modules > "$T/now.set"
        _extra=$(minus "$T/keep.set" "$T/now.set")
        [ -n "$_extra" ] || return 0
        for _m in $_extra; do /ref/bin/rmmod "$_m" 2> /dev/null; done
        _tries=$((_tries + 1))
    done
    loaded_modules > "$T/now.set"
    fail "could not remove leftover modules: $(minus "$T/keep.set" "$T/now.set" | tr '\n' ' ')"
}

# lap: sets $lap to the time since the previous lap (or the start), "12.3s".
_tsec=$(cut -d' ' -f1 /proc/uptime)
_tstart=$_tsec
lap() {
    _now=$(cut -d' ' -f1 /proc/uptime)
    lap=$(awk -v a="$_tsec" -v b="$_now" 'BEGIN { printf "%.1fs", b - a }')
    _tsec=$_now
}

# section TITLE: a heading, after the time the previous section took.
section() {
    lap
    echo "(that took $lap)"
    echo "--- $1"
}

initial=$(loaded_modules)
echo "modules loaded before this test: ${initial:-none}"
for m in xfs btrfs nf_tables dummy libcrc32c; do
    if is_loaded "$m"; then fail "$m is loaded before the test (an earlier test left it)"; fi
done

section "the tree: dependency chains and softdeps this test relies on"
# btrfs needs xor, raid6_pq and libcrc32c (modules.dep); btrfs declares
# softdeps on crypto aliases, and libcrc32c one on crc32c, which this tree
# resolves to crc32c-intel.ko through modules.alias.
check "modules.softdep: btrfs pre: crypto-crc32c" grep -qx 'softdep btrfs pre: crypto-crc32c' "$MODDIR/modules.softdep"
check "modules.softdep: btrfs pre: blake2b-256" grep -qx 'softdep btrfs pre: blake2b-256' "$MODDIR/modules.softdep"
check "modules.softdep: libcrc32c pre: crc32c" grep -qx 'softdep libcrc32c pre: crc32c' "$MODDIR/modules.softdep"
check "modules.dep: btrfs needs xor, raid6_pq, libcrc32c" \
    grep -qx 'kernel/fs/btrfs/btrfs.ko.xz: kernel/crypto/xor.ko.xz kernel/lib/raid6/raid6_pq.ko.xz kernel/lib/libcrc32c.ko.xz' \
    "$MODDIR/modules.dep"

section "depmod in place: every later modprobe reads our depmod's indexes"
# As a package's postinst runs it: our depmod replaces the indexes of the
# installed tree, which every check after this one reads.  They must be
# byte-identical to what reference depmod writes for the same tree here (into a
# directory of its own, -o); if they are not, the reference's are put in place
# so that the rest of the run is not affected.
check "reference depmod -o DIR $KVER" /ref/bin/depmod -o "$T/dref" "$KVER"
lap
echo "reference depmod -o took $lap"
ref=$T/dref/lib/modules/$KVER
(cd "$ref" && ls) > "$T/dref.files"
check "reference depmod wrote modules.dep.bin" test -s "$ref/modules.dep.bin"
# Clear the old indexes first so that a depmod that skips one cannot pass.
while read -r f; do rm -f "$MODDIR/$f"; done < "$T/dref.files"
run depmod.inplace depmod
if [ "$(cat "$T/depmod.inplace.rc")" = 0 ] && [ ! -s "$T/depmod.inplace.err" ] && [ ! -s "$T/depmod.inplace.out" ]; then
    pass "our depmod in place (no arguments): silent, exit 0"
else
    fail "our depmod in place (no arguments): exit $(cat "$T/depmod.inplace.rc")"
    _show stdout "$T/depmod.inplace.out"
    _show stderr "$T/depmod.inplace.err"
fi
lap
echo "our depmod in place took $lap"
inplace_ok=1
while read -r f; do
    if cmp -s "$ref/$f" "$MODDIR/$f"; then
        pass "depmod: $f equals reference depmod's"
    else
        fail "depmod: $f differs from reference depmod's ($(cmp "$ref/$f" "$MODDIR/$f" 2>&1))"
        case $f in *.bin) ;; *) diff -u "$ref/$f" "$MODDIR/$f" | head -n 20 | sed 's/^/    | /' ;; esac
        inplace_ok=0
    fi
done < "$T/dref.files"
if [ $inplace_ok = 1 ]; then
    echo "the modprobe checks below run on the indexes our depmod wrote"
else
    echo "restoring reference depmod's indexes for the checks below"
    while read -r f; do cp "$ref/$f" "$MODDIR/$f"; done < "$T/dref.files"
fi
same_as_ref "depmod -A on an up-to-date tree" depmod -A
# modprobe -d ROOT reads ROOT/lib/modules/KVER: give the reference's output tree
# the installed module files.
ln -s "$MODDIR/kernel" "$ref/kernel"
same_as_ref "modprobe -d DIR --show-depends btrfs" modprobe -d "$T/dref" --show-depends btrfs
same_as_ref "modprobe -d DIR -n -v -a of a name, an alias and a symbol" \
    modprobe -d "$T/dref" -n -v -a nfnetlink rtnl-link-dummy symbol:xor_blocks

section "dry runs and lookups before anything is loaded"
for m in xfs btrfs nf_tables dummy; do
    same_as_ref "modprobe --show-depends $m" modprobe --show-depends "$m"
    cp "$T/ref.out" "$T/showdeps.$m"
    same_as_ref "modprobe -n -v $m" modprobe -n -v "$m"
    cp "$T/ref.out" "$T/dry.$m"
done
same_as_ref "modprobe -n -v -a xfs btrfs nf_tables" modprobe -n -v -a xfs btrfs nf_tables
same_as_ref "modprobe -R of a softdep's alias (crypto-crc32c)" modprobe -R crypto-crc32c
same_as_ref "modprobe -R rtnl-link-dummy" modprobe -R rtnl-link-dummy
# The softdeps are real: both the crypto alias btrfs names and the one
# libcrc32c names resolve to modules that modprobe btrfs loads first.
check "--show-depends btrfs lists blake2b_generic (btrfs softdep blake2b-256)" grep -q '/crypto/blake2b_generic.ko.xz $' "$T/showdeps.btrfs"
check "--show-depends btrfs lists crc32c-intel (libcrc32c softdep crc32c)" grep -q '/crypto/crc32c-intel.ko.xz $' "$T/showdeps.btrfs"
for m in xor raid6_pq libcrc32c btrfs; do
    dep_names "$T/showdeps.btrfs" | grep -qx "$m" || fail "--show-depends btrfs does not list $m"
done
same_as_ref "modprobe of an unknown module" modprobe no_such_module
same_as_ref "modprobe -q of an unknown module" modprobe -q no_such_module
expect_err "modprobe -q of an unknown module is silent and exits 1" 1 "" modprobe -q no_such_module
same_as_ref "modprobe -r of an unknown module" modprobe -r no_such_module
expect_err "modprobe -r of an unknown module: kmod's message, exit 1" 1 \
    "modprobe: FATAL: Module no_such_module not found." modprobe -r no_such_module
same_as_ref "modprobe -r --first-time of a module that is not loaded" modprobe -r --first-time dummy
expect_err "modprobe -r --first-time of a module that is not loaded: exit 1" 1 \
    "modprobe: FATAL: Module dummy is not in kernel." modprobe -r --first-time dummy
same_as_ref "modprobe -r of a module that is not loaded (no error)" modprobe -r dummy
same_as_ref "modprobe -r of a builtin module" modprobe -r ext4
same_as_ref "modprobe of a builtin module" modprobe -v ext4
expect_loaded "nothing loaded by the dry runs" "$initial"

section "first load of libcrc32c's softdep: what modprobe -r leaves behind"
# modprobe xfs loads libcrc32c's softdep crc32c-intel too; kmod's modprobe -r
# xfs removes xfs and libcrc32c but not the softdeps of a dependency, so
# crc32c_intel stays.  Ours must leave exactly what the reference leaves.
step first.load "our modprobe -v xfs (first load)" modprobe -v xfs
same_file "modprobe -v xfs prints what reference modprobe -n -v xfs printed" "$T/dry.xfs" "$T/first.load.out"
expect_loaded "after our modprobe xfs" "$initial" "$(dep_names "$T/showdeps.xfs")"
step first.rm "our modprobe -r -v xfs" modprobe -r -v xfs
loaded_modules > "$T/first.ours.set"
set_of "$initial" > "$T/initial.set"
leftover=$(minus "$T/initial.set" "$T/first.ours.set")
echo "left behind by our modprobe -r xfs: ${leftover:-nothing}"
for m in xfs libcrc32c; do
    if is_loaded "$m"; then fail "$m still loaded after modprobe -r xfs"; else pass "modprobe -r xfs removed $m"; fi
done
for m in $leftover; do
    dep_names "$T/showdeps.xfs" | grep -qx "$m" || fail "modprobe -r xfs left $m, which modprobe xfs does not load"
done
for m in $leftover; do check "rmmod $m (left behind)" rmmod "$m"; done
expect_loaded "back to the state before the test" "$initial"
step first.refload "reference modprobe -v xfs (first load)" /ref/bin/modprobe -v xfs
same_file "our modprobe -v xfs printed what the reference printed" "$T/first.refload.out" "$T/first.load.out"
step first.refrm "reference modprobe -r -v xfs" /ref/bin/modprobe -r -v xfs
same_file "our modprobe -r -v xfs printed what the reference printed" "$T/first.refrm.out" "$T/first.rm.out"
loaded_modules > "$T/first.ref.set"
same_file "our modprobe -r xfs leaves what the reference leaves" "$T/first.ref.set" "$T/first.ours.set"
base=$(loaded_modules)
echo "baseline from here on: $(echo "$base" | tr '\n' ' ')"

section "modprobe and modprobe -r of xfs, btrfs, nf_tables, dummy"
for m in xfs btrfs nf_tables dummy; do
    echo "-- $m"
    # Now that libcrc32c's softdep is resident, modprobe -r undoes modprobe.
    same_as_ref "modprobe -n -v $m" modprobe -n -v "$m"
    cp "$T/ref.out" "$T/dry.$m"
    step "$m.load" "our modprobe -v $m" modprobe -v "$m"
    same_file "modprobe -v $m prints what reference modprobe -n -v $m printed" "$T/dry.$m" "$T/$m.load.out"
    expect_loaded "after our modprobe $m: $m and its dependencies" "$base" "$(dep_names "$T/showdeps.$m")"
    expect_output "/sys/module/$m/initstate is live" live cat "/sys/module/$m/initstate"
    lists_agree "$m loaded by modprobe"
    same_as_ref "modinfo of the loaded $m" modinfo "$m"
    same_as_ref "modprobe $m when loaded (nothing to do)" modprobe "$m"
    same_as_ref "modprobe -n -v $m when loaded (nothing to print)" modprobe -n -v "$m"
    same_as_ref "modprobe --first-time $m when loaded" modprobe --first-time "$m"
    expect_err "modprobe --first-time $m when loaded: kmod's message, exit 1" 1 \
        "modprobe: ERROR: could not insert '$m': Module already in kernel" modprobe --first-time "$m"
    same_as_ref "modprobe -r -n -v $m" modprobe -r -n -v "$m"
    case $m in
        btrfs)
            # libcrc32c has one holder here, so kmod prints one clean line.
            same_as_ref "rmmod libcrc32c while btrfs uses it" rmmod libcrc32c
            expect_err "rmmod libcrc32c while btrfs uses it: exit 1" 1 \
                "rmmod: ERROR: Module libcrc32c is in use by: btrfs" rmmod libcrc32c
            same_as_ref "modprobe -r libcrc32c while btrfs uses it" modprobe -r libcrc32c
            expect_err "modprobe -r libcrc32c while btrfs uses it: exit 1" 1 \
                "modprobe: FATAL: Module libcrc32c is in use." modprobe -r libcrc32c
            same_as_ref "modprobe -r xor while btrfs uses it" modprobe -r xor
            same_as_ref "modprobe -r --first-time of a loaded module in use" modprobe -r --first-time raid6_pq
            ;;
        nf_tables)
            same_as_ref "rmmod nfnetlink while nf_tables uses it" rmmod nfnetlink
            ;;
        dummy)
            check "dummy created dummy0" test -e /sys/class/net/dummy0
            ;;
    esac
    expect_loaded "the failed removals changed nothing" "$base" "$(dep_names "$T/showdeps.$m")"
    step "$m.rm" "our modprobe -r -v $m" modprobe -r -v "$m"
    expect_loaded "after our modprobe -r $m: as before modprobe $m" "$base"
    same_as_ref "modprobe -r $m once removed (nothing to do)" modprobe -r "$m"
    # The reference from the same state: same output, same modules.
    step "$m.refload" "reference modprobe -v $m" /ref/bin/modprobe -v "$m"
    same_file "our modprobe -v $m printed what the reference printed" "$T/$m.refload.out" "$T/$m.load.out"
    expect_loaded "after reference modprobe $m: what ours loaded" "$base" "$(dep_names "$T/showdeps.$m")"
    step "$m.refrm" "reference modprobe -r -v $m" /ref/bin/modprobe -r -v "$m"
    same_file "our modprobe -r -v $m printed what the reference printed" "$T/$m.refrm.out" "$T/$m.rm.out"
    back_to "after reference modprobe -r $m: as before" "$base"
done

section "modprobe -a, shared dependencies, modules in use"
step all.load "our modprobe -a -v xfs btrfs nf_tables" modprobe -a -v xfs btrfs nf_tables
all=$(cat "$T/showdeps.xfs" "$T/showdeps.btrfs" "$T/showdeps.nf_tables" > "$T/showdeps.all" && dep_names "$T/showdeps.all")
expect_loaded "after modprobe -a: all three with their dependencies" "$base" "$all"
lists_agree "xfs, btrfs and nf_tables loaded"
same_as_ref "modinfo -F softdep of the loaded btrfs" modinfo -F softdep btrfs
# Three holders: kmod 34.2 may repeat its "rmmod: ERROR: " prefix inside this
# line; ours prints the one line documented in README.md.  The holders are the
# directory entries of /sys/module/libcrc32c/holders.
# They are listed in directory order, so compare them as a set.
run inuse rmmod libcrc32c
prefix="rmmod: ERROR: Module libcrc32c is in use by: "
line=$(cat "$T/inuse.err")
named=$(set_of "${line#"$prefix"}")
if [ "$(cat "$T/inuse.rc")" = 1 ] && [ ! -s "$T/inuse.out" ] && [ "$(wc -l < "$T/inuse.err")" = 1 ] &&
    [ "${line#"$prefix"}" != "$line" ] && [ "$named" = "$(set_of "$(ls /sys/module/libcrc32c/holders)")" ] &&
    [ "$named" = "$(set_of btrfs nf_tables xfs)" ]; then
    pass "rmmod libcrc32c with three holders: one line naming them, exit 1"
else
    fail "rmmod libcrc32c with three holders: exit $(cat "$T/inuse.rc"), expected 1 and one line '$prefix<holders>'"
    _show stdout "$T/inuse.out"
    _show stderr "$T/inuse.err"
fi
run inuse.ref /ref/bin/rmmod libcrc32c
sed 's/^/    reference says | /' "$T/inuse.ref.err"
expect_status 1 "reference rmmod libcrc32c with three holders exits 1 too" /ref/bin/rmmod libcrc32c
same_as_ref "modprobe -r libcrc32c with three holders" modprobe -r libcrc32c
same_as_ref "modprobe -r -n -v xfs btrfs nf_tables" modprobe -r -n -v xfs btrfs nf_tables
same_as_ref "modprobe -r -n -v --remove-holders libcrc32c" modprobe -r -n -v --remove-holders libcrc32c
expect_loaded "the failed removals changed nothing" "$base" "$all"
# Removing btrfs takes its unused dependencies along but leaves libcrc32c,
# which xfs and nf_tables still use.
step all.rm1 "our modprobe -r -v btrfs (libcrc32c still used)" modprobe -r -v btrfs
expect_loaded "after modprobe -r btrfs: xor, raid6_pq and btrfs's softdep gone, libcrc32c kept" \
    "$base" "$(cat "$T/showdeps.xfs" "$T/showdeps.nf_tables" > "$T/showdeps.rest" && dep_names "$T/showdeps.rest")"
step all.rm2 "our modprobe -r -v xfs nf_tables" modprobe -r -v xfs nf_tables
expect_loaded "after modprobe -r xfs nf_tables: as before modprobe -a" "$base"
step all.refload "reference modprobe -a -v xfs btrfs nf_tables" /ref/bin/modprobe -a -v xfs btrfs nf_tables
same_file "our modprobe -a -v printed what the reference printed" "$T/all.refload.out" "$T/all.load.out"
expect_loaded "after reference modprobe -a: what ours loaded" "$base" "$all"
step all.refrm1 "reference modprobe -r -v btrfs" /ref/bin/modprobe -r -v btrfs
same_file "our modprobe -r -v btrfs printed what the reference printed" "$T/all.refrm1.out" "$T/all.rm1.out"
step all.refrm2 "reference modprobe -r -v xfs nf_tables" /ref/bin/modprobe -r -v xfs nf_tables
same_file "our modprobe -r -v xfs nf_tables printed what the reference printed" "$T/all.refrm2.out" "$T/all.rm2.out"
back_to "after the reference's removals: as before modprobe -a" "$base"
# --remove-holders: removing a shared dependency takes its users along.  kmod
# 34.2 removes each holder with its own dependencies, libcrc32c among them,
# then tries libcrc32c itself again and fails ("could not remove 'libcrc32c':
# No such file or directory", exit 1); ours must do exactly what it does.
step holders.load "our modprobe -a xfs nf_tables" modprobe -a xfs nf_tables
loaded_modules > "$T/holders.ours.set"
run holders.rm modprobe -r -v --remove-holders libcrc32c
loaded_modules > "$T/holders.ours.after"
for m in xfs nf_tables libcrc32c; do
    if is_loaded "$m"; then fail "$m still loaded after modprobe -r --remove-holders libcrc32c"; else pass "modprobe -r --remove-holders libcrc32c removed $m"; fi
done
back_to "after our --remove-holders and cleanup" "$base"
step holders.refload "reference modprobe -a xfs nf_tables" /ref/bin/modprobe -a xfs nf_tables
loaded_modules > "$T/holders.ref.set"
same_file "our modprobe -a xfs nf_tables loaded what the reference's did" "$T/holders.ref.set" "$T/holders.ours.set"
run holders.refrm /ref/bin/modprobe -r -v --remove-holders libcrc32c
loaded_modules > "$T/holders.ref.after"
for s in out err rc; do
    same_file "modprobe -r -v --remove-holders libcrc32c: $s as the reference's" "$T/holders.refrm.$s" "$T/holders.rm.$s"
done
sed 's/^/    reference says | /' "$T/holders.refrm.err"
same_file "modprobe -r --remove-holders leaves what the reference left" "$T/holders.ref.after" "$T/holders.ours.after"
back_to "after the reference's --remove-holders and cleanup" "$base"

section "modprobe.d through -C: options, softdep, alias, install, remove, blacklist"
mkdir -p "$T/conf.d"
cat > "$T/conf.d/test.conf" << EOF
# options and a config softdep for a real module, an alias to it, and
# install/remove commands for a name that exists only here
options dummy numdummies=2
softdep dummy pre: nfnetlink
alias kmodrs-net dummy
install kmodrs_fake echo install-ran opts=\$CMDLINE_OPTS mod=\$MODPROBE_MODULE
options kmodrs_fake a=1 b=two
remove kmodrs_fake echo remove-ran
EOF
C=$T/conf.d
same_as_ref "modprobe -c -C DIR" modprobe -c -C "$C"
same_as_ref "modprobe -C DIR -n -v dummy (options and softdep)" modprobe -C "$C" -n -v dummy
cp "$T/ref.out" "$T/conf.dry"
same_as_ref "modprobe -C FILE --show-depends dummy" modprobe -C "$C/test.conf" --show-depends dummy
same_as_ref "modprobe -C DIR -n -v of a config alias" modprobe -C "$C" -n -v kmodrs-net
same_as_ref "modprobe -C DIR -R of a config alias" modprobe -C "$C" -R kmodrs-net
same_as_ref "install command with \$CMDLINE_OPTS and \$MODPROBE_MODULE" modprobe -C "$C" kmodrs_fake
same_as_ref "install command, -v, extra parameter" modprobe -C "$C" -v kmodrs_fake x=3
same_as_ref "install command, -n -v" modprobe -C "$C" -n -v kmodrs_fake
same_as_ref "remove command" modprobe -C "$C" -r kmodrs_fake
same_as_ref "remove command, -v" modprobe -C "$C" -r -v kmodrs_fake
same_as_ref "install command ignored with -i" modprobe -C "$C" -i kmodrs_fake
step conf.load "our modprobe -C DIR -v dummy" modprobe -C "$C" -v dummy
same_file "modprobe -C -v dummy prints what reference -n -v printed" "$T/conf.dry" "$T/conf.load.out"
expect_loaded "after modprobe -C dummy: dummy and its config softdep nfnetlink" "$base" dummy nfnetlink
check "options numdummies=2 reached dummy: dummy1 exists" test -e /sys/class/net/dummy1
check "options numdummies=2 reached dummy: no dummy2" test ! -e /sys/class/net/dummy2
lists_agree "dummy with a config softdep"
step conf.rm "our modprobe -C DIR -r -v dummy" modprobe -C "$C" -r -v dummy
expect_loaded "after modprobe -C -r dummy: its softdep removed too" "$base"
step conf.refload "reference modprobe -C DIR -v dummy" /ref/bin/modprobe -C "$C" -v dummy
expect_loaded "after reference modprobe -C dummy: what ours loaded" "$base" dummy nfnetlink
step conf.refrm "reference modprobe -C DIR -r -v dummy" /ref/bin/modprobe -C "$C" -r -v dummy
same_file "our modprobe -C -r -v dummy printed what the reference printed" "$T/conf.refrm.out" "$T/conf.rm.out"
back_to "after the reference's removal" "$base"
step conf.alias "our modprobe -C DIR kmodrs-net (config alias)" modprobe -C "$C" kmodrs-net
expect_loaded "the config alias loaded dummy with its softdep" "$base" dummy nfnetlink
check "the options apply through the alias: dummy1 exists" test -e /sys/class/net/dummy1
step conf.aliasrm "our modprobe -C DIR -r kmodrs-net" modprobe -C "$C" -r kmodrs-net
back_to "after modprobe -r of the config alias" "$base"

# install and remove commands that do the work: they run our modprobe with
# --ignore-install / --ignore-remove, pass $CMDLINE_OPTS on, and leave a mark.
mkdir -p "$T/cmd.d"
cat > "$T/cmd.d/cmd.conf" << EOF
options dummy numdummies=3
install dummy /sbin/modprobe --ignore-install dummy \$CMDLINE_OPTS && echo installed > $T/install.mark
remove dummy /sbin/modprobe -r --ignore-remove dummy && echo removed > $T/remove.mark
EOF
same_as_ref "modprobe -n -v with an install command" modprobe -C "$T/cmd.d" -n -v dummy
step cmd.load "our modprobe -C with an install command" modprobe -C "$T/cmd.d" dummy
check "the install command ran" test -s "$T/install.mark"
expect_loaded "the install command loaded dummy" "$base" dummy
check "\$CMDLINE_OPTS carried numdummies=3: dummy2 exists" test -e /sys/class/net/dummy2
step cmd.rm "our modprobe -C -r with a remove command" modprobe -C "$T/cmd.d" -r dummy
check "the remove command ran" test -s "$T/remove.mark"
back_to "the remove command removed dummy" "$base"

# Blacklist: applies to aliases always and to names only with -b.
mkdir -p "$T/bl.d"
echo "blacklist dummy" > "$T/bl.d/bl.conf"
same_as_ref "modprobe of an alias whose only module is blacklisted" modprobe -C "$T/bl.d" -v rtnl-link-dummy
same_as_ref "modprobe -b of a blacklisted name" modprobe -C "$T/bl.d" -b -v dummy
same_as_ref "modprobe -n -v of a blacklisted name without -b" modprobe -C "$T/bl.d" -n -v dummy
same_as_ref "modprobe -R of a blacklisted alias" modprobe -C "$T/bl.d" -R rtnl-link-dummy
expect_loaded "the blacklist kept dummy out" "$base"
step bl.load "our modprobe -C of a blacklisted name without -b loads it" modprobe -C "$T/bl.d" dummy
expect_loaded "a blacklisted name without -b is loaded" "$base" dummy
step bl.rm "our modprobe -r dummy" modprobe -r dummy
back_to "after modprobe -r dummy" "$base"

section "modules the kernel asks /sbin/modprobe for"
# request_module() runs /proc/sys/kernel/modprobe, which is our modprobe.
expect_output "kernel.modprobe is /sbin/modprobe" /sbin/modprobe cat /proc/sys/kernel/modprobe
check "ip link add type dummy (the kernel loads rtnl-link-dummy)" ip link add kmodrs0 type dummy
expect_loaded "the kernel loaded dummy through our modprobe" "$base" dummy
check "the kernel's dummy interface exists" test -e /sys/class/net/kmodrs0
check "ip link del" ip link del kmodrs0
step kern.rmdummy "our modprobe -r dummy" modprobe -r dummy
mkdir -p "$T/mnt"
# mount fails (there is no such device), after the kernel loaded fs-xfs.
run kern.mount mount -t xfs /dev/kmodrs-none "$T/mnt"
expect_loaded "mount -t xfs: the kernel loaded xfs through our modprobe" "$base" "$(dep_names "$T/showdeps.xfs")"
step kern.rmxfs "our modprobe -r xfs" modprobe -r xfs
back_to "after removing what the kernel loaded" "$base"

section "insmod errors on the running kernel"
same_as_ref_explained "insmod btrfs.ko.xz without its dependencies (unknown symbols)" insmod "$BTRFS"
check "insmod btrfs.ko.xz: kmod's message first, exit 1" sh -c \
    "[ \"\$(head -n 1 '$T/ours.err')\" = 'insmod: ERROR: could not insert module $BTRFS: Unknown symbol in module' ] && [ \$(cat '$T/ours.rc') = 1 ]"
check "insmod btrfs.ko.xz: raid6_pq, xor and libcrc32c named as exporters" sh -c \
    "grep -q 'is exported by raid6_pq, which is not loaded' '$T/ours.err' && grep -q 'is exported by xor, which is not loaded' '$T/ours.err' && grep -q 'is exported by libcrc32c, which is not loaded' '$T/ours.err'"
check "the kernel reported btrfs's unknown symbols" sh -c 'dmesg | grep -q "btrfs: Unknown symbol"'
same_as_ref_explained "insmod xfs.ko.xz without libcrc32c" insmod "$XFS"
expect_loaded "the failed insmods loaded nothing" "$base"
# Broken files: the exit status is kmod's; the message may say more, but it
# must name the file.
size=$(stat -c %s "$DUMMY")
head -c $((size / 2)) "$DUMMY" > "$T/truncated.ko.xz"
xz -dc "$DUMMY" > "$T/dummy.ko"
head -c $(($(stat -c %s "$T/dummy.ko") / 2)) "$T/dummy.ko" > "$T/truncated.ko"
head -c 8192 /dev/urandom > "$T/garbage.ko"
{ printf '\375\067\172\130\132\000'; head -c 4096 /dev/urandom; } > "$T/garbage.ko.xz"
printf '\177ELF\002\001\001' > "$T/elfhead.ko"
head -c 4096 /dev/zero >> "$T/elfhead.ko"
# The kernel decompresses xz itself (kmod hands it the file); gzip is ours to
# decompress (this kernel has no gzip support and Debian's kmod no zlib).
gzip -c "$T/dummy.ko" > "$T/dummy.ko.gz"
head -c $(($(stat -c %s "$T/dummy.ko.gz") / 2)) "$T/dummy.ko.gz" > "$T/truncated.ko.gz"
for f in truncated.ko.xz truncated.ko garbage.ko garbage.ko.xz elfhead.ko truncated.ko.gz; do
    run bad.ours insmod "$T/$f"
    run bad.ref /ref/bin/insmod "$T/$f"
    want=$(cat "$T/bad.ref.rc")
    got=$(cat "$T/bad.ours.rc")
    if [ "$got" = "$want" ] && [ "$got" != 0 ]; then
        pass "insmod of a corrupt $f: exit $got, as reference kmod"
    else
        fail "insmod of a corrupt $f: exit $got, reference kmod $want"
    fi
    if grep -qF "$T/$f" "$T/bad.ours.err" && [ ! -s "$T/bad.ours.out" ]; then
        pass "insmod of a corrupt $f: the message names the file"
    else
        fail "insmod of a corrupt $f: the message does not name the file"
    fi
    # The C library's text kmod ends its message with is in ours too (but for
    # gzip, which Debian's kmod cannot read at all: ENOSYS; we can, and say why
    # the file is corrupt).
    text=$(sed -n 's/.*: //p' "$T/bad.ref.err" | tail -n 1)
    case $f in *.gz) text="Invalid argument" ;; esac
    if [ -n "$text" ] && grep -qF "$text" "$T/bad.ours.err"; then
        pass "insmod of a corrupt $f: says '$text' as reference kmod does"
    else
        fail "insmod of a corrupt $f: does not say '$text' as reference kmod does"
    fi
    sed 's/^/    ours | /' "$T/bad.ours.err"
    sed 's/^/    ref  | /' "$T/bad.ref.err"
done
expect_loaded "the corrupt files loaded nothing" "$base"

section "back to the state before the test"
set_of "$base" > "$T/base.set"
for m in $(minus "$T/initial.set" "$T/base.set"); do
    check "rmmod $m (libcrc32c's softdep, which modprobe -r leaves)" rmmod "$m"
done
back_to "as before the test" "$initial"
same_as_ref "lsmod at the end" lsmod
lap
echo "(that took $lap; the whole test $(awk -v a="$_tstart" -v b="$_tsec" 'BEGIN { printf "%.0fs", b - a }'))"
finish
