//! modprobe on pathological but valid configuration costs time in proportion to its
//! size: a modprobe.d of 100 000 lines, and an alias of 10 000 wildcards matched
//! against a long name. The deadlines are hang guards, not benchmarks.

mod common;

use std::time::{Duration, Instant};

#[test]
fn large_configuration_and_wildcard_aliases() {
    let root = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("modprobe-scaling-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    kogen::demo::write(&root, kogen::demo::KVER).unwrap();
    let conf = root.join("big.d");
    std::fs::create_dir_all(&conf).unwrap();
    let mut text = String::new();
    for i in 0..100_000 {
        text.push_str(&match i % 6 {
            0 => format!("options mod{i} p={i}\n"),
            1 => format!("alias alias{i}* mod{i}\n"),
            2 => format!("blacklist mod{i}\n"),
            3 => format!("install mod{i} /bin/true\n"),
            4 => format!("softdep mod{i} pre: a b post: c\n"),
            _ => format!("# comment {i}\n"),
        });
    }
    let wildcards: String = (0..10_000).map(|i| ["*", "?", "[a-z]"][i % 3]).collect();
    text.push_str(&format!("alias x{wildcards} demonet\n"));
    std::fs::write(conf.join("big.conf"), text).unwrap();
    let modprobe = |args: &[&str]| {
        let started = Instant::now();
        let out = std::process::Command::new(common::ours("modprobe"))
            .arg("-C")
            .arg(&conf)
            .arg("-d")
            .arg(&root)
            .args(["-S", kogen::demo::KVER])
            .args(args)
            .output()
            .unwrap();
        (out, started.elapsed())
    };
    let status = std::process::Command::new(common::ours("depmod"))
        .arg("-b")
        .arg(&root)
        .arg(kogen::demo::KVER)
        .status()
        .unwrap();
    assert!(status.success());

    let (out, took) = modprobe(&["-c"]);
    assert!(out.status.success());
    assert_eq!(
        out.stdout
            .split(|&b| b == b'\n')
            .filter(|l| l.starts_with(b"options mod"))
            .count(),
        16_667
    );
    assert!(took < Duration::from_secs(20), "-c took {took:?}");

    let long_name = format!("x{}", "a".repeat(3000));
    for name in ["alias99991", long_name.as_str()] {
        let (out, took) = modprobe(&["-R", name]);
        assert!(
            took < Duration::from_secs(20),
            "-R {name:.20} took {took:?}"
        );
        let _ = out;
    }
    let (out, _) = modprobe(&["-R", "alias99991"]);
    assert_eq!(out.stdout, b"mod99991\n");
    std::fs::remove_dir_all(root).unwrap();
}
