//! Bytes that are not UTF-8 pass through every tool untouched, as they do through
//! kmod 34.2: in modprobe.d options, install and remove commands and aliases, on the
//! command line and in MODPROBE_OPTIONS, in module file names and directories, in
//! `.modinfo` strings and in index keys and values. Each case is compared with
//! reference kmod byte for byte (stdout, stderr, exit code).

mod common;
mod depmod_support;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::process::Output;

use common::{ours, reference, run_as, Tree};
use depmod_support::{Fixture, KVER};
use kogen::Module;

fn os(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

/// Runs a tool of ours and of kmod with the same arguments and environment.
fn both(tool: &str, args: &[OsString], env: &[(&str, OsString)]) -> [Output; 2] {
    [ours(tool), reference(tool)].map(|program| {
        let mut cmd = std::process::Command::new(&program);
        {
            use std::os::unix::process::CommandExt;
            cmd.arg0(tool);
        }
        cmd.args(args)
            .env("LC_ALL", "C")
            .env_remove("MODPROBE_OPTIONS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output()
            .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
    })
}

/// Asserts both runs printed the same bytes and exited alike.
fn assert_same(what: &str, [a, b]: [Output; 2]) {
    let show = |o: &Output| {
        format!(
            "exit {:?}\nstdout {:?}\nstderr {:?}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(
        a.stdout == b.stdout && a.stderr == b.stderr && a.status.code() == b.status.code(),
        "{what}\n--- ours\n{}\n--- kmod\n{}",
        show(&a),
        show(&b)
    );
}

/// A tree with three modules, indexed by reference depmod, and a modprobe.d
/// directory whose configuration is full of bytes that are not UTF-8.
struct Setup {
    fixture: Fixture,
    config: PathBuf,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let fixture = Fixture::new(tag);
        fixture
            .module(
                "kernel/mod-a.ko",
                &Module::new("mod_a")
                    .export("fa")
                    .modinfo_raw(b"description=caf\xe9 \xff\xfe\0")
                    .modinfo_raw(b"parm=p\xe9:value \xe9\0")
                    .modinfo("alias", "pci:v1d*"),
            )
            .module("kernel/mod-b.ko", &Module::new("mod_b").undefined("fa"))
            .module("kernel/mod-c.ko", &Module::new("mod_c"));
        let out = fixture.depmod(&reference("depmod"), &[]);
        assert!(out.status.success(), "reference depmod failed");
        let config = fixture.root.join(OsStr::from_bytes(b"modprobe\xff.d"));
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(
            config.join("bytes.conf"),
            b"options mod_a name=caf\xe9 other=\xff\n\
              options mod-b \xfe\xfd\tx=1\n\
              install mod_c /bin/echo installing \xe9\xff $CMDLINE_OPTS\n\
              remove mod_c /bin/echo removing \xe9\n\
              alias caf\xe9 mod_a\n\
              alias pat\xe9* mod_b\n\
              blacklist \xff\xfe\n\
              softdep mod_b pre: caf\xe9 post: \xfe\n\
              weakdep mod_a \xe9\xe9\n\
              bogus\xff line\n",
        )
        .unwrap();
        Setup { fixture, config }
    }

    /// `-C CONFIG -d ROOT -S KVER` and then `rest`.
    fn args(&self, rest: &[&[u8]]) -> Vec<OsString> {
        let mut args = vec![
            os(b"-C"),
            self.config.clone().into(),
            os(b"-d"),
            self.fixture.root.clone().into(),
            os(b"-S"),
            os(KVER.as_bytes()),
        ];
        args.extend(rest.iter().map(|a| os(a)));
        args
    }
}

#[test]
fn modprobe_keeps_configuration_bytes() {
    let s = Setup::new("bytes-modprobe");
    for rest in [
        &[&b"--show-depends"[..], b"mod_a"][..],
        &[b"--show-depends", b"mod_b"],
        &[b"--show-depends", b"mod_c"],
        &[b"--show-depends", b"caf\xe9"],
        &[b"--show-depends", b"pat\xe9\xff"],
        &[b"--show-depends", b"mod_a", b"p=caf\xe9", b"q=a \xff b"],
        &[b"-R", b"caf\xe9"],
        &[b"--show-depends", b"\xff\xfe"],
        &[b"-c"],
        // The install and remove commands run through sh and print their bytes.
        &[b"mod_c", b"opt=\xfe"],
        &[b"-v", b"mod_c"],
        &[b"-r", b"mod_c"],
        &[b"-r", b"-v", b"mod_c"],
        &[b"no\xffsuch"],
        &[b"-q", b"no\xffsuch"],
    ] {
        let what = format!(
            "modprobe {:?}",
            rest.iter().map(|a| os(a)).collect::<Vec<_>>()
        );
        assert_same(&what, both("modprobe", &s.args(rest), &[]));
    }
}

#[test]
fn modprobe_options_from_the_environment() {
    let s = Setup::new("bytes-env");
    let mut env_value = b"-C ".to_vec();
    env_value.extend_from_slice(s.config.as_os_str().as_bytes());
    env_value.extend_from_slice(b" -v");
    let args = vec![
        os(b"-d"),
        s.fixture.root.clone().into(),
        os(b"-S"),
        os(KVER.as_bytes()),
        os(b"--show-depends"),
        os(b"caf\xe9"),
    ];
    assert_same(
        "MODPROBE_OPTIONS with a non-UTF-8 config path",
        both("modprobe", &args, &[("MODPROBE_OPTIONS", os(&env_value))]),
    );
    // A nested modprobe run by an install command sees the same options.
    let nested = s.config.join("nested.conf");
    std::fs::write(&nested, b"install mod_b /bin/echo \"$MODPROBE_OPTIONS\"\n").unwrap();
    let args = s.args(&[b"-q", b"mod_b"]);
    assert_same(
        "MODPROBE_OPTIONS for commands",
        both("modprobe", &args, &[]),
    );
}

#[test]
fn modinfo_keeps_names_paths_and_strings() {
    let s = Setup::new("bytes-modinfo");
    let dir = s.fixture.dir();
    let tree = Tree::get("trixie-amd64");
    let real = tree
        .module_dir(&tree.pristine)
        .join("kernel/drivers/net/dummy.ko.xz");
    let odd = dir.join(OsStr::from_bytes(b"a\xff.ko.xz"));
    std::fs::copy(&real, &odd).unwrap();
    std::fs::copy(
        dir.join("kernel/mod-a.ko"),
        dir.join(OsStr::from_bytes(b"caf\xe9.ko")),
    )
    .unwrap();
    let root = s.fixture.root.clone();
    let odd_root = root.parent().unwrap().join(OsStr::from_bytes(b"root\xfe"));
    let _ = std::fs::remove_dir_all(&odd_root);
    std::os::unix::fs::symlink(&root, &odd_root).unwrap();
    let file = |name: &[u8]| -> OsString { dir.join(OsStr::from_bytes(name)).into() };
    let cases: Vec<Vec<OsString>> = vec![
        vec![os(b"-F"), os(b"name"), odd.clone().into()],
        vec![odd.clone().into()],
        vec![os(b"-0"), odd.clone().into()],
        vec![file(b"caf\xe9.ko")],
        vec![os(b"-p"), file(b"caf\xe9.ko")],
        vec![os(b"-F"), os(b"descr\xe9ption"), file(b"caf\xe9.ko")],
        vec![
            os(b"-b"),
            odd_root.clone().into(),
            os(b"-k"),
            os(KVER.as_bytes()),
            os(b"mod-a"),
        ],
        vec![
            os(b"-b"),
            odd_root.clone().into(),
            os(b"-k"),
            os(KVER.as_bytes()),
            os(b"caf\xe9"),
        ],
        vec![
            os(b"-b"),
            root.clone().into(),
            os(b"-k"),
            os(b"4.4\xff"),
            os(b"mod_a"),
        ],
        vec![file(b"missing\xe9.ko")],
    ];
    for args in cases {
        assert_same(&format!("modinfo {args:?}"), both("modinfo", &args, &[]));
    }
    let _ = std::fs::remove_file(&odd_root);
}

#[test]
fn depmod_with_bytes_in_paths() {
    // Under a root whose name is not UTF-8, everything works as usual.
    let tag = "bytes-depmod";
    let fixture = Fixture::new(tag);
    fixture.module("kernel/mod-a.ko", &Module::new("mod_a").export("fa"));
    fixture.module("kernel/mod-b.ko", &Module::new("mod_b").undefined("fa"));
    let odd_root = fixture
        .root
        .parent()
        .unwrap()
        .join(OsStr::from_bytes(b"depmod\xff-root"));
    let _ = std::fs::remove_file(&odd_root);
    std::os::unix::fs::symlink(&fixture.root, &odd_root).unwrap();
    let args = vec![os(b"-b"), odd_root.clone().into(), os(KVER.as_bytes())];
    let [a, b] = [ours("depmod"), reference("depmod")].map(|program| {
        let out = run_as(&program, "depmod", &args);
        let dep = std::fs::read(fixture.dir().join("modules.dep")).unwrap();
        (out, dep)
    });
    assert_eq!(a.1, b.1, "modules.dep under a non-UTF-8 root");
    assert_same("depmod -b ROOT\\xff", [a.0, b.0]);

    // A module file name that is not ASCII cannot go into an index: both refuse,
    // naming the byte, and the previous files stay.
    std::fs::write(
        fixture.dir().join(OsStr::from_bytes(b"kernel/caf\xe9.ko")),
        Module::new("odd").build(),
    )
    .unwrap();
    let args = vec![os(b"-b"), fixture.root.clone().into(), os(KVER.as_bytes())];
    assert_same("depmod with kernel/caf\\xe9.ko", both("depmod", &args, &[]));
    let _ = std::fs::remove_file(&odd_root);
}

/// Index keys and values that are not ASCII (no depmod writes them, but a reader
/// must show what is there): `modprobe -c` dumps them as kmod does. (kmod 34.2's
/// index search compares such bytes as signed against unsigned chars, so it never
/// finds them; we match the bytes as they are.)
#[test]
fn index_bytes_reach_the_output() {
    let s = Setup::new("bytes-index");
    let mut builder = kmod_rs::index::IndexBuilder::new();
    builder.insert(b"caf\xe9:*", b"mod_\xff", 0);
    builder.insert(b"plain", b"mod_a", 1);
    let mut data = Vec::new();
    builder.write_to(&mut data).unwrap();
    std::fs::write(s.fixture.dir().join("modules.alias.bin"), data).unwrap();
    let empty = s.fixture.root.join("empty.d");
    std::fs::create_dir_all(&empty).unwrap();
    let args = |rest: &[&[u8]]| -> Vec<OsString> {
        let mut args = vec![
            os(b"-C"),
            empty.clone().into(),
            os(b"-d"),
            s.fixture.root.clone().into(),
            os(b"-S"),
            os(KVER.as_bytes()),
        ];
        args.extend(rest.iter().map(|a| os(a)));
        args
    };
    assert_same("modprobe -c", both("modprobe", &args(&[b"-c"]), &[]));
    let resolved = run_as(&ours("modprobe"), "modprobe", args(&[b"-R", b"caf\xe9:x"]));
    assert_eq!(resolved.stdout, b"mod_\xff\n");
}

/// Error messages that name what was given print its bytes: a bad depmod version,
/// a module rmmod cannot remove, a bad `--wait` value, an unknown kmod command.
#[test]
fn error_messages_name_arguments_by_their_bytes() {
    assert_same(
        "depmod with a bad version",
        both("depmod", &[os(b"-n"), os(b"caf\xe9 x")], &[]),
    );
    assert_same(
        "rmmod of a module that is not loaded",
        both("rmmod", &[os(b"caf\xe9")], &[]),
    );
    assert_same(
        "modprobe --wait with a bad value",
        both(
            "modprobe",
            &[os(b"-r"), os(b"--wait=\xe9"), os(b"dummy")],
            &[],
        ),
    );
    // kmod's help follows on stdout; ours also lists sign and verify.
    let [a, b] = both("kmod", &[os(b"caf\xe9")], &[]);
    assert_eq!(a.stderr, b"invalid command 'caf\xe9'\n");
    assert_eq!((&a.stderr, a.status.code()), (&b.stderr, b.status.code()));
    let ours_without_additions: Vec<&[u8]> = a
        .stdout
        .split_inclusive(|&c| c == b'\n')
        .filter(|l| !l.starts_with(b"  sign ") && !l.starts_with(b"  verify "))
        .collect();
    assert_eq!(ours_without_additions.concat(), b.stdout, "kmod's help");
}
