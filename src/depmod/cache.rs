//! depmod's cache, `modules.cache` beside the indexes: what each module file gave
//! (its [`Loaded`]: exported symbols with CRCs, needed symbols with CRCs, aliases,
//! softdeps, weakdeps), so that the next run decompresses only the files that
//! changed. Only the reading of module files is skipped: the directory walk,
//! depmod.d, `modules.order`, symbol resolution and every output file are done
//! anew on each run, so a run with the cache writes what a run without it writes.
//!
//! # How a file is recognised
//!
//! An entry is keyed on the stat fields of the file a module path leads to
//! (symbolic links followed): device, inode, size, mtime and ctime. Not on its
//! contents: a hash would read the whole tree on every run (94 MB for Debian
//! trixie's amd64 kernel, about 100 ms measured here: as long as all the rest of a
//! run with the cache), while the stat is taken by the directory walk anyway.
//!
//! Why that is sound: the kernel sets a file's ctime to its own clock on every
//! change of the file's data or metadata (write, truncate, utimensat as in
//! `touch -r`, rename, a change of its link count), and no system call sets it to
//! a chosen value. A file replaced by rename is another inode, or the same inode
//! number reused with a new ctime. So a file whose fields all match an entry has
//! not changed since the run that made the entry stat'ed it, except after two
//! changes within one tick of the filesystem's timestamps (milliseconds on ext4,
//! up to 2 s on some filesystems), which leave one ctime. A run therefore writes an
//! entry only for a file whose ctime is more than [`RACY_MARGIN_NS`] before the run
//! began: any later change falls in a later tick. The stat is taken before the file
//! is read, so a file changed in between keeps no entry that could match it (its
//! ctime moved on).
//!
//! A cache is used only by the build of depmod that wrote it (the header holds
//! the stat fields of the running executable, `/proc/self/exe`), since another
//! version may read modules differently, and only for the module directory it was
//! written for.
//!
//! An entry describes one version of one file, not the state of the tree, so any
//! complete cache is correct for any later state, only less complete. That is why
//! concurrent runs need no lock (each publishes a whole file by rename, the last
//! one stays), and why the cache is not synced to disk: a crash can only lose it
//! or leave it torn, and the checksum catches a torn one.
//!
//! # Format
//!
//! In the writer's byte order (a cache of the other byte order is ignored):
//!
//! ```text
//! magic "KMODRSDC", u32 0x01020304, u32 format, u64 xxh3-64 of all that follows
//! producer, tree                    varint length + bytes each
//! strings: varint count, each varint length + bytes
//! symbols: varint count, each varint string index + varint CRC
//! entries: varint count, each
//!     dev, ino, size, mtime s, mtime ns, ctime s, ctime ns   7 × u64
//!     exports    varint count, each varint symbol index
//!     needs      varint count, each varint (symbol index << 1 | weak)
//!     aliases, softdeps, weakdeps   varint count, each varint string index
//! ```
//!
//! Names are stored once and referenced: a symbol such as `_printk` is needed by
//! thousands of modules with the same CRC. A damaged, truncated or foreign cache is
//! ignored as a whole (with one debug message) and rewritten; [`Cache::parse`]
//! reads untrusted bytes with every count bounded by the bytes left and every
//! allocation by [`MAX_SIZE`] and [`EXPANSION`].

use std::collections::{HashMap, HashSet};
use std::io::Read;

use nix::errno::Errno;
use nix::sys::stat::FileStat;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::compat::{io_errno, strerror};
use crate::diag::{Priority, Sink};
use crate::msgf;

use super::output::{write_files, OutputFile, Staged};
use super::{as_path, Candidate, Failure, Loaded};

/// The cache's name in the output directory: `modules.*`, so that what removes a
/// kernel's module files removes it too.
pub const FILE_NAME: &str = "modules.cache";

const MAGIC: [u8; 8] = *b"KMODRSDC";
const BYTE_ORDER: u32 = 0x0102_0304;
const FORMAT: u32 = 1;
/// Magic, byte-order mark, format and checksum.
const HEADER: usize = 24;

/// The largest cache read or written; Debian trixie's amd64 tree needs 2.4 MB.
pub const MAX_SIZE: usize = 16 << 20;

