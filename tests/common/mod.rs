//! Shared helpers for integration tests: our multi-call binary under each tool name,
//! and the reference kmod 34.2 with real module trees (scripts/fetch-reference.sh).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Our `kmod` binary reached through a symlink named `tool`, as users install it.
pub fn ours(tool: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        // One directory per test process, made once, so parallel tests never race.
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("tool-links-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "kmod", "insmod", "rmmod", "lsmod", "modinfo", "modprobe", "depmod",
        ] {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kmod"), dir.join(name)).unwrap();
        }
        dir
    });
    dir.join(tool)
}

/// The reference directory; a missing one fails the test (never a silent skip).
pub fn reference_dir() -> PathBuf {
    let dir = std::env::var_os("KMOD_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
            cache.join("kmod-reference")
        });
    assert!(
        dir.join("kmod/bin/modinfo").exists(),
        "reference kmod not found in {}: run scripts/fetch-reference.sh (or set KMOD_REFERENCE)",
        dir.display()
    );
    dir
}

/// Reference kmod 34.2's `tool`.
pub fn reference(tool: &str) -> PathBuf {
    reference_dir().join("kmod/bin").join(tool)
}

/// A real Debian module tree from the reference directory.
pub struct Tree {
    pub name: &'static str,
    pub kver: String,
    /// Package contents as shipped (ROOT with lib/modules/KVER).
    pub pristine: PathBuf,
    /// The same with reference depmod's indexes.
    pub ref_root: PathBuf,
}

impl Tree {
    pub fn get(name: &'static str) -> Tree {
        let base = reference_dir().join("trees").join(name);
        let kver = std::fs::read_to_string(base.join("KVER"))
            .unwrap_or_else(|_| panic!("tree {name} missing: run scripts/fetch-reference.sh"))
            .trim()
            .to_string();
        Tree {
            name,
            kver,
            pristine: base.join("pristine"),
            ref_root: base.join("ref"),
        }
    }

    pub fn module_dir(&self, root: &Path) -> PathBuf {
        root.join("lib/modules").join(&self.kver)
    }

    /// Every module file of the pristine tree, sorted.
    pub fn module_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(&self.module_dir(&self.pristine), &mut out);
        out.retain(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
                .iter()
                .any(|s| n.ends_with(s))
        });
        out.sort();
        assert!(!out.is_empty(), "no modules in tree {}", self.name);
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let ty = entry.file_type().unwrap();
        if ty.is_dir() {
            walk(&entry.path(), out);
        } else {
            out.push(entry.path());
        }
    }
}

pub fn run<I, S>(program: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

/// Asserts two runs printed the same bytes on stdout and exited alike; on a
/// difference, shows the first differing line.
pub fn assert_same_output(what: &str, ours: &Output, theirs: &Output) {
    if ours.stdout != theirs.stdout {
        let a = String::from_utf8_lossy(&ours.stdout);
        let b = String::from_utf8_lossy(&theirs.stdout);
        let (line, (x, y)) = a
            .split_inclusive(['\n', '\0'])
            .zip(b.split_inclusive(['\n', '\0']))
            .enumerate()
            .find(|(_, (x, y))| x != y)
            .unwrap_or((a.lines().count().min(b.lines().count()), ("<end>", "<end>")));
        panic!(
            "{what}: stdout differs at record {line}\n ours: {x:?}\n kmod: {y:?}\n(ours {} bytes, kmod {} bytes)\nstderr ours: {}\nstderr kmod: {}",
            ours.stdout.len(),
            theirs.stdout.len(),
            String::from_utf8_lossy(&ours.stderr),
            String::from_utf8_lossy(&theirs.stderr)
        );
    }
    assert_eq!(
        ours.status.code(),
        theirs.status.code(),
        "{what}: exit codes differ\nstderr ours: {}\nstderr kmod: {}",
        String::from_utf8_lossy(&ours.stderr),
        String::from_utf8_lossy(&theirs.stderr)
    );
}

/// Runs `program` with argv[0] set to `arg0`, as a shell finds a tool on PATH.
pub fn run_as<I, S>(program: &Path, arg0: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use std::os::unix::process::CommandExt;
    Command::new(program)
        .arg0(arg0)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}
