//! depmod on a bad day, on small synthetic trees and without the reference: loops
//! in the module tree, trees too deep to walk, how the output files are replaced
//! (temporary files, durability) and inputs large enough to expose work that grows
//! faster than the input.

mod common;
mod depmod_support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use common::ours;
use depmod_support::{text, Files, Fixture, KVER};
use kogen::Module;

/// A few modules that depend on each other, in three directories.
fn healthy(fixture: &Fixture) {
    fixture
        .module(
            "kernel/a/mod-a.ko",
            &Module::new("mod_a")
                .export("fa")
                .modinfo("alias", "pci:v1d*"),
        )
        .module(
            "kernel/b/mod-b.ko",
            &Module::new("mod_b").export("fb").undefined("fa"),
        )
        .module(
            "kernel/mod-c.ko",
            &Module::new("mod_c").undefined("fb").undefined("fa"),
        )
        .file("modules.order", "kernel/mod-c.ko\n")
        .file("modules.builtin", "")
        .file("modules.builtin.modinfo", "");
}

/// Our depmod's run on the tree; its files, which it must have written.
fn run_ok(fixture: &Fixture, args: &[&str]) -> (Output, Files) {
    let out = fixture.depmod(&ours("depmod"), args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    let files = fixture.outputs();
    (out, files)
}

fn set_mtime(path: &Path, time: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

/// Makes modules.dep look newer than every module, for `-A`.
fn date_modules_dep_ahead(fixture: &Fixture) {
    let ahead = SystemTime::now() + Duration::from_secs(3600);
    set_mtime(&fixture.dir().join("modules.dep"), ahead);
}

fn sorted_lines(bytes: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = text(bytes).lines().map(String::from).collect();
    lines.sort();
    lines
}

#[test]
fn directory_loops_are_skipped_and_reported_once() {
    let fixture = Fixture::new("dirloop");
    healthy(&fixture);
    let (clean, expected) = run_ok(&fixture, &[]);
    assert!(clean.stderr.is_empty(), "{}", text(&clean.stderr));
    let dry_clean = run_ok(&fixture, &["-n"]).0;

    let dir = fixture.dir();
    std::os::unix::fs::symlink("..", dir.join("kernel/loopdir")).unwrap();
    std::os::unix::fs::symlink("../..", dir.join("kernel/a/up")).unwrap();
    std::os::unix::fs::symlink(".", dir.join("kernel/b/self")).unwrap();
    let d = dir.display();
    let warning = |link: &str, target: &str| {
        format!("depmod: WARNING: directory loop: {d}/{link} leads back to {d}{target}; not searching it again")
    };
    let mut warnings = vec![
        warning("kernel/loopdir", ""),
        warning("kernel/a/up", ""),
        warning("kernel/b/self", "/kernel/b"),
    ];
    warnings.sort();

    for name in ["modules.dep", "modules.alias"] {
        std::fs::remove_file(dir.join(name)).unwrap();
    }
    let (out, files) = run_ok(&fixture, &[]);
    assert_eq!(sorted_lines(&out.stderr), warnings);
    assert_eq!(files, expected, "the files of the tree without the loops");

    let dry = run_ok(&fixture, &["-n"]).0;
    assert_eq!(text(&dry.stdout), text(&dry_clean.stdout));
    assert_eq!(sorted_lines(&dry.stderr), warnings);

    // -A walks the loops too: nothing newer, nothing said, nothing written.
    date_modules_dep_ahead(&fixture);
    std::fs::write(dir.join("modules.alias"), "stale\n").unwrap();
    let quick = run_ok(&fixture, &["-A"]).0;
    assert!(quick.stderr.is_empty(), "{}", text(&quick.stderr));
    assert_eq!(
        std::fs::read(dir.join("modules.alias")).unwrap(),
        b"stale\n"
    );
    // A newer module: the full run, which warns once per loop.
    set_mtime(
        &dir.join("kernel/b/mod-b.ko"),
        SystemTime::now() + Duration::from_secs(7200),
    );
    let quick = run_ok(&fixture, &["-A"]).0;
    assert_eq!(sorted_lines(&quick.stderr), warnings);
    assert_eq!(fixture.outputs(), expected);
}

/// `levels` nested directories `kernel/d/d/...` (kernel is level 1); a module
/// `m<level>.ko` at each level of `modules`.
fn deep_tree(fixture: &Fixture, levels: usize, modules: &[usize]) -> String {
    let mut rel = String::from("kernel");
    for level in 1..=levels {
        if level > 1 {
            rel.push_str("/d");
        }
        if modules.contains(&level) {
            fixture.module(
                &format!("{rel}/m{level}.ko"),
                &Module::new(&format!("m{level}")),
            );
        }
    }
    std::fs::create_dir_all(fixture.dir().join(&rel)).unwrap();
    rel
}

/// Runs our depmod with at most `fds` open files, as a default soft limit allows.
fn depmod_with_fd_limit(fixture: &Fixture, fds: u32, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {fds} && exec \"$0\" \"$@\""))
        .arg(ours("depmod"))
        .arg("-b")
        .arg(&fixture.root)
        .args(args)
        .arg(KVER)
        .env("LC_ALL", "C")
        .output()
        .unwrap()
}