/// What decoding may allocate, at most, in times the cache's size. Every item
/// takes at least one byte, but a name stored once can be referenced many times;
/// the caches of Debian's trixie and bookworm trees decode to 4.8 times their
/// size. The writer leaves out a cache that would exceed it, so that a cache it
/// writes is never refused (and the differential test fails if a real tree's
/// cache is not written).
pub const EXPANSION: usize = 24;

/// What each decoded item takes in memory, besides its name's bytes: charged
/// against the budget before anything is allocated for it.
const STRING_SLOT: usize = std::mem::size_of::<&[u8]>();
const SYMBOL_SLOT: usize = std::mem::size_of::<(&[u8], u64)>();
const ENTRY_SLOT: usize = std::mem::size_of::<(FileId, Loaded)>();
const EXPORT_SLOT: usize = std::mem::size_of::<(Vec<u8>, u64)>();
const NEED_SLOT: usize = std::mem::size_of::<(u32, u64, bool)>();
const LIST_SLOT: usize = std::mem::size_of::<Vec<u8>>();

/// How long before a run began a file must have last changed for the run to keep
/// its entry: more than the coarsest timestamp tick of a Linux filesystem (FAT's
/// 2 s), so that no later change can leave the same ctime.
pub const RACY_MARGIN_NS: i128 = 2_000_000_000;

/// The stat fields that identify one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct FileId {
    dev: u64,
    ino: u64,
    pub size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    // The stat fields' types differ between targets (32-bit time_t and off_t).
    #[allow(clippy::useless_conversion)]
    pub(super) fn of(st: &FileStat) -> FileId {
        FileId {
            dev: u64::from(st.st_dev),
            ino: u64::from(st.st_ino),
            size: i64::from(st.st_size),
            mtime: (i64::from(st.st_mtime), i64::from(st.st_mtime_nsec)),
            ctime: (i64::from(st.st_ctime), i64::from(st.st_ctime_nsec)),
        }
    }

    fn fields(&self) -> [u64; 7] {
        [
            self.dev,
            self.ino,
            self.size as u64,
            self.mtime.0 as u64,
            self.mtime.1 as u64,
            self.ctime.0 as u64,
            self.ctime.1 as u64,
        ]
    }

    fn from_fields(f: [u64; 7]) -> FileId {
        FileId {
            dev: f[0],
            ino: f[1],
            size: f[2] as i64,
            mtime: (f[3] as i64, f[4] as i64),
            ctime: (f[5] as i64, f[6] as i64),
        }
    }

    /// Whether a change after `start` (ns since the epoch) could leave this ctime.
    fn is_racy(&self, start: i128) -> bool {
        let ctime = i128::from(self.ctime.0) * 1_000_000_000 + i128::from(self.ctime.1);
        ctime > start - RACY_MARGIN_NS
    }
}

/// Why a cache was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    #[error("larger than {MAX_SIZE} bytes")]
    TooLarge,
    #[error("not a module cache")]
    NotACache,
    #[error("written in the other byte order")]
    ByteOrder,
    #[error("format {0}, not {FORMAT}")]
    Format(u32),
    #[error("malformed or truncated ({0})")]
    Malformed(&'static str),
    #[error("decodes to more than {EXPANSION} times its size")]
    Expansion,
    #[error("checksum mismatch")]
    Checksum,
    #[error("written by another build of depmod")]
    OtherProgram,
    #[error("written for another module directory")]
    OtherTree,
}

/// A cache read from bytes: its entries, and what it was written by and for.
pub struct Cache {
    producer: Vec<u8>,
    tree: Vec<u8>,
    entries: HashMap<FileId, Loaded>,
}

