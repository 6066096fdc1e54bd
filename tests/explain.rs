//! What insmod and modprobe add after kmod's line when the kernel refuses a module,
//! on the demo tree with the in-memory kernel: the kernel's own words about the
//! module, the module exporting a missing symbol, a parameter's declared type, the
//! kernel the module was built for, and signature enforcement.

use std::path::{Path, PathBuf};

use kmod_rs::explain;
use kmod_rs::kernel::fake::FakeKernel;
use kmod_rs::kernel::InsertFlags;
use kmod_rs::resolve::ModuleDir;
use nix::errno::Errno;

fn demo(tag: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("explain-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    kogen::demo::write(&root, kogen::demo::KVER).unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_kmod"))
        .args(["depmod", "-b"])
        .arg(&root)
        .arg(kogen::demo::KVER)
        .status()
        .unwrap();
    assert!(status.success());
    root
}

/// The explanation of one refused insertion, as text lines.
fn explain(root: &Path, kernel: &FakeKernel, module: &str, params: &str) -> Vec<String> {
    let dir = ModuleDir::new(root.join("lib/modules").join(kogen::demo::KVER));
    let path = dir.path().join(module);
    let refusal = explain::insert(
        kernel,
        &path,
        params.as_bytes(),
        InsertFlags::default(),
        Some(&dir),
    )
    .expect_err("the fake kernel refuses it");
    refusal
        .explanation
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

fn refusing(errno: Errno, log: Option<&[&str]>) -> FakeKernel {
    FakeKernel {
        finit_result: Some(errno),
        init_result: Some(errno),
        log_on_failure: log.map(|l| l.iter().map(|s| s.as_bytes().to_vec()).collect()),
        ..FakeKernel::default()
    }
}

#[test]
fn missing_symbols_name_their_modules() {
    let root = demo("symbols");
    let kernel = refusing(
        Errno::ENOENT,
        Some(&[
            "other: something unrelated",
            "demobus: Unknown symbol democore_register (err -2)",
        ]),
    );
    let lines = explain(&root, &kernel, "kernel/drivers/bus/demobus.ko.xz", "");
    assert_eq!(
        lines,
        [
            "kernel log: demobus: Unknown symbol democore_register (err -2)",
            "democore_register is exported by democore, which is not loaded: \
             `modprobe demobus` loads demobus with its dependencies",
        ]
    );

    // Without the log: the dependencies modules.dep names that are not loaded.
    let kernel = refusing(Errno::ENOENT, None);
    let lines = explain(
        &root,
        &kernel,
        "kernel/drivers/net/ethernet/demo/demonet.ko.zst",
        "",
    );
    assert_eq!(
        lines[0],
        "could not read the kernel log (/dev/kmsg): Permission denied"
    );
    assert!(
        lines[1].starts_with("demonet needs demobus, democore (modules.dep), not loaded"),
        "{lines:?}"
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn parameters_show_their_types() {
    let root = demo("params");
    let kernel = refusing(
        Errno::EINVAL,
        Some(&["democore: `abc' invalid for parameter `verbose'"]),
    );
    let lines = explain(&root, &kernel, "kernel/lib/democore.ko", "verbose=abc");
    assert_eq!(
        lines[1],
        "parameter verbose is of type bool; 'abc' is not one"
    );

    let kernel = refusing(Errno::ENOENT, Some(&["democore: Unknown parameter `loud'"]));
    let lines = explain(&root, &kernel, "kernel/lib/democore.ko", "loud=1");
    assert_eq!(
        lines[1],
        "democore has no parameter loud; democore's parameters: verbose"
    );

    // Without the log, the parameters given are checked against the declared ones.
    let kernel = refusing(Errno::EINVAL, None);
    let lines = explain(&root, &kernel, "kernel/lib/democore.ko", "verbose=x loud=1");
    assert_eq!(
        &lines[1..],
        [
            "parameter verbose is of type bool",
            "democore has no parameter loud; democore's parameters: verbose"
        ]
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn versions_and_signatures() {
    let root = demo("versions");
    let kernel = refusing(
        Errno::ENOEXEC,
        Some(&["democore: version magic '6.12.0-demo SMP' should be '6.1.0-18-amd64 SMP'"]),
    );
    let lines = explain(&root, &kernel, "kernel/lib/democore.ko", "");
    assert_eq!(
        lines[1],
        "democore was built for '6.12.0-demo SMP'; this kernel is '6.1.0-18-amd64 SMP'"
    );

    let mut kernel = refusing(
        Errno::EKEYREJECTED,
        Some(&["Loading of module with unavailable key is rejected"]),
    );
    kernel.attr("module", "parameters/sig_enforce", "Y\n");
    let lines = explain(&root, &kernel, "kernel/crypto/democrypto.ko", "");
    assert_eq!(
        &lines[1..],
        [
            "module signatures are enforced (module.sig_enforce=Y)",
            "democrypto is signed by 'kogen demo signing key' (sha256), a key this kernel \
             does not trust: `kmod verify --kernel` checks that"
        ]
    );

    let mut kernel = refusing(Errno::EKEYREJECTED, Some(&[]));
    kernel.lockdown = Some(b"none [integrity] confidentiality\n".to_vec());
    let lines = explain(&root, &kernel, "kernel/lib/democore.ko", "");
    assert_eq!(
        lines,
        [
            "the kernel is locked down (integrity), which requires signed modules",
            "democore is not signed"
        ]
    );
    std::fs::remove_dir_all(root).unwrap();
}

/// The kernel logs under the module's own name; a file named otherwise (as a module
/// kept for another kernel, dummy-6.1.0-57-amd64.ko) still gets its lines.
#[test]
fn the_module_is_known_by_its_own_name_not_its_file_name() {
    let root = demo("rename");
    let dir = root.join("lib/modules").join(kogen::demo::KVER);
    std::fs::copy(
        dir.join("kernel/drivers/bus/demobus.ko.xz"),
        dir.join("demobus-6.1.0-57-amd64.ko.xz"),
    )
    .unwrap();
    let kernel = refusing(
        Errno::ENOENT,
        Some(&["demobus: Unknown symbol democore_register (err -2)"]),
    );
    let lines = explain(&root, &kernel, "demobus-6.1.0-57-amd64.ko.xz", "");
    assert_eq!(
        lines,
        [
            "kernel log: demobus: Unknown symbol democore_register (err -2)",
            "democore_register is exported by democore, which is not loaded: \
             `modprobe demobus` loads demobus with its dependencies",
        ]
    );
}
