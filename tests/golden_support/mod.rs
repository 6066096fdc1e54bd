//! Golden outputs: what kmod 34.2 prints for each tool on the demo tree (kogen's
//! `demo` module), kept in `tests/golden/`. `tests/golden.rs` checks ours against
//! them without any download; `tests/golden_reference.rs` (differential group) checks
//! that they are still what reference kmod prints, and rewrites them with
//! `KMOD_UPDATE_GOLDEN=1`.
#![allow(dead_code)]

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const KVER: &str = kogen::demo::KVER;

/// One command line: `$ROOT` stands for the tree's root, `$MODDIR` for its module
/// directory, `$KVER` for its version, and [`DEMO_CONFIG`] for modprobe's options
/// that point it at the tree.
pub struct Case {
    pub name: &'static str,
    pub tool: &'static str,
    pub args: &'static [&'static str],
}

/// modprobe on the demo tree with its own configuration:
/// `-C $ROOT/etc/modprobe.d -d $ROOT -S $KVER`.
const DEMO_CONFIG: &str = "$DEMO_CONFIG";

/// The depmod run that indexes the tree; its output files are golden too.
pub const DEPMOD: Case = Case {
    name: "depmod",
    tool: "depmod",
    args: &["-b", "$ROOT", "-C", "$ROOT/etc/depmod.d", "$KVER"],
};

pub const CASES: &[Case] = &[
    Case {
        name: "depmod-n",
        tool: "depmod",
        args: &["-n", "-b", "$ROOT", "-C", "$ROOT/etc/depmod.d", "$KVER"],
    },
    Case {
        name: "depmod-errsyms-without-symbols",
        tool: "depmod",
        args: &[
            "-n",
            "-e",
            "-w",
            "-b",
            "$ROOT",
            "-C",
            "$ROOT/etc/depmod.d",
            "$KVER",
        ],
    },
    Case {
        name: "depmod-bad-version",
        tool: "depmod",
        args: &["-b", "$ROOT", "x.y"],
    },
    Case {
        name: "modinfo-file",
        tool: "modinfo",
        args: &["$MODDIR/kernel/lib/democore.ko"],
    },
    Case {
        name: "modinfo-signed-null",
        tool: "modinfo",
        args: &["-0", "$MODDIR/kernel/crypto/democrypto.ko"],
    },
    Case {
        name: "modinfo-name",
        tool: "modinfo",
        args: &["-b", "$ROOT", "-k", "$KVER", "demonet"],
    },
    Case {
        name: "modinfo-field",
        tool: "modinfo",
        args: &[
            "-b", "$ROOT", "-k", "$KVER", "-F", "alias", "demonet", "snd-demo",
        ],
    },
    Case {
        name: "modinfo-parameters",
        tool: "modinfo",
        args: &["-b", "$ROOT", "-k", "$KVER", "-p", "demobus"],
    },
    Case {
        name: "modinfo-builtin",
        tool: "modinfo",
        args: &["-b", "$ROOT", "-k", "$KVER", "demo_console"],
    },
    Case {
        name: "modinfo-alias",
        tool: "modinfo",
        args: &[
            "-b",
            "$ROOT",
            "-k",
            "$KVER",
            "pci:v00008086d000010D3sv00001234sd00005678bc02sc00i00",
        ],
    },
    Case {
        name: "modinfo-modname",
        tool: "modinfo",
        args: &["-b", "$ROOT", "-k", "$KVER", "-m", "snd-demo"],
    },
    Case {
        name: "modinfo-not-found",
        tool: "modinfo",
        args: &["-b", "$ROOT", "-k", "$KVER", "nosuchmodule"],
    },
    Case {
        name: "modinfo-no-arguments",
        tool: "modinfo",
        args: &[],
    },
    Case {
        name: "modprobe-softdep-from-module",
        tool: "modprobe",
        args: &[DEMO_CONFIG, "-D", "demofs"],
    },
    Case {
        name: "modprobe-softdep-from-config",
        tool: "modprobe",
        args: &[DEMO_CONFIG, "-D", "snd-demo"],
    },
    Case {
        name: "modprobe-config-alias-and-options",
        tool: "modprobe",
        args: &[DEMO_CONFIG, "-D", "demo-eth"],
    },
    Case {
        name: "modprobe-command-line-options",
        tool: "modprobe",
        args: &[DEMO_CONFIG, "-D", "demonet", "extra=1", "name=a b"],
    },
    Case {
        name: "modprobe-resolve-alias",
        tool: "modprobe",
        args: &[
            DEMO_CONFIG,
            "-R",
            "pci:v00008086d000010D3sv00001234sd00005678bc02sc00i00",
        ],
    },
    Case {
        name: "modprobe-resolve-builtin-alias",
        tool: "modprobe",
        args: &[DEMO_CONFIG, "-R", "platform:demo-rtc"],
    },
    Case {
        name: "modprobe-builtin",
        tool: "modprobe",
        args: &[DEMO_CONFIG, "-D", "demo_console"],
    },
    Case {
        name: "modprobe-show-config",
        tool: "modprobe",
        args: &[DEMO_CONFIG, "-c"],
    },
    Case {
        name: "modprobe-show-modversions",
        tool: "modprobe",
        args: &[
            "--show-modversions",
            "$MODDIR/kernel/drivers/bus/demobus.ko.xz",
        ],
    },
    Case {
        name: "modprobe-show-exports",
        tool: "modprobe",
        args: &["--show-exports", "$MODDIR/kernel/lib/democore.ko"],
    },
    Case {
        name: "modprobe-install-command-dry-run",
        tool: "modprobe",
        args: &[DEMO_CONFIG, "-n", "-v", "demousb", "x=1"],
    },
    Case {
        name: "modprobe-install-command",
        tool: "modprobe",
        args: &[DEMO_CONFIG, "demousb", "x=1"],
    },
    Case {
        name: "modprobe-blacklist",
        tool: "modprobe",
        args: &[DEMO_CONFIG, "-b", "-D", "demo-char"],
    },
    Case {
        name: "modprobe-not-found",
        tool: "modprobe",
        args: &[DEMO_CONFIG, "nosuchmodule"],
    },
    Case {
        name: "modprobe-quiet-not-found",
        tool: "modprobe",
        args: &[DEMO_CONFIG, "-q", "nosuchmodule"],
    },
    Case {
        name: "modprobe-missing-parameters",
        tool: "modprobe",
        args: &["-C", "$ROOT/etc/modprobe.d"],
    },
];