impl Cache {
    /// Decodes a cache file completely (every entry, then the checksum over all of
    /// it), or says why it cannot be used. Never panics, whatever the bytes: this
    /// is the entry point for fuzzing.
    pub fn parse(bytes: &[u8]) -> Result<Cache, CacheError> {
        if bytes.len() > MAX_SIZE {
            return Err(CacheError::TooLarge);
        }
        let mut r = Reader {
            data: bytes,
            pos: 0,
            budget: EXPANSION.saturating_mul(bytes.len()),
        };
        if r.take(MAGIC.len()).ok() != Some(&MAGIC[..]) {
            return Err(CacheError::NotACache);
        }
        match r.u32()? {
            BYTE_ORDER => {}
            m if m == BYTE_ORDER.swap_bytes() => return Err(CacheError::ByteOrder),
            _ => return Err(CacheError::NotACache),
        }
        let format = r.u32()?;
        if format != FORMAT {
            return Err(CacheError::Format(format));
        }
        let checksum = r.u64()?;
        // Decoding comes first, the checksum last: a damaged cache is refused
        // either way, and a fuzzer gets past the checksum into the decoder.
        let producer = r.blob()?.to_vec();
        let tree = r.blob()?.to_vec();
        let count = r.count(1)?;
        r.charge(count, STRING_SLOT)?;
        let mut strings = Vec::with_capacity(count);
        for _ in 0..count {
            strings.push(r.blob()?);
        }
        let count = r.count(2)?;
        r.charge(count, SYMBOL_SLOT)?;
        let mut symbols = Vec::with_capacity(count);
        for _ in 0..count {
            let name = strings[r.index(strings.len())?];
            symbols.push((name, r.varint()?));
        }
        let count = r.count(7 * 8 + 5)?;
        r.charge(count, ENTRY_SLOT)?;
        let mut entries = HashMap::with_capacity(count);
        for _ in 0..count {
            let id = r.file_id()?;
            let loaded = r.loaded(&strings, &symbols)?;
            entries.insert(id, loaded);
        }
        if r.pos != bytes.len() {
            return Err(CacheError::Malformed("bytes after the last entry"));
        }
        if xxh3_64(&bytes[HEADER..]) != checksum {
            return Err(CacheError::Checksum);
        }
        Ok(Cache {
            producer,
            tree,
            entries,
        })
    }

    /// What wrote the cache (the version and executable of depmod).
    pub fn producer(&self) -> &[u8] {
        &self.producer
    }

    /// The module directory the cache was written for.
    pub fn tree(&self) -> &[u8] {
        &self.tree
    }

    /// How many module files it describes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A cursor over untrusted bytes.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Bytes that decoding may still allocate.
    budget: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CacheError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or(CacheError::Malformed("truncated"))?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CacheError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, CacheError> {
        Ok(u32::from_ne_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, CacheError> {
        Ok(u64::from_ne_bytes(self.array()?))
    }

    /// LEB128, at most ten bytes, nothing past 64 bits.
    fn varint(&mut self) -> Result<u64, CacheError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let [byte] = self.array()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(CacheError::Malformed("number too large"));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CacheError::Malformed("number too large"))
    }

