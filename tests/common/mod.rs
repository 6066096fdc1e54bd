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
        let out = module_files_under(&self.module_dir(&self.pristine));
        assert!(!out.is_empty(), "no modules in tree {}", self.name);
        out
    }

    /// A private copy of the pristine tree, `<target tmp>/<tag>-<tree>-<pid>`. With
    /// `hard_links` where the filesystem allows (enough for depmod, which replaces its
    /// files by rename and never writes into others); else, or without, a real copy
    /// (whose files no other process's links can change).
    pub fn copy(&self, tag: &str, hard_links: bool) -> PathBuf {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{tag}-{}-{}",
            self.name,
            std::process::id()
        ));
        let cp = |flags: &str| {
            let _ = std::fs::remove_dir_all(&root);
            Command::new("cp")
                .arg(flags)
                .arg(&self.pristine)
                .arg(&root)
                .status()
                .is_ok_and(|s| s.success())
        };
        assert!(
            (hard_links && cp("-al")) || cp("-a"),
            "copying {}",
            self.pristine.display()
        );
        root
    }
}

/// Every module file (`.ko`, `.ko.xz`, `.ko.zst`, `.ko.gz`) below `dir`, sorted.
pub fn module_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else if [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
                .iter()
                .any(|s| name.ends_with(s))
            {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// xorshift64*: a small seeded generator, so that a failing random sequence can
/// be replayed from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
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
