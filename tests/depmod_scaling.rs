//! Pathological but valid input costs depmod time in proportion to its size: a
//! 48 MB `.modinfo`, a depmod.d of 100 000 lines, an alias with 10 000 wildcards
//! and a module exporting (and one needing) 100 000 symbols. Each once took from
//! seconds to minutes through work that grew faster than the input. The deadlines
//! are hang guards, about ten times what a debug build takes now, not benchmarks.

mod common;
mod depmod_support;

use std::process::Output;
use std::time::{Duration, Instant};

use common::ours;
use depmod_support::{text, Fixture};
use kmod_rs::index::Index;
use kogen::Module;

/// Runs our depmod, which must succeed within `deadline`.
fn run_within(fixture: &Fixture, args: &[&str], deadline: Duration) -> Output {
    let started = Instant::now();
    let out = fixture.depmod(&ours("depmod"), args);
    let took = started.elapsed();
    println!("depmod {args:?}: {:.2}s", took.as_secs_f64());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(took < deadline, "took {took:?}, over {deadline:?}");
    out
}

fn read(fixture: &Fixture, name: &str) -> Vec<u8> {
    std::fs::read(fixture.dir().join(name)).unwrap()
}

fn plain_tree(tag: &str) -> Fixture {
    let fixture = Fixture::new(tag);
    fixture
        .file("modules.order", "")
        .file("modules.builtin", "")
        .file("modules.builtin.modinfo", "");
    fixture
}

#[test]
fn a_48_mb_modinfo() {
    let fixture = plain_tree("modinfo48");
    // The same alias over and over (each one another value under the same key),
    // and every sixteenth entry a distinct one.
    const SAME: &[u8] = b"alias=pci:v00001234d00005678sv*sd*bc*sc*i*\0";
    let mut modinfo = Vec::with_capacity(48 << 20);
    let mut entries = 0;
    while modinfo.len() < 48 << 20 {
        if entries % 16 == 0 {
            modinfo.extend_from_slice(format!("alias=usb:v{entries:08X}p*d*\0").as_bytes());
        } else {
            modinfo.extend_from_slice(SAME);
        }
        entries += 1;
    }
    fixture.module("kernel/big.ko", &Module::new("big").modinfo_raw(&modinfo));
    drop(modinfo);
    run_within(&fixture, &[], Duration::from_secs(60));

    let aliases = read(&fixture, "modules.alias");
    assert_eq!(aliases.iter().filter(|&&b| b == b'\n').count(), entries + 1);
    let index = Index::open(&fixture.dir().join("modules.alias.bin")).unwrap();
    let same = index.lookup_all(b"pci:v00001234d00005678sv*sd*bc*sc*i*");
    assert_eq!(same.len(), entries - entries.div_ceil(16));
    assert!(same.iter().all(|v| v.value == b"big"));
    assert_eq!(index.lookup(b"usb:v00000010p*d*"), Some(&b"big"[..]));
}

#[test]
fn a_depmod_d_of_100_000_lines() {
    let fixture = plain_tree("config100k");
    // The same modules in three places, so that every file after the first is
    // weighed against the configuration.
    for dir in ["kernel/a", "updates", "extra/x"] {
        for name in [
            "one", "two", "three", "four", "five", "six", "seven", "eight",
        ] {
            fixture.module(
                &format!("{dir}/{name}.ko"),
                &Module::new(name).export(&format!("{name}_sym")),
            );
        }
    }
    let empty = fixture.root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let conf = fixture.root.join("depmod.d");
    std::fs::create_dir_all(&conf).unwrap();
    let mut lines = String::new();
    for i in 0..10_000 {
        lines.push_str(&format!("override m{i} * extra\nexclude x{i}\n"));
    }
    for _ in 0..40_000 {
        lines.push_str(&format!(
            "search external\nexternal * {}\n",
            empty.display()
        ));
    }
    std::fs::write(conf.join("big.conf"), lines).unwrap();
    let conf = conf.to_str().unwrap();
    run_within(&fixture, &["-C", conf], Duration::from_secs(10));
    let big = fixture.outputs();

    // None of those lines applies to these modules: the choice is the one a short
    // configuration of the same kind makes.
    let conf = fixture.root.join("small.d");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("small.conf"),
        format!("search external\nexternal * {}\n", empty.display()),
    )
    .unwrap();
    run_within(
        &fixture,
        &["-C", conf.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert_eq!(big, fixture.outputs());
}

#[test]
fn an_alias_with_10_000_wildcards() {
    let fixture = plain_tree("wildcards");
    let wild = format!("x{}", "*?[ab]".repeat(3334));
    assert!(wild.matches(['*', '?', '[']).count() >= 10_000);
    let many = (0..10_000).fold(Module::new("many"), |m, i| {
        m.modinfo("alias", &format!("pci:v*d*sv*sd{i:04X}*bc?sc[0-9]i*"))
    });
    fixture
        .module(
            "kernel/wild.ko",
            &Module::new("wild").modinfo("alias", &wild),
        )
        .module("kernel/many.ko", &many);
    run_within(&fixture, &[], Duration::from_secs(5));
    let aliases = text(&read(&fixture, "modules.alias"));
    assert!(aliases.contains(&format!("alias {wild} wild\n")));
    let index = Index::open(&fixture.dir().join("modules.alias.bin")).unwrap();
    // Keys are cut to 4095 bytes, as kmod cuts them.
    assert_eq!(index.lookup(&wild.as_bytes()[..4095]), Some(&b"wild"[..]));
    let found = index.search_wildcard(b"pci:v1d2sv3sd00FF4bc5sc6i7");
    assert_eq!(found.len(), 1);
}

#[test]
fn a_module_with_100_000_symbols() {
    let fixture = plain_tree("symbols100k");
    let (mut exporter, mut user) = (Module::new("exporter"), Module::new("user"));
    for i in 0..100_000u32 {
        let name = format!("sym_{i}");
        exporter = exporter.export_crc(&name, i);
        user = user.undefined(&name).version(&name, u64::from(i));
    }
    fixture
        .module("kernel/exporter.ko", &exporter)
        .module("kernel/user.ko", &user);
    run_within(&fixture, &[], Duration::from_secs(20));
    let symbols = read(&fixture, "modules.symbols");
    assert_eq!(
        symbols.iter().filter(|&&b| b == b'\n').count(),
        100_001,
        "modules.symbols"
    );
    let dep = text(&read(&fixture, "modules.dep"));
    assert!(
        dep.contains("kernel/user.ko: kernel/exporter.ko\n"),
        "{dep}"
    );
}
