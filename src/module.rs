//! A module file on disk: opened, decompressed and ready for ELF reading.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::compression::{self, Compression, DecompressError};
use crate::elf::{ElfError, ModuleElf};
use crate::limits::{self, LimitError, ReadError};
use crate::signature::{self, SignatureInfo};

/// File name endings that make a file a module (depmod, modinfo's file detection).
pub const MODULE_SUFFIXES: [&str; 4] = [".ko", ".ko.gz", ".ko.xz", ".ko.zst"];

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("{}: {}", .0.display(), .1)]
    Io(PathBuf, std::io::Error),
    #[error("{}: file too short to be a module ({} bytes)", .0.display(), .1)]
    TooShort(PathBuf, usize),
    #[error("{}: {}", .0.display(), .1)]
    Decompress(PathBuf, DecompressError),
    #[error("{}: {}", .0.display(), .1)]
    Elf(PathBuf, ElfError),
    /// Over the size limit, or no memory for the contents (ENOMEM).
    #[error("{}: {}", .0.display(), .1)]
    Memory(PathBuf, LimitError),
}

impl ModuleError {
    /// The cause alone, for messages that already name the file.
    pub fn cause(&self) -> String {
        match self {
            ModuleError::Io(_, e) => match e.raw_os_error() {
                Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
                None => e.to_string(),
            },
            ModuleError::TooShort(_, n) => format!("file too short to be a module ({n} bytes)"),
            ModuleError::Decompress(_, e) => e.to_string(),
            ModuleError::Elf(_, e) => e.to_string(),
            ModuleError::Memory(_, e) => e.to_string(),
        }
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
    pub fn name(&self) -> String {
        name_from_path(&self.path)
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

/// Module name from a path or name: basename, cut at the first `.`, `-` → `_`.
pub fn name_from_path(path: &Path) -> String {
    let base = path
        .file_name()
        .map_or_else(|| path.to_string_lossy(), |n| n.to_string_lossy());
    normalize_name(&base)
}

/// Module name normalisation: cut at the first `.`, `-` → `_`.
pub fn normalize_name(name: &str) -> String {
    let stem = name.split('.').next().unwrap_or("");
    stem.replace('-', "_")
}

/// Whether a file name ends like a module (and is longer than the ending).
pub fn has_module_suffix(name: &str) -> bool {
    MODULE_SUFFIXES
        .iter()
        .any(|s| name.len() > s.len() && name.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            name_from_path(Path::new("/x/snd-hda-intel.ko.xz")),
            "snd_hda_intel"
        );
        assert_eq!(name_from_path(Path::new("foo.bar.ko")), "foo");
        assert_eq!(normalize_name("iTCO_wdt"), "iTCO_wdt");
        assert!(has_module_suffix("a.ko.zst"));
        assert!(!has_module_suffix(".ko"));
        assert!(!has_module_suffix("a.ko.bz2"));
    }
}

/// Module options from command-line words, as kmod joins them: separated by single
/// spaces, and a `key=value` whose value has a space (and is not already quoted)
/// gets the value wrapped in double quotes.
pub fn options_from_words<S: AsRef<str>>(words: &[S]) -> String {
    let mut out = String::new();
    for word in words {
        let word = word.as_ref();
        if !out.is_empty() {
            out.push(' ');
        }
        match word.split_once('=') {
            Some((key, value))
                if value.contains(' ') && !value.starts_with('"') && !value.starts_with('\'') =>
            {
                out.push_str(&format!("{key}=\"{value}\""));
            }
            _ => out.push_str(word),
        }
    }
    out
}

#[cfg(test)]
mod option_tests {
    use super::options_from_words;

    #[test]
    fn quoting() {
        assert_eq!(
            options_from_words(&["a=1", "y=a b", "z='c d'", "flag"]),
            "a=1 y=\"a b\" z='c d' flag"
        );
        assert_eq!(options_from_words::<&str>(&[]), "");
    }
}
