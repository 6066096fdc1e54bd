//! Finding module files: the directory walk, depmod.d's rules for choosing
//! between files of the same module name, and the `-A` freshness check.
//!
//! The walk uses directory file descriptors like kmod's (one open per level), so
//! its messages, which name the descriptor, read the same.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode, SFlag};

use super::{
    as_path, has_module_suffix, modname, strerror, Candidate, Depmod, Failure, Log, Prio, Show,
};

/// One word of a `search` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    /// A directory relative to the module directory.
    Dir(Vec<u8>),
    /// `built-in`: everything no other entry matches.
    BuiltIn,
    /// `external`: the `external` directories, in their order.
    External,
}

/// `override <modname> <kver> <subdir>` whose version matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The module name as written in the file (not normalised).
    pub modname: Vec<u8>,
    pub subdir: Vec<u8>,
}

/// What depmod.d says about finding modules, every list in configuration order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub search: Vec<Search>,
    pub overrides: Vec<Override>,
    /// `external` directories whose version matched.
    pub externals: Vec<Vec<u8>>,
    /// Directory and file names skipped at any depth.
    pub excludes: Vec<Vec<u8>>,
}

impl Rules {
    /// Without any `search` entry, `updates` comes first.
    fn searches(&self) -> Vec<Search> {
        if self.search.is_empty() {
            vec![Search::Dir(b"updates".to_vec())]
        } else {
            self.search.clone()
        }
    }

    fn excluded(&self, name: &[u8]) -> bool {
        matches!(name, b"." | b".." | b"build" | b"source")
            || self.excludes.iter().any(|e| e == name)
    }
}

/// Whether `path[..len]` is inside `dir`: `dir` followed by a `/`.
fn starts_with_dir(path: &[u8], len: usize, dir: &[u8]) -> bool {
    len > dir.len() && path.get(dir.len()) == Some(&b'/') && path.starts_with(dir)
}

/// The directory and name part of a path relative to the module directory; empty
/// outside it. Like kmod, only the name prefix is compared, not the separator.
fn relative_stem<'a>(c: &'a Candidate, dirname: &[u8]) -> &'a [u8] {
    match c.path.get(dirname.len() + 1..c.stem_end()) {
        Some(rel) if c.path.starts_with(dirname) => rel,
        _ => &[],
    }
}

/// kmod's priority decision between the module already chosen and a new file of
/// the same name: true to keep the old one.
///
/// kmod keeps its rule lists in reverse configuration order and numbers the search
/// entries that way, so a higher number is an earlier line and wins. Each search
/// entry is tried on the new path first and on the old one only if the new path
/// did not match it; that asymmetry decides between two files in the same place.
fn keep_old(
    rules: &Rules,
    searches: &[Search],
    dirname: &[u8],
    old: &Candidate,
    new: &Candidate,
) -> bool {
    let (rel_new, rel_old) = (relative_stem(new, dirname), relative_stem(old, dirname));
    for ov in rules.overrides.iter().rev() {
        let wanted = [&ov.subdir[..], b"/", &ov.modname].concat();
        if rel_new == wanted {
            return false;
        }
        if rel_old == wanted {
            return true;
        }
    }
    let (mut builtin, mut prio_old, mut prio_new) = (-1i64, -1i64, -1i64);
    let mut i = 0i64;
    for search in searches.iter().rev() {
        match search {
            Search::BuiltIn => builtin = i,
            Search::External => {
                for ext in rules.externals.iter().rev() {
                    if starts_with_dir(&new.path, new.stem_end(), ext) {
                        prio_new = i;
                    }
                    if starts_with_dir(&old.path, old.stem_end(), ext) {
                        prio_old = i;
                    }
                    i += 1;
                }
            }
            Search::Dir(dir) => {
                if starts_with_dir(rel_new, rel_new.len(), dir) {
                    prio_new = i;
                } else if starts_with_dir(rel_old, rel_old.len(), dir) {
                    prio_old = i;
                }
            }
        }
        i += 1;
    }
    if prio_new < 0 {
        prio_new = builtin;
    }
    if prio_old < 0 {
        prio_old = builtin;
    }
    prio_new <= prio_old
}

