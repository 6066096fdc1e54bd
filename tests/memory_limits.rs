//! Decompression bombs and memory ceilings: compressed modules that expand to GiBs are
//! refused with ENOMEM in one line, quickly, and without aborting, even when the
//! address space is too small to hold them; a large but real module still loads.
//!
//! The bombs are written by streaming encoders (or from one compressed chunk repeated),
//! so this test never holds the expanded data.

mod common;
mod depmod_support;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::ours;
use depmod_support::{text, Fixture, KVER};
use kogen::{Compression, Module};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The address-space limit the tools run under: 1 GB, less than any bomb here needs.
const ADDRESS_SPACE: u64 = 1_000_000_000;

/// A hang guard only: each refusal takes well under a second in a release build.
const PATIENCE: Duration = Duration::from_secs(30);

/// Feeds `size` zero bytes to `w` in 1 MiB writes.
fn write_zeros(w: &mut impl Write, size: u64) {
    let zeros = vec![0u8; MIB as usize];
    for _ in 0..size / MIB {
        w.write_all(&zeros).unwrap();
    }
}

/// A single-stream .xz of 1 GiB of zeros (its index declares the size).
fn xz_bomb(path: &Path) {
    let out = BufWriter::new(File::create(path).unwrap());
    let mut e = liblzma::write::XzEncoder::new(out, 0);
    write_zeros(&mut e, GIB);
    e.finish().unwrap().flush().unwrap();
}

/// A single zstd frame of 4 GiB of zeros, with or without the content size declared.
fn zstd_bomb(path: &Path, declare_size: bool) {
    let out = BufWriter::new(File::create(path).unwrap());
    let mut e = zstd::stream::write::Encoder::new(out, 1).unwrap();
    e.include_contentsize(declare_size).unwrap();
    if declare_size {
        e.set_pledged_src_size(Some(4 * GIB)).unwrap();
    }
    write_zeros(&mut e, 4 * GIB);
    e.finish().unwrap().flush().unwrap();
}

/// A single gzip member of 1 GiB of zeros: one deflate chunk of 1 MiB, compressed with
/// a full flush (byte-aligned, self-contained), repeated 1024 times, then a final
/// empty block and the trailer (CRC of the whole, ISIZE = 1 GiB).
fn gzip_bomb(path: &Path) {
    use flate2::{Compress, FlushCompress};
    let zeros = vec![0u8; MIB as usize];
    let mut c = Compress::new(flate2::Compression::fast(), false);
    let mut chunk = Vec::with_capacity(MIB as usize);
    c.compress_vec(&zeros, &mut chunk, FlushCompress::Full)
        .unwrap();
    assert_eq!(c.total_in(), MIB);
    let mut end = Vec::with_capacity(64);
    c.compress_vec(&[], &mut end, FlushCompress::Finish)
        .unwrap();
    let mut one_chunk = flate2::Crc::new();
    one_chunk.update(&zeros);
    let mut crc = flate2::Crc::new();
    for _ in 0..GIB / MIB {
        crc.combine(&one_chunk);
    }
    assert_eq!(u64::from(crc.amount()), GIB);
    let mut out = BufWriter::new(File::create(path).unwrap());
    out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])
        .unwrap();
    for _ in 0..GIB / MIB {
        out.write_all(&chunk).unwrap();
    }
    out.write_all(&end).unwrap();
    out.write_all(&crc.sum().to_le_bytes()).unwrap();
    out.write_all(&(GIB as u32).to_le_bytes()).unwrap();
    out.flush().unwrap();
}

/// The bombs, written once per test process: (file name, what it is).
fn bombs() -> &'static [(PathBuf, &'static str)] {
    static BOMBS: OnceLock<Vec<(PathBuf, &'static str)>> = OnceLock::new();
    BOMBS.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("bombs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let bombs = vec![
            (dir.join("xz-1g.ko.xz"), "xz, 1 GiB"),
            (
                dir.join("zstd-4g-sized.ko.zst"),
                "zstd, 4 GiB, size declared",
            ),
            (dir.join("zstd-4g-unsized.ko.zst"), "zstd, 4 GiB, no size"),
            (dir.join("gzip-1g.ko.gz"), "gzip, 1 GiB"),
        ];
        xz_bomb(&bombs[0].0);
        zstd_bomb(&bombs[1].0, true);
        zstd_bomb(&bombs[2].0, false);
        gzip_bomb(&bombs[3].0);
        bombs
    })
}

