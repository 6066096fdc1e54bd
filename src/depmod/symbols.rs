//! The symbol table: who exports what, and with which CRC. Also kmod's hash
//! function, whose bucket order decides the order of `modules.symbols` and of
//! modules missing from `modules.order`.

use std::collections::HashMap;
use std::path::Path;

use nix::errno::Errno;

use crate::compat::{fgets_lines, strerror, strtoul, until_nul};
use crate::diag::{Priority, Sink};
use crate::msgf;

/// Paul Hsieh's SuperFastHash as kmod computes it: 16-bit little-endian reads, and
/// `char` (signed on x86) where single bytes are added.
pub(super) fn superfast_hash(key: &[u8]) -> u32 {
    let read16 = |b: &[u8]| u32::from(b[0]) | u32::from(b[1]) << 8;
    let signed = |b: u8| b as i8 as i32 as u32;
    let mut hash = key.len() as u32;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        hash = hash.wrapping_add(read16(c));
        let tmp = (read16(&c[2..]) << 11) ^ hash;
        hash = (hash << 16) ^ tmp;
        hash = hash.wrapping_add(hash >> 11);
    }
    let rest = chunks.remainder();
    match rest.len() {
        3 => {
            hash = hash.wrapping_add(read16(rest));
            hash ^= hash << 16;
            hash ^= signed(rest[2]) << 18;
            hash = hash.wrapping_add(hash >> 11);
        }
        2 => {
            hash = hash.wrapping_add(read16(rest));
            hash ^= hash << 11;
            hash = hash.wrapping_add(hash >> 17);
        }
        1 => {
            hash = hash.wrapping_add(signed(rest[0]));
            hash ^= hash << 10;
            hash = hash.wrapping_add(hash >> 1);
        }
        _ => {}
    }
    hash ^= hash << 3;
    hash = hash.wrapping_add(hash >> 5);
    hash ^= hash << 4;
    hash = hash.wrapping_add(hash >> 17);
    hash ^= hash << 25;
    hash = hash.wrapping_add(hash >> 6);
    hash
}