fn open_dir(path: &[u8]) -> nix::Result<Dir> {
    Dir::open(
        as_path(path),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// A directory's entries in readdir order: name and type when the entry says.
fn entries(dir: &mut Dir) -> Vec<(Vec<u8>, Option<Type>)> {
    dir.iter()
        .map_while(Result::ok)
        .map(|e| (e.file_name().to_bytes().to_vec(), e.file_type()))
        .collect()
}

/// Regular file or directory, following symlinks; None after logging otherwise.
fn kind_of(dir: &Dir, name: &[u8], ty: Option<Type>, path: &[u8], log: &Log) -> Option<bool> {
    match ty {
        Some(Type::File) => return Some(false),
        Some(Type::Directory) => return Some(true),
        _ => {}
    }
    let st = stat_at(dir, name, log)?;
    let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if fmt == SFlag::S_IFREG {
        Some(false)
    } else if fmt == SFlag::S_IFDIR {
        Some(true)
    } else {
        log.log(
            Prio::Error,
            format_args!("unsupported file type {}: {:o}", Show(path), fmt.bits()),
        );
        None
    }
}

/// fstatat following symlinks, logging a failure as kmod does.
fn stat_at(dir: &Dir, name: &[u8], log: &Log) -> Option<FileStat> {
    fstatat(dir.as_fd(), OsStr::from_bytes(name), AtFlags::empty())
        .map_err(|e| {
            log.log(
                Prio::Error,
                format_args!(
                    "fstatat({}, {}): {}",
                    dir.as_raw_fd(),
                    Show(name),
                    strerror(e)
                ),
            )
        })
        .ok()
}

fn open_subdir(dir: &Dir, name: &[u8], log: &Log) -> Option<Dir> {
    match Dir::openat(
        dir.as_fd(),
        OsStr::from_bytes(name),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(sub) => Some(sub),
        Err(e) => {
            log.log(
                Prio::Error,
                format_args!(
                    "openat({}, {}, O_RDONLY): {}",
                    dir.as_raw_fd(),
                    Show(name),
                    strerror(e)
                ),
            );
            None
        }
    }
}

impl Depmod<'_> {
    /// Scans the module directory, then each external directory (last configured
    /// first, as kmod lists them), choosing one file per module name.
    pub fn scan(&mut self, rules: &Rules) -> Result<(), Failure> {
        let searches = rules.searches();
        let dirname = self.settings.dirname.clone();
        self.scan_top(rules, &searches, &dirname).map_err(|e| {
            Failure::fatal(format_args!("could not search modules: {}", strerror(e)))
        })?;
        for ext in rules.externals.iter().rev() {
            // A missing external directory is only reported.
            let _ = self.scan_top(rules, &searches, ext);
        }
        Ok(())
    }

    fn scan_top(&mut self, rules: &Rules, searches: &[Search], top: &[u8]) -> Result<(), Errno> {
        let dir = open_dir(top).inspect_err(|&e| {
            self.log.log(
                Prio::Error,
                format_args!("could not open directory {}: {}", Show(top), strerror(e)),
            );
        })?;
        let mut path = top.to_vec();
        path.push(b'/');
        self.scan_dir(rules, searches, dir, &mut path);
        Ok(())
    }

    fn scan_dir(&mut self, rules: &Rules, searches: &[Search], mut dir: Dir, path: &mut Vec<u8>) {
        let base = path.len();
        for (name, ty) in entries(&mut dir) {
            if rules.excluded(&name) {
                continue;
            }
            path.truncate(base);
            path.extend_from_slice(&name);
            let Some(is_dir) = kind_of(&dir, &name, ty, path, self.log) else {
                continue;
            };
            if is_dir {
                if let Some(sub) = open_subdir(&dir, &name, self.log) {
                    path.push(b'/');
                    self.scan_dir(rules, searches, sub, path);
                }
            } else if has_module_suffix(&name) {
                self.consider(rules, searches, path);
            }
        }
        path.truncate(base);
    }

    /// A module file found by the walk: chosen unless a file of the same name wins.
    fn consider(&mut self, rules: &Rules, searches: &[Search], path: &[u8]) {
        let Some(name) = modname(path) else {
            return;
        };
        let dirname = &self.settings.dirname;
        let new = Candidate::new(path.to_vec(), name, dirname);
        if let Some(old) = self.candidates.get(&new.name) {
            if keep_old(rules, searches, dirname, old, &new) {
                return;
            }
        }
        // The comparison used the path as found; the module keeps it made absolute
        // (an external directory may be given relative to the working directory).
        let absolute = crate::resolve::absolute(as_path(path))
            .into_os_string()
            .into_vec();
        let new = Candidate::new(absolute, new.name, dirname);
        self.candidates.insert(new.name.clone(), new);
    }
}

/// `-A`: true when `<dir>/modules.dep` exists and no module file under `dir` has a
/// newer modification time (in seconds, as kmod 34.2 compares).
pub fn is_up_to_date(dirname: &[u8], log: &Log) -> bool {
    let mut dir = match open_dir(dirname) {
        Ok(d) => d,
        Err(e) => {
            log.log(
                Prio::Error,
                format_args!(
                    "could not open directory {}: {}",
                    Show(dirname),
                    strerror(e)
                ),
            );
            return false;
        }
    };
    let dep_time = match fstatat(dir.as_fd(), "modules.dep", AtFlags::empty()) {
        Ok(st) => st.st_mtime,
        Err(e) => {
            log.log(
                Prio::Error,
                format_args!(
                    "could not fstatat({}, modules.dep): {}",
                    Show(dirname),
                    strerror(e)
                ),
            );
            return false;
        }
    };
    let mut path = dirname.to_vec();
    path.push(b'/');
    !has_newer_module(&mut dir, dep_time, &mut path, log)
}

fn has_newer_module(dir: &mut Dir, time: i64, path: &mut Vec<u8>, log: &Log) -> bool {
    let base = path.len();
    for (name, _) in entries(dir) {
        if matches!(&name[..], b"." | b".." | b"build" | b"source") {
            continue;
        }
        let Some(st) = stat_at(dir, &name, log) else {
            continue;
        };
        let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        path.truncate(base);
        if fmt == SFlag::S_IFDIR {
            path.extend_from_slice(&name);
            let Some(mut sub) = open_subdir(dir, &name, log) else {
                continue;
            };
            path.push(b'/');
            if has_newer_module(&mut sub, time, path, log) {
                return true;
            }
        } else if fmt == SFlag::S_IFREG {
            if has_module_suffix(&name) && st.st_mtime > time {
                return true;
            }
        } else {
            log.log(
                Prio::Error,
                format_args!("unsupported file type {}: {:o}", Show(path), fmt.bits()),
            );
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(path: &str) -> Candidate {
        let name = modname(path.as_bytes()).unwrap();
        Candidate::new(path.as_bytes().to_vec(), name, b"/m/1.0")
    }

    fn keeps(rules: &Rules, old: &str, new: &str) -> bool {
        keep_old(
            rules,
            &rules.searches(),
            b"/m/1.0",
            &candidate(old),
            &candidate(new),
        )
    }

    #[test]
    fn updates_win_by_default() {
        let rules = Rules::default();
        assert!(!keeps(&rules, "/m/1.0/kernel/a.ko", "/m/1.0/updates/a.ko"));
        assert!(keeps(&rules, "/m/1.0/updates/a.ko", "/m/1.0/kernel/a.ko"));
    }

    #[test]
    fn first_search_entry_wins() {
        let rules = Rules {
            search: vec![
                Search::Dir(b"foobar".to_vec()),
                Search::Dir(b"foo".to_vec()),
                Search::BuiltIn,
            ],
            ..Rules::default()
        };
        assert!(!keeps(&rules, "/m/1.0/foo/a.ko", "/m/1.0/foobar/a.ko"));
        assert!(keeps(&rules, "/m/1.0/foobar/a.ko", "/m/1.0/foo/a.ko"));
        assert!(keeps(&rules, "/m/1.0/foo/a.ko", "/m/1.0/kernel/a.ko"));
    }

    #[test]
    fn externals_and_overrides() {
        let rules = Rules {
            search: vec![Search::External, Search::BuiltIn],
            externals: vec![b"/ext".to_vec()],
            overrides: vec![Override {
                modname: b"a".to_vec(),
                subdir: b"override".to_vec(),
            }],
            ..Rules::default()
        };
        assert!(!keeps(&rules, "/m/1.0/kernel/a.ko", "/ext/a.ko"));
        assert!(keeps(&rules, "/m/1.0/override/a.ko", "/ext/a.ko"));
        assert!(!keeps(&rules, "/ext/a.ko", "/m/1.0/override/a.ko"));
    }
}
