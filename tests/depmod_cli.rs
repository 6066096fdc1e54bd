//! depmod's command line against reference kmod 34.2 on small synthetic trees:
//! version and file arguments, -A, -b/-m/-o, -E/-F/-e, -P, and their messages.

mod common;
mod depmod_support;

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{ours, reference, run, run_as};
use depmod_support::{assert_same, set_mtime, text, Files, Fixture, KVER};
use kogen::Module;

/// Runs both with exactly `args` (no -b or version added) and compares; both are
/// started as plain `depmod`, as getopt's messages show argv[0].
fn assert_same_run(what: &str, args: &[OsString]) {
    let a = run_as(&ours("depmod"), "depmod", args);
    let b = run(&reference("depmod"), args);
    assert_eq!(text(&a.stderr), text(&b.stderr), "{what}: stderr");
    assert_eq!(text(&a.stdout), text(&b.stdout), "{what}: stdout");
    assert_eq!(a.status.code(), b.status.code(), "{what}: exit status");
}

fn args(list: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    list.iter().map(|a| a.as_ref().to_os_string()).collect()
}

fn tree(tag: &str) -> Fixture {
    let fixture = Fixture::new(tag);
    fixture
        .file("modules.order", "kernel/b.ko\n")
        .module(
            "kernel/a.ko",
            &Module::new("a")
                .export_crc("fa", 0x11)
                .undefined("printk")
                .version("printk", 0x22)
                .modinfo("alias", "a-alias"),
        )
        .module(
            "kernel/b.ko",
            &Module::new("b")
                .export("fb")
                .undefined("fa")
                .undefined("missing")
                .undefined_weak("weak_missing")
                .version("fa", 0x12)
                .version("module_layout", 0x33),
        )
        .module(
            "kernel/c-d.ko",
            &Module::new("c").undefined("fb").undefined("fa"),
        );
    fixture
}

#[test]
fn version_argument() {
    let fixture = tree("version");
    let root = fixture.root.as_os_str();
    for version in ["foo", "4", "4.", "x4.4", "-1.2", " 3.0", "4.4.4"] {
        assert_same_run(
            &format!("version {version:?}"),
            &args(&[&"-n", &"-b", &root, &version]),
        );
    }
}

#[test]
fn symbol_prefix_option() {
    let fixture = tree("prefix");
    assert_same("-P ab", &fixture, &["-P", "ab"]);
    assert_same("-P _", &fixture, &["-n", "-P", "_"]);
    assert_same("-P f", &fixture, &["-n", "-P", "f"]);
}

