//! modprobe's insert and remove algorithms on the demo tree, against the in-memory
//! kernel (`kernel::fake`): which syscalls are made, in which order, with which
//! options, and what is printed.

use std::time::Duration;

use kmod_rs::config::ModprobeConfig;
use kmod_rs::diag::{Priority, Sink};
use kmod_rs::kernel::fake::FakeKernel;
use kmod_rs::probe::{Action, Actions, Context, ProbeFlags, RemoveError, RemoveFlags};
use kmod_rs::resolve::ModuleDir;
use nix::errno::Errno;

/// The demo tree, indexed by our depmod.
fn demo(tag: &str) -> std::path::PathBuf {
    let root = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("probe-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    kogen::demo::write(&root, kogen::demo::KVER).unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_kmod"))
        .arg("depmod")
        .arg("-b")
        .arg(&root)
        .arg("-C")
        .arg(root.join("etc/depmod.d"))
        .arg(kogen::demo::KVER)
        .status()
        .unwrap();
    assert!(status.success());
    root
}

fn context<'a>(root: &std::path::Path, kernel: &'a FakeKernel) -> Context<'a> {
    let dir = ModuleDir::new(root.join("lib/modules").join(kogen::demo::KVER));
    let config = ModprobeConfig::load(
        dir.path(),
        Some(&[root.join("etc/modprobe.d")]),
        None,
        &Sink::silent(),
    );
    Context::new(dir, config, kernel, Sink::silent())
}

#[derive(Default)]
struct Printed(Vec<String>);

impl Actions for Printed {
    fn show(&mut self, action: Action<'_>) {
        let line = String::from_utf8_lossy(&action.line()).into_owned();
        self.0.push(if action.flushed() {
            format!("{line} (flushed)")
        } else {
            line
        });
    }
}

fn remove_flags() -> RemoveFlags {
    RemoveFlags {
        ignore_commands: false,
        ignore_loaded: false,
        dry_run: false,
        first_time: false,
        remove_holders: false,
        force: false,
        wait: Duration::ZERO,
        show: true,
        fail_priority: Priority::Fatal,
    }
}

