//! The files depmod writes: generated in memory, in kmod's order (which is also
//! the order of the messages generating them prints), then published together.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

use nix::errno::Errno;

use crate::index::IndexBuilder;

use super::{as_path, io_errno, modname, strerror, Failure, Log, Prio, Show, Tree};

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub name: &'static str,
    pub data: Vec<u8>,
}

/// Splits `data` the way repeated `fgets(buf, size, fp)` calls read it: each piece
/// ends after a newline or once `size - 1` bytes were read.
pub(super) fn fgets_lines(data: &[u8], size: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let limit = rest.len().min(size - 1);
        let end = rest[..limit]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(limit, |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        Some(line)
    })
}

/// What C string functions see of a buffer: everything before the first NUL.
pub(super) fn c_str(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())]
}

/// Reads `<dir>/<name>`; when that fails, warns as kmod does and returns None.
pub(super) fn read_at(dir: &[u8], name: &str, log: &Log) -> Option<Vec<u8>> {
    if let Err(e) = File::open(as_path(dir)) {
        log.log(
            Prio::Warning,
            format_args!(
                "could not open directory {}: {}",
                Show(dir),
                strerror(io_errno(&e))
            ),
        );
        return None;
    }
    let mut path = dir.to_vec();
    path.push(b'/');
    path.extend_from_slice(name.as_bytes());
    match std::fs::read(as_path(&path)) {
        Ok(data) => Some(data),
        Err(e) => {
            log.log(
                Prio::Warning,
                format_args!(
                    "could not open {name} at {}: {}",
                    Show(dir),
                    strerror(io_errno(&e))
                ),
            );
            None
        }
    }
}

