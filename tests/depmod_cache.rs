//! depmod's module cache (`modules.cache`) on synthetic trees: when it is written,
//! that it is reused, that every kind of change to a module is seen, and that a
//! damaged, foreign or concurrently written cache never changes the output. Each
//! run with the cache is compared with a run of ours without it on the same tree.

mod common;
mod depmod_support;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::ours;
use depmod_support::{text, Files, Fixture, KVER, OUTPUTS};
use kmod_rs::depmod::cache::{Cache, FILE_NAME, RACY_MARGIN_NS};
use kogen::{Compression, Module};

/// Waits until everything changed so far is old enough to be cached (depmod keeps
/// no entry for a file changed within the margin before its run, nor writes a cache
/// with an executable that new).
fn settle() {
    std::thread::sleep(Duration::from_nanos(RACY_MARGIN_NS as u64) + Duration::from_millis(200));
}

fn tree(tag: &str) -> Fixture {
    let fixture = Fixture::new(tag);
    fixture
        .file("modules.order", "kernel/b.ko\n")
        .file("modules.builtin", "kernel/fs/ext4.ko\n")
        .file("modules.builtin.modinfo", "ext4.alias=fs-ext4\0")
        .module(
            "kernel/a.ko",
            &Module::new("a")
                .export_crc("fa", 0x11)
                .undefined("printk")
                .modinfo("alias", "a-alias-aaaa"),
        )
        .module(
            "kernel/b.ko",
            &Module::new("b")
                .export("fb")
                .undefined("fa")
                .version("fa", 0x11)
                .modinfo("softdep", "pre: a"),
        )
        .module(
            "kernel/c-d.ko",
            &Module::new("c")
                .undefined("fb")
                .modinfo("alias", "char-major-10-1"),
        );
    fixture
}

/// The output files, without the cache.
fn outputs(fixture: &Fixture) -> Files {
    let mut files = fixture.outputs();
    files.retain(|(name, _)| name != FILE_NAME);
    files
}

fn cache_path(fixture: &Fixture) -> PathBuf {
    fixture.dir().join(FILE_NAME)
}

/// Runs our depmod with `args` (and -vvvv, for the cache's debug messages);
/// it must succeed without a warning or error.
fn run(fixture: &Fixture, args: &[&str]) -> Output {
    let mut all = vec!["-vvvv"];
    all.extend_from_slice(args);
    let out = fixture.depmod(&ours("depmod"), &all);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "depmod {args:?} failed:\n{stderr}");
    for bad in ["WARNING", "ERROR", "FATAL", "panicked"] {
        assert!(!stderr.contains(bad), "depmod {args:?}:\n{stderr}");
    }
    out
}

/// `(reused, modules)` from the run's debug message.
fn reuse(out: &Output) -> (usize, usize) {
    let stderr = text(&out.stderr);
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("depmod: DEBUG: module cache: "))
        .unwrap_or_else(|| panic!("no cache message in:\n{stderr}"));
    let words: Vec<&str> = line.split(' ').collect();
    (words[0].parse().unwrap(), words[2].parse().unwrap())
}

/// Why the cache was not used, if the run says so.
fn refused(out: &Output) -> Option<String> {
    text(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("depmod: DEBUG: not using the module cache "))
        .map(str::to_string)
}

/// Runs with the cache, then without it on the same tree: the same files. Returns
/// the run with the cache.
fn assert_cached_run_is_right(fixture: &Fixture, what: &str) -> Output {
    let cached = run(fixture, &["--cache"]);
    let with_cache = outputs(fixture);
    let before = std::fs::read(cache_path(fixture)).ok();
    run(fixture, &["--no-cache"]);
    assert!(
        with_cache == outputs(fixture),
        "{what}: the output with the cache differs from a full run"
    );
    assert_eq!(
        std::fs::read(cache_path(fixture)).ok(),
        before,
        "{what}: --no-cache touched the cache"
    );
    cached
}

