//! Finding modules: the module directory, its indexes, and libkmod's lookup chain
//! from a name or alias to the modules it stands for. modprobe and modinfo both
//! resolve through [`lookup`]; names, aliases and index values are bytes throughout.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::compat::fnmatch::fnmatch_bytes;
use crate::compat::{io_strerror, until_nul};
use crate::config::{Command, ModprobeConfig};
use crate::index::{Index, IndexError};

/// Where module directories live; callers prefix it with a root (`-b`, `-d`).
pub const MODULE_DIRECTORY: &str = "/lib/modules";

/// C's PATH_MAX: libkmod normalises names and aliases into buffers of this size.
const PATH_MAX: usize = 4096;

/// The `modules.*.bin` indexes the lookup chain reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    Dep,
    Alias,
    Symbols,
    Builtin,
    BuiltinAlias,
}

impl IndexKind {
    pub fn file_name(self) -> &'static str {
        match self {
            IndexKind::Dep => "modules.dep.bin",
            IndexKind::Alias => "modules.alias.bin",
            IndexKind::Symbols => "modules.symbols.bin",
            IndexKind::Builtin => "modules.builtin.bin",
            IndexKind::BuiltinAlias => "modules.builtin.alias.bin",
        }
    }
}

/// One source of libkmod's lookup chain; the first that yields anything wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `alias` lines of modprobe.d (fnmatch patterns).
    ConfigAlias,
    /// A module name in modules.dep.
    ModulesDep,
    /// `symbol:NAME` in modules.symbols.
    Symbols,
    /// A name with an `install` or `remove` command in modprobe.d.
    Commands,
    /// modules.alias (the patterns modules declare).
    Aliases,
    /// modules.builtin.
    Builtin,
    /// modules.builtin.alias.
    BuiltinAliases,
}

/// kmod_module_new_from_lookup's chain, for names and aliases alike.
pub const ALIAS_CHAIN: [Step; 7] = [
    Step::ConfigAlias,
    Step::ModulesDep,
    Step::Symbols,
    Step::Commands,
    Step::Aliases,
    Step::Builtin,
    Step::BuiltinAliases,
];

/// kmod_module_new_from_name_lookup's chain (`modinfo -m`).
pub const NAME_CHAIN: [Step; 3] = [Step::ModulesDep, Step::Builtin, Step::BuiltinAliases];

/// A module the lookup chain produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: Vec<u8>,
    /// The alias (or configuration pattern) the module was reached by; libkmod keeps
    /// modules reached by different aliases apart.
    pub alias: Option<Vec<u8>>,
    /// The step that produced it.
    pub step: Step,
}

impl Found {
    /// Known builtin because a builtin index produced it.
    pub fn builtin(&self) -> bool {
        matches!(self.step, Step::Builtin | Step::BuiltinAliases)
    }
}

/// Callers print their own messages with the alias's bytes; this text is for
/// debugging only, hence lossy.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    #[error("invalid alias '{}': unbalanced brackets", String::from_utf8_lossy(.0))]
    InvalidAlias(Vec<u8>),
}

/// A line of `modules.dep`: the module's file and the files it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepEntry {
    pub path: PathBuf,
    pub deps: Vec<PathBuf>,
}

/// A module directory (`/lib/modules/VERSION`) and lazily opened indexes.
pub struct ModuleDir {
    dir: PathBuf,
    indexes: [std::cell::OnceCell<Result<Index, String>>; 5],
}

impl ModuleDir {
    pub fn new(dir: PathBuf) -> ModuleDir {
        ModuleDir {
            dir: absolute(&dir),
            indexes: Default::default(),
        }
    }

