//! What each fuzz target does with one input: the cargo-fuzz targets in
//! `fuzz/fuzz_targets/` call these, and `tests/fuzz_regressions.rs` replays every saved
//! input through them under plain `cargo test` (feature `test-util`).
//!
//! An entry returns normally for any input; a panic, abort or failed assertion is a
//! finding.

use std::path::Path;

use crate::config::ModprobeConfig;
use crate::depmod::parse_config;
use crate::diag::Sink;
use crate::elf::ModuleElf;
use crate::index::Index;
use crate::module::ModuleFile;
use crate::signature::{self, hex_wrapped};
use crate::signing::keys::{read_certificates, PrivateKey};
use crate::signing::{pkcs7, verify};

/// What a target does with one input.
pub type Entry = fn(&[u8]);

/// Every target: its name (the directory of its corpus and regressions) and entry.
pub const TARGETS: &[(&str, Entry)] = &[
    ("module", module),
    ("index", index),
    ("modprobe_config", modprobe_config),
    ("cmdline", cmdline),
    ("depmod_config", depmod_config),
    ("depmod_cache", depmod_cache),
    ("signature", signature),
    ("key_files", key_files),
    ("kernel_image", kernel_image),
];

/// Decompression ceiling for fuzzing: small, so that the limit paths are reached
/// instead of the fuzzer's memory limit.
pub const LIMIT: u64 = 8 << 20;

/// A module file (any compression, either ELF class and byte order, signed or not)
/// through every reader modinfo, depmod and insmod use.
pub fn module(data: &[u8]) {
    let Ok(file) = ModuleFile::from_bytes(Path::new("fuzz.ko"), data.to_vec(), LIMIT) else {
        return;
    };
    assert!(file.data().len() as u64 <= LIMIT.max(data.len() as u64));
    if let Some(sig) = file.signature() {
        let _ = hex_wrapped(sig.key_id);
        let _ = hex_wrapped(sig.signature);
    }
    let Ok(elf) = file.elf() else {
        return;
    };
    let _ = elf.modinfo();
    let _ = elf.versions();
    let _ = elf.exported_symbols();
    let _ = elf.dependency_symbols();
    let _ = elf.has_symbol_table();
    // The stripped copies change a flag or blank a string, nothing else: they are
    // the same size and still parse.
    for image in [elf.strip_modversions(), elf.strip_vermagic()]
        .into_iter()
        .flatten()
    {
        assert_eq!(image.len(), file.data().len());
        assert!(ModuleElf::parse(&image).is_ok());
    }
}

/// Keys every index is also searched for, beside the keys it holds.
const KEYS: &[&[u8]] = &[
    b"",
    b"a",
    b"snd_hda_intel",
    b"pci:v00008086d00001234sv00000000sd00000000bc02sc00i00",
    b"symbol:printk",
    b"*",
    b"[a-z]?*\\",
];

/// An index file (modules.*.bin) through exact, wildcard and full-dump lookups.
pub fn index(data: &[u8]) {
    let Ok(index) = Index::from_bytes(data.to_vec()) else {
        return;
    };
    // A few distinct keys the file holds (a mutated node may repeat one many times).
    let mut keys: Vec<Vec<u8>> = Vec::new();
    index.for_each(|key, _| {
        if keys.len() < 8 && !keys.iter().any(|k| k == key) {
            keys.push(key.to_vec());
        }
    });
    for key in keys.iter().map(Vec::as_slice).chain(KEYS.iter().copied()) {
        let _ = index.lookup(key);
        let _ = index.lookup_all(key);
    }
    // Wildcard searches cost the most: the fixed queries and two keys of the file.
    for key in KEYS
        .iter()
        .copied()
        .chain(keys.iter().take(2).map(Vec::as_slice))
    {
        let _ = index.search_wildcard(key);
    }
}

/// A modprobe.d file.
pub fn modprobe_config(data: &[u8]) {
    let mut config = ModprobeConfig::default();
    config.parse(data, b"fuzz.conf", &Sink::silent());
    let _ = config.dump();
}

/// A kernel command line (/proc/cmdline).
pub fn cmdline(data: &[u8]) {
    let mut config = ModprobeConfig::default();
    config.parse_cmdline(data, &Sink::silent());
    let _ = config.dump();
}

/// A depmod.d file (its messages are made, then not shown).
pub fn depmod_config(data: &[u8]) {
    let _ = parse_config(data, b"6.12.0-fuzz", &Sink::silent());
}

/// depmod's module cache (modules.cache): decoded completely, checksum last.
pub fn depmod_cache(data: &[u8]) {
    if let Ok(cache) = crate::depmod::cache::Cache::parse(data) {
        assert!(cache.len() <= data.len());
    }
}

/// A module's appended signature: the trailer, the PKCS#7 message, and verification
/// against a certificate taken from the same input (a signer found in the message
/// then meets a key of any shape).
pub fn signature(data: &[u8]) {
    if let Ok(Some(appended)) = signature::split_appended(data) {
        assert!(appended.content.len() + appended.signature.len() <= data.len());
        let _ = appended.check_pkcs7_info();
    }
    let _ = pkcs7::parse(data);
    let trusted = read_certificates(data).unwrap_or_default();
    let report = verify::verify(data, &trusted);
    if report.verdict == verify::Verdict::Valid {
        assert!(report.signer.is_some());
    }
}

/// Certificate and private key files: PEM (any blocks) or DER, one or several.
pub fn key_files(data: &[u8]) {
    if let Ok(certs) = read_certificates(data) {
        for cert in &certs {
            let _ = cert.subject_name();
            let _ = cert.public_key().description();
        }
    }
    // Keys are parsed, not used: signing with a key of any size is slow, not unsafe.
    if let Ok(key) = PrivateKey::from_pem(data) {
        let _ = key.public_key().description();
    }
}

/// A kernel image, for its built-in certificate list.
pub fn kernel_image(data: &[u8]) {
    let _ = crate::signing::kernel_image::builtin_certificates(data);
}
