#!/bin/sh
# Module options and the blacklist on the kernel command line reach modprobe byte
# for byte, bytes that are not UTF-8 included: vm-test.sh boots with
# udf.kmodrs_bytes=caf\xe9\xff, "udf.kmodrs_quoted=a b" and
# modprobe.blacklist=kmodrs_\xfe,isofs; our modprobe must show and pass them exactly
# as reference kmod 34.2 does.
# shellcheck source=tests/vm/lib.sh
. /vm/lib.sh

check "the kernel command line carries the test's options" grep -q 'udf.kmodrs_bytes=caf' /proc/cmdline
same_as_ref "modprobe -c: options and blacklist from the kernel command line" modprobe -c
same_as_ref "modprobe --show-depends udf: command-line options, bytes kept" modprobe --show-depends udf
same_as_ref "modprobe -n -v udf" modprobe -n -v udf
same_as_ref "modprobe -b -n -v isofs: blacklisted on the command line" modprobe -b -n -v isofs
run ours modprobe --show-depends udf
check "the options are passed as written" grep -q "$(printf 'kmodrs_bytes=caf\351\377 kmodrs_quoted="a b"')" "$T/ours.out"

finish
