//! A module file on disk: opened, decompressed and ready for ELF reading.

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::compat::io_strerror;
use crate::compression::{self, Compression, DecompressError};
use crate::elf::{ElfError, ModuleElf};
use crate::limits::{self, LimitError, ReadError};
use crate::signature::{self, SignatureInfo};

/// File name endings that make a file a module (depmod, modinfo's file detection).
pub const MODULE_SUFFIXES: [&str; 4] = [".ko", ".ko.gz", ".ko.xz", ".ko.zst"];

/// Why a module file could not be read. Messages give the C library's text for the
/// errno kmod reports (scripts match it), then what exactly was wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}", self.path().display(), self.cause())]
pub enum ModuleError {
    Io(PathBuf, std::io::Error),
    TooShort(PathBuf, usize),
    Decompress(PathBuf, DecompressError),
    Elf(PathBuf, ElfError),
    /// Over the size limit, or no memory for the contents (ENOMEM).
    Memory(PathBuf, LimitError),
}

impl ModuleError {
    /// The cause alone, for messages that already name the file: the errno's text,
    /// and the details kmod does not give.
    pub fn cause(&self) -> String {
        let text = crate::compat::strerror(self.errno());
        match self {
            ModuleError::Io(_, e) => io_strerror(e).into_owned(),
            ModuleError::TooShort(_, n) => {
                format!("{text} (file too short to be a module: {n} bytes)")
            }
            ModuleError::Decompress(_, e) => format!("{text} ({e})"),
            ModuleError::Elf(_, e) => format!("{text} ({e})"),
            ModuleError::Memory(_, e) => e.to_string(),
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ModuleError::Io(p, _)
            | ModuleError::TooShort(p, _)
            | ModuleError::Decompress(p, _)
            | ModuleError::Elf(p, _)
            | ModuleError::Memory(p, _) => p,
        }
    }

    /// `PATH: cause` with the path's bytes as they are (Display shows it lossily).
    pub fn message(&self) -> Vec<u8> {
        crate::msg![self.path(), ": ", self.cause()]
    }

    /// The errno kmod would report, for callers that must keep kmod's exit paths.
    pub fn errno(&self) -> nix::errno::Errno {
        match self {
            ModuleError::Io(_, e) => nix::errno::Errno::from_raw(
                e.raw_os_error().unwrap_or(nix::errno::Errno::EIO as i32),
            ),
            ModuleError::TooShort(..) | ModuleError::Decompress(..) => nix::errno::Errno::EINVAL,
            ModuleError::Elf(_, e) => e.errno(),
            ModuleError::Memory(_, e) => e.errno(),
        }
    }
}

enum Contents {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

/// A module file's decompressed contents.
pub struct ModuleFile {
    path: PathBuf,
    compression: Compression,
    contents: Contents,
}

impl ModuleFile {
    /// Opens and, if needed, decompresses a module. Plain files are memory-mapped;
    /// anything read or decompressed into memory is held to
    /// [`limits::MODULE_SIZE_LIMIT`].
    pub fn open(path: &Path) -> Result<ModuleFile, ModuleError> {
        let file = File::open(path).map_err(|e| ModuleError::Io(path.to_path_buf(), e))?;
        // SAFETY: the map is read-only and private; a module file being rewritten
        // while we read it is the same hazard libkmod accepts with its own mmap.
        let map = unsafe { memmap2::Mmap::map(&file) };
        let contents = match map {
            Ok(map) => Contents::Mapped(map),
            // Empty files and special files cannot be mapped: read them instead.
            Err(_) => Contents::Owned(
                limits::read_open_file(&file, limits::MODULE_SIZE_LIMIT).map_err(|e| match e {
                    ReadError::Io(e) => ModuleError::Io(path.to_path_buf(), e),
                    ReadError::Limit(e) => ModuleError::Memory(path.to_path_buf(), e),
                })?,
            ),
        };
        Self::from_contents(path, contents, limits::MODULE_SIZE_LIMIT)
    }

    /// A module from bytes already in memory (compressed or not), decompressed into at
    /// most `limit` bytes.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>, limit: u64) -> Result<ModuleFile, ModuleError> {
        Self::from_contents(path, Contents::Owned(bytes), limit)
    }

