//! modinfo's command line behaves like kmod's (glibc getopt_long): bundling, attached
//! and separate values, long-option prefixes, permutation, `--`, the last field option
//! winning, and glibc's error texts. stdout, stderr and exit code must all match.

mod common;

use common::{ours, reference, run_as, Tree};

#[test]
fn command_line_matches_kmod() {
    let tree = Tree::get("trixie-amd64");
    let file = tree
        .module_dir(&tree.pristine)
        .join("kernel/drivers/net/dummy.ko.xz")
        .to_string_lossy()
        .into_owned();
    let root = tree.ref_root.to_string_lossy().into_owned();
    let f = file.as_str();
    let cases: Vec<Vec<&str>> = vec![
        vec!["--help"],
        vec!["-h", "--bogus"],
        vec!["--he"],
        vec!["--bogus"],
        vec!["-x"],
        vec!["-F"],
        vec!["--field"],
        vec!["--fi", "x"],
        vec!["--fie", "alias", f],
        vec!["--field=alias", f],
        vec!["-Falias", f],
        vec!["-F", "-weird", f],
        vec!["-a", "-F", "license", f],
        vec!["-F", "license", "-a", f],
        vec!["-pn", f],
        vec![],
        vec![f, "-F", "vermagic"],
        vec!["--", f],
        vec!["--author=x", f],
        vec!["-0", "-F", "alias", f],
        vec!["-n", "--null", f, f],
        vec!["-k"],
        vec!["-b", "/nonexistent", "-k", "1.2", "dummy"],
        vec!["-m", "-b", "/nonexistent", "-k", "1.2", "dummy"],
        vec!["--set", "1.2", "--base", "/nonexistent", "dummy"],
        vec![
            "-b", &root, "-k", &tree.kver, "-F", "filename", "dummy", "crc32c", "nope",
        ],
        vec!["/no/such/file.ko"],
        vec!["./relative-missing.ko.xz"],
    ];
    for args in cases {
        let a = run_as(&ours("modinfo"), "modinfo", &args);
        let b = run_as(&reference("modinfo"), "modinfo", &args);
        let show = |o: &std::process::Output| {
            format!(
                "exit {:?}\nstdout:\n{}\nstderr:\n{}",
                o.status.code(),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        };
        assert_eq!(show(&a), show(&b), "modinfo {args:?}");
    }
}

#[test]
fn version_keeps_kmod_layout() {
    let out = run_as(&ours("modinfo"), "modinfo", ["--version"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0], "kmod version 34.2");
    assert!(
        lines[1].contains("+XZ") && lines[1].contains("+ZSTD"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn unknown_program_name_is_silent_failure() {
    let out = run_as(&ours("kmod"), "modprobe.static", ["--help"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[test]
fn kmod_front_end_runs_tools() {
    let tree = Tree::get("trixie-amd64");
    let file = tree
        .module_dir(&tree.pristine)
        .join("kernel/drivers/net/dummy.ko.xz");
    let a = run_as(
        &ours("kmod"),
        "kmod",
        [
            std::ffi::OsStr::new("modinfo"),
            "-F".as_ref(),
            "name".as_ref(),
            file.as_os_str(),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&a.stdout), "dummy\n");
    let missing = run_as(&ours("kmod"), "kmod", Vec::<&str>::new());
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).starts_with("missing command"));
    let invalid = run_as(&ours("kmod"), "kmod", ["frobnicate"]);
    assert_eq!(invalid.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&invalid.stderr).starts_with("invalid command 'frobnicate'"));
}

#[test]
fn other_tools_command_lines_match_kmod() {
    let cases: &[(&str, &[&str])] = &[
        ("insmod", &["--help"]),
        ("insmod", &[]),
        ("insmod", &["-"]),
        ("insmod", &["/no/such/file.ko"]),
        ("insmod", &["--bogus"]),
        ("rmmod", &["--help"]),
        ("rmmod", &[]),
        ("rmmod", &["-x"]),
        ("lsmod", &["--help"]),
        ("lsmod", &["extra"]),
        ("lsmod", &["-V", "--bogus"]),
        ("modprobe", &["--help"]),
        ("modprobe", &[]),
        ("modprobe", &["--wait", "x", "dummy"]),
        ("modprobe", &["-C"]),
        ("modprobe", &["--ignore", "-h"]),
        ("modprobe", &["--show", "-h"]),
        ("modprobe", &["--remove-dep", "-h"]),
    ];
    for (tool, args) in cases {
        let a = run_as(&ours(tool), tool, *args);
        let b = run_as(&reference(tool), tool, *args);
        let show = |o: &std::process::Output| {
            let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
            // The feature line differs on purpose (+ZLIB): compare the rest.
            let stdout = stdout.replace("-ZLIB", "+ZLIB");
            format!(
                "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
                o.status.code(),
                String::from_utf8_lossy(&o.stderr)
            )
        };
        assert_eq!(show(&a), show(&b), "{tool} {args:?}");
    }
}

#[test]
fn debug_logging_follows_verbosity_and_kmod_log() {
    let tree = Tree::get("trixie-amd64");
    let root = tree.ref_root.to_string_lossy().into_owned();
    let base = [
        "-C",
        "/nonexistent-config-dir",
        "-d",
        &root,
        "-S",
        &tree.kver,
        "-D",
        "dummy",
    ];
    let quiet = run_as(&ours("modprobe"), "modprobe", base);
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let verbose = run_as(
        &ours("modprobe"),
        "modprobe",
        ["-vvv"].into_iter().chain(base),
    );
    let text = String::from_utf8_lossy(&verbose.stderr);
    assert!(
        text.contains("modprobe: DEBUG: input alias=dummy, normalized=dummy"),
        "{text}"
    );
    let env = std::process::Command::new(ours("modprobe"))
        .args(base)
        .env("KMOD_LOG", "debug")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&env.stderr).contains("modprobe: DEBUG: "));
    // Debug output never changes stdout.
    assert_eq!(quiet.stdout, verbose.stdout);
    assert_eq!(quiet.stdout, env.stdout);
}