#[test]
fn very_deep_trees_stop_at_the_depth_limit() {
    let fixture = Fixture::new("deep");
    healthy(&fixture);
    deep_tree(&fixture, 1000, &[100, 256, 257, 1000]);
    let out = depmod_with_fd_limit(&fixture, 1024, &[]);
    assert!(out.status.success(), "{out:?}");
    let stderr = text(&out.stderr);
    let dir = fixture.dir();
    let level_257 = format!("{}/kernel{}", dir.display(), "/d".repeat(256));
    assert_eq!(
        stderr,
        format!(
            "depmod: WARNING: directories nested too deep: {level_257} is more than 256 levels below {}; not searched\n",
            dir.display()
        )
    );
    let dep = text(&std::fs::read(dir.join("modules.dep")).unwrap());
    for (level, found) in [(100, true), (256, true), (257, false), (1000, false)] {
        assert_eq!(
            dep.contains(&format!("/m{level}.ko:")),
            found,
            "module at level {level}:\n{dep}"
        );
    }

    // -A cannot tell whether the modules below the limit are newer, so it rebuilds
    // (and the full run warns).
    date_modules_dep_ahead(&fixture);
    std::fs::write(dir.join("modules.alias"), "stale\n").unwrap();
    let quick = depmod_with_fd_limit(&fixture, 1024, &["-A"]);
    assert!(quick.status.success(), "{quick:?}");
    assert_eq!(text(&quick.stderr), stderr);
    assert_ne!(
        std::fs::read(dir.join("modules.alias")).unwrap(),
        b"stale\n"
    );
}

/// The eleven files depmod writes.
const OUTPUTS: [&str; 11] = [
    "modules.dep",
    "modules.dep.bin",
    "modules.alias",
    "modules.alias.bin",
    "modules.softdep",
    "modules.weakdep",
    "modules.symbols",
    "modules.symbols.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
    "modules.devname",
];

/// The output file whose temporary file `name` is (kmod's `NAME.PID.USEC.SEC`).
fn temporary_for(name: &str) -> Option<&'static str> {
    OUTPUTS.iter().copied().find(|out| {
        name.strip_prefix(out)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|rest| {
                let parts: Vec<&str> = rest.split('.').collect();
                parts.len() == 3
                    && parts
                        .iter()
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            })
    })
}

fn temporaries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| temporary_for(n).is_some())
        .collect();
    names.sort();
    names
}

#[test]
fn stale_temporary_files_are_removed() {
    let fixture = Fixture::new("stale");
    healthy(&fixture);
    // A process that has exited: its PID is free (and unlikely to be reused at once).
    let mut child = Command::new("true").spawn().unwrap();
    let gone = child.id();
    child.wait().unwrap();
    let alive = std::process::id();
    let dir = fixture.dir();
    let stale = [
        format!("modules.dep.{gone}.123456.1700000000"),
        format!("modules.symbols.bin.{gone}.9.1700000001"),
    ];
    let kept = [
        // Still being written by a running depmod.
        format!("modules.alias.bin.{alive}.123456.1700000000"),
        // Not named like depmod's temporary files.
        format!("modules.order.{gone}.1.2"),
        format!("modules.dep.{gone}.x.2"),
        format!("modules.dep.{gone}.1"),
        "modules.dep~".to_string(),
    ];
    for name in stale.iter().chain(&kept) {
        std::fs::write(dir.join(name), "partial").unwrap();
    }
    let (out, _) = run_ok(&fixture, &[]);
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    for name in &stale {
        assert!(!dir.join(name).exists(), "{name} left");
    }
    for name in &kept {
        assert!(dir.join(name).exists(), "{name} removed");
    }
    // A dry run writes nothing and removes nothing.
    std::fs::write(dir.join(&stale[0]), "partial").unwrap();
    run_ok(&fixture, &["-n"]);
    assert!(dir.join(&stale[0]).exists());
}

