//! depmod against reference kmod 34.2 on real Debian module trees: every file we
//! write must be byte-identical to what reference depmod wrote, `-n` must print the
//! same, and each side's readers must read the other's indexes.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{assert_same_output, ours, reference, run, Tree};
use kmod_rs::index::Index;

const TREES: [&str; 2] = ["trixie-amd64", "bookworm-amd64"];

/// Regular files of a directory (not recursive), by name.
fn files(dir: &Path) -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name().into_string().unwrap(), e.path()))
        .collect()
}

/// Our depmod run once per tree on a copy of it; the root of that copy.
fn our_output(name: &'static str) -> &'static Path {
    static DONE: OnceLock<Vec<(&'static str, PathBuf)>> = OnceLock::new();
    let all = DONE.get_or_init(|| {
        TREES
            .iter()
            .map(|&name| {
                let tree = Tree::get(name);
                let root = tree.copy("depmod", true);
                let args: [OsString; 3] =
                    ["-b".into(), root.clone().into(), tree.kver.clone().into()];
                let out = run(&ours("depmod"), &args);
                assert!(
                    out.status.success() && out.stderr.is_empty(),
                    "{name}: depmod failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                (name, root)
            })
            .collect()
    });
    &all.iter().find(|(n, _)| *n == name).unwrap().1
}

#[test]
fn writes_the_same_files_as_kmod() {
    for name in TREES {
        let tree = Tree::get(name);
        let pristine = files(&tree.module_dir(&tree.pristine));
        let ours = files(&tree.module_dir(our_output(name)));
        let theirs = files(&tree.module_dir(&tree.ref_root));
        let written = |all: &BTreeMap<String, PathBuf>| -> Vec<String> {
            all.keys()
                .filter(|n| !pristine.contains_key(*n))
                .cloned()
                .collect()
        };
        assert_eq!(
            written(&ours),
            written(&theirs),
            "{name}: the set of files written"
        );
        assert_eq!(written(&ours).len(), 11, "{name}");
        for file in written(&ours) {
            let a = std::fs::read(&ours[&file]).unwrap();
            let b = std::fs::read(&theirs[&file]).unwrap();
            assert!(
                a == b,
                "{name}: {file} differs from kmod's ({} vs {} bytes)",
                a.len(),
                b.len()
            );
            let mode = std::fs::metadata(&ours[&file])
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644, "{name}: mode of {file}");
        }
    }
}

#[test]
fn dry_run_prints_what_kmod_prints() {
    for name in TREES {
        let tree = Tree::get(name);
        let system_map = tree.pristine.join(format!("boot/System.map-{}", tree.kver));
        let system_map = system_map.to_str().unwrap();
        // -e with the kernel's System.map reports every symbol nothing provides.
        for extra in [&[][..], &["-v"], &["-w"], &["-e", "-F", system_map]] {
            let mut args: Vec<OsString> = extra.iter().map(OsString::from).collect();
            args.extend([
                "-n".into(),
                "-b".into(),
                tree.pristine.clone().into(),
                tree.kver.clone().into(),
            ]);
            let a = run(&ours("depmod"), &args);
            let b = run(&reference("depmod"), &args);
            assert_same_output(&format!("{name}: depmod {args:?}"), &a, &b);
            assert_eq!(a.stderr, b.stderr, "{name}: stderr of depmod {args:?}");
        }
    }
}

/// Module names to look up: a sample of every module, plus aliases and symbols.
fn sample_names(tree: &Tree) -> Vec<String> {
    let dep = std::fs::read_to_string(tree.module_dir(&tree.ref_root).join("modules.dep")).unwrap();
    let mut names: Vec<String> = dep
        .lines()
        .step_by(13)
        .map(|l| {
            let path = l.split(':').next().unwrap();
            path.rsplit('/')
                .next()
                .unwrap()
                .split('.')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    names.extend(
        [
            "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00",
            "fs-btrfs",
            "symbol:nf_conntrack_in",
            "snd-hda-intel",
            "crc32c",
        ]
        .map(String::from),
    );
    names
}

#[test]
fn kmod_reads_our_indexes() {
    for name in TREES {
        let tree = Tree::get(name);
        let ours_root = our_output(name);
        for chunk in sample_names(&tree).chunks(60) {
            let show = |root: &Path| {
                let mut args: Vec<OsString> = vec![
                    "-d".into(),
                    root.into(),
                    "-S".into(),
                    tree.kver.clone().into(),
                    "--show-depends".into(),
                    "-a".into(),
                ];
                args.extend(chunk.iter().map(OsString::from));
                let out = run(&reference("modprobe"), &args);
                let text = String::from_utf8(out.stdout).unwrap();
                (
                    text.replace(&*root.to_string_lossy(), "ROOT"),
                    out.status.code(),
                )
            };
            let (a, code_a) = show(ours_root);
            let (b, code_b) = show(&tree.ref_root);
            assert_eq!(code_a, code_b, "{name}: modprobe exit code for {chunk:?}");
            assert!(
                a == b,
                "{name}: modprobe --show-depends differs for {chunk:?}"
            );
            assert!(
                a.contains("insmod ROOT/lib/modules/"),
                "{name}: nothing resolved"
            );
        }
    }
}

#[test]
fn our_reader_reads_kmods_indexes() {
    for name in TREES {
        let tree = Tree::get(name);
        let dir = tree.module_dir(&tree.ref_root);
        let deps = Index::open(&dir.join("modules.dep.bin")).unwrap();
        let dep = std::fs::read_to_string(dir.join("modules.dep")).unwrap();
        for line in dep.lines() {
            let path = line.split(':').next().unwrap();
            let modname = path
                .rsplit('/')
                .next()
                .unwrap()
                .split('.')
                .next()
                .unwrap()
                .replace('-', "_");
            assert_eq!(
                deps.lookup(modname.as_bytes()),
                Some(line.as_bytes()),
                "{name}: {modname}"
            );
        }
        let symbols = Index::open(&dir.join("modules.symbols.bin")).unwrap();
        let text = std::fs::read_to_string(dir.join("modules.symbols")).unwrap();
        for line in text.lines().skip(1) {
            let mut words = line.split(' ').skip(1);
            let (key, owner) = (words.next().unwrap(), words.next().unwrap());
            let found = symbols.search_wildcard(key.as_bytes());
            assert!(
                found.iter().any(|v| v.value == owner.as_bytes()),
                "{name}: {key} -> {owner}"
            );
        }
        let aliases = Index::open(&dir.join("modules.alias.bin")).unwrap();
        let text = std::fs::read_to_string(dir.join("modules.alias")).unwrap();
        for line in text.lines().skip(1) {
            let mut words = line.split(' ').skip(1);
            let (alias, owner) = (words.next().unwrap(), words.next().unwrap());
            if alias.contains(['*', '?', '[']) {
                continue;
            }
            let found = aliases.search_wildcard(alias.replace('-', "_").as_bytes());
            assert!(
                found.iter().any(|v| v.value == owner.as_bytes()),
                "{name}: {alias} -> {owner}"
            );
        }
    }
}

/// The files depmod writes (those the pristine tree lacks), with their contents.
fn written_files(tree: &Tree, root: &Path) -> BTreeMap<String, Vec<u8>> {
    let pristine = files(&tree.module_dir(&tree.pristine));
    files(&tree.module_dir(root))
        .into_iter()
        .filter(|(n, _)| !pristine.contains_key(n))
        .map(|(n, p)| (n, std::fs::read(p).unwrap()))
        .collect()
}

fn remove_written(tree: &Tree, root: &Path) {
    for name in written_files(tree, root).keys() {
        std::fs::remove_file(tree.module_dir(root).join(name)).unwrap();
    }
}

#[test]
fn bad_input_on_a_real_tree() {
    // bookworm's plain .ko tree: no modules.order, a truncated real module, a text
    // file named .ko and a depmod.d with bad lines. Both depmods run on the same copy
    // (so paths in messages agree) and must print, exit and write alike.
    let tree = Tree::get("bookworm-amd64");
    let root = tree.copy("depmod", true);
    let dir = tree.module_dir(&root);
    std::fs::remove_file(dir.join("modules.order")).unwrap();
    let victim = dir.join("kernel/drivers/net/dummy.ko");
    let data = std::fs::read(&victim).unwrap();
    // Replace, never write through, the hard link to the cached tree.
    std::fs::remove_file(&victim).unwrap();
    std::fs::write(&victim, &data[..data.len() / 2]).unwrap();
    std::fs::write(dir.join("kernel/not-a-module.ko"), "text\n").unwrap();
    let conf = root.join("depmod.d");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("bad.conf"),
        "search\noverride dummy\nexclude\nfrobnicate all\nsearch updates built-in\n",
    )
    .unwrap();
    let args: Vec<OsString> = vec![
        "-C".into(),
        conf.into(),
        "-b".into(),
        root.clone().into(),
        tree.kver.clone().into(),
    ];
    let run_on_clean = |program: PathBuf| {
        remove_written(&tree, &root);
        let out = run(&program, &args);
        (out, written_files(&tree, &root))
    };
    let (a, files_a) = run_on_clean(ours("depmod"));
    let (b, files_b) = run_on_clean(reference("depmod"));
    assert_same_output("bad input, real tree", &a, &b);
    assert_eq!(
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr),
        "bad input, real tree: stderr"
    );
    let stderr = String::from_utf8_lossy(&a.stderr);
    for expected in ["dummy.ko", "not-a-module.ko", "bad.conf"] {
        assert!(
            stderr.contains(expected),
            "no message naming {expected}:\n{stderr}"
        );
    }
    assert_eq!(files_a.len(), 11);
    assert!(
        files_a == files_b,
        "bad input, real tree: files differ from kmod's"
    );

    // A module with a non-ASCII alias makes the run fail; our previous indexes stay.
    let bad = kogen::Module::new("bad")
        .modinfo("alias", "caf\u{e9}")
        .build();
    std::fs::write(dir.join("kernel/bad.ko"), bad).unwrap();
    let before = written_files(&tree, &root);
    assert_eq!(before.len(), 11);
    let failed = run(&ours("depmod"), &args);
    let after = written_files(&tree, &root);
    let theirs = run_on_clean(reference("depmod")).0;
    assert_eq!(failed.status.code(), Some(1));
    assert_eq!(failed.status.code(), theirs.status.code());
    assert_eq!(
        String::from_utf8_lossy(&failed.stderr),
        String::from_utf8_lossy(&theirs.stderr)
    );
    assert!(after == before, "a failed run changed the indexes");
    let _ = std::fs::remove_dir_all(&root);
}
