//! Small module trees for depmod tests: synthetic modules (kogen) laid out under
//! `ROOT/lib/modules/VERSION`, and runs of our depmod and reference kmod 34.2 on them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::SystemTime;

pub const KVER: &str = "4.4.4";

/// Output files by name.
pub type Files = Vec<(String, Vec<u8>)>;

/// A module tree in a fresh directory: `root/lib/modules/4.4.4`.
pub struct Fixture {
    pub root: PathBuf,
}

impl Fixture {
    pub fn new(tag: &str) -> Fixture {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("depmod-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("lib/modules").join(KVER)).unwrap();
        Fixture { root }
    }

    pub fn dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(KVER)
    }

    /// Writes `data` at `rel` inside the module directory.
    pub fn file(&self, rel: &str, data: impl AsRef<[u8]>) -> &Fixture {
        let path = self.dir().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
        self
    }

    pub fn module(&self, rel: &str, module: &kogen::Module) -> &Fixture {
        self.file(rel, module.build())
    }

    /// The depmod output files present (and any temporary ones left), by name.
    pub fn outputs(&self) -> Files {
        let mut out: Files = std::fs::read_dir(self.dir())
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| {
                (
                    e.file_name().into_string().unwrap(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .filter(|(n, _)| {
                n.starts_with("modules.")
                    && !matches!(
                        &n[..],
                        "modules.order" | "modules.builtin" | "modules.builtin.modinfo"
                    )
            })
            .collect();
        out.sort();
        out
    }

    /// Runs `depmod` (ours or the reference) on this tree with extra arguments.
    pub fn depmod(&self, program: &Path, args: &[&str]) -> Output {
        use std::ffi::OsStr;
        let mut all: Vec<&OsStr> = vec![OsStr::new("-b"), self.root.as_os_str()];
        all.extend(args.iter().map(OsStr::new));
        all.push(OsStr::new(KVER));
        crate::common::run(program, all)
    }

    /// Runs ours and the reference in turn from the same starting files (the
    /// outputs of the first run are removed before the second) and returns both
    /// results with the files each left.
    pub fn compare(&self, args: &[&str]) -> [(Output, Files); 2] {
        let before = self.outputs();
        let mut results = Vec::new();
        for program in [
            crate::common::ours("depmod"),
            crate::common::reference("depmod"),
        ] {
            self.restore(&before);
            let output = self.depmod(&program, args);
            results.push((output, self.outputs()));
        }
        self.restore(&before);
        let theirs = results.pop().unwrap();
        let ours = results.pop().unwrap();
        [ours, theirs]
    }

    /// Puts back exactly the given output files.
    pub fn restore(&self, files: &[(String, Vec<u8>)]) {
        for (name, _) in self.outputs() {
            std::fs::remove_file(self.dir().join(name)).unwrap();
        }
        for (name, data) in files {
            std::fs::write(self.dir().join(name), data).unwrap();
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// kmod's stderr without the two lines libkmod adds at `-vv`, which show memory
/// addresses (`custom logging function 0x... registered`, `context 0x... released`).
pub fn without_pointers(stderr: &[u8]) -> String {
    text(stderr)
        .lines()
        .filter(|l| {
            !(l.starts_with("depmod: INFO: ")
                && l.contains(" 0x")
                && (l.ends_with(" registered") || l.ends_with(" released")))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Runs ours and kmod with `args` on the tree (see [`Fixture::compare`]) and asserts
/// they exited alike, printed the same and left the same files.
pub fn assert_same(what: &str, fixture: &Fixture, args: &[&str]) {
    let [(a, files_a), (b, files_b)] = fixture.compare(args);
    assert_eq!(
        text(&a.stderr),
        without_pointers(&b.stderr),
        "{what}: stderr"
    );
    assert_eq!(text(&a.stdout), text(&b.stdout), "{what}: stdout");
    assert_eq!(a.status.code(), b.status.code(), "{what}: exit status");
    let names = |f: &Files| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&files_a), names(&files_b), "{what}: files left");
    for ((name, x), (_, y)) in files_a.iter().zip(&files_b) {
        assert!(
            x == y,
            "{what}: {name} differs:\nours:\n{}\nkmod:\n{}",
            text(x),
            text(y)
        );
    }
}

/// A few healthy modules that depend on each other.
pub fn healthy(fixture: &Fixture) {
    fixture
        .module(
            "kernel/a/mod-a.ko",
            &kogen::Module::new("mod_a")
                .export("fa")
                .modinfo("alias", "pci:v1d*")
                .modinfo("license", "GPL"),
        )
        .module(
            "kernel/b/mod-b.ko",
            &kogen::Module::new("mod_b")
                .export("fb")
                .undefined("fa")
                .undefined("printk"),
        )
        .module(
            "kernel/mod-c.ko",
            &kogen::Module::new("mod_c")
                .undefined("fb")
                .undefined("fa")
                .modinfo("softdep", "pre: mod-a"),
        );
}

/// The eleven files depmod writes.
pub const OUTPUTS: [&str; 11] = [
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
pub fn temporary_for(name: &str) -> Option<&'static str> {
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

/// The temporary files depmod left in `dir`, sorted.
pub fn temporaries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| temporary_for(n).is_some())
        .collect();
    names.sort();
    names
}

/// Sets a file's modification time.
pub fn set_mtime(path: &Path, time: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}