/// Rewrites a file in place (same inode, same size) and puts its mtime back, as
/// `touch -r` would: only the ctime tells.
fn rewrite_in_place(path: &Path, data: &[u8]) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    let old_len = std::fs::metadata(path).unwrap().len();
    assert_eq!(old_len, data.len() as u64, "not the same size");
    let mut file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all(data).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);
    assert_eq!(std::fs::metadata(path).unwrap().modified().unwrap(), mtime);
}

/// Replaces a file by renaming a new one over it.
fn replace(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn replace_bytes(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = data
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern in module");
    let mut out = data.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

#[test]
fn staging_trees_get_exactly_kmods_files() {
    let fixture = tree("cache-staging");
    settle();
    // -b DIR other than /: no cache unless asked for.
    run(&fixture, &[]);
    let names = |f: &Files| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&fixture.outputs()), sorted(&OUTPUTS));
    for (env, args, cached) in [
        ("1", &[][..], true),
        ("0", &["--cache"][..], true),
        ("1", &["--no-cache"][..], false),
        ("0", &[][..], false),
        ("", &["--no-cache", "--cache"][..], true),
        ("", &["--cache", "--no-cache"][..], false),
        ("yes", &[][..], false),
    ] {
        let _ = std::fs::remove_file(cache_path(&fixture));
        let mut all = vec!["-b", fixture.root.to_str().unwrap()];
        all.extend_from_slice(args);
        all.push(KVER);
        let out = std::process::Command::new(ours("depmod"))
            .args(&all)
            .env("KMOD_DEPMOD_CACHE", env)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            cache_path(&fixture).exists(),
            cached,
            "KMOD_DEPMOD_CACHE={env:?} {args:?}"
        );
    }
    // A dry run writes nothing, not even the cache.
    fixture.restore(&[]);
    let out = run(&fixture, &["-n", "--cache"]);
    assert!(!out.stdout.is_empty());
    assert!(
        fixture.outputs().is_empty(),
        "{:?}",
        names(&fixture.outputs())
    );
    // Files named on the command line: the cache is for whole trees only.
    let a = fixture.dir().join("kernel/a.ko");
    let root = fixture.root.to_str().unwrap();
    let out = common::run(
        &ours("depmod"),
        ["--cache", "-b", root, KVER, a.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!fixture.outputs().is_empty());
    assert!(!cache_path(&fixture).exists());
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    out.sort();
    out
}

#[test]
fn outdir_gets_the_cache() {
    let fixture = tree("cache-outdir");
    let out_root = fixture.root.join("out");
    settle();
    run(&fixture, &["--cache", "-o", out_root.to_str().unwrap()]);
    let out_dir = out_root.join("lib/modules").join(KVER);
    assert!(out_dir.join(FILE_NAME).exists());
    assert!(!cache_path(&fixture).exists());
    let again = run(&fixture, &["--cache", "-o", out_root.to_str().unwrap()]);
    assert_eq!(reuse(&again), (3, 3));
}

