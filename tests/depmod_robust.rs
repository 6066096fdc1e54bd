//! depmod on a bad day, on small synthetic trees and without the reference: loops
//! in the module tree, trees too deep to walk, how the output files are replaced
//! (temporary files, durability) and inputs large enough to expose work that grows
//! faster than the input.

mod common;
mod depmod_support;

use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use common::ours;
use depmod_support::{set_mtime, temporaries, text, Files, Fixture, KVER, OUTPUTS};
use kogen::Module;

/// A few modules that depend on each other, in three directories.
fn healthy(fixture: &Fixture) {
    depmod_support::healthy(fixture);
    fixture
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
