//! Finding module files: the directory walk, depmod.d's rules for choosing
//! between files of the same module name, and the `-A` freshness check.
//!
//! The walks use directory file descriptors like kmod's (one open per level), so
//! their messages, which name the descriptor, read the same. Unlike kmod's they
//! keep their levels on an explicit stack, never enter a directory that is already
//! open further up (a loop, which kmod follows until it runs out of descriptors)
//! and stop at [`MAX_DEPTH`] levels.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, stat, FileStat, Mode, SFlag};

use crate::compat::strerror;
use crate::diag::{Priority, Sink};
use crate::module::{has_module_suffix, name_from_path as modname};
use crate::msgf;

use super::{as_path, Candidate, Depmod, Failure};

/// Directory levels a walk enters below its starting directory. Each level holds a
/// descriptor open, so this keeps a pathologically deep tree from using them all up
/// (real module trees are about ten levels deep).
pub const MAX_DEPTH: usize = 256;

/// kmod's path buffer limits, which the `-A` check applies.
const PATH_MAX: usize = 4096;
const NAME_MAX: usize = 255;

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
}

/// Whether `path[..len]` is inside `dir`: `dir` followed by a `/`.
#[cfg(test)]
fn starts_with_dir(path: &[u8], len: usize, dir: &[u8]) -> bool {
    len > dir.len() && path.get(dir.len()) == Some(&b'/') && path.starts_with(dir)
}

/// Every `dir` for which [`starts_with_dir`]`(path, len, dir)` holds: the parts of
/// `path` before each `/` within its first `len` bytes.
fn parent_dirs(path: &[u8], len: usize) -> impl Iterator<Item = &[u8]> {
    let len = len.min(path.len());
    path[..len]
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'/')
        .map(move |(k, _)| &path[..k])
}

/// The directory and name part of a path relative to the module directory; empty
/// outside it. Like kmod, only the name prefix is compared, not the separator.
fn relative_stem<'a>(c: &'a Candidate, dirname: &[u8]) -> &'a [u8] {
    match c.path.get(dirname.len() + 1..c.stem_end()) {
        Some(rel) if c.path.starts_with(dirname) => rel,
        _ => &[],
    }
}

/// depmod.d's rules prepared for the walk: which names to skip, and kmod's priority
/// decision between files of the same module name, looked up in tables rather than
/// by going through every rule for every such file.
///
/// kmod keeps its rule lists in reverse configuration order and numbers the search
/// entries that way, so a higher number is an earlier line and wins; an `external`
/// entry takes one number per external directory. Each search entry is tried on the
/// new path first and on the old one only if the new path did not match it; that
/// asymmetry decides between two files in the same place.
struct Chooser<'a> {
    excludes: HashSet<&'a [u8]>,
    /// `subdir/modname` of each override → its highest line index.
    overrides: HashMap<Vec<u8>, usize>,
    /// Each searched directory → its highest number.
    dirs: HashMap<&'a [u8], i64>,
    /// The first number of the highest-numbered `external` entry.
    external_base: Option<i64>,
    /// Each external directory → its highest offset within an `external` entry.
    externals: HashMap<&'a [u8], i64>,
    /// The number of `built-in`, or -1.
    builtin: i64,
}

