//! The `modules.*.bin` index: a path-compressed trie of byte-string keys, each
//! holding a list of (priority, value) pairs. Big-endian throughout.
//!
//! Reader: memory-mapped, bounds-checked, with libkmod's exact and wildcard search.

use std::path::Path;

use crate::fnmatch::fnmatch;

const MAGIC: u32 = 0xB007_F457;
const MAJOR_VERSION: u32 = 2;
const HEADER_LEN: usize = 12;
const NODE_PREFIX: u32 = 0x8000_0000;
const NODE_VALUES: u32 = 0x4000_0000;
const NODE_CHILDS: u32 = 0x2000_0000;
const NODE_OFFSET_MASK: u32 = 0x0FFF_FFFF;
/// Child characters are 7-bit.
const CHILD_MAX: u8 = 128;
/// Deepest node walk before a (corrupt, looping) file is given up on; real keys are
/// far shorter than PATH_MAX.
const MAX_DEPTH: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexValue {
    pub priority: u32,
    pub value: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{}: {}", .0.display(), .1)]
    Io(std::path::PathBuf, std::io::Error),
    #[error("index too short ({0} bytes)")]
    TooShort(usize),
    #[error("not a module index (bad magic 0x{0:08x})")]
    BadMagic(u32),
    #[error("unsupported index version 0x{0:08x}")]
    BadVersion(u32),
}

enum Data {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

/// A read-only index file.
pub struct Index {
    data: Data,
    root: u32,
}

/// A node read from the file: its prefix, child table and value list.
struct Node<'a> {
    prefix: &'a [u8],
    first: u8,
    last: u8,
    children: &'a [u8],
    value_count: u32,
    values: &'a [u8],
}

