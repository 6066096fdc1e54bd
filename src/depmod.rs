//! depmod: finds a kernel's modules, resolves the symbols each one needs to the
//! modules exporting them, and produces the `modules.*` files modprobe reads.
//!
//! Every decision that shapes the output follows kmod 34.2, because its files are
//! compared byte for byte: the module array order (a hash table's iteration order,
//! then `modules.order`), which module owns a symbol, the topological numbering and
//! the index layout. Reading the module files is the slow part (decompression), so
//! it runs in parallel; everything order-dependent runs afterwards, in kmod's order.

pub mod cache;
mod config;
mod cycles;
mod output;
mod scan;
mod symbols;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use rayon::prelude::*;

use crate::compat::{fgets_lines, strerror, until_nul};
use crate::diag::{Priority, Sink};
use crate::elf::split_strings;
use crate::module::{name_from_path as modname, ModuleError, ModuleFile};
use crate::msgf;

pub use config::{load_rules, parse_text as parse_config, CONFIG_DIRS};
pub use output::{prepare_output_dir, write_files, OutputFile};
pub use scan::{is_up_to_date, Override, Rules, Search};
use symbols::Symbols;

/// Why depmod stops with exit status 1.
#[derive(Debug)]
pub enum Failure {
    /// A FATAL message still to be printed.
    Fatal(Vec<u8>),
    /// The reasons were printed already.
    Reported,
}

/// Bytes as a path.
fn as_path(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// What the command line decided, apart from where modules come from.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The input module directory, `<root>/<moduledir>/<version>` by plain concatenation.
    pub dirname: Vec<u8>,
    /// `-P`: a symbol prefix character to ignore.
    pub sym_prefix: Option<u8>,
    /// `-E`: compare symbol CRCs.
    pub check_symvers: bool,
    /// `-e`: report unknown symbols and CRC mismatches.
    pub print_unknown: bool,
    /// `-w`: warn about duplicate index entries.
    pub warn_dups: bool,
    /// `-v`: print each new dependency on stdout.
    pub show_needs: bool,
}

/// A module file chosen for the output, before it is read.
#[derive(Debug, Clone)]
struct Candidate {
    path: Vec<u8>,
    name: Vec<u8>,
    /// Offset of the last `/` in `path`.
    last_slash: usize,
    /// Offset of the path relative to the module directory, if the module is inside it.
    rel: Option<usize>,
    /// The file's stat fields, taken before it is read.
    id: Option<cache::FileId>,
}

impl Candidate {
    fn new(path: Vec<u8>, name: Vec<u8>, dirname: &[u8]) -> Candidate {
        let last_slash = path.iter().rposition(|&b| b == b'/').unwrap_or(0);
        let inside =
            path.len() > dirname.len() && path.starts_with(dirname) && path[dirname.len()] == b'/';
        Candidate {
            rel: inside.then_some(dirname.len() + 1),
            path,
            name,
            last_slash,
            id: None,
        }
    }

    /// The directory part and the file name cut to the module name's length: the
    /// prefix that override and search rules compare against.
    fn stem_end(&self) -> usize {
        self.last_slash + 1 + self.name.len()
    }

    /// The path relative to the module directory with the compression suffix cut
    /// off (`kernel/a/foo-bar.ko`), as `modules.order` lists it.
    fn uncompressed_rel(&self) -> Option<&[u8]> {
        let rel = self.rel?;
        let end = (self.stem_end() + 3).min(self.path.len());
        self.path.get(rel..end)
    }
}

/// Collects the modules of a tree, then resolves everything ([`Depmod::build`]).
pub struct Depmod<'a> {
    settings: Settings,
    log: &'a Sink,
    symbols: Symbols,
    candidates: HashMap<Vec<u8>, Candidate>,
    cache: Option<cache::Session>,
}