/// Every kind of change is seen, on a cache made when the files were settled.
#[test]
fn changes_are_seen() {
    let fixture = tree("cache-changes");
    let dir = fixture.dir();
    fixture.module(
        "kernel/e.ko.xz",
        &Module::new("e").export("fe").modinfo("alias", "e-alias"),
    );
    std::fs::write(
        dir.join("kernel/e.ko.xz"),
        Module::new("e")
            .export("fe")
            .modinfo("alias", "e-alias")
            .build_compressed(Compression::Xz),
    )
    .unwrap();
    fixture.module(
        "other/f1.ko",
        &Module::new("f").export("ff1").undefined("fa"),
    );
    fixture.module(
        "other/f2.ko",
        &Module::new("f").export("ff2").undefined("fb"),
    );
    symlink(dir.join("other/f1.ko"), dir.join("kernel/f.ko")).unwrap();
    std::fs::create_dir_all(dir.join("removed")).unwrap();
    settle();
    let first = assert_cached_run_is_right(&fixture, "first run");
    assert_eq!(
        refused(&first).map(|r| r.contains("No such file")),
        Some(true)
    );
    let n = reuse(&first).1;
    assert_eq!(reuse(&first), (0, n));
    let again = assert_cached_run_is_right(&fixture, "unchanged");
    assert_eq!(reuse(&again), (n, n), "nothing changed");

    // Same size, mtime put back: only the ctime changed.
    let a = dir.join("kernel/a.ko");
    let edited = replace_bytes(
        &std::fs::read(&a).unwrap(),
        b"a-alias-aaaa",
        b"a-alias-bbbb",
    );
    rewrite_in_place(&a, &edited);
    let out = assert_cached_run_is_right(&fixture, "in place, mtime restored");
    assert_eq!(reuse(&out), (n - 1, n));
    let alias = std::fs::read(dir.join("modules.alias")).unwrap();
    assert!(text(&alias).contains("a-alias-bbbb"), "{}", text(&alias));

    // A new module replaces another by rename.
    let b = dir.join("kernel/b.ko");
    replace(&b, &Module::new("b").export("fb2").undefined("fa").build());
    let out = assert_cached_run_is_right(&fixture, "replaced by rename");
    assert!(reuse(&out).0 < n);

    // A compressed module edited (its exported symbol renamed) and recompressed.
    let e = dir.join("kernel/e.ko.xz");
    replace(
        &e,
        &Module::new("e")
            .export("fe_renamed")
            .modinfo("alias", "e-alias")
            .build_compressed(Compression::Xz),
    );
    assert_cached_run_is_right(&fixture, "exported symbol renamed");

    // The symbolic link now leads to another file.
    std::fs::remove_file(dir.join("kernel/f.ko")).unwrap();
    symlink(dir.join("other/f2.ko"), dir.join("kernel/f.ko")).unwrap();
    assert_cached_run_is_right(&fixture, "symlink changed");

    // Removed, added, renamed to another directory, touched.
    std::fs::rename(dir.join("kernel/c-d.ko"), dir.join("removed/c-d.ko.old")).unwrap();
    assert_cached_run_is_right(&fixture, "removed");
    fixture.module(
        "updates/a.ko",
        &Module::new("a").export("fa").modinfo("alias", "new"),
    );
    assert_cached_run_is_right(&fixture, "added");
    std::fs::rename(dir.join("updates/a.ko"), dir.join("kernel/g.ko")).unwrap();
    assert_cached_run_is_right(&fixture, "renamed");
    File::options()
        .write(true)
        .open(dir.join("kernel/g.ko"))
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    assert_cached_run_is_right(&fixture, "touched");

    // Files changed just before a run are read again by the next run too: a change
    // within the same timestamp tick could not be told apart. Once settled, they
    // are cached.
    let out = run(&fixture, &["--cache"]);
    assert!(reuse(&out).0 < reuse(&out).1, "a recent change was cached");
    settle();
    run(&fixture, &["--cache"]);
    let out = run(&fixture, &["--cache"]);
    let (reused, total) = reuse(&out);
    assert_eq!(reused, total, "settled files not cached");
}

