# lsmod_check PROC_MODULES LSMOD_OUTPUT: checks that LSMOD_OUTPUT (the output of
# lsmod) lists exactly the modules of PROC_MODULES (a copy of /proc/modules),
# in the same order, with kmod's header and columns: name padded to 19, size
# right-aligned in 8, the use count, and the holders.  The holders are compared
# as a set, since lsmod reads them from /sys/module/NAME/holders/ and the
# kernel's list may be in another order; /proc/modules' "[permanent]" and "-"
# are not holders.  Prints one line per difference; returns 1 if there is any.
# POSIX sh and awk (busybox's too): sourced by the root image's init and by
# scripts/initramfs-test.sh, which runs it against broken inputs first.
lsmod_check() {
	awk -v procfile="$1" '
	function holders(s,    n, i, parts, out, sorted, j, t) {
		n = split(s, parts, ",")
		out = ""
		# insertion sort: a handful of names at most
		for (i = 1; i <= n; i++) {
			if (parts[i] == "" || parts[i] == "-" || parts[i] == "[permanent]") continue
			sorted[++j] = parts[i]
		}
		for (i = 2; i <= j; i++) {
			t = sorted[i]
			for (n = i - 1; n >= 1 && sorted[n] > t; n--) sorted[n + 1] = sorted[n]
			sorted[n + 1] = t
		}
		for (i = 1; i <= j; i++) out = out (i > 1 ? "," : "") sorted[i]
		return out
	}
	BEGIN {
		while ((getline line < procfile) > 0) {
			np++
			split(line, f, " ")
			pname[np] = f[1]; psize[np] = f[2]; pref[np] = f[3]; phold[np] = holders(f[4])
		}
		if (np == 0) { print "no modules in " procfile; bad++ }
	}
	NR == 1 {
		if ($0 != "Module                  Size  Used by") { print "header: \"" $0 "\""; bad++ }
		next
	}
	{
		nl++
		if (nl > np) { print "extra line: \"" $0 "\""; bad++; next }
		want = sprintf("%-19s %8s  %s", pname[nl], psize[nl], pref[nl])
		got = substr($0, 1, length(want))
		rest = substr($0, length(want) + 1)
		if (got != want) { print "line " nl ": \"" $0 "\", /proc/modules: " pname[nl] " " psize[nl] " " pref[nl]; bad++; next }
		if (rest != "" && substr(rest, 1, 1) != " ") { print "line " nl ": \"" $0 "\": count column"; bad++; next }
		if (holders(substr(rest, 2)) != phold[nl]) {
			print pname[nl] ": used by \"" substr(rest, 2) "\", /proc/modules: \"" phold[nl] "\""; bad++
		}
	}
	END {
		if (NR == 0) { print "no output"; bad++ }
		for (i = nl + 1; i <= np; i++) { print "missing: " pname[i]; bad++ }
		exit bad ? 1 : 0
	}' "$2"
}