/// libkmod's alias normalisation on bytes: `-` → `_` outside brackets; None for an
/// unmatched bracket. Like kmod, at most PATH_MAX - 1 bytes are looked at.
fn alias_normalize(alias: &[u8]) -> Option<Vec<u8>> {
    const LIMIT: usize = 4095;
    let mut out = Vec::with_capacity(alias.len());
    let mut i = 0;
    while i < LIMIT && i < alias.len() {
        match alias[i] {
            b'-' => out.push(b'_'),
            b']' => return None,
            b'[' => {
                let close = alias[i..].iter().position(|&b| b == b']')?;
                out.extend_from_slice(&alias[i..=i + close]);
                i += close;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

/// A key or value for an index: only 7-bit ASCII is allowed, anything else is FATAL.
fn ascii(s: &[u8]) -> Result<&str, Failure> {
    match std::str::from_utf8(s) {
        Ok(text) if text.is_ascii() => Ok(text),
        _ => {
            let bad = s.iter().copied().find(|&b| b >= 0x80).unwrap_or_default();
            let mut msg = b"Module index: bad character '".to_vec();
            msg.push(bad);
            msg.extend_from_slice(
                format!("'=0x{bad:x} - only 7-bit ASCII is supported:\n").as_bytes(),
            );
            msg.extend_from_slice(s);
            Err(Failure::Fatal(msg))
        }
    }
}

/// An index being filled, with kmod's duplicate warnings.
struct Index<'a> {
    name: &'static str,
    builder: IndexBuilder,
    log: &'a Log,
    /// `-w`: the heading of the duplicate warning, or None to stay quiet.
    duplicates: Option<&'static str>,
}

impl<'a> Index<'a> {
    fn new(name: &'static str, log: &'a Log, duplicates: Option<&'static str>) -> Index<'a> {
        Index {
            name,
            builder: IndexBuilder::new(),
            log,
            duplicates,
        }
    }

    /// Inserts a value; `shown` is what a duplicate warning prints.
    fn insert(
        &mut self,
        key: &[u8],
        value: &[u8],
        priority: u32,
        shown: &[u8],
    ) -> Result<(), Failure> {
        let (key, value) = (ascii(key)?, ascii(value)?);
        if self
            .builder
            .insert(key.as_bytes(), value.as_bytes(), priority)
        {
            if let Some(heading) = self.duplicates {
                let mut msg = format!("duplicate module {heading}:\n").into_bytes();
                msg.extend_from_slice(shown);
                self.log.bytes(Prio::Warning, &msg);
            }
        }
        Ok(())
    }

    /// The index file; an index too large for the format's offsets is an error.
    fn finish(self) -> Result<Vec<u8>, Failure> {
        let mut out = Vec::new();
        self.builder.write_to(&mut out).map_err(|e| {
            self.log.log(
                Prio::Error,
                format_args!("Could not write index '{}': {e}", self.name),
            );
            Failure::Reported
        })?;
        Ok(out)
    }
}

/// A reader that behaves like stdio's getc/feof, for kmod's byte-wise parser of
/// modules.builtin.modinfo.
struct Stream<'a> {
    data: &'a [u8],
    pos: usize,
    eof: bool,
}

impl Stream<'_> {
    fn getc(&mut self) -> Option<u8> {
        let c = self.data.get(self.pos).copied();
        match c {
            Some(_) => self.pos += 1,
            None => self.eof = true,
        }
        c
    }

    /// Reads up to `end`, a NUL or the end of the data, keeping at most `max`
    /// bytes. Returns the bytes only if `end` itself was reached, as kmod's
    /// parser counts anything else as empty.
    fn read_to(&mut self, end: u8, max: usize, log: &Log) -> Vec<u8> {
        let mut out = Vec::new();
        let mut c = self.getc();
        while let Some(b) = c {
            if b == end || b == 0 || out.len() >= max {
                break;
            }
            out.push(b);
            c = self.getc();
        }
        if out.len() == max {
            let mut msg = format!(
                "Could not flush stream: {}. Partial content: ",
                Errno::ENOSPC as i32
            )
            .into_bytes();
            msg.extend_from_slice(&out);
            log.bytes(Prio::Warning, &msg);
            out.pop();
        }
        if c == Some(end) {
            out
        } else {
            Vec::new()
        }
    }

    fn skip_to(&mut self, end: u8) {
        while let Some(c) = self.getc() {
            if c == end || c == 0 {
                break;
            }
        }
    }
}

/// sscanf(s, "<prefix>%u-%u"): both numbers with strtoul's rules, truncated to 32 bits.
fn scan_major_minor(s: &[u8], prefix: &[u8]) -> Option<(u32, u32)> {
    let rest = s.strip_prefix(prefix)?;
    let (major, rest) = scan_unsigned(rest)?;
    let (minor, _) = scan_unsigned(rest.strip_prefix(b"-")?)?;
    Some((major, minor))
}

fn scan_unsigned(s: &[u8]) -> Option<(u32, &[u8])> {
    let (i, negative) = super::number_start(s);
    let digits = s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let value = s[i..i + digits].iter().try_fold(0u64, |v, &b| {
        v.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    });
    let value = match value {
        None => u64::MAX,
        Some(v) if negative => v.wrapping_neg(),
        Some(v) => v,
    };
    Some((value as u32, &s[i + digits..]))
}

impl Tree {
    /// Generates the files in kmod's order. A dry run (`-n`) makes only the text
    /// files, as kmod's index generators do nothing when writing to stdout.
    pub fn render(&self, log: &Log, dry_run: bool) -> Result<Vec<OutputFile>, Failure> {
        let lines = self.dep_lines();
        let mut files = Vec::with_capacity(11);
        let mut add = |name, data| files.push(OutputFile { name, data });

        add(
            "modules.dep",
            lines
                .iter()
                .flat_map(|l| l.iter().chain(b"\n"))
                .copied()
                .collect(),
        );
        if !dry_run {
            add("modules.dep.bin", self.deps_bin(&lines, log)?);
        }
        add("modules.alias", self.aliases());
        if !dry_run {
            add("modules.alias.bin", self.aliases_bin(log)?);
        }
        add(
            "modules.softdep",
            self.modinfo_text(
                b"# Soft dependencies extracted from modules themselves.\n",
                b"softdep",
                |m| &m.softdeps,
            ),
        );
        add(
            "modules.weakdep",
            self.modinfo_text(
                b"# Weak dependencies extracted from modules themselves.\n",
                b"weakdep",
                |m| &m.weakdeps,
            ),
        );
        add("modules.symbols", self.symbols_text());
        if !dry_run {
            add("modules.symbols.bin", self.symbols_bin(log)?);
            add("modules.builtin.bin", self.builtin_bin(log)?);
            add("modules.builtin.alias.bin", self.builtin_alias_bin(log)?);
        }
        add("modules.devname", self.devname(log));
        Ok(files)
    }

    /// Each module's modules.dep line without its newline: `path: dep dep ...`.
    fn dep_lines(&self) -> Vec<Vec<u8>> {
        let mut seen = vec![0u32; self.modules.len()];
        (0..self.modules.len())
            .map(|i| {
                let mut line = self.modules[i].shown_path().to_vec();
                line.push(b':');
                for d in self.closure(i, &mut seen, i as u32 + 1) {
                    line.push(b' ');
                    line.extend_from_slice(self.modules[d as usize].shown_path());
                }
                line
            })
            .collect()
    }

    fn duplicates(&self, heading: &'static str) -> Option<&'static str> {
        self.settings.warn_dups.then_some(heading)
    }

    fn deps_bin(&self, lines: &[Vec<u8>], log: &Log) -> Result<Vec<u8>, Failure> {
        let mut index = Index::new("modules.dep.bin", log, self.duplicates("deps"));
        for (i, (m, line)) in self.modules.iter().zip(lines).enumerate() {
            index.insert(m.name(), line, i as u32, line)?;
        }
        index.finish()
    }

    fn aliases(&self) -> Vec<u8> {
        let mut out = b"# Aliases extracted from modules themselves.\n".to_vec();
        for m in &self.modules {
            for alias in &m.aliases {
                out.extend_from_slice(b"alias ");
                out.extend_from_slice(alias);
                out.push(b' ');
                out.extend_from_slice(m.name());
                out.push(b'\n');
            }
        }
        out
    }

    fn aliases_bin(&self, log: &Log) -> Result<Vec<u8>, Failure> {
        let mut index = Index::new("modules.alias.bin", log, self.duplicates("alias"));
        for (i, m) in self.modules.iter().enumerate() {
            for alias in &m.aliases {
                let Some(key) = alias_normalize(alias) else {
                    log.log(
                        Prio::Warning,
                        format_args!("Unmatched bracket in {}", Show(alias)),
                    );
                    continue;
                };
                let shown = [&key[..], b" ", m.name()].concat();
                index.insert(&key, m.name(), i as u32, &shown)?;
            }
        }
        index.finish()
    }

    fn modinfo_text(
        &self,
        header: &[u8],
        word: &[u8],
        values: impl Fn(&super::Module) -> &Vec<Vec<u8>>,
    ) -> Vec<u8> {
        let mut out = header.to_vec();
        for m in &self.modules {
            for value in values(m) {
                out.extend_from_slice(word);
                out.push(b' ');
                out.extend_from_slice(m.name());
                out.push(b' ');
                out.extend_from_slice(value);
                out.push(b'\n');
            }
        }
        out
    }

    fn symbols_text(&self) -> Vec<u8> {
        let mut out = b"# Aliases for symbols, used by symbol_request().\n".to_vec();
        for (name, owner) in self.symbols.owned() {
            out.extend_from_slice(b"alias symbol:");
            out.extend_from_slice(name);
            out.push(b' ');
            out.extend_from_slice(self.modules[owner as usize].name());
            out.push(b'\n');
        }
        out
    }

    fn symbols_bin(&self, log: &Log) -> Result<Vec<u8>, Failure> {
        let mut index = Index::new("modules.symbols.bin", log, self.duplicates("syms"));
        for (name, owner) in self.symbols.owned() {
            let key = [&b"symbol:"[..], name].concat();
            let owner_name = self.modules[owner as usize].name();
            let shown = [&key[..], b" ", owner_name].concat();
            index.insert(&key, owner_name, owner, &shown)?;
        }
        index.finish()
    }

    /// modules.builtin (one path per line) as an index of names. Missing input
    /// gives an empty file, as kmod publishes one.
    fn builtin_bin(&self, log: &Log) -> Result<Vec<u8>, Failure> {
        let Some(data) = read_at(&self.settings.dirname, "modules.builtin", log) else {
            return Ok(Vec::new());
        };
        let mut index = Index::new("modules.builtin.bin", log, None);
        // kmod parses into a reused buffer, so a line without a file name repeats
        // the previous name.
        let mut name: Option<Vec<u8>> = None;
        for chunk in fgets_lines(&data, 4096) {
            let line = c_str(chunk);
            if !line.first().is_some_and(u8::is_ascii_alphabetic) {
                let mut msg = b"Invalid modules.builtin line: ".to_vec();
                msg.extend_from_slice(line);
                log.bytes(Prio::Error, &msg);
                continue;
            }
            if let Some(n) = modname(line) {
                name = Some(n);
            }
            if let Some(name) = &name {
                index.insert(name, b"", 0, b"")?;
            }
        }
        index.finish()
    }

    /// The `alias` records of modules.builtin.modinfo (`module.key=value\0`) as an
    /// index, parsed with kmod's quirks: a record without `=` swallows the next one.
    fn builtin_alias_bin(&self, log: &Log) -> Result<Vec<u8>, Failure> {
        let Some(data) = read_at(&self.settings.dirname, "modules.builtin.modinfo", log) else {
            return Ok(Vec::new());
        };
        const MAX: usize = 4096;
        let mut index = Index::new("modules.builtin.alias.bin", log, None);
        let mut input = Stream {
            data: &data,
            pos: 0,
            eof: false,
        };
        while !input.eof {
            let module = input.read_to(b'.', MAX, log);
            if module.is_empty() {
                continue;
            }
            if input.read_to(b'=', MAX, log) != b"alias" {
                input.skip_to(0);
                continue;
            }
            let value = input.read_to(0, MAX, log);
            if value.is_empty() {
                continue;
            }
            let Some(alias) = alias_normalize(&value) else {
                log.log(
                    Prio::Warning,
                    format_args!("Unmatched bracket in {}", Show(&value)),
                );
                continue;
            };
            index.insert(&alias, &module, 0, b"")?;
        }
        index.finish()
    }

    /// Modules that create device nodes: a `devname:` alias together with a
    /// `char-major-M-m` or `block-major-M-m` one.
    fn devname(&self, log: &Log) -> Vec<u8> {
        let mut out = Vec::new();
        for m in &self.modules {
            let mut devname: Option<&[u8]> = None;
            let mut node: Option<(char, u32, u32)> = None;
            for alias in &m.aliases {
                if let Some(name) = alias.strip_prefix(b"devname:") {
                    devname = Some(name);
                } else if let Some((major, minor)) = scan_major_minor(alias, b"char-major-") {
                    node = Some(('c', major, minor));
                } else if let Some((major, minor)) = scan_major_minor(alias, b"block-major-") {
                    node = Some(('b', major, minor));
                }
                if devname.is_some() && node.is_some() {
                    break;
                }
            }
            let Some(devname) = devname else { continue };
            let Some((kind, major, minor)) = node else {
                log.log(
                    Prio::Error,
                    format_args!(
                        "Module '{}' has devname ({}) but lacks major and minor information. Ignoring.",
                        Show(m.name()),
                        Show(devname)
                    ),
                );
                continue;
            };
            if out.is_empty() {
                out.extend_from_slice(b"# Device nodes to trigger on-demand module loading.\n");
            }
            out.extend_from_slice(m.name());
            out.push(b' ');
            out.extend_from_slice(devname);
            out.extend_from_slice(format!(" {kind}{major}:{minor}\n").as_bytes());
        }
        out
    }
}

/// Creates the output directory (mode 0755, with parents) and checks it opens.
pub fn prepare_output_dir(dir: &[u8]) -> Result<(), Failure> {
    let path = as_path(dir);
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|e| {
            Failure::fatal(format_args!(
                "could not create directory {}: {}",
                Show(dir),
                strerror(io_errno(&e))
            ))
        })?;
    File::open(path).map_err(|e| {
        Failure::fatal(format_args!(
            "could not open directory {}: {}",
            Show(dir),
            strerror(io_errno(&e))
        ))
    })?;
    Ok(())
}

/// Publishes the files in `dir`: each is written to a temporary file there (mode
/// 0644), and only once all are complete are they renamed over the old ones, so a
/// failure leaves the previous files in place.
pub fn write_files(dir: &[u8], files: &[OutputFile], log: &Log) -> Result<(), Failure> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let suffix = format!(
        ".{}.{}.{}",
        std::process::id(),
        now.subsec_micros(),
        now.as_secs()
    );
    let path_of = |name: &str| {
        let mut p = dir.to_vec();
        p.push(b'/');
        p.extend_from_slice(name.as_bytes());
        p
    };
    let mut temps: Vec<Vec<u8>> = Vec::with_capacity(files.len());
    let remove_all = |temps: &[Vec<u8>]| {
        for t in temps {
            let _ = std::fs::remove_file(as_path(t));
        }
    };
    for f in files {
        let tmp_name = format!("{}{suffix}", f.name);
        let tmp = path_of(&tmp_name);
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(as_path(&tmp));
        let mut file = match created {
            Ok(file) => file,
            Err(e) => {
                log.log(
                    Prio::Error,
                    format_args!(
                        "openat({}, {tmp_name}, 301, 644): {}",
                        Show(dir),
                        strerror(io_errno(&e))
                    ),
                );
                remove_all(&temps);
                return Err(Failure::Reported);
            }
        };
        temps.push(tmp);
        // The creation mode went through the umask; the files are always 0644.
        let written = file
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .and_then(|()| file.write_all(&f.data));
        if let Err(e) = written {
            log.log(
                Prio::Error,
                format_args!(
                    "Could not create index '{}'. Output is truncated: {}",
                    f.name,
                    strerror(io_errno(&e))
                ),
            );
            remove_all(&temps);
            return Err(Failure::Reported);
        }
    }
    for (i, (f, tmp)) in files.iter().zip(&temps).enumerate() {
        if let Err(e) = std::fs::rename(as_path(tmp), as_path(&path_of(f.name))) {
            remove_all(&temps[i..]);
            return Err(Failure::fatal(format_args!(
                "renameat({}, {}, {}, {}): {}",
                Show(dir),
                Show(&tmp[dir.len() + 1..]),
                Show(dir),
                f.name,
                strerror(io_errno(&e))
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fgets_pieces() {
        let pieces: Vec<&[u8]> = fgets_lines(b"ab\ncdefg\n\nh", 4).collect();
        assert_eq!(pieces, [&b"ab\n"[..], b"cde", b"fg\n", b"\n", b"h"]);
    }

    #[test]
    fn alias_normalisation() {
        assert_eq!(
            alias_normalize(b"pci:v*d[a-f]-x").unwrap(),
            b"pci:v*d[a-f]_x"
        );
        assert_eq!(alias_normalize(b"a]b"), None);
        assert_eq!(alias_normalize(b"a[b"), None);
    }

    #[test]
    fn device_numbers() {
        assert_eq!(
            scan_major_minor(b"char-major-10-175", b"char-major-"),
            Some((10, 175))
        );
        assert_eq!(
            scan_major_minor(b"char-major- 10-+3x", b"char-major-"),
            Some((10, 3))
        );
        assert_eq!(scan_major_minor(b"block-major-8-*", b"block-major-"), None);
        assert_eq!(
            scan_major_minor(b"char-major--1-0", b"char-major-"),
            Some((u32::MAX, 0))
        );
    }

    #[test]
    fn non_ascii_is_fatal() {
        assert!(ascii(b"abc").is_ok());
        let Err(Failure::Fatal(msg)) = ascii(b"a\xc3\xa9") else {
            panic!("accepted non-ASCII")
        };
        assert!(msg.starts_with(b"Module index: bad character '\xc3'=0xc3 - only 7-bit"));
    }
}