impl<'a> Depmod<'a> {
    pub fn new(settings: Settings, log: &'a Sink) -> Depmod<'a> {
        Depmod {
            symbols: Symbols::new(settings.sym_prefix),
            settings,
            log,
            candidates: HashMap::new(),
            cache: None,
        }
    }

    /// Reuses what `<dir>/modules.cache` says of unchanged module files, and with
    /// `write` makes a new cache for [`Tree::save_cache`]. Called before the scan,
    /// which stats the modules (see [`cache`] on why the order matters).
    pub fn use_cache(&mut self, dir: &[u8], write: bool) {
        self.cache = Some(cache::Session::open(dir, &self.settings.dirname, write));
    }

    /// `-E`: kernel symbols and CRCs from a Module.symvers file.
    pub fn load_symvers(&mut self, path: &Path) -> std::io::Result<()> {
        self.symbols.load_symvers(path, self.log)
    }

    /// `-F`: kernel symbols from a System.map file.
    pub fn load_system_map(&mut self, path: &Path) -> std::io::Result<()> {
        self.symbols.load_system_map(path, self.log)
    }

    /// Adds one module given on the command line.
    pub fn add_file(&mut self, path: &[u8]) -> Result<(), Failure> {
        if !path.starts_with(b"/") {
            return Err(Failure::Fatal(msgf!("{}: not absolute path.", path)));
        }
        let cannot_create =
            |e: Errno| Failure::Fatal(msgf!("could not create module {}: {}", path, strerror(e)));
        let st = nix::sys::stat::stat(as_path(path)).map_err(cannot_create)?;
        let name = modname(path).ok_or_else(|| cannot_create(Errno::ENOENT))?;
        if let Some(old) = self.candidates.get(&name) {
            if old.path == path {
                self.log.log_bytes(
                    Priority::Error,
                    msgf!("hash_add_unique {}: {}", &name, strerror(Errno::EEXIST)),
                );
                return Err(Failure::Fatal(msgf!(
                    "could not add module {}: {}",
                    path,
                    strerror(Errno::EEXIST)
                )));
            }
            self.log.log_bytes(
                Priority::Error,
                msgf!("kmod_module '{}' already exists with different path: new-path='{}' old-path='{}'", &name, path, &old.path),
            );
            return Err(cannot_create(Errno::EEXIST));
        }
        let mut candidate = Candidate::new(path.to_vec(), name.clone(), &self.settings.dirname);
        candidate.id = Some(cache::FileId::of(&st));
        self.candidates.insert(name, candidate);
        Ok(())
    }

    /// Orders the modules, reads them all and resolves their dependencies.
    pub fn build(self) -> Result<Tree, Failure> {
        let Depmod {
            settings,
            log,
            mut symbols,
            candidates,
            cache,
        } = self;
        let mut modules: Vec<Candidate> = candidates.into_values().collect();
        // kmod builds its array by walking a 512-bucket hash table.
        modules.sort_by_cached_key(|m| (symbols::bucket(&m.name, 512), m.name.clone()));
        if modules.len() >= u16::MAX as usize {
            return Err(Failure::Fatal(msgf!(
                "could not build module array: {}",
                strerror(Errno::ERANGE)
            )));
        }
        apply_modules_order(&settings.dirname, &mut modules, log);

        let mut session = cache;
        if let Some(session) = session.as_mut() {
            session.wait(log);
        }
        let loaded = read_all(&modules, session.as_mut());
        let (deps, users, cache) = match session {
            None => {
                let (deps, users) = resolve(&settings, &modules, &loaded, &mut symbols, log);
                (deps, users, None)
            }
            // When most modules came from the cache, the run is short and the new
            // cache is made here while the symbols are resolved on another core
            // (here, so that rendering reuses what encoding freed, where another
            // thread's allocator arena would keep it). When most were read, the
            // run is long and its peak memory is what counts: the cache is made
            // first, and resolving reuses its memory.
            Some(session) => {
                session.report(modules.len(), log);
                let (deps, users, finished) = if session.mostly_reused(modules.len()) {
                    let symbols = std::sync::Mutex::new(&mut symbols);
                    let resolve_them = || {
                        let mut symbols = symbols.lock().unwrap_or_else(|e| e.into_inner());
                        resolve(&settings, &modules, &loaded, &mut symbols, log)
                    };
                    std::thread::scope(|scope| {
                        let resolver =
                            std::thread::Builder::new().spawn_scoped(scope, resolve_them);
                        let finished = session.finish(&modules, &loaded);
                        let (deps, users) = match resolver {
                            Ok(thread) => thread
                                .join()
                                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                            Err(_) => resolve_them(),
                        };
                        (deps, users, finished)
                    })
                } else {
                    let finished = session.finish(&modules, &loaded);
                    let (deps, users) = resolve(&settings, &modules, &loaded, &mut symbols, log);
                    (deps, users, finished)
                };
                let cache = finished.unwrap_or_else(|e| {
                    log.log_bytes(
                        Priority::Debug,
                        msgf!("module cache not written: {}", e.to_string()),
                    );
                    None
                });
                (deps, users, cache)
            }
        };

        let modules: Vec<Module> = modules
            .into_iter()
            .zip(loaded)
            .zip(deps)
            .map(|((c, l), deps)| Module {
                candidate: c,
                aliases: l.aliases,
                softdeps: l.softdeps,
                weakdeps: l.weakdeps,
                deps,
                order: 0,
            })
            .collect();
        let mut tree = Tree {
            settings,
            modules,
            symbols,
            cache,
        };
        tree.number_topologically(users, log)?;
        // What reading freed sits in the reading threads' allocator arenas, where
        // rendering on this thread cannot reuse it.
        crate::compat::release_free_memory();
        Ok(tree)
    }
}

/// Adds every module's exports to the symbol table (reporting modules that could
/// not be read), then resolves each needed symbol to its exporter: each module's
/// dependencies in the order found, and how many modules need each one.
fn resolve(
    settings: &Settings,
    modules: &[Candidate],
    loaded: &[Loaded],
    symbols: &mut Symbols,
    log: &Sink,
) -> (Vec<Vec<u32>>, Vec<u32>) {
    symbols.reserve(loaded.iter().map(|l| l.exports.len()).sum());
    for (i, (m, l)) in modules.iter().zip(loaded).enumerate() {
        if let Some((errno, detail)) = &l.error {
            if let Some(detail) = detail {
                log.log_bytes(Priority::Error, msgf!("{}", detail));
            }
            log.log_bytes(
                Priority::Error,
                msgf!(
                    "failed to load symbols from {}: {}",
                    &m.path,
                    strerror(*errno)
                ),
            );
        }
        for (name, crc) in &l.exports {
            symbols.add(name, false, *crc, Some(i as u32));
        }
    }

    let mut deps: Vec<Vec<u32>> = vec![Vec::new(); modules.len()];
    // The last module (plus one) found to need each module: a cheap check
    // against adding a dependency twice.
    let mut needed_by = vec![0u32; modules.len()];
    let mut users = vec![0u32; modules.len()];
    let stdout = std::io::stdout();
    for (i, (m, l)) in modules.iter().zip(loaded).enumerate() {
        for need in l.needs.iter() {
            let Some((key, sym)) = symbols.find(need.name) else {
                if settings.print_unknown && !need.weak {
                    log.log_bytes(
                        Priority::Warning,
                        msgf!("{} needs unknown symbol {}", &m.path, need.name),
                    );
                }
                continue;
            };
            if settings.check_symvers && sym.crc != need.crc && !need.weak && settings.print_unknown
            {
                log.log_bytes(
                    Priority::Warning,
                    msgf!(
                        "{} disagrees about version of symbol {}",
                        &m.path,
                        need.name
                    ),
                );
            }
            let Some(owner) = sym.owner else { continue };
            if needed_by[owner as usize] == i as u32 + 1 {
                continue;
            }
            needed_by[owner as usize] = i as u32 + 1;
            deps[i].push(owner);
            users[owner as usize] += 1;
            if settings.show_needs {
                let mut out = stdout.lock();
                let _ = out.write_all(&m.path);
                let _ = out.write_all(b" needs \"");
                let _ = out.write_all(key);
                let _ = out.write_all(b"\": ");
                let _ = out.write_all(&modules[owner as usize].path);
                let _ = out.write_all(b"\n");
                let _ = out.flush();
            }
        }
    }
    (deps, users)
}

/// Reads every module the cache has nothing for, on all cores. The largest files
/// go first, so that no core is left idle at the end while another decompresses a
/// big module.
fn read_all(modules: &[Candidate], mut cache: Option<&mut cache::Session>) -> Vec<Loaded> {
    let mut loaded: Vec<Loaded> = Vec::with_capacity(modules.len());
    let mut by_size: Vec<(i64, usize)> = Vec::new();
    // The module each cached file went to: another path to the same file (a hard
    // or symbolic link) gets a copy.
    let mut handed_out: HashMap<cache::FileId, usize> = HashMap::new();
    for (i, m) in modules.iter().enumerate() {
        let hit = match (cache.as_mut(), m.id) {
            (Some(cache), Some(id)) => match handed_out.get(&id) {
                Some(&first) => Some(cache.reuse(loaded[first].clone())),
                None => cache.take(id).inspect(|_| {
                    handed_out.insert(id, i);
                }),
            },
            _ => None,
        };
        match hit {
            Some(l) => loaded.push(l),
            None => {
                loaded.push(Loaded::default());
                by_size.push((m.id.map_or(0, |id| id.size), i));
            }
        }
    }
    by_size.sort_unstable_by(|a, b| b.cmp(a));
    let read: Vec<(usize, Loaded)> = by_size
        .par_iter()
        .map(|&(_, i)| (i, Loaded::read(&modules[i].path)))
        .collect();
    for (i, l) in read {
        loaded[i] = l;
    }
    loaded
}

/// Moves the modules listed in `<dir>/modules.order` to the front, in file order.
fn apply_modules_order(dirname: &[u8], modules: &mut Vec<Candidate>, log: &Sink) {
    const ORDER: &str = "modules.order";
    let Some(data) = output::read_at(dirname, ORDER, log) else {
        return;
    };
    let by_path: HashMap<&[u8], usize> = modules
        .iter()
        .enumerate()
        .filter_map(|(i, m)| Some((m.uncompressed_rel()?, i)))
        .collect();
    let n = modules.len() as i64;
    let mut key = vec![1i64; modules.len()];
    let mut next = -n;
    for (lineno, chunk) in fgets_lines(&data, 4096).enumerate() {
        let line = until_nul(chunk);
        if line.is_empty() {
            continue;
        }
        let Some(line) = line.strip_suffix(b"\n") else {
            log.log_bytes(
                Priority::Error,
                msgf!(
                    "{}/{}:{} corrupted line misses '\\n'",
                    dirname,
                    ORDER,
                    lineno + 1
                ),
            );
            return;
        };
        if let Some(&i) = by_path.get(line) {
            if key[i] < 0 {
                continue;
            }
            key[i] = next;
            next += 1;
        }
    }
    let mut keyed: Vec<(i64, Candidate)> = key.into_iter().zip(modules.drain(..)).collect();
    keyed.sort_by_key(|(k, _)| *k);
    modules.extend(keyed.into_iter().map(|(_, m)| m));
}

/// A needed symbol, as stored in [`Needs`].
struct Need<'a> {
    name: &'a [u8],
    crc: u64,
    weak: bool,
}