#[test]
fn insert_loads_dependencies_first_with_configured_options() {
    let root = demo("insert");
    let kernel = FakeKernel::default();
    let mut ctx = context(&root, &kernel);
    let ids = ctx.lookup(b"demo-eth").unwrap();
    assert_eq!(ids.len(), 1);
    let mut printed = Printed::default();
    let flags = ProbeFlags {
        show: true,
        ..ProbeFlags::default()
    };
    ctx.probe_insert(ids[0], flags, Some(b"extra=caf\xe9"), &mut printed)
        .unwrap();
    // democore and demonet are plain or zstd (no in-kernel zstd here): the file
    // itself through finit_module, else the decompressed image.
    let calls = kernel.calls.borrow();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[0], "finit_module(\"\", 0)");
    assert!(calls[1].starts_with("init_module("), "{calls:?}");
    assert!(
        calls[2].ends_with(", \"debug=3 extra=caf\\xe9\")"),
        "{calls:?}"
    );
    assert_eq!(printed.0.len(), 3);
    assert!(printed.0[2].ends_with("demonet.ko.zst debug=3 extra=caf\u{fffd}"));
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn loaded_modules_are_skipped_and_first_time_fails() {
    let root = demo("loaded");
    let mut kernel = FakeKernel::default();
    kernel.loaded("democore", 1).loaded("demobus", 0);
    let mut ctx = context(&root, &kernel);
    let id = ctx.lookup(b"demonet").unwrap()[0];
    ctx.probe_insert(id, ProbeFlags::default(), None, &mut Printed::default())
        .unwrap();
    assert_eq!(kernel.calls.borrow().len(), 1, "only demonet is inserted");

    let mut kernel = FakeKernel::default();
    kernel.loaded("demonet", 0);
    let mut ctx = context(&root, &kernel);
    let id = ctx.lookup(b"demonet").unwrap()[0];
    let first_time = ProbeFlags {
        fail_on_loaded: true,
        ..ProbeFlags::default()
    };
    let result = ctx.probe_insert(id, first_time, None, &mut Printed::default());
    assert_eq!(result, Err(Errno::EEXIST));
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn remove_takes_unused_dependencies_and_holders() {
    let root = demo("remove");
    let mut kernel = FakeKernel::default();
    kernel
        .loaded("demonet", 0)
        .loaded("demobus", 0)
        .loaded("democore", 2)
        .loaded("demousb", 1);
    let mut ctx = context(&root, &kernel);
    let id = ctx.lookup(b"demonet").unwrap()[0];
    let mut printed = Printed::default();
    ctx.remove(id, &remove_flags(), &mut printed).unwrap();
    // demobus has no users left; democore is still in use.
    assert_eq!(
        printed.0,
        ["rmmod demonet (flushed)", "rmmod demobus (flushed)"]
    );
    assert_eq!(kernel.calls.borrow().len(), 2);

    // A module in use is refused with a FATAL message, which stops modprobe; with
    // -q the message is hidden and only this removal fails.
    for (threshold, stopped) in [(Priority::Warning, true), (Priority::Emergency, false)] {
        let ctx = context(&root, &kernel);
        let sink = Sink::new("modprobe", threshold as i32, false);
        let mut ctx = Context::new(
            ModuleDir::new(ctx.dir.path().to_path_buf()),
            ctx.config,
            &kernel,
            sink,
        );
        let id = ctx.lookup(b"democore").unwrap()[0];
        let result = ctx.remove(id, &remove_flags(), &mut Printed::default());
        if stopped {
            assert!(matches!(result, Err(RemoveError::Stopped(_))), "{result:?}");
        } else {
            assert_eq!(result, Err(RemoveError::Failed(Errno::EBUSY)));
        }
    }

    // With --remove-holders, the holders go first.
    let mut kernel = FakeKernel::default();
    kernel.loaded("demobus", 0).loaded("demousb", 0);
    kernel
        .holders
        .insert(b"demobus".to_vec(), vec![b"demousb".to_vec()]);
    let mut ctx = context(&root, &kernel);
    let id = ctx.lookup(b"demobus").unwrap()[0];
    let flags = RemoveFlags {
        remove_holders: true,
        ignore_commands: true,
        ..remove_flags()
    };
    let mut printed = Printed::default();
    ctx.remove(id, &flags, &mut printed).unwrap();
    // demousb goes first, then its dependencies left unused (the fake kernel keeps
    // demobus's refcnt at 0), then demobus itself, as kmod's algorithm does it.
    assert_eq!(
        printed.0,
        [
            "rmmod demousb (flushed)",
            "rmmod demobus (flushed)",
            "rmmod demobus (flushed)"
        ]
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn wait_retries_a_busy_module_then_gives_up() {
    let root = demo("wait");
    let mut kernel = FakeKernel {
        delete_result: Some(Errno::EAGAIN),
        ..FakeKernel::default()
    };
    kernel.loaded("demofs", 0);
    let mut ctx = context(&root, &kernel);
    let id = ctx.lookup(b"demofs").unwrap()[0];
    let flags = RemoveFlags {
        wait: Duration::from_millis(40),
        ignore_commands: true,
        ..remove_flags()
    };
    let started = std::time::Instant::now();
    let result = ctx.remove(id, &flags, &mut Printed::default());
    assert_eq!(result, Err(RemoveError::Failed(Errno::EAGAIN)));
    assert!(started.elapsed() >= Duration::from_millis(40));
    let attempts = kernel.calls.borrow().len();
    assert!((3..40).contains(&attempts), "{attempts} attempts: back-off");
    std::fs::remove_dir_all(root).unwrap();
}
