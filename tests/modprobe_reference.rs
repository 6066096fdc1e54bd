//! modprobe's resolution against reference kmod 34.2 on real Debian module trees:
//! `--show-depends` for every module, `-R` for real modaliases, exit codes and
//! messages for names that resolve to nothing.

mod common;

use std::ffi::OsString;
use std::path::PathBuf;

use common::{ours, reference, run_as, Tree};

const TREES: [&str; 2] = ["trixie-amd64", "bookworm-amd64"];

/// An empty configuration directory, so the host's modprobe.d plays no part.
fn empty_config() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("empty-modprobe.d");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs every argument list through both modprobes (spread over the cores) and
/// compares stdout, stderr and exit code.
fn compare_each(what: &str, runs: Vec<Vec<OsString>>) {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(args) = runs.get(i) else { break };
                let a = run_as(&ours("modprobe"), "modprobe", args);
                let b = run_as(&reference("modprobe"), "modprobe", args);
                let show = |o: &std::process::Output| {
                    format!(
                        "exit {:?}\n{}{}",
                        o.status.code(),
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    )
                };
                if show(&a) != show(&b) {
                    failures.lock().unwrap().push(format!(
                        "modprobe {args:?}\n--- ours\n{}--- kmod\n{}",
                        show(&a),
                        show(&b)
                    ));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{what}: {} of {} runs differ; first:\n{}",
        failures.len(),
        runs.len(),
        failures[0]
    );
}

fn base_args(tree: &Tree) -> Vec<OsString> {
    vec![
        "-C".into(),
        empty_config().into(),
        "-d".into(),
        tree.ref_root.clone().into(),
        "-S".into(),
        tree.kver.clone().into(),
    ]
}

fn module_names(tree: &Tree) -> Vec<String> {
    let dep = std::fs::read_to_string(tree.module_dir(&tree.ref_root).join("modules.dep")).unwrap();
    dep.lines()
        .filter_map(|l| l.split(':').next())
        .map(|p| {
            p.rsplit('/')
                .next()
                .unwrap()
                .split('.')
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn show_depends_of_every_module() {
    for name in TREES {
        let tree = Tree::get(name);
        let base = base_args(&tree);
        let mut runs: Vec<Vec<OsString>> = module_names(&tree)
            .into_iter()
            .map(|m| {
                let mut a = base.clone();
                a.extend(["--show-depends".into(), m.into()]);
                a
            })
            .collect();
        let builtin =
            std::fs::read_to_string(tree.module_dir(&tree.ref_root).join("modules.builtin"))
                .unwrap();
        for line in builtin.lines().take(50) {
            let m = line.rsplit('/').next().unwrap().split('.').next().unwrap();
            let mut a = base.clone();
            a.extend(["--show-depends".into(), m.into()]);
            runs.push(a);
        }
        for extra in [
            &["--show-depends", "no-such-module"][..],
            &["-D", "-q", "nope"],
            &["-D", "bad]alias"],
            &["-a", "-D", "dummy", "nope", "crc32c"],
        ] {
            let mut a = base.clone();
            a.extend(extra.iter().map(OsString::from));
            runs.push(a);
        }
        compare_each(&format!("{name}: --show-depends"), runs);
    }
}

#[test]
fn resolve_aliases() {
    for name in TREES {
        let tree = Tree::get(name);
        let base = base_args(&tree);
        // Concrete device strings built from the first few hundred alias patterns.
        let alias =
            std::fs::read_to_string(tree.module_dir(&tree.ref_root).join("modules.alias")).unwrap();
        let mut runs = Vec::new();
        for line in alias.lines().skip(1).step_by(97).take(300) {
            let pattern = line.split(' ').nth(1).unwrap();
            let concrete: String = pattern
                .chars()
                .map(|c| match c {
                    '*' => '0',
                    '?' => 'X',
                    c => c,
                })
                .filter(|c| *c != '[' && *c != ']')
                .collect();
            let mut a = base.clone();
            a.extend(["-R".into(), concrete.into()]);
            runs.push(a);
        }
        for extra in [
            "symbol:nf_conntrack_in",
            "fs-btrfs",
            "crypto-sha256",
            "snd-hda-intel",
            "nope",
        ] {
            let mut a = base.clone();
            a.extend(["-R".into(), extra.into()]);
            runs.push(a);
        }
        compare_each(&format!("{name}: -R"), runs);
    }
}

/// A modprobe.d exercising every directive and the malformed-line messages: `-c`,
/// `-n -v`, `-D`, `-R`, `-r -n -v` and blacklisting must match kmod, stderr included.
#[test]
fn configuration_directives() {
    let tree = Tree::get("trixie-amd64");
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/modprobe.d");
    let base: Vec<OsString> = vec![
        "-C".into(),
        config.into(),
        "-d".into(),
        tree.ref_root.clone().into(),
        "-S".into(),
        tree.kver.clone().into(),
    ];
    let cases: &[&[&str]] = &[
        &["-c"],
        &["-n", "-v", "my-dummy"],
        &["-D", "snd-hda-intel"],
        &["-D", "btrfs"],
        &["-R", "my-dummy"],
        &["-R", "pci:v00001234d00005678sv0sd0bc0sc0i0"],
        &["-n", "-v", "fake-mod"],
        &["-D", "fake-mod"],
        &["-n", "-v", "-b", "dummy"],
        &["-n", "-v", "net-pf-99"],
        &["-n", "-v", "second-alias"],
        &["-D", "loop-install"],
        &["-r", "-n", "-v", "fake-mod"],
        &["-n", "-v", "dummy", "foo=bar", "x=a b"],
        &["-n", "my-dummy"],
        &["-D", "-i", "btrfs"],
        &["--show-depends", "--ignore-install", "fake-mod"],
        &["-c", "ignored-argument"],
        &[],
        &["-w", "12x", "dummy"],
        &["--bogus"],
    ];
    let runs = cases
        .iter()
        .map(|c| {
            base.iter()
                .cloned()
                .chain(c.iter().map(OsString::from))
                .collect()
        })
        .collect();
    compare_each("modprobe with fixtures/modprobe.d", runs);
    // The default configuration directories of this machine, and the tree's own
    // modules.softdep, with no -C.
    let plain: Vec<OsString> = base[2..].to_vec();
    compare_each(
        "modprobe -c with the default directories",
        vec![plain.iter().cloned().chain(["-c".into()]).collect()],
    );
}