impl<'a> Chooser<'a> {
    fn new(rules: &'a Rules, searches: &'a [Search]) -> Chooser<'a> {
        let mut chooser = Chooser {
            excludes: rules.excludes.iter().map(|e| &e[..]).collect(),
            overrides: HashMap::new(),
            dirs: HashMap::new(),
            external_base: None,
            externals: HashMap::new(),
            builtin: -1,
        };
        for (line, ov) in rules.overrides.iter().enumerate() {
            let wanted = [&ov.subdir[..], b"/", &ov.modname].concat();
            chooser.overrides.insert(wanted, line);
        }
        for (offset, ext) in rules.externals.iter().rev().enumerate() {
            chooser.externals.insert(ext, offset as i64);
        }
        let mut i = 0i64;
        for search in searches.iter().rev() {
            match search {
                Search::BuiltIn => chooser.builtin = i,
                Search::External => {
                    chooser.external_base = Some(i);
                    i += rules.externals.len() as i64;
                }
                Search::Dir(dir) => {
                    chooser.dirs.insert(dir, i);
                }
            }
            i += 1;
        }
        chooser
    }

    fn excluded(&self, name: &[u8]) -> bool {
        matches!(name, b"." | b".." | b"build" | b"source") || self.excludes.contains(name)
    }

    /// The number of the last external entry matching `c`, if any.
    fn external_priority(&self, c: &Candidate) -> Option<i64> {
        let base = self.external_base?;
        parent_dirs(&c.path, c.stem_end())
            .filter_map(|dir| self.externals.get(dir))
            .max()
            .map(|offset| base + offset)
    }

    /// True to keep the module already chosen, `old`, over the new file `new`.
    fn keep_old(&self, dirname: &[u8], old: &Candidate, new: &Candidate) -> bool {
        let (rel_new, rel_old) = (relative_stem(new, dirname), relative_stem(old, dirname));
        // The last override line naming either path decides, the new path first.
        match (self.overrides.get(rel_new), self.overrides.get(rel_old)) {
            (Some(n), Some(o)) => return n < o,
            (Some(_), None) => return false,
            (None, Some(_)) => return true,
            (None, None) => {}
        }
        let dir_new = parent_dirs(rel_new, rel_new.len())
            .filter_map(|dir| self.dirs.get(dir))
            .max()
            .copied();
        let dir_old = parent_dirs(rel_old, rel_old.len())
            .filter(|dir| !self.matches_dir(rel_new, dir))
            .filter_map(|dir| self.dirs.get(dir))
            .max()
            .copied();
        let best = |a: Option<i64>, b: Option<i64>| a.max(b).unwrap_or(self.builtin);
        let prio_new = best(dir_new, self.external_priority(new));
        let prio_old = best(dir_old, self.external_priority(old));
        prio_new <= prio_old
    }

    /// Whether a search entry for `dir` matches the relative path `rel`.
    fn matches_dir(&self, rel: &[u8], dir: &[u8]) -> bool {
        rel.len() > dir.len() && rel[dir.len()] == b'/' && rel.starts_with(dir)
    }
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

/// Device and inode of an open directory: what tells a loop.
type DirId = (nix::libc::dev_t, nix::libc::ino_t);

fn dir_id(dir: &Dir) -> Option<DirId> {
    fstat(dir.as_fd()).ok().map(|st| (st.st_dev, st.st_ino))
}

/// An open directory of a walk with the entries still to visit.
struct Level {
    dir: Dir,
    entries: std::vec::IntoIter<(Vec<u8>, Option<Type>)>,
    /// Length of the walk's path up to and including this directory's `/`.
    base: usize,
    id: Option<DirId>,
}

/// The next entry of the deepest open directory of a walk, and how many directories
/// are open; directories whose entries are used up are closed on the way.
fn next_entry(levels: &mut Vec<Level>) -> Option<(usize, Vec<u8>, Option<Type>)> {
    loop {
        let depth = levels.len();
        match levels.last_mut()?.entries.next() {
            Some((name, ty)) => return Some((depth, name, ty)),
            None => {
                levels.pop();
            }
        }
    }
}

impl Level {
    fn new(mut dir: Dir, base: usize, id: Option<DirId>) -> Level {
        let entries = entries(&mut dir).into_iter();
        Level {
            dir,
            entries,
            base,
            id,
        }
    }

    fn top(dir: Dir, path: &[u8]) -> Level {
        let id = dir_id(&dir);
        Level::new(dir, path.len(), id)
    }
}