    /// A count of items that take at least `min_size` bytes each: never more than
    /// the bytes left can hold, so that it can size an allocation.
    fn count(&mut self, min_size: usize) -> Result<usize, CacheError> {
        let n = self.varint()?;
        let left = (self.data.len() - self.pos) / min_size;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= left)
            .ok_or(CacheError::Malformed("count beyond the end"))
    }

    fn index(&mut self, len: usize) -> Result<usize, CacheError> {
        let i = self.varint()?;
        usize::try_from(i)
            .ok()
            .filter(|&i| i < len)
            .ok_or(CacheError::Malformed("index out of range"))
    }

    fn blob(&mut self) -> Result<&'a [u8], CacheError> {
        let n = self.count(1)?;
        self.take(n)
    }

    fn file_id(&mut self) -> Result<FileId, CacheError> {
        let mut fields = [0u64; 7];
        for f in &mut fields {
            *f = self.u64()?;
        }
        Ok(FileId::from_fields(fields))
    }

    /// Charges `count` items of `size` bytes against the budget.
    fn charge(&mut self, count: usize, size: usize) -> Result<(), CacheError> {
        self.budget = count
            .checked_mul(size)
            .and_then(|bytes| self.budget.checked_sub(bytes))
            .ok_or(CacheError::Expansion)?;
        Ok(())
    }

    /// Charges a decoded name against the budget.
    fn spend(&mut self, name: &[u8]) -> Result<(), CacheError> {
        self.charge(1, name.len())
    }

    fn loaded(
        &mut self,
        strings: &[&[u8]],
        symbols: &[(&[u8], u64)],
    ) -> Result<Loaded, CacheError> {
        let mut loaded = Loaded::default();
        let count = self.count(1)?;
        self.charge(count, EXPORT_SLOT)?;
        loaded.exports.reserve_exact(count);
        for _ in 0..count {
            let (name, crc) = symbols[self.index(symbols.len())?];
            self.spend(name)?;
            loaded.exports.push((name.to_vec(), crc));
        }
        let count = self.count(1)?;
        self.charge(count, NEED_SLOT)?;
        for _ in 0..count {
            let v = self.varint()?;
            let i = usize::try_from(v >> 1)
                .ok()
                .filter(|&i| i < symbols.len())
                .ok_or(CacheError::Malformed("index out of range"))?;
            let (name, crc) = symbols[i];
            self.spend(name)?;
            loaded.needs.push(name, crc, v & 1 == 1);
        }
        for list in [
            &mut loaded.aliases,
            &mut loaded.softdeps,
            &mut loaded.weakdeps,
        ] {
            let count = self.count(1)?;
            self.charge(count, LIST_SLOT)?;
            list.reserve_exact(count);
            for _ in 0..count {
                let s = strings[self.index(strings.len())?];
                self.spend(s)?;
                list.push(s.to_vec());
            }
        }
        Ok(loaded)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_blob(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The encoder's table hash: xxh3 of each piece. Its keys are a few hundred
/// thousand short names, which the standard hash (built to resist chosen keys,
/// which a module tree does not choose) takes several times longer over.
#[derive(Default)]
struct NameHasher(u64);

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64_with_seed(bytes, self.0);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Table<K> = HashMap<K, u64, std::hash::BuildHasherDefault<NameHasher>>;

/// Builds a cache file: names go into shared tables as entries refer to them.
#[derive(Default)]
struct Encoder<'a> {
    strings: Vec<&'a [u8]>,
    string_index: Table<&'a [u8]>,
    symbols: Vec<(u64, u64)>,
    symbol_index: Table<(u64, u64)>,
    entries: Vec<u8>,
    count: u64,
    /// What decoding will allocate, as [`Reader::charge`] counts it.
    decoded: usize,
}

impl<'a> Encoder<'a> {
    fn string(&mut self, s: &'a [u8]) -> u64 {
        self.decoded += s.len();
        let next = self.strings.len() as u64;
        *self.string_index.entry(s).or_insert_with(|| {
            self.strings.push(s);
            next
        })
    }

    fn symbol(&mut self, name: &'a [u8], crc: u64) -> u64 {
        let s = self.string(name);
        let next = self.symbols.len() as u64;
        *self.symbol_index.entry((s, crc)).or_insert_with(|| {
            self.symbols.push((s, crc));
            next
        })
    }

    fn entry(&mut self, id: FileId, loaded: &'a Loaded) {
        self.count += 1;
        self.decoded += ENTRY_SLOT
            + loaded.exports.len() * EXPORT_SLOT
            + loaded.needs.entries.len() * NEED_SLOT
            + (loaded.aliases.len() + loaded.softdeps.len() + loaded.weakdeps.len()) * LIST_SLOT;
        let mut out = std::mem::take(&mut self.entries);
        for f in id.fields() {
            out.extend_from_slice(&f.to_ne_bytes());
        }
        put_varint(&mut out, loaded.exports.len() as u64);
        for (name, crc) in &loaded.exports {
            let i = self.symbol(name, *crc);
            put_varint(&mut out, i);
        }
        put_varint(&mut out, loaded.needs.entries.len() as u64);
        for need in loaded.needs.iter() {
            let i = self.symbol(need.name, need.crc);
            put_varint(&mut out, i << 1 | u64::from(need.weak));
        }
        for list in [&loaded.aliases, &loaded.softdeps, &loaded.weakdeps] {
            put_varint(&mut out, list.len() as u64);
            for s in list {
                let i = self.string(s);
                put_varint(&mut out, i);
            }
        }
        self.entries = out;
    }

    /// The file, or why it would be refused on reading.
    fn finish(self, producer: &[u8], tree: &[u8]) -> Result<Vec<u8>, CacheError> {
        let mut out = Vec::with_capacity(self.entries.len() * 2);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&BYTE_ORDER.to_ne_bytes());
        out.extend_from_slice(&FORMAT.to_ne_bytes());
        out.extend_from_slice(&[0; 8]);
        put_blob(&mut out, producer);
        put_blob(&mut out, tree);
        put_varint(&mut out, self.strings.len() as u64);
        for s in &self.strings {
            put_blob(&mut out, s);
        }
        put_varint(&mut out, self.symbols.len() as u64);
        for &(s, crc) in &self.symbols {
            put_varint(&mut out, s);
            put_varint(&mut out, crc);
        }
        put_varint(&mut out, self.count);
        out.extend_from_slice(&self.entries);
        let checksum = xxh3_64(&out[HEADER..]);
        out[16..HEADER].copy_from_slice(&checksum.to_ne_bytes());
        if out.len() > MAX_SIZE {
            return Err(CacheError::TooLarge);
        }
        let decoded =
            self.decoded + self.strings.len() * STRING_SLOT + self.symbols.len() * SYMBOL_SLOT;
        if decoded > EXPANSION.saturating_mul(out.len()) {
            return Err(CacheError::Expansion);
        }
        Ok(out)
    }
}