/// The symbols a module needs, names packed in one buffer: there are hundreds of
/// thousands of them in a distribution tree.
#[derive(Default, Clone)]
struct Needs {
    names: Vec<u8>,
    entries: Vec<(u32, u64, bool)>,
}

impl Needs {
    fn push(&mut self, name: &[u8], crc: u64, weak: bool) {
        // Offsets are 32-bit; names beyond 4 GiB (never in a real module) are dropped.
        let Ok(end) = u32::try_from(self.names.len() + name.len()) else {
            return;
        };
        self.names.extend_from_slice(name);
        self.entries.push((end, crc, weak));
    }

    fn iter(&self) -> impl Iterator<Item = Need<'_>> {
        let mut start = 0usize;
        self.entries.iter().map(move |&(end, crc, weak)| {
            let name = &self.names[start..end as usize];
            start = end as usize;
            Need { name, crc, weak }
        })
    }
}

/// What depmod takes from one module file.
#[derive(Default, Clone)]
struct Loaded {
    /// Exported symbols and their CRCs.
    exports: Vec<(Vec<u8>, u64)>,
    /// For a file that cannot be read as a module: the errno kmod reports, and a
    /// more precise cause to print before it.
    error: Option<(Errno, Option<String>)>,
    aliases: Vec<Vec<u8>>,
    softdeps: Vec<Vec<u8>>,
    weakdeps: Vec<Vec<u8>>,
    needs: Needs,
}

