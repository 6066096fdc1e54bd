//! One fault, one text: a module file that cannot be read (EIO), is missing (ENOENT),
//! is not ours to read (EACCES) or is not a module (ENOEXEC) makes every tool print
//! the C library's words for it, exactly where reference kmod 34.2 prints them.
//! (insmod of a file that is not a module needs a kernel to refuse it: the QEMU test
//! covers that one.)

mod common;
mod depmod_support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{ours, reference};
use depmod_support::{Fixture, KVER};
use kogen::Module;

/// The glibc texts of the faults, and of what a refusal by the kernel would say.
const TEXTS: [&str; 5] = [
    "Input/output error",
    "No such file or directory",
    "Permission denied",
    "Exec format error",
    "Operation not permitted",
];

struct Fault {
    name: &'static str,
    text: &'static str,
    /// Run the tools without root's power to read any file (through util-linux's
    /// setpriv, which scripts/test.sh installs).
    unprivileged: bool,
    make: fn(&Path),
}

fn faults() -> Vec<Fault> {
    vec![
        Fault {
            name: "EIO",
            text: "Input/output error",
            unprivileged: false,
            // Reading /proc/self/mem at offset 0 fails with EIO, even for root.
            make: |p| std::os::unix::fs::symlink("/proc/self/mem", p).unwrap(),
        },
        Fault {
            name: "ENOENT",
            text: "No such file or directory",
            unprivileged: false,
            make: |p| std::os::unix::fs::symlink("/nonexistent/x.ko", p).unwrap(),
        },
        Fault {
            name: "EACCES",
            text: "Permission denied",
            unprivileged: true,
            make: |p| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::write(p, Module::new("x").build()).unwrap();
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o000)).unwrap();
            },
        },
        Fault {
            name: "ENOEXEC",
            text: "Exec format error",
            unprivileged: false,
            make: |p| std::fs::write(p, "this is not a module, but long enough\n").unwrap(),
        },
    ]
}

fn run(program: &Path, tool: &str, args: &[&std::ffi::OsStr], unprivileged: bool) -> Output {
    let mut cmd = if unprivileged {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--bounding-set=-dac_override,-dac_read_search", "--"])
            .arg(program)
            .args(args);
        cmd
    } else {
        let mut cmd = Command::new(program);
        cmd.arg0(tool).args(args);
        cmd
    };
    cmd.env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

/// The known texts a run printed.
fn texts(output: &Output) -> Vec<&'static str> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    TEXTS.into_iter().filter(|t| stderr.contains(t)).collect()
}

#[test]
fn every_tool_words_a_fault_like_kmod() {
    let mut seen_by_kmod = Vec::new();
    for fault in faults() {
        let fixture = Fixture::new(&format!("errno-{}", fault.name));
        fixture.module("kernel/ok.ko", &Module::new("ok").export("f"));
        let file: PathBuf = fixture.dir().join("kernel/broken.ko");
        (fault.make)(&file);
        let root = fixture.root.as_os_str();
        let runs: [(&str, Vec<&std::ffi::OsStr>); 4] = [
            ("modinfo", vec![file.as_os_str()]),
            (
                "modprobe",
                vec!["--show-modversions".as_ref(), file.as_os_str()],
            ),
            ("depmod", vec!["-b".as_ref(), root, KVER.as_ref()]),
            ("insmod", vec![file.as_os_str()]),
        ];
        for (tool, args) in runs {
            if tool == "insmod" && fault.name == "ENOEXEC" {
                continue;
            }
            let theirs = run(&reference(tool), tool, &args, fault.unprivileged);
            let mine = run(&ours(tool), tool, &args, fault.unprivileged);
            let what = format!("{} through {tool}", fault.name);
            assert_eq!(
                texts(&mine),
                texts(&theirs),
                "{what}: errno texts differ\n--- ours\n{}--- kmod\n{}",
                String::from_utf8_lossy(&mine.stderr),
                String::from_utf8_lossy(&theirs.stderr)
            );
            assert_eq!(
                mine.status.code(),
                theirs.status.code(),
                "{what}: exit codes"
            );
            if texts(&theirs).contains(&fault.text) {
                seen_by_kmod.push(what);
            }
        }
    }
    // Every fault is worded by at least two tools, so the comparison above is about
    // something.
    for fault in faults() {
        let n = seen_by_kmod
            .iter()
            .filter(|w| w.starts_with(fault.name))
            .count();
        assert!(
            n >= 2,
            "{}: kmod worded it in only {n} tools: {seen_by_kmod:?}",
            fault.name
        );
    }
}