/// The level, among those open, that is the same directory as `id`.
fn ancestor(levels: &[Level], id: Option<DirId>) -> Option<&Level> {
    let id = id?;
    levels.iter().find(|l| l.id == Some(id))
}

/// Regular file or directory, following symlinks; None after logging otherwise.
fn kind_of(dir: &Dir, name: &[u8], ty: Option<Type>, path: &[u8], log: &Sink) -> Option<bool> {
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
        log.log_bytes(
            Priority::Error,
            msgf!(
                "unsupported file type {}: {}",
                path,
                format!("{:o}", fmt.bits())
            ),
        );
        None
    }
}

/// fstatat following symlinks, logging a failure as kmod does.
fn stat_at(dir: &Dir, name: &[u8], log: &Sink) -> Option<FileStat> {
    fstatat(dir.as_fd(), OsStr::from_bytes(name), AtFlags::empty())
        .map_err(|e| {
            log.log_bytes(
                Priority::Error,
                msgf!("fstatat({}, {}): {}", dir.as_raw_fd(), name, strerror(e)),
            )
        })
        .ok()
}

fn open_subdir(dir: &Dir, name: &[u8], log: &Sink) -> Option<Dir> {
    match Dir::openat(
        dir.as_fd(),
        OsStr::from_bytes(name),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(sub) => Some(sub),
        Err(e) => {
            log.log_bytes(
                Priority::Error,
                msgf!(
                    "openat({}, {}, O_RDONLY): {}",
                    dir.as_raw_fd(),
                    name,
                    strerror(e)
                ),
            );
            None
        }
    }
}

/// Warnings the scan already gave, so that each problem is reported once even when
/// the walk comes across it by several paths.
#[derive(Default)]
struct Warned {
    /// (directory holding the entry, directory the entry leads back to).
    loops: HashSet<(Option<DirId>, DirId)>,
    too_deep: bool,
}

impl Depmod<'_> {
    /// Scans the module directory, then each external directory (last configured
    /// first, as kmod lists them), choosing one file per module name.
    pub fn scan(&mut self, rules: &Rules) -> Result<(), Failure> {
        let searches = rules.searches();
        let chooser = Chooser::new(rules, &searches);
        let mut warned = Warned::default();
        let dirname = self.settings.dirname.clone();
        self.scan_top(&chooser, &dirname, &mut warned)
            .map_err(|e| Failure::Fatal(msgf!("could not search modules: {}", strerror(e))))?;
        for ext in rules.externals.iter().rev() {
            // A missing external directory is only reported.
            let _ = self.scan_top(&chooser, ext, &mut warned);
        }
        Ok(())
    }

    fn scan_top(
        &mut self,
        chooser: &Chooser,
        top: &[u8],
        warned: &mut Warned,
    ) -> Result<(), Errno> {
        let dir = open_dir(top).inspect_err(|&e| {
            self.log.log_bytes(
                Priority::Error,
                msgf!("could not open directory {}: {}", top, strerror(e)),
            );
        })?;
        let mut path = top.to_vec();
        path.push(b'/');
        let mut levels = vec![Level::top(dir, &path)];
        while let Some((depth, name, ty)) = next_entry(&mut levels) {
            let Some(level) = levels.last() else {
                break;
            };
            if chooser.excluded(&name) {
                continue;
            }
            path.truncate(level.base);
            path.extend_from_slice(&name);
            let Some(is_dir) = kind_of(&level.dir, &name, ty, &path, self.log) else {
                continue;
            };
            if !is_dir {
                if has_module_suffix(&name) {
                    self.consider(chooser, &path);
                }
                continue;
            }
            if depth > MAX_DEPTH {
                if !std::mem::replace(&mut warned.too_deep, true) {
                    self.log.log_bytes(
                        Priority::Warning,
                        msgf!("directories nested too deep: {} is more than {} levels below {}; not searched", &path, MAX_DEPTH, top),
                    );
                }
                continue;
            }
            let Some(sub) = open_subdir(&level.dir, &name, self.log) else {
                continue;
            };
            let parent = level.id;
            let id = dir_id(&sub);
            if let (Some(same), Some(id)) = (ancestor(&levels, id), id) {
                if warned.loops.insert((parent, id)) {
                    self.log.log_bytes(
                        Priority::Warning,
                        msgf!(
                            "directory loop: {} leads back to {}; not searching it again",
                            &path,
                            &path[..same.base - 1]
                        ),
                    );
                }
                continue;
            }
            path.push(b'/');
            levels.push(Level::new(sub, path.len(), id));
        }
        Ok(())
    }

    /// A module file found by the walk: chosen unless a file of the same name wins.
    fn consider(&mut self, chooser: &Chooser, path: &[u8]) {
        let Some(name) = modname(path) else {
            return;
        };
        let dirname = &self.settings.dirname;
        let new = Candidate::new(path.to_vec(), name, dirname);
        if let Some(old) = self.candidates.get(&new.name) {
            if chooser.keep_old(dirname, old, &new) {
                return;
            }
        }
        // kmod drops the module it had before it creates the new one from the path
        // made absolute, which fails when that path cannot be resolved (too long, or
        // too many symbolic links on the way); then no file of that name is left.
        self.candidates.remove(&new.name);
        let absolute = crate::resolve::absolute(as_path(path))
            .into_os_string()
            .into_vec();
        let st = match stat(as_path(&absolute)) {
            Ok(st) => st,
            Err(e) => {
                for what in ["could not create module", "failed"] {
                    self.log
                        .log_bytes(Priority::Error, msgf!("{} {}: {}", what, path, strerror(e)));
                }
                return;
            }
        };
        // The comparison used the path as found; the module keeps it made absolute
        // (an external directory may be given relative to the working directory).
        let mut new = Candidate::new(absolute, new.name, dirname);
        new.id = Some(super::cache::FileId::of(&st));
        self.candidates.insert(new.name.clone(), new);
    }
}

