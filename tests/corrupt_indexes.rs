//! Missing, truncated and corrupted `modules.*.bin` files: modprobe and modinfo never
//! panic, and print what kmod prints on stdout with kmod's exit code (stderr may say
//! more: we name the unusable index).

mod common;

use std::path::{Path, PathBuf};

use common::{ours, reference, run_as, Tree};

const INDEXES: [&str; 5] = [
    "modules.dep.bin",
    "modules.alias.bin",
    "modules.symbols.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
];

/// A module directory whose `kernel/` is the real one and whose indexes we damage.
fn scratch_tree(tree: &Tree, tag: &str) -> (PathBuf, PathBuf) {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("corrupt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("lib/modules").join(&tree.kver);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(
        tree.module_dir(&tree.ref_root).join("kernel"),
        dir.join("kernel"),
    )
    .unwrap();
    for f in [
        "modules.builtin.modinfo",
        "modules.softdep",
        "modules.weakdep",
    ] {
        std::fs::copy(tree.module_dir(&tree.ref_root).join(f), dir.join(f)).unwrap();
    }
    (root, dir)
}

fn compare(root: &Path, tree: &Tree, what: &str) {
    let empty = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("empty-modprobe.d");
    std::fs::create_dir_all(&empty).unwrap();
    let root_s = root.to_string_lossy().into_owned();
    let empty_s = empty.to_string_lossy().into_owned();
    let probes: [&[&str]; 5] = [
        &["-D", "xfs"],
        &["-R", "fs-btrfs"],
        &["-R", "symbol:nf_conntrack_in"],
        &["-D", "ext4"],
        &[
            "-R",
            "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
        ],
    ];
    for p in probes {
        let args: Vec<&str> = ["-C", &empty_s, "-d", &root_s, "-S", &tree.kver]
            .into_iter()
            .chain(p.iter().copied())
            .collect();
        let a = run_as(&ours("modprobe"), "modprobe", &args);
        let b = run_as(&reference("modprobe"), "modprobe", &args);
        assert!(
            a.status.code().is_some(),
            "{what}: modprobe {p:?} was killed by a signal"
        );
        assert_eq!(
            (a.stdout.clone(), a.status.code()),
            (b.stdout, b.status.code()),
            "{what}: modprobe {p:?}: {}",
            String::from_utf8_lossy(&a.stderr)
        );
    }
    let args = [
        "-b", &root_s, "-k", &tree.kver, "-F", "filename", "xfs", "ext4", "fs-btrfs",
    ];
    let a = run_as(&ours("modinfo"), "modinfo", args);
    let b = run_as(&reference("modinfo"), "modinfo", args);
    assert!(
        a.status.code().is_some(),
        "{what}: modinfo was killed by a signal"
    );
    assert_eq!(
        (a.stdout, a.status.code()),
        (b.stdout, b.status.code()),
        "{what}: modinfo"
    );
}

#[test]
fn damaged_indexes_behave_like_kmod() {
    let tree = Tree::get("trixie-cloud");
    let (root, dir) = scratch_tree(&tree, "indexes");
    let originals: Vec<Vec<u8>> = INDEXES
        .iter()
        .map(|f| std::fs::read(tree.module_dir(&tree.ref_root).join(f)).unwrap())
        .collect();
    let restore = || {
        for (f, data) in INDEXES.iter().zip(&originals) {
            std::fs::write(dir.join(f), data).unwrap();
        }
    };
    restore();
    compare(&root, &tree, "intact");
    for (i, f) in INDEXES.iter().enumerate() {
        let data = &originals[i];
        std::fs::remove_file(dir.join(f)).unwrap();
        compare(&root, &tree, &format!("{f} missing"));
        for len in [
            0,
            4,
            11,
            12,
            13,
            100,
            data.len() / 3,
            data.len() / 2,
            data.len() - 1,
        ] {
            std::fs::write(dir.join(f), &data[..len.min(data.len())]).unwrap();
            compare(&root, &tree, &format!("{f} truncated to {len}"));
        }
        // Bytes overwritten in the node area.
        for step in [7usize, 131, 977] {
            let mut bad = data.clone();
            for at in (12..bad.len()).step_by(step.max(bad.len() / 64)) {
                bad[at] ^= 0xA5;
            }
            std::fs::write(dir.join(f), &bad).unwrap();
            compare(
                &root,
                &tree,
                &format!("{f} with flipped bytes every {step}"),
            );
        }
        restore();
    }
}