#[test]
fn help_and_version() {
    let out = run(&ours("depmod"), ["-V"]);
    let theirs = run(&reference("depmod"), ["-V"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).lines().next(),
        text(&theirs.stdout).lines().next()
    );
    let out = run(&ours("depmod"), ["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("Usage:\n\tdepmod -[aA] [options] [forced_version]\n"));
    for option in [
        "--all",
        "--quick",
        "--basedir=DIR",
        "--outdir=DIR",
        "--symvers=FILE",
        "--dry-run",
    ] {
        let shown = text(&out.stdout).contains(option) || option == "--dry-run";
        assert!(shown, "--help lacks {option}");
    }
    assert_same_run("unknown option", &args(&[&"--bogus"]));
    assert_same_run("missing argument", &args(&[&"-b"]));
}

#[test]
fn module_files_on_the_command_line() {
    let fixture = tree("files");
    let dir = fixture.dir();
    let a = dir.join("kernel/a.ko");
    let c = dir.join("kernel/c-d.ko");
    let path = |p: &Path| p.to_str().unwrap().to_string();
    assert_same("two files", &fixture, &[&path(&a), &path(&c)]);
    assert_same("-n, two files", &fixture, &["-n", &path(&c), &path(&a)]);
    assert_same("-a overrides files", &fixture, &["-a", &path(&a)]);
    assert_same("relative file", &fixture, &["kernel/a.ko"]);
    assert_same("missing file", &fixture, &[&path(&a), "/nonexistent/x.ko"]);
    assert_same("same file twice", &fixture, &[&path(&a), &path(&a)]);
    let other = fixture.dir().join("extra/a.ko");
    fixture.module("extra/a.ko", &Module::new("a2"));
    assert_same("same name twice", &fixture, &[&path(&a), &path(&other)]);
    // A file outside the module directory keeps its absolute path.
    let outside = fixture.root.join("elsewhere/c-d.ko");
    std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
    std::fs::copy(&c, &outside).unwrap();
    assert_same("file outside", &fixture, &[&path(&a), &path(&outside)]);
}

#[test]
fn directories() {
    let fixture = tree("dirs");
    let root = fixture.root.as_os_str();
    assert_same_run("missing module directory", &args(&[&"-b", &root, &"9.9.9"]));
    assert_same_run(
        "-n, missing module directory",
        &args(&[&"-n", &"-b", &root, &"9.9.9"]),
    );
    // -m: absolute or relative, always under the root.
    let moved = fixture.root.join("foobar").join(KVER);
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    let copy = std::process::Command::new("cp")
        .arg("-a")
        .arg(fixture.dir())
        .arg(&moved)
        .status()
        .unwrap();
    assert!(copy.success());
    for moduledir in ["/foobar", "foobar", "//foobar"] {
        let before = std::fs::read_dir(&moved).unwrap().count();
        assert_same_run(
            &format!("-m {moduledir}"),
            &args(&[&"-n", &"-b", &root, &"-m", &moduledir, &KVER]),
        );
        assert_eq!(std::fs::read_dir(&moved).unwrap().count(), before);
    }
    // -o: output elsewhere, read from the root.
    let mut results: Vec<Files> = Vec::new();
    for program in [ours("depmod"), reference("depmod")] {
        let out_root = fixture.root.join("out");
        let _ = std::fs::remove_dir_all(&out_root);
        let out = run(&program, args(&[&"-b", &root, &"-o", &out_root, &KVER]));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let out_dir = out_root.join("lib/modules").join(KVER);
        let mut files: Files = std::fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().into_string().unwrap(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        results.push(files);
        assert!(
            fixture.outputs().is_empty(),
            "-o wrote into the module directory"
        );
    }
    assert_eq!(results[0], results[1], "-o outputs");
    assert_eq!(results[0].len(), 11);
}

/// `-A` with a stale modules.dep dated `dep_time` and every module file dated
/// `module_time`: the output and whether modules.dep was regenerated.
fn quick_run(
    fixture: &Fixture,
    program: &Path,
    dep_time: SystemTime,
    module_time: SystemTime,
) -> (String, bool) {
    let dep = fixture.dir().join("modules.dep");
    std::fs::write(&dep, "stale\n").unwrap();
    set_mtime(&dep, dep_time);
    for module in ["kernel/a.ko", "kernel/b.ko", "kernel/c-d.ko"] {
        set_mtime(&fixture.dir().join(module), module_time);
    }
    let out = fixture.depmod(program, &["-A"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    (
        text(&out.stderr),
        std::fs::read(&dep).unwrap() != b"stale\n",
    )
}

#[test]
fn quick_mode() {
    let fixture = tree("quick");
    assert_same("-A without modules.dep", &fixture, &["-A"]);
    assert_same("-A -n", &fixture, &["-A", "-n"]);
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for (what, module_time, regenerated) in [
        ("older modules", t - Duration::from_secs(10), false),
        // kmod 34.2 compares whole seconds.
        (
            "newer within the second",
            t + Duration::from_millis(500),
            false,
        ),
        ("newer by a second", t + Duration::from_secs(1), true),
    ] {
        let ours = quick_run(&fixture, &ours("depmod"), t, module_time);
        let theirs = quick_run(&fixture, &reference("depmod"), t, module_time);
        assert_eq!(ours, theirs, "-A, {what}");
        assert_eq!(ours.1, regenerated, "-A, {what}");
    }
}

#[test]
fn kernel_symbol_files() {
    let fixture = tree("symvers");
    fixture.file(
        "../../../Module.symvers",
        "0x00000022\tprintk\tvmlinux\tEXPORT_SYMBOL\n\
         0x00000099\tfa\tvmlinux\tEXPORT_SYMBOL\n\
         zz\tbad\tvmlinux\tEXPORT_SYMBOL\n\
         0x1\tother\tdrivers/x\tEXPORT_SYMBOL\n\
         0x2 spaced vmlinux\n\
         0xffffffffffffffffff\tbig\tvmlinux\tX\n\
         0x\tlast\tvmlinux\tX\n",
    );
    fixture.file(
        "../../../System.map",
        "ffffffff81000000 T _text\n\
         ffffffff82000000 r __ksymtab_printk\n\
         ffffffff82000010 r __ksymtab_other\n\
         broken\n\
         ffffffff82000020 R __ksymtab_module_layout\n",
    );
    let symvers = fixture.root.join("Module.symvers");
    let map = fixture.root.join("System.map");
    let (symvers, map) = (symvers.to_str().unwrap(), map.to_str().unwrap());
    for args in [
        &["-e"][..],
        &["-E", symvers],
        &["-e", "-E", symvers],
        &["-e", "-F", map],
        &["-e", "-F", map, "-E", symvers],
        &["-e", "-E", "/nonexistent"],
        &["-F", "/nonexistent"],
        &["-e", "-v", "-E", symvers],
    ] {
        assert_same(&format!("{args:?}"), &fixture, args);
    }
}
