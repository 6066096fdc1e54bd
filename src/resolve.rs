//! Finding modules: the module directory, its indexes, and libkmod's lookup chain
//! from a name or alias to the modules it stands for.

use std::path::{Path, PathBuf};

use crate::index::Index;

/// Where module directories live; callers prefix it with a root (`-b`, `-d`).
pub const MODULE_DIRECTORY: &str = "/lib/modules";

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

/// A module the lookup chain produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    /// Known builtin because the builtin indexes produced it.
    pub builtin: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    #[error("invalid alias '{0}': unbalanced brackets")]
    InvalidAlias(String),
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
    pub fn for_kernel(root: Option<&str>, version: Option<&str>) -> std::io::Result<ModuleDir> {
        let version = match version {
            Some(v) => v.to_string(),
            None => kernel_release()?,
        };
        Ok(ModuleDir::new(PathBuf::from(format!(
            "{}{MODULE_DIRECTORY}/{version}",
            root.unwrap_or("")
        ))))
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
            Index::open(&path).map_err(|e| match e {
                crate::index::IndexError::Io(_, io) => match io.raw_os_error() {
                    Some(code) => format!(
                        "{}: {}",
                        path.display(),
                        nix::errno::Errno::from_raw(code).desc()
                    ),
                    None => format!("{}: {io}", path.display()),
                },
                other => format!("{}: {other}", path.display()),
            })
        })
    }

    /// The `modules.dep` entry of a module name.
    pub fn dep_entry(&self, name: &str) -> Option<DepEntry> {
        let line = self.index(IndexKind::Dep)?.lookup(name)?;
        let (path, deps) = line.split_once(':')?;
        Some(DepEntry {
            path: self.dir.join(path),
            deps: deps.split_whitespace().map(|d| self.dir.join(d)).collect(),
        })
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.index(IndexKind::Builtin)
            .is_some_and(|i| i.lookup(name).is_some())
    }

    /// libkmod's lookup chain without configuration: the first source that yields
    /// anything wins. (Configuration aliases and commands are the caller's first step.)
    pub fn lookup(&self, alias: &str) -> Result<Vec<Found>, LookupError> {
        let alias =
            alias_normalize(alias).ok_or_else(|| LookupError::InvalidAlias(alias.into()))?;
        // Module names never contain ':'.
        if !alias.contains(':') && self.dep_entry(&alias).is_some() {
            return Ok(vec![Found {
                name: alias,
                builtin: false,
            }]);
        }
        if alias.starts_with("symbol:") {
            let found = self.search(IndexKind::Symbols, &alias, false);
            if !found.is_empty() {
                return Ok(found);
            }
        }
        let found = self.search(IndexKind::Alias, &alias, false);
        if !found.is_empty() {
            return Ok(found);
        }
        if self.is_builtin(&alias) {
            return Ok(vec![Found {
                name: alias,
                builtin: true,
            }]);
        }
        Ok(self.search(IndexKind::BuiltinAlias, &alias, true))
    }

    /// Lookup of a module name only: modules.dep, then the builtin indexes.
    pub fn lookup_name(&self, name: &str) -> Option<Found> {
        let name = crate::module::normalize_name(name);
        if self.dep_entry(&name).is_some() {
            return Some(Found {
                name,
                builtin: false,
            });
        }
        if self.is_builtin(&name) {
            return Some(Found {
                name,
                builtin: true,
            });
        }
        self.search(IndexKind::BuiltinAlias, &name, true)
            .into_iter()
            .next()
    }

    fn search(&self, kind: IndexKind, alias: &str, builtin: bool) -> Vec<Found> {
        self.index(kind)
            .map(|i| i.search_wildcard(alias))
            .unwrap_or_default()
            .into_iter()
            .map(|v| Found {
                name: v.value,
                builtin,
            })
            .collect()
    }

    /// The `.modinfo`-style strings of a builtin module from `modules.builtin.modinfo`
    /// (records `name.key=value\0`, one module's records contiguous).
    pub fn builtin_modinfo(&self, name: &str) -> std::io::Result<Vec<Vec<u8>>> {
        let data = std::fs::read(self.dir.join("modules.builtin.modinfo"))?;
        let mut out = Vec::new();
        for record in data.split(|&b| b == 0) {
            if record.is_empty() {
                continue;
            }
            let matches = record.len() > name.len()
                && record.starts_with(name.as_bytes())
                && record[name.len()] == b'.';
            if matches {
                out.push(record[name.len() + 1..].to_vec());
            } else if !out.is_empty() {
                break;
            }
        }
        Ok(out)
    }
}

/// `-` → `_` except inside `[...]`; None for unbalanced brackets (libkmod's rule).
pub fn alias_normalize(alias: &str) -> Option<String> {
    let mut out = String::with_capacity(alias.len());
    let mut in_class = false;
    for c in alias.chars() {
        match c {
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            ']' => return None,
            '-' if !in_class => {
                out.push('_');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    (!in_class).then_some(out)
}

/// The running kernel's release, as `uname -r` prints it.
pub fn kernel_release() -> std::io::Result<String> {
    let uts = nix::sys::utsname::uname().map_err(std::io::Error::from)?;
    Ok(uts.release().to_string_lossy().into_owned())
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
            alias_normalize("snd-hda-intel").as_deref(),
            Some("snd_hda_intel")
        );
        assert_eq!(
            alias_normalize("pci:v*d[a-f]-x").as_deref(),
            Some("pci:v*d[a-f]_x")
        );
        assert_eq!(alias_normalize("a]b"), None);
        assert_eq!(alias_normalize("a[b"), None);
    }
}