/// What identifies this build of depmod: its version and the stat fields of its
/// executable. An error if the executable cannot be found (no /proc), or changed
/// too recently to be told from a later change (see [`RACY_MARGIN_NS`]).
fn producer(start: i128) -> Result<Vec<u8>, &'static str> {
    let st = nix::sys::stat::stat("/proc/self/exe")
        .map_err(|_| "this depmod's executable cannot be identified (/proc/self/exe)")?;
    let id = FileId::of(&st);
    if id.is_racy(start) {
        return Err("this depmod's executable changed in the last two seconds");
    }
    let mut out = format!("kmod-rs {}\0", env!("CARGO_PKG_VERSION")).into_bytes();
    for f in id.fields() {
        out.extend_from_slice(&f.to_ne_bytes());
    }
    Ok(out)
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// Reads a cache file of at most [`MAX_SIZE`] bytes.
fn read_file(path: &[u8]) -> Result<Vec<u8>, String> {
    let errno = |e: std::io::Error| strerror(io_errno(&e)).to_string();
    let file = std::fs::File::open(as_path(path)).map_err(errno)?;
    let len = file.metadata().map_err(errno)?.len();
    if len > MAX_SIZE as u64 {
        return Err(CacheError::TooLarge.to_string());
    }
    let mut data = Vec::new();
    data.try_reserve_exact(len as usize)
        .map_err(|_| strerror(Errno::ENOMEM).to_string())?;
    file.take(MAX_SIZE as u64 + 1)
        .read_to_end(&mut data)
        .map_err(errno)?;
    Ok(data)
}

type Entries = HashMap<FileId, Loaded>;

/// The entries of the cache at `path` if it was written by `producer` for `tree`;
/// else why not.
fn load(path: &[u8], producer: &[u8], tree: &[u8]) -> Result<Entries, String> {
    let bytes = read_file(path)?;
    let cache = Cache::parse(&bytes).map_err(|e| e.to_string())?;
    if cache.producer != producer {
        return Err(CacheError::OtherProgram.to_string());
    }
    if cache.tree != tree {
        return Err(CacheError::OtherTree.to_string());
    }
    Ok(cache.entries)
}

/// One run's use of the cache: the entries read at the start, handed out as the
/// modules are read, and the new cache made at the end.
pub(super) struct Session {
    /// The output directory, where the cache is read from and written to.
    dir: Vec<u8>,
    write: bool,
    /// When the run began, in ns since the epoch: before any module was stat'ed.
    start: i128,
    /// Err: this build cannot be identified, and no cache is used or written.
    producer: Result<Vec<u8>, &'static str>,
    tree: Vec<u8>,
    path: Vec<u8>,
    /// The cache being read, while the directory walk runs.
    loading: Option<Loading>,
    entries: Entries,
    /// Entries handed out.
    reused: usize,
}

enum Loading {
    Thread(std::thread::JoinHandle<Result<Entries, String>>),
    Done(Result<Entries, String>),
}