/// A fresh demo tree, unindexed.
pub fn demo_tree(tag: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("golden-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    kogen::demo::write(&root, KVER).unwrap();
    root
}

pub fn module_dir(root: &Path) -> PathBuf {
    root.join("lib/modules").join(KVER)
}

/// The case's arguments with the placeholders filled in.
pub fn args(case: &Case, root: &Path) -> Vec<OsString> {
    let moddir = module_dir(root);
    let on_demo: &[&str] = &["-C", "$ROOT/etc/modprobe.d", "-d", "$ROOT", "-S", "$KVER"];
    case.args
        .iter()
        .flat_map(|a| match *a {
            DEMO_CONFIG => on_demo,
            _ => std::slice::from_ref(a),
        })
        .map(|a| {
            // Test trees live under the target directory, whose path is UTF-8.
            let a = a
                .replace("$MODDIR", &moddir.to_string_lossy())
                .replace("$ROOT", &root.to_string_lossy())
                .replace("$KVER", KVER);
            OsString::from(a)
        })
        .collect()
}

/// Runs `program` as `tool` (argv[0]) with the case's arguments, in the C locale and
/// without inherited modprobe options.
pub fn run(program: &Path, case: &Case, root: &Path) -> Output {
    use std::os::unix::process::CommandExt;
    Command::new(program)
        .arg0(case.tool)
        .args(args(case, root))
        .env("LC_ALL", "C")
        .env_remove("MODPROBE_OPTIONS")
        .env_remove("KMOD_LOG")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

/// The output as stored: exit code, stdout and stderr, with the tree's root path
/// replaced by `$ROOT`.
pub fn render(output: &Output, root: &Path) -> Vec<u8> {
    let mut out = format!("exit {:?}\n--- stdout\n", output.status.code()).into_bytes();
    out.extend_from_slice(&output.stdout);
    out.extend_from_slice(b"--- stderr\n");
    out.extend_from_slice(&output.stderr);
    replace(&out, root.as_os_str().as_bytes(), b"$ROOT")
}

fn replace(text: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Where a case's golden output lives.
pub fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.out"))
}

/// Where the golden depmod output files live.
pub fn golden_files_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/depmod-files")
}

/// The files depmod writes, by name, from a module directory.
pub fn depmod_files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(module_dir(root))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name().into_vec(), e.path()))
        .filter(|(name, _)| {
            name.starts_with(b"modules.")
                && !matches!(
                    &name[..],
                    b"modules.order" | b"modules.builtin" | b"modules.builtin.modinfo"
                )
        })
        .map(|(name, path)| {
            (
                String::from_utf8(name).unwrap(),
                std::fs::read(path).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Compares `actual` with the golden bytes at `path`, showing both on a difference.
pub fn assert_golden(what: &str, path: &Path, actual: &[u8]) {
    let expected = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run the differential group with KMOD_UPDATE_GOLDEN=1 to record it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{what} differs from {}\n--- expected (kmod 34.2)\n{}\n--- actual\n{}",
        path.display(),
        String::from_utf8_lossy(&expected),
        String::from_utf8_lossy(actual)
    );
}