    fn from_contents(
        path: &Path,
        contents: Contents,
        limit: u64,
    ) -> Result<ModuleFile, ModuleError> {
        let raw: &[u8] = match &contents {
            Contents::Mapped(m) => m,
            Contents::Owned(v) => v,
        };
        if raw.len() < compression::MIN_FILE_SIZE {
            return Err(ModuleError::TooShort(path.to_path_buf(), raw.len()));
        }
        let kind = Compression::detect(raw);
        let contents = if kind == Compression::None {
            contents
        } else {
            Contents::Owned(
                compression::decompress(kind, raw, limit).map_err(|e| match e {
                    DecompressError::Limit(e) => ModuleError::Memory(path.to_path_buf(), e),
                    e => ModuleError::Decompress(path.to_path_buf(), e),
                })?,
            )
        };
        Ok(ModuleFile {
            path: path.to_path_buf(),
            compression: kind,
            contents,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The module's name as kmod derives it: from the file name, not the ELF.
    pub fn name(&self) -> Option<Vec<u8>> {
        name_from_path(self.path.as_os_str().as_bytes())
    }

    /// The decompressed module image.
    pub fn data(&self) -> &[u8] {
        match &self.contents {
            Contents::Mapped(m) => m,
            Contents::Owned(v) => v,
        }
    }

    pub fn elf(&self) -> Result<ModuleElf<'_>, ModuleError> {
        ModuleElf::parse(self.data()).map_err(|e| ModuleError::Elf(self.path.clone(), e))
    }

    pub fn signature(&self) -> Option<SignatureInfo<'_>> {
        signature::parse(self.data())
    }
}

/// libkmod's `modname_normalize`: a module name from a file or module name, cut at
/// the first `.`, `-` → `_`, at most PATH_MAX - 1 bytes (a NUL ends it too).
pub fn normalize_name(name: &[u8]) -> Vec<u8> {
    const PATH_MAX: usize = 4096;
    name.iter()
        .take(PATH_MAX - 1)
        .take_while(|&&b| b != b'.' && b != 0)
        .map(|&b| if b == b'-' { b'_' } else { b })
        .collect()
}

/// libkmod's `path_to_modname`: the normalised base name of a path; None when the
/// base name is empty (a path ending in `/`).
pub fn name_from_path(path: &[u8]) -> Option<Vec<u8>> {
    let base = &path[path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1)..];
    (!base.is_empty()).then(|| normalize_name(base))
}

/// Whether a file name ends like a module (and is longer than the ending).
pub fn has_module_suffix(name: &[u8]) -> bool {
    MODULE_SUFFIXES
        .iter()
        .any(|s| name.len() > s.len() && name.ends_with(s.as_bytes()))
}

/// Module options from command-line words, as kmod joins them: separated by single
/// spaces, and a `key=value` whose value has a space (and is not already quoted)
/// gets the value wrapped in double quotes.
pub fn options_from_words<S: AsRef<[u8]>>(words: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    for word in words {
        let word = word.as_ref();
        if !out.is_empty() {
            out.push(b' ');
        }
        let eq = word.iter().position(|&b| b == b'=');
        match eq.map(|i| (&word[..i], &word[i + 1..])) {
            Some((key, value))
                if value.contains(&b' ')
                    && !value.starts_with(b"\"")
                    && !value.starts_with(b"'") =>
            {
                out.extend_from_slice(key);
                out.extend_from_slice(b"=\"");
                out.extend_from_slice(value);
                out.push(b'"');
            }
            _ => out.extend_from_slice(word),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let name = |p: &[u8]| name_from_path(p).map(|n| String::from_utf8(n).unwrap());
        assert_eq!(
            name(b"/x/snd-hda-intel.ko.xz").as_deref(),
            Some("snd_hda_intel")
        );
        assert_eq!(name(b"foo.bar.ko").as_deref(), Some("foo"));
        assert_eq!(name(b"/x/"), None);
        assert_eq!(normalize_name(b"iTCO_wdt"), b"iTCO_wdt");
        assert_eq!(normalize_name(b"a\xff-b.ko"), b"a\xff_b");
        assert_eq!(normalize_name(&[b'-'; 5000]).len(), 4095);
        assert!(has_module_suffix(b"a.ko.zst"));
        assert!(!has_module_suffix(b".ko"));
        assert!(!has_module_suffix(b"a.ko.bz2"));
    }

    #[test]
    fn option_quoting() {
        assert_eq!(
            options_from_words(&["a=1", "y=a b", "z='c d'", "flag"]),
            b"a=1 y=\"a b\" z='c d' flag"
        );
        assert_eq!(options_from_words(&[&b"n=caf\xe9"[..]]), b"n=caf\xe9");
        assert_eq!(options_from_words::<&str>(&[]), b"");
    }
}
