//! `kmod static-nodes` against reference kmod on the trixie tree's modules.devname.
//! Both read /lib/modules/$(uname -r), so the test runs them in a private mount
//! namespace with the tree bound there (needs root and unshare, as CI has).

mod common;

use std::process::Command;

use common::{ours, reference, Tree};

#[test]
fn static_nodes_match_kmod_in_every_format() {
    let tree = Tree::get("trixie-amd64");
    let dir = tree.module_dir(&tree.ref_root);
    let release = kmod_rs::resolve::kernel_release().unwrap();
    let mountpoint = format!("/lib/modules/{}", release.to_string_lossy());
    let created = !std::path::Path::new(&mountpoint).exists();
    if created {
        std::fs::create_dir_all(&mountpoint).expect("creating the mount point needs root");
    }
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("static-nodes-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let script = format!(
        "set -e; mount --bind '{dir}' '{mountpoint}'; \
         for f in human tmpfiles devname; do \
           '{ours}' static-nodes --format=$f > '{out}/ours-'$f; \
           '{theirs}' static-nodes --format=$f > '{out}/kmod-'$f; \
         done; \
         '{ours}' static-nodes -o '{out}/sub/dir/file' -f tmpfiles",
        dir = dir.display(),
        ours = ours("kmod").display(),
        theirs = reference("kmod").display(),
        out = out.display(),
    );
    let status = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .status();
    if created {
        let _ = std::fs::remove_dir(&mountpoint);
        let _ = std::fs::remove_dir("/lib/modules");
    }
    assert!(status.expect("unshare is needed (util-linux)").success());
    for format in ["human", "tmpfiles", "devname"] {
        let a = std::fs::read(out.join(format!("ours-{format}"))).unwrap();
        let b = std::fs::read(out.join(format!("kmod-{format}"))).unwrap();
        assert!(!b.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b),
            "format {format}"
        );
    }
    assert_eq!(
        std::fs::read(out.join("sub/dir/file")).unwrap(),
        std::fs::read(out.join("kmod-tmpfiles")).unwrap()
    );
}
