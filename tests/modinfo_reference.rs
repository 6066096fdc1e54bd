//! modinfo against reference kmod 34.2 on real Debian module trees: every module,
//! by file and by name, must print the same bytes and exit alike.

mod common;

use std::ffi::OsString;
use std::path::PathBuf;

use common::{assert_same_output, ours, reference, run, Tree};

const TREES: [&str; 2] = ["trixie-amd64", "bookworm-amd64"];

/// Runs ours and kmod's modinfo with `args` followed by each chunk of `items`,
/// chunks spread over the machine's cores, and compares every chunk.
fn compare_chunked(what: &str, args: &[OsString], items: &[OsString]) {
    let chunks: Vec<&[OsString]> = items.chunks(400).collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(chunk) = chunks.get(i) else { break };
                let all: Vec<&OsString> = args.iter().chain(chunk.iter()).collect();
                let a = run(&ours("modinfo"), &all);
                let b = run(&reference("modinfo"), &all);
                assert_same_output(&format!("{what} (chunk {i})"), &a, &b);
            });
        }
    });
}

fn files(tree: &Tree) -> Vec<OsString> {
    tree.module_files()
        .into_iter()
        .map(PathBuf::into_os_string)
        .collect()
}

#[test]
fn every_module_file() {
    for name in TREES {
        let tree = Tree::get(name);
        compare_chunked(&format!("{name}: modinfo FILE..."), &[], &files(&tree));
    }
}

#[test]
fn every_module_file_null_separated() {
    for name in TREES {
        let tree = Tree::get(name);
        compare_chunked(
            &format!("{name}: modinfo -0 FILE..."),
            &["-0".into()],
            &files(&tree),
        );
    }
}

#[test]
fn fields_of_every_module_file() {
    // -F reads the whole module each time; these fields cover every code path:
    // repeated keys, merged parameters, signature hex, empty values, a missing key
    // and filename (which never opens the file).
    for name in TREES {
        let tree = Tree::get(name);
        let files = files(&tree);
        for args in [
            &["-F", "alias"][..],
            &["-p"],
            &["-F", "signature"],
            &["-F", "depends"],
            &["-n"],
            &["-0", "-F", "parm"],
            &["-F", "no-such-field"],
        ] {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            compare_chunked(&format!("{name}: modinfo {args:?} FILE..."), &args, &files);
        }
    }
}

/// Module names from the reference modules.dep and modules.builtin.
fn names(tree: &Tree) -> Vec<OsString> {
    let dir = tree.module_dir(&tree.ref_root);
    let dep = std::fs::read_to_string(dir.join("modules.dep")).unwrap();
    let builtin = std::fs::read_to_string(dir.join("modules.builtin")).unwrap();
    let mut names: Vec<OsString> = dep
        .lines()
        .filter_map(|l| l.split(':').next())
        .chain(builtin.lines())
        .map(|path| {
            let base = path.rsplit('/').next().unwrap();
            OsString::from(base.split('.').next().unwrap())
        })
        .collect();
    // Aliases (wildcard index), symbols, builtin aliases and failures.
    for extra in [
        "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00",
        "usb:v0BDAp8179d0000dc00dsc00dp00icFFiscFFipFFin00",
        "fs-btrfs",
        "symbol:nf_conntrack_in",
        "crc32c",
        "snd-hda-intel",
        "no-such-module",
        "bad]alias",
    ] {
        names.push(extra.into());
    }
    names
}

#[test]
fn every_module_by_name() {
    for name in TREES {
        let tree = Tree::get(name);
        let args: Vec<OsString> = vec![
            "-b".into(),
            tree.ref_root.clone().into(),
            "-k".into(),
            tree.kver.clone().into(),
        ];
        let names = names(&tree);
        compare_chunked(
            &format!("{name}: modinfo -b ROOT -k VER NAME..."),
            &args,
            &names,
        );
        let mut by_modname = args.clone();
        by_modname.push("-m".into());
        compare_chunked(&format!("{name}: modinfo -m NAME..."), &by_modname, &names);
    }
}