impl Session {
    /// Starts reading `<dir>/modules.cache` in the background, to be used if it
    /// belongs to this build and to `tree`; `write`: make a new cache.
    pub(super) fn open(dir: &[u8], tree: &[u8], write: bool) -> Session {
        let start = now_ns();
        let producer = producer(start);
        let mut path = dir.to_vec();
        path.push(b'/');
        path.extend_from_slice(FILE_NAME.as_bytes());
        let loading = match &producer {
            Err(why) => Loading::Done(Err(why.to_string())),
            Ok(producer) => {
                let (path, producer, tree) = (path.clone(), producer.clone(), tree.to_vec());
                let job = move || load(&path, &producer, &tree);
                match std::thread::Builder::new().spawn(job.clone()) {
                    Ok(thread) => Loading::Thread(thread),
                    Err(_) => Loading::Done(job()),
                }
            }
        };
        Session {
            dir: dir.to_vec(),
            write,
            start,
            producer,
            tree: tree.to_vec(),
            path,
            loading: Some(loading),
            entries: HashMap::new(),
            reused: 0,
        }
    }

    /// Waits for the cache to be read; says why, at debug level, if it is not used.
    pub(super) fn wait(&mut self, log: &Sink) {
        let loaded = match self.loading.take() {
            None => return,
            Some(Loading::Done(loaded)) => loaded,
            Some(Loading::Thread(thread)) => thread
                .join()
                .unwrap_or_else(|_| Err("reading it failed".to_string())),
        };
        match loaded {
            Ok(entries) => self.entries = entries,
            Err(why) => log.log_bytes(
                Priority::Debug,
                msgf!("not using the module cache {}: {}", &self.path, why),
            ),
        }
    }

    /// What the cache holds for the file `id` identifies, if anything (after
    /// [`Session::wait`]).
    pub(super) fn take(&mut self, id: FileId) -> Option<Loaded> {
        let loaded = self.entries.remove(&id)?;
        Some(self.reuse(loaded))
    }

    /// Counts an entry handed out once more (to another path of the same file).
    pub(super) fn reuse(&mut self, loaded: Loaded) -> Loaded {
        self.reused += 1;
        loaded
    }

    /// The new cache: an entry for every module read without error whose file is
    /// old enough to be told from a later change. None when nothing is to be
    /// written: a dry run, or the same entries as the cache read at the start.
    pub(super) fn finish(
        &self,
        modules: &[Candidate],
        loaded: &[Loaded],
    ) -> Result<Option<Pending>, CacheError> {
        let Some(producer) = self.producer.as_deref().ok().filter(|_| self.write) else {
            return Ok(None);
        };
        let keep: Vec<(FileId, &Loaded)> = modules
            .iter()
            .zip(loaded)
            .filter(|(_, l)| l.error.is_none())
            .filter_map(|(m, l)| Some((m.id?, l)))
            .filter(|(id, _)| !id.is_racy(self.start))
            .collect();
        // Every entry read was handed out and nothing else is kept: unchanged.
        if self.entries.is_empty() && keep.len() == self.reused {
            return Ok(None);
        }
        let mut encoder = Encoder::default();
        let mut seen = HashSet::new();
        for (id, l) in keep {
            if seen.insert(id) {
                encoder.entry(id, l);
            }
        }
        let data = encoder.finish(producer, &self.tree)?;
        let file = OutputFile {
            name: FILE_NAME,
            data,
        };
        // Written now, published after the output files: the run's peak memory
        // (rendering the indexes) comes later, without the cache in it.
        Ok(Some(match Staged::new(&self.dir, &file) {
            Some(staged) => Pending::Staged(staged),
            None => Pending::InMemory(self.dir.clone(), file),
        }))
    }

    /// Whether most modules came from the cache.
    pub(super) fn mostly_reused(&self, modules: usize) -> bool {
        self.reused * 2 > modules
    }

    /// How much of the cache this run used, at debug level.
    pub(super) fn report(&self, modules: usize, log: &Sink) {
        log.log_bytes(
            Priority::Debug,
            msgf!(
                "module cache: {} of {} modules reused",
                self.reused,
                modules
            ),
        );
    }
}

/// A new cache, to be published once the output files are.
pub(super) enum Pending {
    Staged(Staged),
    /// Where the output directory does not exist yet or takes no unnamed files.
    InMemory(Vec<u8>, OutputFile),
}