#[test]
fn a_failed_write_keeps_every_old_file() {
    let fixture = Fixture::new("efbig");
    healthy(&fixture);
    let (_, before) = run_ok(&fixture, &[]);
    // Enough aliases to make modules.alias larger than the file size limit below.
    let many = (0..400).fold(Module::new("many"), |m, i| {
        m.modinfo("alias", &format!("pci:v{i:08X}d*sv*sd*bc*sc*i*"))
    });
    fixture.module("kernel/many.ko", &many);
    let out = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ && ulimit -f 8 && exec \"$0\" \"$@\"")
        .arg(ours("depmod"))
        .arg("-b")
        .arg(&fixture.root)
        .arg(KVER)
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        text(&out.stderr),
        "depmod: ERROR: Could not create index 'modules.alias'. Output is truncated: File too large\n"
    );
    assert_eq!(fixture.outputs(), before, "old files replaced");
    assert!(temporaries(&fixture.dir()).is_empty());
}

#[test]
fn files_are_0644_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let fixture = Fixture::new("umask");
    healthy(&fixture);
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 077 && exec \"$0\" \"$@\"")
        .arg(ours("depmod"))
        .arg("-b")
        .arg(&fixture.root)
        .arg(KVER)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for name in OUTPUTS {
        let mode = std::fs::metadata(fixture.dir().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o644, "{name}");
    }
}

/// One system call from strace's log: name, arguments as printed, return value.
#[derive(Debug)]
struct Call {
    name: String,
    args: Vec<String>,
    ret: i64,
}

impl Call {
    fn fd(&self, i: usize) -> Option<i64> {
        self.args.get(i)?.parse().ok()
    }

    /// A string argument without its quotes (the names here need no unescaping).
    fn string(&self, i: usize) -> Option<&str> {
        self.args.get(i)?.strip_prefix('"')?.strip_suffix('"')
    }
}

/// Splits strace's argument list at top-level commas; returns the arguments and
/// what follows the closing parenthesis.
fn split_args(s: &str) -> (Vec<String>, &str) {
    let (mut args, mut current) = (Vec::new(), String::new());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for (i, c) in s.char_indices() {
        if quoted {
            current.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '(' | '[' | '{' => depth += 1,
            ')' if depth == 0 => {
                args.push(current.trim().to_string());
                return (args, &s[i + 1..]);
            }
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                args.push(std::mem::take(&mut current).trim().to_string());
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    (args, "")
}

/// `strace -f` output as calls in order, joining calls other threads interrupted.
fn parse_strace(log: &str) -> Vec<Call> {
    let mut pending: std::collections::HashMap<String, String> = Default::default();
    let mut calls = Vec::new();
    for line in log.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let full = if let Some(start) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid.to_string(), start.to_string());
            continue;
        } else if rest.starts_with("<... ") {
            let tail = rest.split_once(" resumed>").map_or("", |(_, t)| t);
            format!("{}{tail}", pending.remove(pid).unwrap_or_default())
        } else {
            rest.to_string()
        };
        let Some((name, after)) = full.split_once('(') else {
            continue;
        };
        if name.starts_with('+') || name.starts_with('-') {
            continue;
        }
        let (args, tail) = split_args(after);
        let ret = tail
            .trim_start()
            .strip_prefix("= ")
            .and_then(|r| r.split(' ').next())
            .and_then(|r| r.parse().ok())
            .unwrap_or(-1);
        calls.push(Call {
            name: name.to_string(),
            args,
            ret,
        });
    }
    calls
}

/// What the trace shows of one file being written.
#[derive(Default)]
struct Written {
    /// All data written so far is on disk.
    synced: bool,
}