/// Damaged, truncated, empty, foreign caches and caches of another build or tree:
/// ignored with a debug message, the output as without them, and then rewritten.
#[test]
fn damaged_caches_are_ignored() {
    let fixture = tree("cache-damaged");
    settle();
    run(&fixture, &["--no-cache"]);
    let expected = outputs(&fixture);
    run(&fixture, &["--cache"]);
    let good = std::fs::read(cache_path(&fixture)).unwrap();
    assert!(Cache::parse(&good).is_ok());

    let other = tree("cache-damaged-other");
    settle();
    run(&other, &["--cache"]);
    let other_tree = std::fs::read(cache_path(&other)).unwrap();

    let mut variants: Vec<(String, Vec<u8>, &str)> = vec![
        ("empty".into(), Vec::new(), "not a module cache"),
        (
            "another tree's".into(),
            other_tree,
            "another module directory",
        ),
        (
            "not a cache".into(),
            b"alias foo bar\n".to_vec(),
            "not a module cache",
        ),
    ];
    for len in [4, 8, 23, 24, 40, good.len() / 2, good.len() - 1] {
        variants.push((format!("truncated to {len}"), good[..len].to_vec(), ""));
    }
    for at in [
        0,
        9,
        13,
        17,
        30,
        good.len() / 3,
        good.len() / 2,
        good.len() - 1,
    ] {
        let mut flipped = good.clone();
        flipped[at] ^= 0x10;
        variants.push((format!("bit flip at {at}"), flipped, ""));
    }
    let mut swapped = good.clone();
    swapped[8..12].reverse();
    variants.push(("other byte order".into(), swapped, "other byte order"));
    let mut longer = good.clone();
    longer.extend_from_slice(b"\0\0\0\0");
    variants.push(("trailing bytes".into(), longer, "after the last entry"));

    for (what, bytes, reason) in variants {
        std::fs::write(cache_path(&fixture), &bytes).unwrap();
        let out = run(&fixture, &["--cache"]);
        let why = refused(&out).unwrap_or_else(|| panic!("{what}: cache not refused"));
        assert!(why.contains(reason), "{what}: {why}");
        assert_eq!(reuse(&out).0, 0, "{what}");
        assert!(outputs(&fixture) == expected, "{what}: output differs");
        let rewritten = std::fs::read(cache_path(&fixture)).unwrap();
        assert!(Cache::parse(&rewritten).is_ok(), "{what}: not rewritten");
    }

    // A cache written by another build of depmod (another executable).
    let copy_dir = fixture.root.join("other-build");
    std::fs::create_dir_all(&copy_dir).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_kmod"), copy_dir.join("depmod")).unwrap();
    settle();
    let out = fixture.depmod(&copy_dir.join("depmod"), &["--cache"]);
    assert!(out.status.success());
    let out = run(&fixture, &["--cache"]);
    let why = refused(&out).expect("another build's cache used");
    assert!(why.contains("another build"), "{why}");
    assert!(outputs(&fixture) == expected);
    assert_eq!(reuse(&run(&fixture, &["--cache"])), (3, 3));
}

/// Concurrent runs, some after a change: each publishes whole files by rename, so
/// the cache left is always one run's complete cache.
#[test]
fn concurrent_runs_leave_a_valid_cache() {
    let fixture = tree("cache-concurrent");
    settle();
    let a = fixture.dir().join("kernel/a.ko");
    for round in 0..4 {
        if round % 2 == 1 {
            let data = std::fs::read(&a).unwrap();
            replace(&a, &data);
        }
        let children: Vec<_> = (0..4)
            .map(|_| {
                std::process::Command::new(ours("depmod"))
                    .args(["--cache", "-b", fixture.root.to_str().unwrap(), KVER])
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", text(&out.stderr));
            assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
        }
        let cache = std::fs::read(cache_path(&fixture)).unwrap();
        assert!(Cache::parse(&cache).is_ok(), "round {round}");
        assert!(depmod_support::temporaries(&fixture.dir()).is_empty());
        let stray: Vec<String> = std::fs::read_dir(fixture.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(FILE_NAME) && n != FILE_NAME)
            .collect();
        assert!(stray.is_empty(), "{stray:?}");
    }
    assert_cached_run_is_right(&fixture, "after concurrent runs");
}

/// A run that fails writes nothing, the cache included.
#[test]
fn failed_run_writes_no_cache() {
    let fixture = tree("cache-failed");
    fixture.module(
        "kernel/bad.ko",
        &Module::new("bad").modinfo("alias", "caf\u{e9}"),
    );
    settle();
    let out = fixture.depmod(&ours("depmod"), &["--cache"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(fixture.outputs().is_empty());
    let left: Vec<String> = std::fs::read_dir(fixture.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(FILE_NAME))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
