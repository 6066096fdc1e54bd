//! The order in which depmod publishes its files, traced with strace: every final
//! file's data is synced before the rename that makes it visible, and the directory
//! is synced after the last rename (host-tools group: needs strace, which
//! scripts/test.sh installs).

mod common;
mod depmod_support;

use std::process::Command;

use common::ours;
use depmod_support::{temporaries, temporary_for, Fixture, KVER, OUTPUTS};

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
    depmod_support::healthy(&fixture);
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
