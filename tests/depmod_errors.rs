//! depmod on broken input, against reference kmod 34.2 on the same small trees:
//! unreadable and corrupt modules, odd file types, a broken modules.order,
//! dependency cycles (including the nested kind kmod never returns from) and
//! index-breaking text. Failed runs must leave the previous files untouched.

mod common;
mod depmod_support;

use std::time::{Duration, Instant};

use common::{ours, reference};
use depmod_support::{assert_same, healthy, text, Files, Fixture, KVER};
use kogen::{Compression, Module};

#[test]
fn unreadable_and_corrupt_modules() {
    let fixture = Fixture::new("corrupt");
    healthy(&fixture);
    let elf = Module::new("x").export("fx").build();
    fixture
        .file("modules.order", "kernel/mod-c.ko\nkernel/a/mod-a.ko\n")
        .file("kernel/bad/text.ko", "hello, not a module\n")
        .file("kernel/bad/short.ko", "abc")
        .file("kernel/bad/empty.ko", "")
        .file("kernel/bad/truncated.ko", &elf[..100])
        .file("kernel/bad/no-sections.ko", &elf[..64]);
    let bad = fixture.dir().join("kernel/bad");
    // Reading /proc/self/mem at offset 0 fails with EIO, even for root.
    std::os::unix::fs::symlink("/proc/self/mem", bad.join("unreadable.ko")).unwrap();
    std::os::unix::fs::symlink("/nonexistent", bad.join("dangling.ko")).unwrap();
    nix::unistd::mkfifo(
        &bad.join("fifo.ko"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    assert_same("corrupt modules", &fixture, &[]);
    assert_same("corrupt modules, -n", &fixture, &["-n"]);
    let [(out, _), _] = fixture.compare(&[]);
    let stderr = text(&out.stderr);
    for expected in [
        "kernel/bad/unreadable.ko: Input/output error",
        "kernel/bad/text.ko: Exec format error",
        "kernel/bad/short.ko: Invalid argument",
        "unsupported file type",
        "dangling.ko): No such file or directory",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn truncated_compressed_module() {
    let fixture = Fixture::new("xz");
    healthy(&fixture);
    let xz = Module::new("x")
        .export("fx")
        .build_compressed(Compression::Xz);
    fixture
        .file("modules.order", "")
        .file("kernel/x.ko.xz", &xz[..xz.len() / 2]);
    let [(a, files_a), (b, files_b)] = fixture.compare(&[]);
    assert_eq!(files_a, files_b);
    assert_eq!(a.status.code(), Some(0));
    // kmod also prints liblzma's complaint, once per attempt (three times); we name
    // the cause once, in our words. The rest is the same.
    let without_xz = |s: &[u8]| {
        text(s)
            .lines()
            .filter(|l| !l.contains("xz") || l.contains("failed to load symbols"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    assert_eq!(without_xz(&a.stderr), without_xz(&b.stderr));
    let causes = text(&a.stderr)
        .lines()
        .filter(|l| l.contains("xz data"))
        .count();
    assert_eq!(causes, 1, "{}", text(&a.stderr));
    assert!(text(&a.stderr).contains("/kernel/x.ko.xz: Invalid argument"));
}

#[test]
fn modules_order_missing_corrupt_or_partial() {
    let fixture = Fixture::new("order");
    healthy(&fixture);
    for i in 0..20 {
        fixture.module(
            &format!("kernel/many/m{i}.ko"),
            &Module::new("m").undefined("fa"),
        );
    }
    assert_same("no modules.order", &fixture, &[]);
    fixture.file(
        "modules.order",
        "kernel/many/m7.ko\n#comment\n\nkernel/many/m3.ko\nkernel/many/m7.ko\nkernel/none.ko\nkernel/mod-c.ko\n",
    );
    assert_same("partial modules.order", &fixture, &[]);
    fixture.file("modules.order", "kernel/many/m7.ko\nkernel/many/m3.ko");
    assert_same("last line without newline", &fixture, &[]);
    let long = format!("kernel/{}.ko\nkernel/many/m2.ko\n", "x".repeat(5000));
    fixture.file("modules.order", long);
    assert_same("over-long line", &fixture, &[]);
}

/// Modules `mod-loop-*` where each needs the next ones' symbols, as in kmod's
/// testsuite: a->b->c->a, d<->e, h->i->j->h, h->i->j->k->h, and a,b -> f,g.
fn loops(fixture: &Fixture) {
    let edges: &[(&str, &[&str])] = &[
        ("a", &["b", "f", "g"]),
        ("b", &["c", "f", "g"]),
        ("c", &["a"]),
        ("d", &["e"]),
        ("e", &["d"]),
        ("f", &[]),
        ("g", &[]),
        ("h", &["i"]),
        ("i", &["j"]),
        ("j", &["h", "k"]),
        ("k", &["h"]),
    ];
    for (name, needs) in edges {
        let mut module = Module::new(name).export(&format!("print{}", name.to_uppercase()));
        for need in *needs {
            module = module.undefined(&format!("print{}", need.to_uppercase()));
        }
        fixture.module(&format!("kernel/mod-loop-{name}.ko"), &module);
    }
}

/// Output files from an earlier, successful run, which a failed run must keep.
fn earlier_run(fixture: &Fixture) -> Files {
    let out = fixture.depmod(&ours("depmod"), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let files = fixture.outputs();
    assert_eq!(files.len(), 11);
    files
}

#[test]
fn dependency_cycles() {
    let fixture = Fixture::new("loops");
    fixture.file("modules.order", "");
    fixture.module("kernel/mod-ok.ko", &Module::new("ok").export("ok"));
    let before = earlier_run(&fixture);
    loops(&fixture);
    assert_same("cycles", &fixture, &[]);
    let [(out, files), _] = fixture.compare(&[]);
    assert_eq!(files, before, "a failed run changed the files");
    assert_eq!(
        text(&out.stderr),
        "depmod: ERROR: Cycle detected: mod_loop_d -> mod_loop_e -> mod_loop_d\n\
         depmod: ERROR: Cycle detected: mod_loop_i -> mod_loop_j -> mod_loop_k -> mod_loop_h -> mod_loop_i\n\
         depmod: ERROR: Cycle detected: mod_loop_i -> mod_loop_j -> mod_loop_h -> mod_loop_i\n\
         depmod: ERROR: Cycle detected: mod_loop_c -> mod_loop_a -> mod_loop_b -> mod_loop_c\n\
         depmod: ERROR: Found 9 modules in dependency cycles!\n"
    );
    assert_same("cycles, -n", &fixture, &["-n"]);
}

#[test]
fn self_dependency_and_cycle_with_dependents() {
    let fixture = Fixture::new("selfdep");
    fixture
        .file("modules.order", "")
        .module(
            "kernel/self.ko",
            &Module::new("self").export("s").undefined("s"),
        )
        .module(
            "kernel/x.ko",
            &Module::new("x")
                .export("x")
                .undefined("y")
                .undefined("leaf"),
        )
        .module("kernel/y.ko", &Module::new("y").export("y").undefined("x"))
        .module("kernel/leaf.ko", &Module::new("leaf").export("leaf"))
        .module(
            "kernel/user.ko",
            &Module::new("user").undefined("x").undefined("s"),
        );
    assert_same("self dependency", &fixture, &[]);
}

#[test]
fn nested_cycles_terminate() {
    // a <-> b, b -> c, c <-> d: kmod's cycle report loops forever on this.
    let fixture = Fixture::new("nested");
    fixture.file("modules.order", "");
    let before = earlier_run(&fixture);
    fixture
        .module(
            "kernel/mod-a.ko",
            &Module::new("a").export("a").undefined("b"),
        )
        .module(
            "kernel/mod-b.ko",
            &Module::new("b").export("b").undefined("a").undefined("c"),
        )
        .module(
            "kernel/mod-c.ko",
            &Module::new("c").export("c").undefined("d"),
        )
        .module(
            "kernel/mod-d.ko",
            &Module::new("d").export("d").undefined("c"),
        );

    let started = Instant::now();
    let out = fixture.depmod(&ours("depmod"), &[]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(fixture.outputs(), before, "a failed run changed the files");
    // Each cycle once, starting where kmod's walk order reaches it.
    assert_eq!(
        text(&out.stderr),
        "depmod: ERROR: Cycle detected: mod_d -> mod_c -> mod_d\n\
         depmod: ERROR: Cycle detected: mod_b -> mod_a -> mod_b\n\
         depmod: ERROR: Found 4 modules in dependency cycles!\n"
    );

    // The reference prints the first cycle, then never finishes.
    let mut child = std::process::Command::new(reference("depmod"))
        .args(["-n", "-b"])
        .arg(&fixture.root)
        .arg(KVER)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let theirs = child.wait_with_output().unwrap();
    assert!(still_running, "reference depmod finished on nested cycles");
    assert_eq!(
        text(&theirs.stderr),
        "depmod: ERROR: Cycle detected: mod_d -> mod_c -> mod_d\n"
    );
}

#[test]
fn non_ascii_in_an_index_is_fatal() {
    let fixture = Fixture::new("ascii");
    healthy(&fixture);
    fixture.file("modules.order", "");
    let before = earlier_run(&fixture);
    fixture.module(
        "kernel/bad.ko",
        &Module::new("bad").modinfo("alias", "caf\u{e9}"),
    );
    let [(a, files), (b, _)] = fixture.compare(&[]);
    assert_eq!(text(&a.stderr), text(&b.stderr));
    assert_eq!(a.status.code(), Some(1));
    assert_eq!(b.status.code(), Some(1));
    // kmod has already replaced modules.dep when it stops; we write nothing.
    assert_eq!(files, before);
    // Text files alone are fine.
    assert_same("non-ASCII alias, -n", &fixture, &["-n"]);
}

fn aliases(list: &[&str]) -> Module {
    list.iter()
        .fold(Module::new("m"), |m, a| m.modinfo("alias", a))
}

#[test]
fn unmatched_brackets_and_devnames() {
    let fixture = Fixture::new("aliases");
    fixture
        .file("modules.order", "")
        .module(
            "kernel/fuse.ko",
            &aliases(&["devname:fuse", "char-major-10-229", "fs-fuse"]),
        )
        .module(
            "kernel/loop.ko",
            &aliases(&[
                "block-major-7-*",
                "devname:loop-control",
                "char-major-10-237",
            ]),
        )
        .module("kernel/nomajor.ko", &aliases(&["devname:nothing"]))
        .module(
            "kernel/brackets.ko",
            &aliases(&["a]b", "x[yz", "ok[a-b]-c"]),
        )
        .module("kernel/dup.ko", &aliases(&["same", "same"]))
        .module(
            "kernel/dup2.ko",
            &aliases(&["same"]).modinfo_raw(b"alias\0softdep\0"),
        );
    assert_same("aliases", &fixture, &[]);
    assert_same("aliases, -w", &fixture, &["-w"]);
    assert_same("aliases, -n", &fixture, &["-n"]);
}

#[test]
fn builtin_files() {
    let fixture = Fixture::new("builtin");
    healthy(&fixture);
    fixture.file("modules.order", "");
    assert_same("no modules.builtin", &fixture, &[]);
    fixture
        .file(
            "modules.builtin",
            "kernel/fs/ext4/ext4.ko\n/bad/leading.ko\nkernel/no-dot\nkernel/drivers/snd-hda.ko\n\nkernel/x/y/",
        )
        .file(
            "modules.builtin.modinfo",
            b"ext4.alias=fs-ext4\0ext4.license=GPL\0ext4.alias=ext-[2-3]\0noequals\0lost.alias=x\0\
              snd_hda.alias=pci:v*d*\0bad.alias=un]matched\0empty.alias=\0.alias=noname\0tail.alias=unterminated"
                .as_slice(),
        );
    assert_same("builtin files", &fixture, &[]);
    fixture
        .file("modules.builtin", "")
        .file("modules.builtin.modinfo", "");
    assert_same("empty builtin files", &fixture, &[]);
}

/// Deterministic pseudo-random bytes for mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn mutated_modules_never_panic() {
    let fixture = Fixture::new("fuzz");
    fixture.file("modules.order", "");
    let base = Module::new("fuzz")
        .export_crc("e1", 7)
        .export("e2")
        .undefined("e1")
        .undefined("other")
        .undefined_weak("w")
        .version("other", 0x1234)
        .version("module_layout", 5)
        .modinfo("alias", "devname:x")
        .modinfo("alias", "char-major-1-2")
        .modinfo("softdep", "pre: y")
        .modinfo("weakdep", "z")
        .build();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for i in 0..300 {
        let mut data = base.clone();
        for _ in 0..1 + rng.next() % 8 {
            let at = (rng.next() % data.len() as u64) as usize;
            data[at] = rng.next() as u8;
        }
        if i % 10 == 0 {
            data.truncate((rng.next() % data.len() as u64) as usize);
        }
        fixture.file(&format!("kernel/m{i}.ko"), data);
    }
    for args in [&["-n"][..], &[], &["-w", "-v"]] {
        let out = fixture.depmod(&ours("depmod"), args);
        let stderr = text(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{args:?}: {:?}\n{stderr}",
            out.status
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// Symbolic links to directories that are not loops (a sibling, a cousin, a chain
/// of links, a directory outside the tree) are walked like any directory.
#[test]
fn symlinked_directories_that_are_not_loops() {
    let fixture = Fixture::new("symlinks");
    healthy(&fixture);
    fixture
        .file("modules.order", "")
        .file("modules.builtin", "")
        .file("modules.builtin.modinfo", "");
    let outside = fixture.root.join("outside");
    std::fs::create_dir_all(outside.join("sub")).unwrap();
    std::fs::write(
        outside.join("sub/ext-mod.ko"),
        Module::new("ext_mod").undefined("fa").build(),
    )
    .unwrap();
    let dir = fixture.dir();
    let link = |target: &std::path::Path, at: &str| {
        std::os::unix::fs::symlink(target, dir.join(at)).unwrap();
    };
    link("a".as_ref(), "kernel/sibling");
    link("../a".as_ref(), "kernel/b/cousin");
    link("sibling".as_ref(), "kernel/chain");
    link(&outside, "kernel/outside");
    assert_same("symlinked directories", &fixture, &[]);
    assert_same("symlinked directories, -n", &fixture, &["-n"]);
}

/// Creates `names` as nested directories under `dir`, relative to each other (their
/// paths may be longer than PATH_MAX), and `<prefix><level>.ko` with `data` in each.
fn nested_dirs(dir: &std::path::Path, names: &[String], prefix: &str, data: &[u8]) {
    use nix::fcntl::{open, openat, OFlag};
    use nix::sys::stat::{mkdirat, Mode};
    let mut fd = open(dir, OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty()).unwrap();
    for (level, name) in names.iter().enumerate() {
        match mkdirat(&fd, name.as_str(), Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => panic!("mkdirat {name}: {e}"),
        }
        fd = openat(
            &fd,
            name.as_str(),
            OFlag::O_DIRECTORY | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .unwrap();
        let created = openat(
            &fd,
            format!("{prefix}{level}.ko").as_str(),
            OFlag::O_CREAT | OFlag::O_WRONLY,
            Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        use std::io::Write;
        std::fs::File::from(created).write_all(data).unwrap();
    }
}

/// Module paths around and beyond PATH_MAX: kmod cannot create the modules whose
/// path is too long, and its -A check stops at its path buffer's limits.
#[test]
fn paths_longer_than_path_max() {
    let fixture = Fixture::new("longpath");
    healthy(&fixture);
    fixture
        .file("modules.order", "")
        .file("modules.builtin", "")
        .file("modules.builtin.modinfo", "");
    let names: Vec<String> = (0..18)
        .map(|i| format!("{i:02}{}", "x".repeat(248)))
        .collect();
    let module = Module::new("deep").export("deep_sym").build();
    nested_dirs(&fixture.dir().join("kernel"), &names, "deep", &module);
    nested_dirs(&fixture.dir().join("kernel"), &names[..1], "up", &module);
    assert_same("long paths", &fixture, &[]);
    assert_same("long paths, -n", &fixture, &["-n"]);
    let [(ours, _), _] = fixture.compare(&[]);
    assert!(
        text(&ours.stderr).contains("File name too long"),
        "{}",
        text(&ours.stderr)
    );

    // -A with nothing newer walks the whole tree and prints kmod's path messages.
    fixture.file("modules.dep", "");
    let ahead = std::time::SystemTime::now() + Duration::from_secs(3600);
    for m in ["kernel/a/mod-a.ko", "kernel/b/mod-b.ko", "kernel/mod-c.ko"] {
        std::fs::File::options()
            .write(true)
            .open(fixture.dir().join(m))
            .unwrap()
            .set_modified(ahead - Duration::from_secs(7200))
            .unwrap();
    }
    assert_same("long paths, -A", &fixture, &["-A"]);
    let [(ours, _), _] = fixture.compare(&["-A"]);
    assert!(
        text(&ours.stderr).contains("path is too long"),
        "{}",
        text(&ours.stderr)
    );
}

/// -A's message for an entry that is neither file nor directory names whatever
/// kmod's path buffer last held, in any readdir order.
#[test]
fn quick_mode_unsupported_files() {
    let fixture = Fixture::new("quickfifo");
    healthy(&fixture);
    fixture
        .file("kernel/a/notes.txt", "")
        .file("kernel/b/x.ko.txt", "");
    let dir = fixture.dir();
    for fifo in [
        "kernel/fifo",
        "kernel/a/fifo.ko",
        "kernel/b/z",
        "kernel/b/sub/fifo",
    ] {
        std::fs::create_dir_all(dir.join(fifo).parent().unwrap()).unwrap();
        nix::unistd::mkfifo(
            &dir.join(fifo),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
    }
    fixture.module("kernel/b/sub/late.ko", &Module::new("late"));
    fixture.file("modules.dep", "");
    assert_same("-A with fifos", &fixture, &["-A"]);
    let [(ours, _), _] = fixture.compare(&["-A"]);
    assert_eq!(
        text(&ours.stderr).matches("unsupported file type").count(),
        4,
        "{}",
        text(&ours.stderr)
    );
}
