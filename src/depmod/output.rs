//! The files depmod writes: generated in memory, in kmod's order (which is also
//! the order of the messages generating them prints), then published together.

use std::ffi::OsStr;
use std::fs::{DirBuilder, File};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{fsync, linkat, unlinkat, UnlinkatFlags};

use crate::index::IndexBuilder;

use crate::compat::{fgets_lines, io_errno, scan_u32, strerror, until_nul};
use crate::diag::{Priority, Sink};
use crate::module::name_from_path as modname;
use crate::msgf;
use crate::resolve::alias_normalize;

use super::{as_path, Failure, Tree};

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub name: &'static str,
    pub data: Vec<u8>,
}

/// Reads `<dir>/<name>`; when that fails, warns as kmod does and returns None.
pub(super) fn read_at(dir: &[u8], name: &str, log: &Sink) -> Option<Vec<u8>> {
    if let Err(e) = File::open(as_path(dir)) {
        log.log_bytes(
            Priority::Warning,
            msgf!(
                "could not open directory {}: {}",
                dir,
                strerror(io_errno(&e))
            ),
        );
        return None;
    }
    let mut path = dir.to_vec();
    path.push(b'/');
    path.extend_from_slice(name.as_bytes());
    match crate::limits::read_whole(as_path(&path)) {
        Ok(data) => Some(data),
        Err(e) => {
            log.log_bytes(
                Priority::Warning,
                msgf!(
                    "could not open {} at {}: {}",
                    name,
                    dir,
                    strerror(io_errno(&e))
                ),
            );
            None
        }
    }
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
    log: &'a Sink,
    /// `-w`: the heading of the duplicate warning, or None to stay quiet.
    duplicates: Option<&'static str>,
}