impl Loaded {
    fn read(path: &[u8]) -> Loaded {
        let failed = |e: ModuleError| {
            let detail = match &e {
                ModuleError::Decompress(_, d) => Some(d.to_string()),
                _ => None,
            };
            Loaded {
                error: Some((e.errno(), detail)),
                ..Loaded::default()
            }
        };
        let file = match ModuleFile::open(as_path(path)) {
            Ok(f) => f,
            Err(e) => return failed(e),
        };
        let elf = match file.elf() {
            Ok(elf) => elf,
            Err(e) => return failed(e),
        };
        let mut loaded = Loaded {
            exports: elf
                .exported_symbols()
                .into_iter()
                .map(|s| (s.name.to_vec(), s.crc))
                .collect(),
            ..Loaded::default()
        };
        if let Some(modinfo) = elf.section(".modinfo") {
            for entry in split_strings(modinfo) {
                // libkmod gives a string without `=` an empty value.
                let (key, value) = match entry.iter().position(|&b| b == b'=') {
                    Some(eq) => (&entry[..eq], &entry[eq + 1..]),
                    None => (entry, &entry[entry.len()..]),
                };
                let list = match key {
                    b"alias" => &mut loaded.aliases,
                    b"softdep" => &mut loaded.softdeps,
                    b"weakdep" => &mut loaded.weakdeps,
                    _ => continue,
                };
                list.push(value.to_vec());
            }
        }
        // libkmod lists no needed symbols at all without a usable symbol table,
        // not even the __versions entries.
        if elf.has_symbol_table() {
            for sym in elf.dependency_symbols() {
                loaded.needs.push(sym.name, sym.crc, sym.weak);
            }
        }
        loaded
    }
}