impl Pending {
    pub(super) fn publish(self, log: &Sink) -> Result<(), Failure> {
        match self {
            Pending::Staged(staged) => staged.publish(log),
            Pending::InMemory(dir, file) => write_files(&dir, &[file], log),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64, ctime: i64) -> FileId {
        FileId {
            dev: 1,
            ino: n,
            size: 100,
            mtime: (5, 6),
            ctime: (ctime, 7),
        }
    }

    fn module(n: u8) -> Loaded {
        let mut l = Loaded {
            exports: vec![(vec![b'e', n], 0x1234), (b"shared".to_vec(), 7)],
            aliases: vec![b"pci:v*".to_vec(), vec![b'a', n]],
            softdeps: vec![b"pre: x".to_vec()],
            ..Loaded::default()
        };
        l.needs.push(b"_printk", 0xdead_beef, false);
        l.needs.push(b"shared", 7, true);
        l
    }

    fn encode(entries: &[(FileId, Loaded)]) -> Vec<u8> {
        let mut encoder = Encoder::default();
        for (id, l) in entries {
            encoder.entry(*id, l);
        }
        encoder.finish(b"producer", b"/lib/modules/1.0").unwrap()
    }

    fn same(a: &Loaded, b: &Loaded) -> bool {
        let needs = |l: &Loaded| {
            l.needs
                .iter()
                .map(|n| (n.name.to_vec(), n.crc, n.weak))
                .collect::<Vec<_>>()
        };
        a.exports == b.exports
            && a.aliases == b.aliases
            && a.softdeps == b.softdeps
            && a.weakdeps == b.weakdeps
            && needs(a) == needs(b)
    }

    #[test]
    fn round_trip() {
        let entries = vec![(id(1, 10), module(1)), (id(2, 10), module(2))];
        let bytes = encode(&entries);
        let cache = Cache::parse(&bytes).unwrap();
        assert_eq!(cache.producer(), b"producer");
        assert_eq!(cache.tree(), b"/lib/modules/1.0");
        assert_eq!(cache.len(), 2);
        for (id, l) in &entries {
            assert!(same(&cache.entries[id], l));
        }
    }

    #[test]
    fn refuses_damage() {
        let bytes = encode(&[(id(1, 10), module(1)), (id(2, 10), module(2))]);
        for len in 0..bytes.len() {
            assert!(Cache::parse(&bytes[..len]).is_err(), "truncated to {len}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[i] ^= 1 << bit;
                assert!(Cache::parse(&damaged).is_err(), "bit {bit} of byte {i}");
            }
        }
        let mut swapped = bytes.clone();
        swapped[8..12].reverse();
        assert_eq!(Cache::parse(&swapped).err(), Some(CacheError::ByteOrder));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Cache::parse(&longer).is_err());
    }

    /// A name referenced far more often than a real tree does is refused before
    /// it is copied that often.
    #[test]
    fn bounds_expansion() {
        let mut l = Loaded::default();
        for _ in 0..100_000 {
            l.aliases.push(vec![b'x'; 1000]);
        }
        let mut encoder = Encoder::default();
        encoder.entry(id(1, 10), &l);
        assert_eq!(
            encoder.finish(b"", b"").err(),
            Some(CacheError::Expansion),
            "the writer leaves it out"
        );
        // The same bytes made by hand: the reader refuses them.
        let mut encoder = Encoder::default();
        encoder.entry(id(1, 10), &l);
        encoder.decoded = 0;
        let bytes = encoder.finish(b"", b"").unwrap();
        assert_eq!(Cache::parse(&bytes).err(), Some(CacheError::Expansion));
    }

    #[test]
    fn varints() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut r = Reader {
                data: &out,
                pos: 0,
                budget: 0,
            };
            assert_eq!(r.varint(), Ok(v));
            assert_eq!(r.pos, out.len());
        }
        for bad in [
            &[0xff; 11][..],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
        ] {
            let mut r = Reader {
                data: bad,
                pos: 0,
                budget: 0,
            };
            assert!(r.varint().is_err());
        }
    }

    #[test]
    fn recent_changes_are_racy() {
        let start = 100 * 1_000_000_000;
        assert!(!id(1, 97).is_racy(start));
        assert!(id(1, 98).is_racy(start));
        assert!(id(1, 101).is_racy(start));
    }
}