/// Runs `tool` with `args` under the 1 GB address-space limit.
fn run_limited(tool: &str, args: &[&std::ffi::OsStr]) -> (Output, Duration) {
    let mut cmd = Command::new(ours(tool));
    cmd.args(args).env("LC_ALL", "C");
    // SAFETY: setrlimit is async-signal-safe and touches nothing of the parent's.
    unsafe {
        cmd.pre_exec(|| {
            let limit = nix::libc::rlimit {
                rlim_cur: ADDRESS_SPACE,
                rlim_max: ADDRESS_SPACE,
            };
            if nix::libc::setrlimit(nix::libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let out = cmd.output().unwrap();
    (out, start.elapsed())
}

fn assert_no_abort(what: &str, out: &Output) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        None,
        "{what}: killed by a signal\n{}",
        text(&out.stderr)
    );
    assert!(
        !text(&out.stderr).contains("memory allocation of"),
        "{what}: {}",
        text(&out.stderr)
    );
}

#[test]
fn modinfo_refuses_bombs_in_one_line() {
    for (path, what) in bombs() {
        let (out, took) = run_limited("modinfo", &[path.as_os_str()]);
        assert_no_abort(what, &out);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
        assert!(
            stderr.starts_with("modinfo: ERROR: could not get modinfo from '")
                && stderr.contains(&*path.to_string_lossy())
                && stderr.contains(": Cannot allocate memory"),
            "{what}: {stderr}"
        );
        assert!(took < PATIENCE, "{what}: took {took:?}");
    }
}

#[test]
fn depmod_skips_bombs_in_one_line() {
    for (i, (path, what)) in bombs().iter().enumerate() {
        let fixture = Fixture::new(&format!("bomb{i}"));
        fixture
            .module("kernel/ok.ko", &Module::new("ok").export("fine"))
            .file("modules.order", "kernel/ok.ko\n");
        let name = path.file_name().unwrap().to_str().unwrap();
        std::fs::copy(path, fixture.dir().join("kernel").join(name)).unwrap();
        let root = fixture.root.as_os_str();
        let (out, took) = run_limited("depmod", &["-b".as_ref(), root, KVER.as_ref()]);
        assert_no_abort(what, &out);
        // Like kmod: the module is skipped with one error, the run goes on and succeeds.
        assert_eq!(out.status.code(), Some(0), "{what}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
        let expected = format!(
            "depmod: ERROR: failed to load symbols from {}: Cannot allocate memory",
            fixture.dir().join("kernel").join(name).display()
        );
        assert_eq!(errors, [expected.as_str()], "{what}");
        let symbols = std::fs::read_to_string(fixture.dir().join("modules.symbols")).unwrap();
        assert!(
            symbols.contains("alias symbol:fine ok"),
            "{what}: {symbols}"
        );
        assert!(took < PATIENCE, "{what}: took {took:?}");
    }
}

/// A module of 300 MiB once decompressed (a zero-filled section, like debug info):
/// far below the ceiling, it must work as any other, with no address-space limit.
#[test]
fn large_real_module_still_works() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("large-module-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let module = Module::new("large")
        .modinfo("license", "GPL")
        .modinfo("description", "Large debug build")
        .section(".debug_info", &vec![0u8; 300 * MIB as usize]);
    let elf = module.build();
    // Fast presets: the size matters here, not the ratio. Both record the decompressed
    // size (the .xz index, the zstd frame header), as the kernel's build does.
    let xz = {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 0);
        e.write_all(&elf).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::bulk::compress(&elf, 1).unwrap();
    for (compression, data) in [(Compression::Xz, xz), (Compression::Zstd, zst)] {
        let path = dir.join(format!("large{}", compression.extension()));
        std::fs::write(&path, data).unwrap();
        let out = Command::new(ours("modinfo"))
            .arg(&path)
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{compression:?}: {}",
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("description:    Large debug build\n")
                && stdout.contains("license:        GPL\n"),
            "{compression:?}: {stdout}"
        );
        std::fs::remove_file(&path).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Configuration and index-side files larger than the address space (sparse, so the
/// test writes nothing): every tool reads them with fallible allocation and goes on
/// or fails in words, never aborts.
#[test]
fn huge_text_files_never_abort() {
    let fixture = Fixture::new("huge-text");
    fixture.module("kernel/ok.ko", &Module::new("ok").export("fine"));
    let sparse = |path: &Path| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = std::fs::File::create(path).unwrap();
        file.set_len(3 << 30).unwrap();
    };
    let conf = fixture.root.join("modprobe.d/huge.conf");
    sparse(&conf);
    sparse(&fixture.root.join("depmod.d/huge.conf"));
    sparse(&fixture.dir().join("modules.builtin.modinfo"));
    sparse(&fixture.dir().join("modules.order"));
    let root = fixture.root.as_os_str();
    let depmod_conf = fixture.root.join("depmod.d");
    let (out, took) = run_limited(
        "depmod",
        &[
            "-b".as_ref(),
            root,
            "-C".as_ref(),
            depmod_conf.as_os_str(),
            KVER.as_ref(),
        ],
    );
    assert_no_abort("depmod", &out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(took < PATIENCE, "depmod took {took:?}");
    let modprobe_args: Vec<&std::ffi::OsStr> = vec![
        "-C".as_ref(),
        conf.parent().unwrap().as_os_str(),
        "-d".as_ref(),
        root,
        "-S".as_ref(),
        KVER.as_ref(),
        "--show-depends".as_ref(),
        "ok".as_ref(),
    ];
    let (out, _) = run_limited("modprobe", &modprobe_args);
    assert_no_abort("modprobe", &out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (out, _) = run_limited(
        "modinfo",
        &[
            "-b".as_ref(),
            root,
            "-k".as_ref(),
            KVER.as_ref(),
            "no_such_builtin".as_ref(),
        ],
    );
    assert_no_abort("modinfo", &out);
    assert_eq!(out.status.code(), Some(1));
}