impl Index {
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        let file = std::fs::File::open(path).map_err(|e| IndexError::Io(path.into(), e))?;
        // SAFETY: read-only private map; depmod replaces indexes by rename, never in place.
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| IndexError::Io(path.into(), e))?;
        Self::new(Data::Mapped(map))
    }

    pub fn from_bytes(data: Vec<u8>) -> Result<Index, IndexError> {
        Self::new(Data::Owned(data))
    }

    fn new(data: Data) -> Result<Index, IndexError> {
        let bytes: &[u8] = match &data {
            Data::Mapped(m) => m,
            Data::Owned(v) => v,
        };
        if bytes.len() < HEADER_LEN {
            return Err(IndexError::TooShort(bytes.len()));
        }
        let magic = be32(bytes, 0).unwrap_or(0);
        if magic != MAGIC {
            return Err(IndexError::BadMagic(magic));
        }
        let version = be32(bytes, 4).unwrap_or(0);
        if version >> 16 != MAJOR_VERSION {
            return Err(IndexError::BadVersion(version));
        }
        let root = be32(bytes, 8).unwrap_or(0);
        Ok(Index { data, root })
    }

    fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Mapped(m) => m,
            Data::Owned(v) => v,
        }
    }

    fn node(&self, word: u32) -> Option<Node<'_>> {
        let data = self.bytes();
        let offset = (word & NODE_OFFSET_MASK) as usize;
        if offset == 0 || offset >= data.len() {
            return None;
        }
        let mut p = offset;
        let prefix = if word & NODE_PREFIX != 0 {
            let s = c_str(data, p)?;
            p += s.len() + 1;
            s
        } else {
            &[]
        };
        let (first, last, children) = if word & NODE_CHILDS != 0 {
            let (first, last) = (*data.get(p)?, *data.get(p + 1)?);
            if first > last || first >= CHILD_MAX || last >= CHILD_MAX {
                return None;
            }
            p += 2;
            let len = 4 * (last - first + 1) as usize;
            let children = data.get(p..p + len)?;
            p += len;
            (first, last, children)
        } else {
            (CHILD_MAX, 0, &[][..])
        };
        let (value_count, values) = if word & NODE_VALUES != 0 {
            (be32(data, p)?, data.get(p + 4..)?)
        } else {
            (0, &[][..])
        };
        Some(Node {
            prefix,
            first,
            last,
            children,
            value_count,
            values,
        })
    }

    fn child(&self, node: &Node, ch: u8) -> Option<Node<'_>> {
        if ch < node.first || ch > node.last {
            return None;
        }
        let word = be32(node.children, 4 * (ch - node.first) as usize)?;
        self.node(word)
    }

    /// The values of a node in stored order; stops at the first malformed one.
    fn values<'a>(&self, node: &Node<'a>) -> impl Iterator<Item = (u32, &'a [u8])> {
        let mut rest = node.values;
        (0..node.value_count).map_while(move |_| {
            let priority = be32(rest, 0)?;
            let value = c_str(rest, 4)?;
            rest = &rest[4 + value.len() + 1..];
            Some((priority, value))
        })
    }

    /// Exact search: the first value stored under `key`.
    pub fn lookup(&self, key: &str) -> Option<String> {
        let mut key = key.as_bytes();
        let mut node = self.node(self.root)?;
        loop {
            key = key.strip_prefix(node.prefix)?;
            let Some((&ch, rest)) = key.split_first() else {
                let (_, value) = self.values(&node).next()?;
                return Some(String::from_utf8_lossy(value).into_owned());
            };
            node = self.child(&node, ch)?;
            key = rest;
        }
    }

    /// Every value stored under exactly `key`, in stored order.
    pub fn lookup_all(&self, key: &str) -> Vec<IndexValue> {
        let mut key = key.as_bytes();
        let Some(mut node) = self.node(self.root) else {
            return Vec::new();
        };
        loop {
            let Some(rest) = key.strip_prefix(node.prefix) else {
                return Vec::new();
            };
            let Some((&ch, rest)) = rest.split_first() else {
                return self.values(&node).map(to_value).collect();
            };
            match self.child(&node, ch) {
                Some(child) => node = child,
                None => return Vec::new(),
            }
            key = rest;
        }
    }

    /// Wildcard search: stored keys are fnmatch patterns, `key` a plain string. Returns
    /// the values of every matching pattern, sorted by priority, later-found first
    /// among equal priorities (libkmod's order).
    pub fn search_wildcard(&self, key: &str) -> Vec<IndexValue> {
        let mut out = Vec::new();
        let Some(mut node) = self.node(self.root) else {
            return out;
        };
        let mut key = key.as_bytes();
        let mut pattern = Vec::new();
        for _ in 0..MAX_DEPTH {
            for (j, &ch) in node.prefix.iter().enumerate() {
                if matches!(ch, b'*' | b'?' | b'[') {
                    let rest = key.get(j..).unwrap_or_default();
                    self.collect_matching(&node, j, &mut pattern, rest, &mut out, 0);
                    return out;
                }
                if key.get(j) != Some(&ch) {
                    return out;
                }
            }
            key = &key[node.prefix.len()..];
            for wildcard in [b'*', b'?', b'['] {
                if let Some(child) = self.child(&node, wildcard) {
                    pattern.push(wildcard);
                    self.collect_matching(&child, 0, &mut pattern, key, &mut out, 0);
                    pattern.pop();
                }
            }
            let Some((&ch, rest)) = key.split_first() else {
                for (priority, value) in self.values(&node) {
                    add_sorted(&mut out, priority, value);
                }
                return out;
            };
            match self.child(&node, ch) {
                Some(child) => node = child,
                None => return out,
            }
            key = rest;
        }
        out
    }

    /// Walks a subtree below a wildcard, testing each key's pattern (from the wildcard
    /// on, accumulated in `pattern`) against the rest of the query.
    fn collect_matching(
        &self,
        node: &Node,
        skip: usize,
        pattern: &mut Vec<u8>,
        subkey: &[u8],
        out: &mut Vec<IndexValue>,
        depth: usize,
    ) {
        if depth >= MAX_DEPTH {
            return;
        }
        let pushed = node.prefix.len().saturating_sub(skip);
        pattern.extend_from_slice(node.prefix.get(skip..).unwrap_or_default());
        for ch in node.first..=node.last.min(CHILD_MAX - 1) {
            if let Some(child) = self.child(node, ch) {
                pattern.push(ch);
                self.collect_matching(&child, 0, pattern, subkey, out, depth + 1);
                pattern.pop();
            }
        }
        if node.value_count > 0 && fnmatch_bytes(pattern, subkey) {
            for (priority, value) in self.values(node) {
                add_sorted(out, priority, value);
            }
        }
        pattern.truncate(pattern.len() - pushed);
    }

    /// Every key and value in pre-order (byte-lexicographic key order), as
    /// `modprobe -c` dumps them.
    pub fn for_each(&self, mut f: impl FnMut(&str, &IndexValue)) {
        if let Some(root) = self.node(self.root) {
            let mut key = Vec::new();
            self.dump(&root, &mut key, &mut f, 0);
        }
    }

    fn dump(
        &self,
        node: &Node,
        key: &mut Vec<u8>,
        f: &mut impl FnMut(&str, &IndexValue),
        depth: usize,
    ) {
        if depth >= MAX_DEPTH {
            return;
        }
        key.extend_from_slice(node.prefix);
        let text = String::from_utf8_lossy(key).into_owned();
        for v in self.values(node) {
            f(&text, &to_value(v));
        }
        for ch in node.first..=node.last.min(CHILD_MAX - 1) {
            if let Some(child) = self.child(node, ch) {
                key.push(ch);
                self.dump(&child, key, f, depth + 1);
                key.pop();
            }
        }
        key.truncate(key.len() - node.prefix.len());
    }
}

fn to_value((priority, value): (u32, &[u8])) -> IndexValue {
    IndexValue {
        priority,
        value: String::from_utf8_lossy(value).into_owned(),
    }
}

/// Inserts before the first value of equal or higher priority, as libkmod does.
fn add_sorted(out: &mut Vec<IndexValue>, priority: u32, value: &[u8]) {
    let at = out.partition_point(|v| v.priority < priority);
    out.insert(at, to_value((priority, value)));
}

fn fnmatch_bytes(pattern: &[u8], s: &[u8]) -> bool {
    match (std::str::from_utf8(pattern), std::str::from_utf8(s)) {
        (Ok(p), Ok(s)) => fnmatch(p, s),
        _ => false,
    }
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The NUL-terminated string at `at`; None if it runs off the end.
fn c_str(data: &[u8], at: usize) -> Option<&[u8]> {
    let rest = data.get(at..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    Some(&rest[..len])
}