/// `-A`: true when `<dir>/modules.dep` exists and no module file under `dir` has a
/// newer modification time (in seconds, as kmod 34.2 compares).
pub fn is_up_to_date(dirname: &[u8], log: &Sink) -> bool {
    let dir = match open_dir(dirname) {
        Ok(d) => d,
        Err(e) => {
            log.log_bytes(
                Priority::Error,
                msgf!("could not open directory {}: {}", dirname, strerror(e)),
            );
            return false;
        }
    };
    let dep_time = match fstatat(dir.as_fd(), "modules.dep", AtFlags::empty()) {
        Ok(st) => st.st_mtime,
        Err(e) => {
            log.log_bytes(
                Priority::Error,
                msgf!(
                    "could not fstatat({}, modules.dep): {}",
                    dirname,
                    strerror(e)
                ),
            );
            return false;
        }
    };
    !has_newer_module(dir, dirname, dep_time, log)
}

/// kmod's freshness walk, messages and path limits included. `path` follows the
/// contents of kmod's path buffer, which its messages print: a name stays in it
/// until the next one is copied over it.
fn has_newer_module(top: Dir, dirname: &[u8], time: i64, log: &Sink) -> bool {
    let mut path = dirname.to_vec();
    path.push(b'/');
    let mut levels = vec![Level::top(top, &path)];
    while let Some((depth, name, _)) = next_entry(&mut levels) {
        let Some(level) = levels.last() else {
            break;
        };
        if matches!(&name[..], b"." | b".." | b"build" | b"source") {
            continue;
        }
        let base = level.base;
        if base + name.len() + 2 >= PATH_MAX {
            path.truncate(base);
            let mut msg = b"path is too long ".to_vec();
            msg.extend_from_slice(&path);
            msg.extend_from_slice(&name);
            log.log_bytes(Priority::Error, &msg);
            continue;
        }
        let Some(st) = stat_at(&level.dir, &name, log) else {
            continue;
        };
        let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if fmt == SFlag::S_IFDIR {
            path.truncate(base);
            path.extend_from_slice(&name);
            if base + name.len() + 2 + NAME_MAX >= PATH_MAX {
                let mut msg = b"directory path is too long ".to_vec();
                msg.extend_from_slice(&path);
                log.log_bytes(Priority::Error, &msg);
                continue;
            }
            if depth > MAX_DEPTH {
                // Unchecked modules may be newer: let the full run look (and warn).
                return true;
            }
            let Some(sub) = open_subdir(&level.dir, &name, log) else {
                continue;
            };
            let id = dir_id(&sub);
            // Everything below a directory met again is checked where it is open.
            if ancestor(&levels, id).is_some() {
                continue;
            }
            path.push(b'/');
            levels.push(Level::new(sub, path.len(), id));
        } else if fmt == SFlag::S_IFREG {
            if !has_module_suffix(&name) {
                continue;
            }
            path.truncate(base);
            path.extend_from_slice(&name);
            if st.st_mtime > time {
                return true;
            }
        } else {
            log.log_bytes(
                Priority::Error,
                msgf!(
                    "unsupported file type {}: {}",
                    &path,
                    format!("{:o}", fmt.bits())
                ),
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
        let searches = rules.searches();
        let chooser = Chooser::new(rules, &searches);
        let (old, new) = (candidate(old), candidate(new));
        let kept = chooser.keep_old(b"/m/1.0", &old, &new);
        assert_eq!(kept, rule_by_rule(rules, b"/m/1.0", &old, &new));
        kept
    }

    /// kmod's decision as kmod computes it, going through every rule: what the
    /// tables of [`Chooser`] must agree with.
    fn rule_by_rule(rules: &Rules, dirname: &[u8], old: &Candidate, new: &Candidate) -> bool {
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
        for search in rules.searches().iter().rev() {
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

    /// Every pairing of paths under a set of rules mixing repeated, nested and
    /// overlapping entries: the tables decide as going through the rules does.
    #[test]
    fn tables_agree_with_the_rules() {
        let dir = |d: &str| Search::Dir(d.as_bytes().to_vec());
        let override_ = |m: &str, d: &str| Override {
            modname: m.as_bytes().to_vec(),
            subdir: d.as_bytes().to_vec(),
        };
        let rule_sets = [
            Rules::default(),
            Rules {
                search: vec![
                    dir("updates"),
                    Search::External,
                    dir("kernel"),
                    Search::BuiltIn,
                    dir("updates"),
                    Search::External,
                    dir("kernel/a"),
                    dir("extra"),
                ],
                externals: vec![b"/ext".to_vec(), b"/ext/sub".to_vec(), b"/ext".to_vec()],
                overrides: vec![
                    override_("a", "extra"),
                    override_("a", "kernel"),
                    override_("b", "updates"),
                    override_("a", "extra"),
                ],
                ..Rules::default()
            },
            Rules {
                search: vec![Search::External, dir(""), Search::BuiltIn, Search::External],
                externals: vec![b"/ext/sub".to_vec(), b"/m/1.0/kernel".to_vec()],
                ..Rules::default()
            },
        ];
        let paths = [
            "/m/1.0/kernel/a.ko",
            "/m/1.0/kernel/a.ko.xz",
            "/m/1.0/kernel/a/a.ko",
            "/m/1.0/updates/a.ko",
            "/m/1.0/updates/x/a.ko",
            "/m/1.0/extra/a.ko",
            "/m/1.0/a.ko",
            "/m/1.0//a.ko",
            "/ext/a.ko",
            "/ext/sub/a.ko",
            "/ext/sub/deeper/a.ko",
            "/other/a.ko",
        ];
        for rules in &rule_sets {
            for old in paths {
                for new in paths {
                    keeps(rules, old, new);
                }
            }
        }
    }
}
