//! Our tools on the demo tree print exactly what kmod 34.2 printed there (the golden
//! outputs in `tests/golden/`, recorded from reference kmod by the differential
//! group): depmod's files and messages, modinfo and modprobe in their main uses and
//! errors. Needs nothing but this repository.

mod common;
mod golden_support;

use golden_support::{
    assert_golden, demo_tree, depmod_files, golden_files_dir, golden_path, render, run,
};

#[test]
fn tools_print_what_kmod_prints() {
    let root = demo_tree("ours");
    let depmod = run(&common::ours("depmod"), &golden_support::DEPMOD, &root);
    assert_golden("depmod", &golden_path("depmod"), &render(&depmod, &root));
    for (name, data) in depmod_files(&root) {
        assert_golden(&name, &golden_files_dir().join(&name), &data);
    }
    for case in golden_support::CASES {
        let output = run(&common::ours(case.tool), case, &root);
        assert_golden(case.name, &golden_path(case.name), &render(&output, &root));
    }
    std::fs::remove_dir_all(&root).unwrap();
}