    /// The directory for `root` and `version` as modprobe `-d/-S` and modinfo `-b/-k`
    /// build it: plain concatenation `ROOT/lib/modules/VERSION`, each defaulting to
    /// "" and the running kernel's release.
    pub fn for_kernel(root: Option<&OsStr>, version: Option<&OsStr>) -> std::io::Result<ModuleDir> {
        let version = match version {
            Some(v) => v.to_os_string(),
            None => kernel_release()?,
        };
        let mut dir = root.unwrap_or_default().as_bytes().to_vec();
        dir.extend_from_slice(MODULE_DIRECTORY.as_bytes());
        dir.push(b'/');
        dir.extend_from_slice(version.as_bytes());
        Ok(ModuleDir::new(PathBuf::from(OsString::from_vec(dir))))
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// An index, opened once; None when it is missing or unreadable, which kmod
    /// treats as "no match" rather than an error.
    pub fn index(&self, kind: IndexKind) -> Option<&Index> {
        self.open_index(kind).as_ref().ok()
    }

    /// Why an index could not be used (missing, unreadable, not an index), if so.
    pub fn index_problem(&self, kind: IndexKind) -> Option<&str> {
        self.open_index(kind).as_ref().err().map(String::as_str)
    }

    fn open_index(&self, kind: IndexKind) -> &Result<Index, String> {
        self.indexes[kind as usize].get_or_init(|| {
            let path = self.dir.join(kind.file_name());
            // Display only: the message names the file.
            Index::open(&path).map_err(|e| match e {
                IndexError::Io(_, io) => format!("{}: {}", path.display(), io_strerror(&io)),
                other => format!("{}: {other}", path.display()),
            })
        })
    }

    /// The `modules.dep` line of a module name (`path: dep dep`).
    pub fn dep_line(&self, name: &[u8]) -> Option<&[u8]> {
        self.index(IndexKind::Dep)?.lookup(name)
    }

    /// The `modules.dep` entry of a module name, paths made absolute.
    pub fn dep_entry(&self, name: &[u8]) -> Option<DepEntry> {
        let line = self.dep_line(name)?;
        let colon = line.iter().position(|&b| b == b':')?;
        Some(DepEntry {
            path: self.join(&line[..colon]),
            deps: dep_words(&line[colon + 1..])
                .map(|d| self.join(d))
                .collect(),
        })
    }

    /// A path of modules.dep (relative to this directory, or absolute).
    pub fn join(&self, path: &[u8]) -> PathBuf {
        self.dir.join(OsStr::from_bytes(path))
    }

    pub fn is_builtin(&self, name: &[u8]) -> bool {
        self.index(IndexKind::Builtin)
            .is_some_and(|i| i.lookup(name).is_some())
    }

    /// Wildcard search of an index: the modules whose patterns match `key`.
    fn search(&self, kind: IndexKind, key: &[u8]) -> Vec<Vec<u8>> {
        self.index(kind)
            .map(|i| i.search_wildcard(key))
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.value.to_vec())
            .collect()
    }

    /// The `.modinfo`-style strings of a builtin module from `modules.builtin.modinfo`
    /// (records `name.key=value\0`, one module's records contiguous).
    pub fn builtin_modinfo(&self, name: &[u8]) -> std::io::Result<Vec<Vec<u8>>> {
        let data = crate::limits::read_whole(&self.dir.join("modules.builtin.modinfo"))?;
        let mut out = Vec::new();
        for record in data.split(|&b| b == 0) {
            let value = record
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(b"."));
            match value {
                Some(value) => out.push(value.to_vec()),
                None if !out.is_empty() && !record.is_empty() => break,
                None => {}
            }
        }
        Ok(out)
    }
}

/// The file names of a modules.dep line after its colon (libkmod splits at blanks).
pub fn dep_words(deps: &[u8]) -> impl Iterator<Item = &[u8]> {
    deps.split(|&b| b == b' ' || b == b'\t')
        .filter(|d| !d.is_empty())
}

/// libkmod's lookup chain: the normalised `given` alias tried against each step of
/// `chain` in turn; the first step that yields modules wins.
pub fn lookup(
    dir: &ModuleDir,
    config: &ModprobeConfig,
    given: &[u8],
    chain: &[Step],
) -> Result<Vec<Found>, LookupError> {
    let alias = alias_normalize(given).ok_or_else(|| LookupError::InvalidAlias(given.to_vec()))?;
    // Debug log, text (display only).
    tracing::debug!(
        "input alias={}, normalized={}",
        String::from_utf8_lossy(given),
        String::from_utf8_lossy(&alias)
    );
    for &step in chain {
        let found = lookup_step(dir, config, &alias, step);
        if !found.is_empty() {
            return Ok(found);
        }
    }
    Ok(Vec::new())
}

/// `modinfo -m`: a module name (normalised like one) through the name chain.
pub fn lookup_name(dir: &ModuleDir, name: &[u8]) -> Option<Found> {
    let name = crate::module::normalize_name(name);
    NAME_CHAIN
        .iter()
        .find_map(|&step| lookup_step(dir, &ModprobeConfig::default(), &name, step).pop())
}