impl<'a> Index<'a> {
    fn new(name: &'static str, log: &'a Sink, duplicates: Option<&'static str>) -> Index<'a> {
        Index {
            name,
            builder: IndexBuilder::new(),
            log,
            duplicates,
        }
    }

    /// Inserts a value; `shown` makes what a duplicate warning prints.
    fn insert<S: AsRef<[u8]>>(
        &mut self,
        key: &[u8],
        value: &[u8],
        priority: u32,
        shown: impl FnOnce() -> S,
    ) -> Result<(), Failure> {
        let (key, value) = (ascii(key)?, ascii(value)?);
        if self
            .builder
            .insert(key.as_bytes(), value.as_bytes(), priority)
        {
            if let Some(heading) = self.duplicates {
                let mut msg = format!("duplicate module {heading}:\n").into_bytes();
                msg.extend_from_slice(shown().as_ref());
                self.log.log_bytes(Priority::Warning, &msg);
            }
        }
        Ok(())
    }

    /// The index file; an index too large for the format's offsets is an error.
    fn finish(self) -> Result<Vec<u8>, Failure> {
        let mut out = Vec::new();
        self.builder.write_to(&mut out).map_err(|e| {
            self.log.log_bytes(
                Priority::Error,
                msgf!("Could not write index '{}': {}", self.name, e.to_string()),
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
    fn read_to(&mut self, end: u8, max: usize, log: &Sink) -> Vec<u8> {
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
            log.log_bytes(Priority::Warning, &msg);
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
    let (major, rest) = scan_u32(rest)?;
    let (minor, _) = scan_u32(rest.strip_prefix(b"-")?)?;
    Some((major, minor))
}

impl Tree {
    /// Generates the files in kmod's order. A dry run (`-n`) makes only the text
    /// files, as kmod's index generators do nothing when writing to stdout.
    pub fn render(&self, log: &Sink, dry_run: bool) -> Result<Vec<OutputFile>, Failure> {
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

    fn deps_bin(&self, lines: &[Vec<u8>], log: &Sink) -> Result<Vec<u8>, Failure> {
        let mut index = Index::new("modules.dep.bin", log, self.duplicates("deps"));
        for (i, (m, line)) in self.modules.iter().zip(lines).enumerate() {
            index.insert(m.name(), line, i as u32, || line)?;
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

    fn aliases_bin(&self, log: &Sink) -> Result<Vec<u8>, Failure> {
        let mut index = Index::new("modules.alias.bin", log, self.duplicates("alias"));
        for (i, m) in self.modules.iter().enumerate() {
            for alias in &m.aliases {
                let Some(key) = alias_normalize(alias) else {
                    log.log_bytes(Priority::Warning, msgf!("Unmatched bracket in {}", alias));
                    continue;
                };
                let shown = || [&key[..], b" ", m.name()].concat();
                index.insert(&key, m.name(), i as u32, shown)?;
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

    fn symbols_bin(&self, log: &Sink) -> Result<Vec<u8>, Failure> {
        let mut index = Index::new("modules.symbols.bin", log, self.duplicates("syms"));
        for (name, owner) in self.symbols.owned() {
            let key = [&b"symbol:"[..], name].concat();
            let owner_name = self.modules[owner as usize].name();
            let shown = || [&key[..], b" ", owner_name].concat();
            index.insert(&key, owner_name, owner, shown)?;
        }
        index.finish()
    }

    /// modules.builtin (one path per line) as an index of names. Missing input
    /// gives an empty file, as kmod publishes one.
    fn builtin_bin(&self, log: &Sink) -> Result<Vec<u8>, Failure> {
        let Some(data) = read_at(&self.settings.dirname, "modules.builtin", log) else {
            return Ok(Vec::new());
        };
        let mut index = Index::new("modules.builtin.bin", log, None);
        // kmod parses into a reused buffer, so a line without a file name repeats
        // the previous name.
        let mut name: Option<Vec<u8>> = None;
        for chunk in fgets_lines(&data, 4096) {
            let line = until_nul(chunk);
            if !line.first().is_some_and(u8::is_ascii_alphabetic) {
                let mut msg = b"Invalid modules.builtin line: ".to_vec();
                msg.extend_from_slice(line);
                log.log_bytes(Priority::Error, &msg);
                continue;
            }
            if let Some(n) = modname(line) {
                name = Some(n);
            }
            if let Some(name) = &name {
                index.insert(name, b"", 0, || b"")?;
            }
        }
        index.finish()
    }

    /// The `alias` records of modules.builtin.modinfo (`module.key=value\0`) as an
    /// index, parsed with kmod's quirks: a record without `=` swallows the next one.
    fn builtin_alias_bin(&self, log: &Sink) -> Result<Vec<u8>, Failure> {
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
                log.log_bytes(Priority::Warning, msgf!("Unmatched bracket in {}", &value));
                continue;
            };
            index.insert(&alias, &module, 0, || b"")?;
        }
        index.finish()
    }

    /// Modules that create device nodes: a `devname:` alias together with a
    /// `char-major-M-m` or `block-major-M-m` one.
    fn devname(&self, log: &Sink) -> Vec<u8> {
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
                log.log_bytes(
                    Priority::Error,
                    msgf!("Module '{}' has devname ({}) but lacks major and minor information. Ignoring.", m.name(), devname),
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
            Failure::Fatal(msgf!(
                "could not create directory {}: {}",
                dir,
                strerror(io_errno(&e))
            ))
        })?;
    File::open(path).map_err(|e| {
        Failure::Fatal(msgf!(
            "could not open directory {}: {}",
            dir,
            strerror(io_errno(&e))
        ))
    })?;
    Ok(())
}

/// Publishes the files in `dir`, each replacing the old one by rename, so that a
/// reader sees either a complete old or a complete new file, and at most one
/// temporary file exists at any moment (what a killed run can leave behind; the
/// next run removes it). Every file is on disk before its name refers to it, and
/// the directory is synced after the last rename.
///
/// Where the filesystem has unnamed temporary files (O_TMPFILE), all of them are
/// written before the first is published, so a failure to write (a full disk)
/// leaves every old file in place; each then gets its temporary name and is renamed
/// at once. Otherwise each file is written to its named temporary file and renamed
/// in turn.
pub fn write_files(dir: &[u8], files: &[OutputFile], log: &Sink) -> Result<(), Failure> {
    let fd = open_output_dir(dir)
        .map_err(|e| Failure::Fatal(msgf!("could not open directory {}: {}", dir, strerror(e))))?;
    let names: Vec<&str> = files.iter().map(|f| f.name).collect();
    remove_stale_temporaries(&fd, &names);
    Publisher::new(dir, fd, log).publish(files, true)
}

fn open_output_dir(dir: &[u8]) -> nix::Result<Dir> {
    Dir::open(
        as_path(dir),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// A file written ahead of time as an unnamed temporary file in its directory,
/// published later by [`Staged::publish`] by rename like [`write_files`] does: its
/// contents need not stay in memory meanwhile, and if it is never published,
/// nothing of it remains. Neither the file nor the directory is synced: this is
/// for a file whose reader detects a version torn or lost in a crash, and for
/// which an older version is as good (the module cache).
pub(super) struct Staged {
    dir: Vec<u8>,
    fd: Dir,
    file: File,
    name: &'static str,
}

impl Staged {
    /// None where the directory does not exist (yet), cannot take unnamed files,
    /// or the file cannot be written.
    pub(super) fn new(dir: &[u8], f: &OutputFile) -> Option<Staged> {
        let fd = open_output_dir(dir).ok()?;
        let file = File::from(
            openat(
                fd.as_fd(),
                ".",
                OFlag::O_TMPFILE | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .ok()?,
        );
        fill(&file, &f.data, false).ok()?;
        Some(Staged {
            dir: dir.to_vec(),
            fd,
            file,
            name: f.name,
        })
    }

    /// Gives the file its name, replacing the old file.
    pub(super) fn publish(self, log: &Sink) -> Result<(), Failure> {
        remove_stale_temporaries(&self.fd, &[self.name]);
        let publisher = Publisher::new(&self.dir, self.fd, log);
        let tmp = publisher.temporary(self.name);
        if !publisher.link(&self.file, &tmp, &mut Link::EmptyPath) {
            return Err(Failure::Fatal(msgf!(
                "could not link {} at {}",
                tmp,
                &self.dir
            )));
        }
        publisher.rename(&tmp, self.name)
    }
}

/// The name kmod gives the temporary file of output `name`, `name.PID.USEC.SEC`:
/// the PID, if `file` is one.
fn temporary_of(file: &[u8], name: &str) -> Option<i32> {
    let rest = file.strip_prefix(name.as_bytes())?.strip_prefix(b".")?;
    let mut numbers = rest.split(|&b| b == b'.');
    let pid = numbers.next()?;
    let all_digits = |n: &[u8]| !n.is_empty() && n.iter().all(u8::is_ascii_digit);
    let rest: Vec<&[u8]> = numbers.collect();
    if !all_digits(pid) || rest.len() != 2 || !rest.iter().all(|n| all_digits(n)) {
        return None;
    }
    std::str::from_utf8(pid).ok()?.parse().ok()
}

/// Whether process `pid` may still be writing its temporary files. This process
/// has not created any yet, so its own PID (reused from a killed run) is not.
fn is_running(pid: i32) -> bool {
    if pid <= 0 || pid as u32 == std::process::id() {
        return false;
    }
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(Errno::ESRCH)
    )
}

/// Removes the temporary files of the output files that an earlier depmod, killed
/// while writing, left in the directory.
fn remove_stale_temporaries(dir: &Dir, names: &[&str]) {
    let Ok(mut listing) = Dir::openat(
        dir.as_fd(),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    let stale: Vec<Vec<u8>> = listing
        .iter()
        .map_while(Result::ok)
        .map(|entry| entry.file_name().to_bytes().to_vec())
        .filter(|name| {
            names
                .iter()
                .find_map(|n| temporary_of(name, n))
                .is_some_and(|pid| !is_running(pid))
        })
        .collect();
    for name in stale {
        let _ = unlinkat(
            dir.as_fd(),
            OsStr::from_bytes(&name),
            UnlinkatFlags::NoRemoveDir,
        );
    }
}

/// Mode 0644 whatever the umask, the contents, then with `sync` the data on disk.
fn fill(mut file: &File, data: &[u8], sync: bool) -> std::io::Result<()> {
    file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    file.write_all(data)?;
    if !sync {
        return Ok(());
    }
    match file.sync_all() {
        Err(e) if unsyncable(io_errno(&e)) => Ok(()),
        other => other,
    }
}

/// How an unnamed file gets its name.
#[derive(Clone, Copy)]
enum Link {
    /// linkat(fd, "", AT_EMPTY_PATH): needs a recent kernel or CAP_DAC_READ_SEARCH.
    EmptyPath,
    /// linkat("/proc/self/fd/N", AT_SYMLINK_FOLLOW): needs /proc.
    Proc,
}

/// Writes output files into one directory, by its descriptor.
struct Publisher<'a> {
    dir: &'a [u8],
    fd: Dir,
    /// `.PID.USEC.SEC`, kmod's temporary file name suffix.
    suffix: String,
    log: &'a Sink,
}

/// fsync's answer for a file or directory that cannot be synced at all.
fn unsyncable(e: Errno) -> bool {
    matches!(e, Errno::EINVAL | Errno::EROFS | Errno::ENOTSUP)
}

impl<'a> Publisher<'a> {
    /// A publisher whose temporary files are named for this process and moment.
    fn new(dir: &'a [u8], fd: Dir, log: &'a Sink) -> Publisher<'a> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Publisher {
            dir,
            fd,
            suffix: format!(
                ".{}.{}.{}",
                std::process::id(),
                now.subsec_micros(),
                now.as_secs()
            ),
            log,
        }
    }

    fn temporary(&self, name: &str) -> String {
        format!("{name}{}", self.suffix)
    }

    /// `anonymous`: try unnamed temporary files first.
    fn publish(&self, files: &[OutputFile], anonymous: bool) -> Result<(), Failure> {
        let done = if anonymous {
            self.publish_anonymous(files)?
        } else {
            0
        };
        for f in &files[done..] {
            self.publish_named(f)?;
        }
        self.sync_dir()
    }

    /// Writes all files unnamed, then publishes them one by one. Returns how many it
    /// published: none without unnamed files here, fewer than all when one could not
    /// be given a name (the rest go the named way).
    ///
    /// The files are written and synced in parallel, one thread each: syncs that
    /// wait together share the filesystem's journal commits, where one after the
    /// other each waits for its own. Unnamed, they are invisible until published.
    fn publish_anonymous(&self, files: &[OutputFile]) -> Result<usize, Failure> {
        let mut written = Vec::with_capacity(files.len());
        for (i, f) in files.iter().enumerate() {
            let created = openat(
                self.fd.as_fd(),
                ".",
                OFlag::O_TMPFILE | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            );
            match created {
                Ok(fd) => written.push(File::from(fd)),
                Err(_) if i == 0 => return Ok(0),
                Err(e) => return Err(self.cannot_create(&self.temporary(f.name), e)),
            }
        }
        let filled: Vec<std::io::Result<()>> = std::thread::scope(|scope| {
            let threads: Vec<_> = files
                .iter()
                .zip(&written)
                .map(|(f, file)| {
                    std::thread::Builder::new()
                        .spawn_scoped(scope, move || fill(file, &f.data, true))
                        .map_err(|_| (f, file))
                })
                .collect();
            threads
                .into_iter()
                .map(|t| match t {
                    Ok(thread) => thread
                        .join()
                        .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::Other))),
                    // No thread to be had: this one here.
                    Err((f, file)) => fill(file, &f.data, true),
                })
                .collect()
        });
        // The first failure in kmod's order is reported, as writing in turn would.
        for (f, result) in files.iter().zip(&filled) {
            if let Err(e) = result {
                return Err(self.not_written(f, e));
            }
        }
        let mut link = Link::EmptyPath;
        for (i, (f, file)) in files.iter().zip(&written).enumerate() {
            let tmp = self.temporary(f.name);
            if !self.link(file, &tmp, &mut link) {
                return Ok(i);
            }
            self.rename(&tmp, f.name)?;
        }
        Ok(files.len())
    }

    /// Gives an unnamed file the name `tmp`, by `link` or else the other way (which
    /// then stays the way for the next files).
    fn link(&self, file: &File, tmp: &str, link: &mut Link) -> bool {
        let by_fd = || {
            linkat(
                file.as_fd(),
                "",
                self.fd.as_fd(),
                tmp,
                AtFlags::AT_EMPTY_PATH,
            )
        };
        let by_proc = || {
            let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
            linkat(
                nix::fcntl::AT_FDCWD,
                proc_path.as_str(),
                self.fd.as_fd(),
                tmp,
                AtFlags::AT_SYMLINK_FOLLOW,
            )
        };
        let (first, second) = match link {
            Link::EmptyPath => (Link::EmptyPath, Link::Proc),
            Link::Proc => (Link::Proc, Link::EmptyPath),
        };
        for way in [first, second] {
            let linked = match way {
                Link::EmptyPath => by_fd(),
                Link::Proc => by_proc(),
            };
            if linked.is_ok() {
                *link = way;
                return true;
            }
        }
        false
    }

    /// Writes one file to its named temporary file and renames it.
    fn publish_named(&self, f: &OutputFile) -> Result<(), Failure> {
        let tmp = self.temporary(f.name);
        let created = openat(
            self.fd.as_fd(),
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        );
        let file = File::from(created.map_err(|e| self.cannot_create(&tmp, e))?);
        let filled = fill(&file, &f.data, true).map_err(|e| self.not_written(f, &e));
        drop(file);
        if let Err(failure) = filled {
            let _ = unlinkat(self.fd.as_fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(failure);
        }
        self.rename(&tmp, f.name)
    }

    /// kmod's message for a temporary file it cannot create.
    fn cannot_create(&self, tmp: &str, e: Errno) -> Failure {
        self.log.log_bytes(
            Priority::Error,
            msgf!("openat({}, {}, 301, 644): {}", self.dir, tmp, strerror(e)),
        );
        Failure::Reported
    }

    /// kmod's message for a file it could not write.
    fn not_written(&self, f: &OutputFile, e: &std::io::Error) -> Failure {
        self.log.log_bytes(
            Priority::Error,
            msgf!(
                "Could not create index '{}'. Output is truncated: {}",
                f.name,
                strerror(io_errno(e))
            ),
        );
        Failure::Reported
    }

    fn sync_dir(&self) -> Result<(), Failure> {
        match fsync(self.fd.as_fd()) {
            Err(e) if !unsyncable(e) => {
                self.log.log_bytes(
                    Priority::Error,
                    msgf!("could not sync directory {}: {}", self.dir, strerror(e)),
                );
                Err(Failure::Reported)
            }
            _ => Ok(()),
        }
    }

    fn rename(&self, tmp: &str, name: &str) -> Result<(), Failure> {
        renameat(self.fd.as_fd(), tmp, self.fd.as_fd(), name).map_err(|e| {
            let _ = unlinkat(self.fd.as_fd(), tmp, UnlinkatFlags::NoRemoveDir);
            Failure::Fatal(msgf!(
                "renameat({}, {}, {}, {}): {}",
                self.dir,
                tmp,
                self.dir,
                name,
                strerror(e)
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A fresh directory holding the old versions of two output files.
    fn directory(tag: &str) -> (std::path::PathBuf, Publisher<'static>) {
        static LOG: std::sync::OnceLock<Sink> = std::sync::OnceLock::new();
        let log = LOG.get_or_init(Sink::silent);
        let dir = std::env::temp_dir().join(format!("depmod-output-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["modules.dep", "modules.alias"] {
            std::fs::write(dir.join(name), "old").unwrap();
        }
        let path: &'static [u8] = Vec::leak(dir.as_os_str().as_bytes().to_vec());
        let fd = Dir::open(&dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        let publisher = Publisher {
            dir: path,
            fd,
            suffix: format!(".{}.1.2", std::process::id()),
            log,
        };
        (dir, publisher)
    }

    fn outputs() -> Vec<OutputFile> {
        vec![
            OutputFile {
                name: "modules.dep",
                data: b"new dep\n".to_vec(),
            },
            OutputFile {
                name: "modules.alias",
                data: Vec::new(),
            },
        ]
    }

    fn check_published(dir: &std::path::Path) {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["modules.alias", "modules.dep"],
            "no temporary file left"
        );
        assert_eq!(
            std::fs::read(dir.join("modules.dep")).unwrap(),
            b"new dep\n"
        );
        assert_eq!(std::fs::read(dir.join("modules.alias")).unwrap(), b"");
        for name in &names {
            let mode = std::fs::metadata(dir.join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644, "{name}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Where unnamed files are not available: named temporary files, in turn.
    #[test]
    fn publishes_through_named_temporaries() {
        let (dir, publisher) = directory("named");
        publisher.publish(&outputs(), false).unwrap();
        check_published(&dir);
    }

    #[test]
    fn publishes_through_unnamed_temporaries() {
        let (dir, publisher) = directory("unnamed");
        publisher.publish(&outputs(), true).unwrap();
        check_published(&dir);
    }

    /// Naming an unnamed file through /proc, as where AT_EMPTY_PATH is refused.
    #[test]
    fn links_through_proc() {
        let (dir, publisher) = directory("proc");
        let fd = openat(
            publisher.fd.as_fd(),
            ".",
            OFlag::O_TMPFILE | OFlag::O_WRONLY,
            Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let mut file = File::from(fd);
        file.write_all(b"x").unwrap();
        let mut link = Link::Proc;
        assert!(publisher.link(&file, "linked", &mut link));
        assert!(matches!(link, Link::Proc));
        assert_eq!(std::fs::read(dir.join("linked")).unwrap(), b"x");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temporary_file_names() {
        assert_eq!(
            temporary_of(b"modules.dep.123.45.1700000000", "modules.dep"),
            Some(123)
        );
        assert_eq!(temporary_of(b"modules.dep.bin.1.2.3", "modules.dep"), None);
        assert_eq!(
            temporary_of(b"modules.dep.bin.1.2.3", "modules.dep.bin"),
            Some(1)
        );
        for name in [
            "modules.dep",
            "modules.dep.1.2",
            "modules.dep.1.2.3.4",
            "modules.dep.a.2.3",
            "modules.dep..2.3",
            "modules.dep.1.2.",
            "modules.dep.99999999999.2.3",
        ] {
            assert_eq!(temporary_of(name.as_bytes(), "modules.dep"), None, "{name}");
        }
        assert!(!is_running(std::process::id() as i32));
        assert!(!is_running(0));
        assert!(is_running(1));
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