/// The bucket of `key` in one of kmod's hash tables of `buckets` (a power of two).
pub(super) fn bucket(key: &[u8], buckets: u32) -> u32 {
    superfast_hash(key) & (buckets - 1)
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Symbol {
    /// The exporting module (array index); none for kernel symbols from -E/-F.
    pub owner: Option<u32>,
    pub crc: u64,
}

pub(super) struct Symbols {
    map: HashMap<Vec<u8>, Symbol>,
    prefix: Option<u8>,
}

impl Symbols {
    pub fn new(prefix: Option<u8>) -> Symbols {
        Symbols {
            map: HashMap::new(),
            prefix,
        }
    }

    /// Room for `n` more symbols, so that adding them does not grow the table step
    /// by step (each step leaves the old table behind as free memory).
    pub fn reserve(&mut self, n: usize) {
        self.map.reserve(n);
    }

    /// Adds or replaces a symbol: of several exporters, the last one added wins.
    pub fn add(&mut self, name: &[u8], prefix_skipped: bool, crc: u64, owner: Option<u32>) {
        let name = match (prefix_skipped, self.prefix, name.split_first()) {
            (false, Some(p), Some((&first, rest))) if first == p => rest,
            _ => name,
        };
        self.map.insert(name.to_vec(), Symbol { owner, crc });
    }

    /// Looks up a needed symbol, ignoring a leading `.` (PPC64) and the prefix.
    pub fn find(&self, name: &[u8]) -> Option<(&[u8], Symbol)> {
        let name = name.strip_prefix(b".").unwrap_or(name);
        let name = match (self.prefix, name.split_first()) {
            (Some(p), Some((&first, rest))) if first == p => rest,
            _ => name,
        };
        self.map.get_key_value(name).map(|(k, s)| (&k[..], *s))
    }

    /// Symbols that belong to a module, in kmod's hash-table order (2048 buckets).
    pub fn owned(&self) -> Vec<(&[u8], u32)> {
        let mut out: Vec<(u32, &[u8], u32)> = self
            .map
            .iter()
            .filter_map(|(k, s)| Some((bucket(k, 2048), &k[..], s.owner?)))
            .collect();
        out.sort_unstable();
        out.into_iter().map(|(_, k, o)| (k, o)).collect()
    }

    /// Symbols the kernel provides without any file saying so; added after -E/-F.
    fn add_fake_symbols(&mut self) {
        self.add(b"__this_module", true, 0, None);
        self.add(b"_GLOBAL_OFFSET_TABLE_", true, 0, None);
        if self.find(b"TOC.").is_none() {
            self.add(b"TOC.", true, 0, None);
        }
    }

    /// Module.symvers lines `crc symbol vmlinux ...`: only the kernel's own symbols.
    pub fn load_symvers(&mut self, path: &Path, log: &Sink) -> std::io::Result<()> {
        let data = crate::limits::read_whole(path)?;
        // kmod appends errno to the message for a bad CRC, which at that point still
        // holds ENOENT from setting up, or ERANGE after an overflowing CRC.
        let mut errno = Errno::ENOENT;
        for (lineno, chunk) in fgets_lines(&data, 10240).enumerate() {
            let mut fields = until_nul(chunk)
                .split(|&b| b == b' ' || b == b'\t')
                .filter(|f| !f.is_empty());
            let (Some(crc), Some(name), Some(place)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if place != b"vmlinux" {
                continue;
            }
            match parse_hex(crc) {
                Some((value, overflow)) => {
                    if overflow {
                        errno = Errno::ERANGE;
                    }
                    self.add(name, false, value, None);
                }
                None => log.log_bytes(
                    Priority::Error,
                    msgf!(
                        "{}:{} Invalid symbol version {}: {}",
                        path,
                        lineno + 1,
                        crc,
                        strerror(errno)
                    ),
                ),
            }
        }
        self.add_fake_symbols();
        Ok(())
    }

    /// System.map lines `address type name`: the `__ksymtab_` entries.
    pub fn load_system_map(&mut self, path: &Path, log: &Sink) -> std::io::Result<()> {
        let data = crate::limits::read_whole(path)?;
        for (lineno, chunk) in fgets_lines(&data, 10240).enumerate() {
            let line = until_nul(chunk);
            let third = line.iter().position(|&b| b == b' ').and_then(|a| {
                let b = line[a + 1..].iter().position(|&b| b == b' ')?;
                Some(a + 1 + b + 1)
            });
            let Some(start) = third else {
                log.log_bytes(
                    Priority::Error,
                    msgf!("{}:{}: invalid line: {}", path, lineno + 1, line),
                );
                continue;
            };
            let mut name = &line[start..];
            if let (Some(p), Some((&first, rest))) = (self.prefix, name.split_first()) {
                if first == p {
                    name = rest;
                }
            }
            let Some(name) = name.strip_prefix(b"__ksymtab_") else {
                continue;
            };
            let end = name.iter().position(|&b| b == b'\n').unwrap_or(name.len());
            self.add(&name[..end], true, 0, None);
        }
        self.add_fake_symbols();
        Ok(())
    }
}

/// strtoull(s, &end, 16) that must consume all of `s`: the value, and whether it
/// overflowed. None when characters are left over (or there were no digits, when
/// strtoull consumes nothing).
fn parse_hex(s: &[u8]) -> Option<(u64, bool)> {
    strtoul(s, 16)
        .filter(|n| n.end == s.len())
        .map(|n| (n.value, n.overflow))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_test_vectors() {
        for (key, hash) in [
            ("", 0x0),
            ("a", 0x115ea782),
            ("ab", 0x516b8b44),
            ("abc", 0xd2be198a),
            ("abcd", 0xdad8b8db),
            ("mod_foo", 0x37c043cb),
            ("mod_foo_a", 0x2fc11ab6),
            ("print_fooA", 0x49e9abb5),
            ("snd_hda_intel", 0x6e4028a1),
        ] {
            assert_eq!(superfast_hash(key.as_bytes()), hash, "{key}");
        }
        assert_eq!(bucket(b"mod_foo_b", 512), 6);
        assert_eq!(bucket(b"print_fooB", 2048), 1896);
    }

    #[test]
    fn hex_versions() {
        assert_eq!(parse_hex(b"0x1f"), Some((0x1f, false)));
        assert_eq!(parse_hex(b"1F"), Some((0x1f, false)));
        assert_eq!(parse_hex(b"0x"), None);
        assert_eq!(parse_hex(b"zz"), None);
        assert_eq!(parse_hex(b"12g"), None);
        assert_eq!(parse_hex(b"0xffffffffffffffffff"), Some((u64::MAX, true)));
        assert_eq!(parse_hex(b"-1"), Some((u64::MAX, false)));
    }

    #[test]
    fn last_exporter_wins_and_prefixes_are_ignored() {
        let mut s = Symbols::new(Some(b'_'));
        s.add(b"_foo", false, 1, Some(0));
        s.add(b"foo", false, 2, Some(3));
        let found = s.find(b"._foo").map(|(k, s)| (k.to_vec(), s.owner));
        assert_eq!(found, Some((b"foo".to_vec(), Some(3))));
        assert_eq!(s.owned(), vec![(&b"foo"[..], 3)]);
        let mut s = Symbols::new(None);
        s.add_fake_symbols();
        assert!(s
            .find(b"__this_module")
            .is_some_and(|(_, s)| s.owner.is_none()));
        assert!(s.owned().is_empty());
    }
}
