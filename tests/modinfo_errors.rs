//! modinfo on broken input: never a panic; a one-line error naming the file and the
//! cause; kmod's stdout and exit code.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use common::{ours, reference, run, Tree};

/// dummy.ko from the trixie tree, decompressed: a real, signed module.
fn real_module() -> Vec<u8> {
    let tree = Tree::get("trixie-amd64");
    let path = tree
        .module_dir(&tree.pristine)
        .join("kernel/drivers/net/dummy.ko.xz");
    let mut out = Vec::new();
    liblzma::read::XzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Offset of the section header named `name` in a little-endian ELF64 image.
fn section_header(data: &[u8], name: &str) -> usize {
    let u16_at = |o: usize| u16::from_le_bytes(data[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap()) as usize;
    let (shoff, shnum, shstrndx) = (u64_at(0x28), u16_at(0x3C), u16_at(0x3E));
    let strtab = u64_at(shoff + shstrndx * 64 + 0x18);
    (0..shnum)
        .map(|i| shoff + i * 64)
        .find(|&sh| {
            let start = strtab + u32_at(sh);
            let end = start + data[start..].iter().position(|&b| b == 0).unwrap();
            &data[start..end] == name.as_bytes()
        })
        .unwrap_or_else(|| panic!("no section {name}"))
}

fn patched(data: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    out[at..at + bytes.len()].copy_from_slice(bytes);
    out
}

fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let ko = real_module();
    let modinfo = section_header(&ko, ".modinfo");
    let compressed_xz = xz(&ko);
    let compressed_zst = zstd::encode_all(&ko[..], 3).unwrap();
    let mut corrupt_xz = compressed_xz.clone();
    let mid = corrupt_xz.len() / 2;
    corrupt_xz[mid..mid + 64].fill(0x55);
    vec![
        (
            "truncated.ko.xz",
            compressed_xz[..compressed_xz.len() / 3].to_vec(),
        ),
        ("corrupt.ko.xz", corrupt_xz),
        (
            "truncated.ko.zst",
            compressed_zst[..compressed_zst.len() / 3].to_vec(),
        ),
        (
            "garbage-after-magic.ko.zst",
            [&compressed_zst[..4], &[0xff; 64][..]].concat(),
        ),
        ("not-elf.ko", b"this is not a kernel module\n".to_vec()),
        ("tiny.ko", b"\x7fELF".to_vec()),
        ("empty.ko", Vec::new()),
        ("headers-only.ko", ko[..64].to_vec()),
        ("truncated-elf.ko", ko[..ko.len() / 2].to_vec()),
        // e_shoff far beyond the end of the file.
        (
            "shoff-beyond.ko",
            patched(&ko, 0x28, &u64::MAX.to_le_bytes()),
        ),
        // .modinfo's offset beyond the end: the section counts as absent.
        (
            "modinfo-beyond.ko",
            patched(&ko, modinfo + 0x18, &0x7fff_ffffu64.to_le_bytes()),
        ),
        // Bad section header entry size and a bad ELF class.
        ("bad-shentsize.ko", patched(&ko, 0x3A, &[0x20, 0])),
        ("bad-class.ko", patched(&ko, 4, &[7])),
    ]
}

fn write_cases(dir: &Path) -> Vec<PathBuf> {
    cases()
        .into_iter()
        .map(|(name, data)| {
            let path = dir.join(name);
            std::fs::write(&path, data).unwrap();
            path
        })
        .collect()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn broken_modules_fail_cleanly_like_kmod() {
    let dir = temp_dir("modinfo-errors");
    for path in write_cases(&dir) {
        let a = run(&ours("modinfo"), [&path]);
        let b = run(&reference("modinfo"), [&path]);
        let stderr = String::from_utf8_lossy(&a.stderr);
        assert_eq!(a.status.code(), Some(1), "{}: {stderr}", path.display());
        assert_eq!(
            a.stdout,
            b.stdout,
            "{}: stdout differs from kmod",
            path.display()
        );
        assert_eq!(a.status.code(), b.status.code(), "{}", path.display());
        assert_eq!(
            stderr.lines().count(),
            1,
            "{}: not one line: {stderr}",
            path.display()
        );
        assert!(
            stderr.starts_with("modinfo: ERROR: could not get modinfo from '"),
            "{stderr}"
        );
        assert!(
            stderr.contains(&*path.to_string_lossy()),
            "error does not name the file: {stderr}"
        );
    }
}

#[test]
fn broken_gzip_module_fails_cleanly() {
    // Reference kmod on Debian is built without zlib, so there is nothing to compare:
    // the error must still be one clean line.
    let dir = temp_dir("modinfo-gzip");
    let gz = gzip(&real_module());
    for (name, data) in [
        ("truncated.ko.gz", &gz[..gz.len() / 2]),
        ("header-only.ko.gz", &gz[..10]),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        let a = run(&ours("modinfo"), [&path]);
        let stderr = String::from_utf8_lossy(&a.stderr);
        assert_eq!(a.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("gzip") && stderr.contains(&*path.to_string_lossy()),
            "{stderr}"
        );
    }
    let good = dir.join("good.ko.gz");
    std::fs::write(&good, &gz).unwrap();
    let a = run(
        &ours("modinfo"),
        ["-F", "name"].iter().map(Path::new).chain([good.as_path()]),
    );
    assert_eq!(String::from_utf8_lossy(&a.stdout), "dummy\n");
}

#[test]
fn empty_modinfo_section_is_an_error() {
    // kmod prints the filename and signature and exits 0 for an empty .modinfo. The
    // kernel refuses such a module, so we treat it like a missing section (where kmod
    // also prints the filename, then fails): one error line naming the file, exit 1.
    let dir = temp_dir("modinfo-empty");
    let ko = real_module();
    let sh = section_header(&ko, ".modinfo");
    let path = dir.join("empty-modinfo.ko");
    std::fs::write(&path, patched(&ko, sh + 0x20, &0u64.to_le_bytes())).unwrap();
    let a = run(&ours("modinfo"), [&path]);
    assert_eq!(a.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&a.stdout),
        format!("filename:       {}\n", path.display())
    );
    assert_eq!(
        String::from_utf8_lossy(&a.stderr),
        format!(
            "modinfo: ERROR: could not get modinfo from 'empty_modinfo': {}: No data available (empty .modinfo section)\n",
            path.display()
        )
    );
    let b = run(&reference("modinfo"), [&path]);
    assert_eq!(b.status.code(), Some(0), "kmod's behaviour changed");
}

#[test]
fn mutated_modules_never_panic() {
    // In-process: thousands of truncations and byte flips through every reader.
    let ko = real_module();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut inputs: Vec<Vec<u8>> = (0..ko.len())
        .step_by(97)
        .map(|n| ko[..n].to_vec())
        .collect();
    for _ in 0..3000 {
        let mut m = ko.clone();
        for _ in 0..8 {
            let at = (next() as usize) % m.len();
            m[at] = next() as u8;
        }
        inputs.push(m);
    }
    // Flips concentrated in the headers and the signature trailer.
    for _ in 0..3000 {
        let mut m = ko.clone();
        let at = if next() % 2 == 0 {
            (next() as usize) % 64
        } else {
            m.len() - 1 - (next() as usize) % 800
        };
        m[at] = next() as u8;
        inputs.push(m);
    }
    for data in inputs {
        let Ok(file) = kmod_rs::module::ModuleFile::from_bytes(
            Path::new("m.ko"),
            data,
            kmod_rs::limits::MODULE_SIZE_LIMIT,
        ) else {
            continue;
        };
        let _ = file.signature();
        if let Ok(elf) = file.elf() {
            let _ = elf.modinfo();
            let _ = elf.versions();
            let _ = elf.exported_symbols();
            let _ = elf.dependency_symbols();
            let _ = elf.strip_modversions();
            let _ = elf.strip_vermagic();
        }
    }
}