/// A module in the final array.
struct Module {
    candidate: Candidate,
    aliases: Vec<Vec<u8>>,
    softdeps: Vec<Vec<u8>>,
    weakdeps: Vec<Vec<u8>>,
    /// Direct dependencies (array indexes) in the order they were found.
    deps: Vec<u32>,
    /// Topological number: a module comes before every module it needs.
    order: u32,
}

impl Module {
    fn name(&self) -> &[u8] {
        &self.candidate.name
    }

    /// The path modules.dep shows: relative to the module directory when inside it.
    fn shown_path(&self) -> &[u8] {
        let c = &self.candidate;
        &c.path[c.rel.unwrap_or(0)..]
    }
}

/// Every module read and ordered, dependencies resolved: ready for output.
pub struct Tree {
    settings: Settings,
    modules: Vec<Module>,
    symbols: Symbols,
    /// A new module cache to publish.
    cache: Option<cache::Pending>,
}

impl Tree {
    /// Publishes the new module cache (if the run made one) the way the output
    /// files are published. Call it after them: a cache never stands in for them.
    /// A cache that cannot be written only costs the next run time, so its
    /// troubles are shown at debug verbosity, not as errors.
    pub fn save_cache(&mut self, log: &Sink) {
        let Some(pending) = self.cache.take() else {
            return;
        };
        let demoted = log.threshold() - (Priority::Debug as i32 - Priority::Error as i32);
        let quiet = Sink::new(log.prog(), demoted, false);
        if let Err(Failure::Fatal(msg)) = pending.publish(&quiet) {
            quiet.log_bytes(Priority::Error, &msg);
        }
    }

    /// Numbers the modules so each comes before what it needs, taking modules off a
    /// stack of those no remaining module needs; fails on dependency cycles.
    fn number_topologically(&mut self, mut users: Vec<u32>, log: &Sink) -> Result<(), Failure> {
        let mut stack: Vec<u32> = (0..self.modules.len() as u32)
            .filter(|&i| users[i as usize] == 0)
            .collect();
        let mut numbered = 0u32;
        while let Some(i) = stack.pop() {
            let m = &mut self.modules[i as usize];
            m.order = numbered;
            numbered += 1;
            for &d in &m.deps {
                users[d as usize] -= 1;
                if users[d as usize] == 0 {
                    stack.push(d);
                }
            }
        }
        if (numbered as usize) < self.modules.len() {
            let names: Vec<&[u8]> = self.modules.iter().map(Module::name).collect();
            let deps: Vec<&[u32]> = self.modules.iter().map(|m| &m.deps[..]).collect();
            cycles::report(&names, &deps, &users, log);
            return Err(Failure::Reported);
        }
        Ok(())
    }

    /// Every module `index` needs, directly or not, in topological order.
    fn closure(&self, index: usize, seen: &mut [u32], stamp: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut todo: Vec<u32> = self.modules[index].deps.iter().rev().copied().collect();
        while let Some(d) = todo.pop() {
            if seen[d as usize] == stamp {
                continue;
            }
            seen[d as usize] = stamp;
            out.push(d);
            todo.extend(self.modules[d as usize].deps.iter().rev());
        }
        out.sort_by_key(|&d| self.modules[d as usize].order);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        let c = Candidate::new(
            b"/m/6.1/kernel/a/foo-bar.ko.xz".to_vec(),
            b"foo_bar".to_vec(),
            b"/m/6.1",
        );
        assert_eq!(c.uncompressed_rel().unwrap(), b"kernel/a/foo-bar.ko");
        let c = Candidate::new(b"/m/6.1/foo.bar.ko".to_vec(), b"foo".to_vec(), b"/m/6.1");
        // The name's length plus ".ko", whatever the file name really continues with.
        assert_eq!(c.uncompressed_rel().unwrap(), b"foo.ba");
        let c = Candidate::new(b"/m/6.10/x.ko".to_vec(), b"x".to_vec(), b"/m/6.1");
        assert_eq!(c.rel, None);
    }
}