fn lookup_step(dir: &ModuleDir, config: &ModprobeConfig, alias: &[u8], step: Step) -> Vec<Found> {
    let found = |name: &[u8], alias: Option<&[u8]>| Found {
        name: name.to_vec(),
        alias: alias.map(<[u8]>::to_vec),
        step,
    };
    let searched = |kind| -> Vec<Found> {
        dir.search(kind, alias)
            .iter()
            .map(|name| found(name, Some(alias)))
            .collect()
    };
    match step {
        Step::ConfigAlias => config
            .aliases
            .iter()
            .filter(|(pattern, _)| fnmatch_bytes(pattern, alias))
            .map(|(pattern, name)| found(name, Some(pattern)))
            .collect(),
        // Module names never contain ':'.
        Step::ModulesDep if !alias.contains(&b':') && dir.dep_line(alias).is_some() => {
            vec![found(alias, None)]
        }
        Step::Symbols if alias.starts_with(b"symbol:") => searched(IndexKind::Symbols),
        Step::Commands
            if config.command(Command::Install, alias).is_some()
                || config.command(Command::Remove, alias).is_some() =>
        {
            vec![found(alias, None)]
        }
        Step::Aliases => searched(IndexKind::Alias),
        Step::Builtin if dir.is_builtin(alias) => vec![found(alias, None)],
        Step::BuiltinAliases => searched(IndexKind::BuiltinAlias),
        _ => Vec::new(),
    }
}

/// libkmod's alias normalisation: `-` → `_` outside brackets; None for an unmatched
/// bracket. Like libkmod, at most PATH_MAX - 1 bytes are looked at, and a NUL ends
/// the alias.
pub fn alias_normalize(alias: &[u8]) -> Option<Vec<u8>> {
    normalize_dashes(alias, PATH_MAX - 1)
}

/// kmod's `underscores()` for names in configuration: the same rule, unbounded.
pub fn underscores(s: &[u8]) -> Option<Vec<u8>> {
    normalize_dashes(s, usize::MAX)
}

fn normalize_dashes(alias: &[u8], limit: usize) -> Option<Vec<u8>> {
    let alias = until_nul(alias);
    let mut out = Vec::with_capacity(alias.len().min(limit));
    let mut i = 0;
    while i < limit && i < alias.len() {
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

/// The running kernel's release, as `uname -r` prints it.
pub fn kernel_release() -> std::io::Result<OsString> {
    let uts = nix::sys::utsname::uname().map_err(std::io::Error::from)?;
    Ok(uts.release().to_os_string())
}

/// `path` made absolute against the working directory without resolving `.`/`..`
/// or symlinks, as kmod prints paths exactly as given.
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match std::env::current_dir() {
        Ok(cwd) => {
            let mut joined = cwd.into_os_string();
            joined.push("/");
            joined.push(path);
            PathBuf::from(joined)
        }
        Err(_) => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_normalisation() {
        assert_eq!(
            alias_normalize(b"snd-hda-intel").as_deref(),
            Some(&b"snd_hda_intel"[..])
        );
        assert_eq!(
            alias_normalize(b"pci:v*d[a-f]-x").as_deref(),
            Some(&b"pci:v*d[a-f]_x"[..])
        );
        assert_eq!(alias_normalize(b"a]b"), None);
        assert_eq!(alias_normalize(b"a[b"), None);
        assert_eq!(
            alias_normalize(b"caf\xe9-x").as_deref(),
            Some(&b"caf\xe9_x"[..])
        );
        let long = vec![b'-'; 5000];
        assert_eq!(alias_normalize(&long).map(|a| a.len()), Some(4095));
        assert_eq!(underscores(&long).map(|a| a.len()), Some(5000));
    }

    #[test]
    fn builtin_modinfo_records() {
        let dir = std::env::temp_dir().join(format!("kmod-rs-resolve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("modules.builtin.modinfo"),
            b"ab.x=0\0a.license=GPL\0a.alias=foo\0b.license=MIT\0a.late=1\0",
        )
        .unwrap();
        let d = ModuleDir::new(dir.clone());
        assert_eq!(
            d.builtin_modinfo(b"a").unwrap(),
            [b"license=GPL".to_vec(), b"alias=foo".to_vec()]
        );
        assert!(d.builtin_modinfo(b"c").unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