/// Traces our depmod writing a small tree and checks the order that makes the
/// files durable and never more than one temporary file at a time: each file's
/// data is written and synced before the rename that publishes it, every name is
/// relative to the directory's descriptor, and the directory is synced after the
/// last rename.
#[test]
fn files_are_synced_before_they_are_published() {
    let strace = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("strace"))
                .find(|p| p.is_file())
        })
        .expect("strace is needed for this test and was not found on PATH: install it (scripts/test.sh does)");
    let fixture = Fixture::new("strace");
    healthy(&fixture);
    let log = fixture.root.join("strace.log");
    let traced = Command::new(strace)
        .arg("-f")
        .arg("-o")
        .arg(&log)
        .arg("-e")
        .arg(
            "trace=open,openat,creat,write,writev,pwrite64,fsync,fdatasync,close,\
             link,linkat,rename,renameat,renameat2,unlink,unlinkat",
        )
        .arg(ours("depmod"))
        .arg("-b")
        .arg(&fixture.root)
        .arg(KVER)
        .output()
        .unwrap();
    assert!(traced.status.success(), "{traced:?}");
    let calls = parse_strace(&std::fs::read_to_string(&log).unwrap());

    let mut files: Vec<Written> = Vec::new();
    let mut open: std::collections::HashMap<i64, usize> = Default::default();
    let mut named: std::collections::HashMap<String, usize> = Default::default();
    let mut published = Vec::new();
    let mut dir_fd = None;
    let (mut last_rename, mut dir_synced_after) = (None, false);
    let mut most_temporaries = 0;
    for (i, call) in calls.iter().enumerate() {
        let name = call.name.as_str();
        if call.ret < 0 {
            continue;
        }
        match name {
            "openat" | "open" | "creat" => {
                let (path, flags) = if name == "openat" {
                    (call.string(1), call.args.get(2))
                } else {
                    (call.string(0), call.args.get(1))
                };
                let (path, flags) = (path.unwrap_or_default(), flags.cloned().unwrap_or_default());
                let temporary = temporary_for(path).is_some();
                let anonymous = flags.contains("O_TMPFILE");
                if temporary || anonymous {
                    assert_eq!(name, "openat", "created by absolute path: {call:?}");
                    assert!(!path.contains('/'), "{call:?}");
                    files.push(Written { synced: true });
                    open.insert(call.ret, files.len() - 1);
                    if temporary {
                        named.insert(path.to_string(), files.len() - 1);
                    }
                } else {
                    open.remove(&call.ret);
                }
                assert!(
                    !OUTPUTS.iter().any(|o| path.ends_with(o)) || flags.contains("O_RDONLY"),
                    "an output file opened for writing: {call:?}"
                );
            }
            "write" | "writev" | "pwrite64" => {
                if let Some(&f) = call.fd(0).and_then(|fd| open.get(&fd)) {
                    files[f].synced = false;
                }
            }
            "fsync" | "fdatasync" => {
                if let Some(&f) = call.fd(0).and_then(|fd| open.get(&fd)) {
                    files[f].synced = true;
                }
                if call.fd(0).is_some() && call.fd(0) == dir_fd && last_rename.is_some() {
                    dir_synced_after = true;
                }
            }
            "close" => {
                open.remove(&call.fd(0).unwrap_or(-1));
            }
            "linkat" => {
                let target = call.string(3).unwrap_or_default().to_string();
                assert!(temporary_for(&target).is_some(), "{call:?}");
                let source = match call.string(1) {
                    Some("") => call.fd(0),
                    Some(proc_fd) => proc_fd
                        .strip_prefix("/proc/self/fd/")
                        .and_then(|n| n.parse().ok()),
                    None => None,
                };
                let f = source.and_then(|fd| open.get(&fd)).copied();
                named.insert(target, f.expect("linked an unknown file"));
            }
            "renameat" | "renameat2" => {
                let (from, to) = (call.string(1).unwrap(), call.string(3).unwrap());
                let Some(output) = temporary_for(from) else {
                    continue;
                };
                assert_eq!(output, to, "{call:?}");
                assert!(call.fd(0).is_some() && call.fd(0) == call.fd(2), "{call:?}");
                assert!(dir_fd.is_none() || dir_fd == call.fd(0), "{call:?}");
                dir_fd = call.fd(0);
                let f = named.remove(from).expect("renamed an unknown file");
                assert!(files[f].synced, "{to} published before its data was synced");
                published.push(to.to_string());
                last_rename = Some(i);
                dir_synced_after = false;
            }
            "rename" | "link" | "unlink" => {
                assert!(
                    !call
                        .args
                        .iter()
                        .any(|a| OUTPUTS.iter().any(|o| a.contains(o))),
                    "an output file named by absolute path: {call:?}"
                );
            }
            "unlinkat" => {
                named.remove(call.string(1).unwrap_or_default());
            }
            _ => {}
        }
        most_temporaries = most_temporaries.max(named.len());
    }
    assert_eq!(published, OUTPUTS, "files published");
    assert!(
        dir_synced_after,
        "directory not synced after the last rename"
    );
    assert!(
        most_temporaries <= 1,
        "{most_temporaries} temporary files at once"
    );
    assert!(temporaries(&fixture.dir()).is_empty());
}
