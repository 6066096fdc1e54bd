//! The golden outputs in `tests/golden/` are what reference kmod 34.2 prints on the
//! demo tree. `KMOD_UPDATE_GOLDEN=1` records them anew from the reference.

mod common;
mod golden_support;

use golden_support::{
    assert_golden, demo_tree, depmod_files, golden_files_dir, golden_path, render, run,
};

fn check_or_record(what: &str, path: &std::path::Path, actual: &[u8]) {
    if std::env::var_os("KMOD_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, actual).unwrap();
    }
    assert_golden(what, path, actual);
}

#[test]
fn golden_outputs_are_kmods() {
    let root = demo_tree("reference");
    let depmod = run(&common::reference("depmod"), &golden_support::DEPMOD, &root);
    check_or_record("depmod", &golden_path("depmod"), &render(&depmod, &root));
    let files = depmod_files(&root);
    assert_eq!(
        files.len(),
        11,
        "reference depmod wrote {} files",
        files.len()
    );
    for (name, data) in files {
        check_or_record(&name, &golden_files_dir().join(&name), &data);
    }
    for case in golden_support::CASES {
        let output = run(&common::reference(case.tool), case, &root);
        check_or_record(case.name, &golden_path(case.name), &render(&output, &root));
    }
    std::fs::remove_dir_all(&root).unwrap();
}
