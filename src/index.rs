//! The `modules.*.bin` index: a path-compressed trie of byte-string keys, each holding a
//! list of (priority, value) pairs, big-endian throughout.
//!
//! [`Index`] reads one (memory-mapped, every offset bounds-checked) with libkmod's exact,
//! wildcard and dump walks; [`IndexBuilder`] builds one the way depmod does and writes
//! the same bytes as kmod 34.2.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::compat::fnmatch::fnmatch_within;
use crate::compat::{c_string_at, until_nul};

const MAGIC: u32 = 0xB007_F457;
const MAJOR_VERSION: u32 = 2;
const VERSION: u32 = (MAJOR_VERSION << 16) | 1;
const HEADER_LEN: usize = 12;
const NODE_PREFIX: u32 = 0x8000_0000;
const NODE_VALUES: u32 = 0x4000_0000;
const NODE_CHILDS: u32 = 0x2000_0000;
const NODE_OFFSET_MASK: u32 = 0x0FFF_FFFF;
/// Child characters are 7-bit.
const CHILD_MAX: u8 = 128;
const WILDCARDS: [u8; 3] = [b'*', b'?', b'['];

/// A value stored under a key, borrowed from the index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexValue<'a> {
    pub priority: u32,
    pub value: &'a [u8],
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{}: {}", .0.display(), .1)]
    Io(PathBuf, io::Error),
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

/// fnmatch steps a wildcard search may spend per unit of its node budget (see
/// [`Index::search_wildcard`]). Real alias patterns are short, so searches of real
/// indexes stay far below it; only crafted files (deep patterns, queries full of
/// wildcards) reach it, and then get the matches found so far.
const FNMATCH_STEPS_PER_NODE: usize = 4;

/// A read-only index file.
pub struct Index {
    data: Data,
    root: u32,
}

/// A node read from the file.
struct Node<'a> {
    prefix: &'a [u8],
    /// Character of the first child slot.
    first: u8,
    /// BE32 child words, one per character from `first` on.
    slots: &'a [u8],
    value_count: u32,
    /// From the first value to the end of the file.
    values: &'a [u8],
}

impl<'a> Node<'a> {
    fn slot_count(&self) -> usize {
        self.slots.len() / 4
    }

    fn slot(&self, i: usize) -> u32 {
        be32(self.slots, 4 * i).unwrap_or(0)
    }

    fn child_word(&self, ch: u8) -> u32 {
        match ch.checked_sub(self.first) {
            Some(i) if usize::from(i) < self.slot_count() => self.slot(usize::from(i)),
            _ => 0,
        }
    }

    /// The values in stored order; stops at the first one that runs off the file.
    fn values(&self) -> impl Iterator<Item = (u32, &'a [u8])> + 'a {
        let mut rest = self.values;
        (0..self.value_count).map_while(move |_| {
            let priority = be32(rest, 0)?;
            let value = c_string_at(rest, 4)?;
            rest = &rest[4 + value.len() + 1..];
            Some((priority, value))
        })
    }
}

/// A node being walked, with the next child slot to visit and the length to cut the
/// key buffer back to when leaving it.
struct Frame<'a> {
    node: Node<'a>,
    next_slot: usize,
    restore: usize,
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
        let (Some(magic), Some(version), Some(root)) =
            (be32(bytes, 0), be32(bytes, 4), be32(bytes, 8))
        else {
            return Err(IndexError::TooShort(bytes.len()));
        };
        if magic != MAGIC {
            return Err(IndexError::BadMagic(magic));
        }
        if version >> 16 != MAJOR_VERSION {
            return Err(IndexError::BadVersion(version));
        }
        Ok(Index { data, root })
    }

    fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Mapped(m) => m,
            Data::Owned(v) => v,
        }
    }

    /// Bounds every walk, which is charged one per value and one plus its prefix length
    /// per node entered (see [`charge`]): in a well-formed file every node holds its
    /// prefix, a NUL and more, and every value at least five bytes, so a whole walk
    /// costs less than the file's size. Running out means the file loops or shares
    /// subtrees.
    fn budget(&self) -> usize {
        self.bytes().len()
    }

    /// Parses the node a word points at; None for "no node" or anything malformed.
    fn node(&self, word: u32) -> Option<Node<'_>> {
        let data = self.bytes();
        let offset = (word & NODE_OFFSET_MASK) as usize;
        if offset == 0 || offset >= data.len() {
            return None;
        }
        let mut p = offset;
        let prefix = if word & NODE_PREFIX != 0 {
            let s = c_string_at(data, p)?;
            p += s.len() + 1;
            s
        } else {
            &[]
        };
        let (first, slots) = if word & NODE_CHILDS != 0 {
            let (first, last) = (*data.get(p)?, *data.get(p + 1)?);
            if first > last || last >= CHILD_MAX {
                return None;
            }
            p += 2;
            let len = 4 * (usize::from(last - first) + 1);
            let slots = data.get(p..p + len)?;
            p += len;
            (first, slots)
        } else {
            (CHILD_MAX, &[][..])
        };
        let (value_count, values) = if word & NODE_VALUES != 0 {
            (be32(data, p)?, data.get(p + 4..)?)
        } else {
            (0, &[][..])
        };
        Some(Node {
            prefix,
            first,
            slots,
            value_count,
            values,
        })
    }

    fn child(&self, node: &Node, ch: u8) -> Option<Node<'_>> {
        self.node(node.child_word(ch))
    }

    /// The node holding exactly `key`. Each step consumes at least one key byte, so
    /// this ends even on a looping file.
    fn find(&self, key: &[u8]) -> Option<Node<'_>> {
        let mut key = until_nul(key);
        let mut node = self.node(self.root)?;
        loop {
            key = key.strip_prefix(node.prefix)?;
            let Some((&ch, rest)) = key.split_first() else {
                return Some(node);
            };
            node = self.child(&node, ch)?;
            key = rest;
        }
    }

    /// Exact search (libkmod `index_search`): the first value stored under `key`.
    pub fn lookup(&self, key: &[u8]) -> Option<&[u8]> {
        let (_, value) = self.find(key)?.values().next()?;
        Some(value)
    }

    /// Every value stored under exactly `key`, in stored order.
    pub fn lookup_all(&self, key: &[u8]) -> Vec<IndexValue<'_>> {
        match self.find(key) {
            Some(node) => node.values().map(to_value).collect(),
            None => Vec::new(),
        }
    }

    /// Wildcard search (libkmod `index_searchwild`): stored keys are fnmatch patterns and
    /// `key` a plain string. Returns the values of every matching pattern, sorted by
    /// priority, later-found first among equal priorities.
    pub fn search_wildcard(&self, key: &[u8]) -> Vec<IndexValue<'_>> {
        let key = until_nul(key);
        // Wildcard characters in the query let the exact walk enter subtrees that were
        // already scanned, once per such character.
        let rescans = key.iter().filter(|c| WILDCARDS.contains(c)).count();
        let mut budget = self.budget().saturating_mul(rescans + 1);
        // Matching is bounded too: deep stored patterns against a long query could
        // otherwise cost (pattern length × key length) at each of the nodes above.
        let mut steps = budget.saturating_mul(FNMATCH_STEPS_PER_NODE);
        let mut found = Vec::new();
        let mut pattern = Vec::new();
        let Some(mut node) = self.node(self.root) else {
            return Vec::new();
        };
        let mut i = 0;
        'walk: loop {
            for (j, &ch) in node.prefix.iter().enumerate() {
                if WILDCARDS.contains(&ch) {
                    // Everything below matched exactly up to here; the stored pattern
                    // from this byte on decides the rest.
                    pattern.clear();
                    let rest = &key[i + j..];
                    self.scan(
                        node,
                        j,
                        &mut pattern,
                        rest,
                        &mut found,
                        &mut budget,
                        &mut steps,
                    );
                    break 'walk;
                }
                if key.get(i + j) != Some(&ch) {
                    break 'walk;
                }
            }
            i += node.prefix.len();
            for wildcard in WILDCARDS {
                if let Some(child) = self.child(&node, wildcard) {
                    pattern.clear();
                    pattern.push(wildcard);
                    self.scan(
                        child,
                        0,
                        &mut pattern,
                        &key[i..],
                        &mut found,
                        &mut budget,
                        &mut steps,
                    );
                }
            }
            let Some(&ch) = key.get(i) else {
                found.extend(node.values().take(budget));
                break;
            };
            match self.child(&node, ch) {
                Some(child) => node = child,
                None => break,
            }
            i += 1;
        }
        // libkmod inserts each match before the first one of equal or higher priority:
        // that is the reverse discovery order, stably sorted by priority.
        found.reverse();
        found.sort_by_key(|&(priority, _)| priority);
        found.into_iter().map(to_value).collect()
    }

    /// Collects the values of every key in the subtree of `start` (skipping the first
    /// `skip` bytes of its prefix) whose pattern, accumulated in `pattern`, fnmatches
    /// `subkey`. Children are visited before their parent's own values, in character
    /// order, as libkmod does. Running out of `steps` for fnmatch ends the whole search,
    /// like running out of `budget`.
    #[allow(clippy::too_many_arguments)]
    fn scan<'a>(
        &'a self,
        start: Node<'a>,
        skip: usize,
        pattern: &mut Vec<u8>,
        subkey: &[u8],
        found: &mut Vec<(u32, &'a [u8])>,
        budget: &mut usize,
        steps: &mut usize,
    ) {
        let restore = pattern.len();
        pattern.extend_from_slice(start.prefix.get(skip..).unwrap_or_default());
        let mut stack = vec![Frame {
            node: start,
            next_slot: 0,
            restore,
        }];
        while let Some(top) = stack.last_mut() {
            if let Some((ch, child)) = self.next_child(top) {
                if !charge(budget, child.prefix.len()) {
                    return;
                }
                let restore = pattern.len();
                pattern.push(ch);
                pattern.extend_from_slice(child.prefix);
                stack.push(Frame {
                    node: child,
                    next_slot: 0,
                    restore,
                });
                continue;
            }
            let Some(done) = stack.pop() else { break };
            if done.node.value_count > 0 {
                match fnmatch_within(pattern, subkey, steps) {
                    Some(true) => {
                        for value in done.node.values() {
                            if *budget == 0 {
                                return;
                            }
                            *budget -= 1;
                            found.push(value);
                        }
                    }
                    Some(false) => {}
                    None => {
                        *budget = 0;
                        return;
                    }
                }
            }
            pattern.truncate(done.restore);
        }
    }

    /// The frame's next existing child and its character, advancing past it.
    fn next_child<'a>(&'a self, frame: &mut Frame<'a>) -> Option<(u8, Node<'a>)> {
        while frame.next_slot < frame.node.slot_count() {
            let i = frame.next_slot;
            frame.next_slot += 1;
            if let Some(child) = self.node(frame.node.slot(i)) {
                // `first + i` stays below CHILD_MAX: node() checked `last`.
                return Some((frame.node.first + i as u8, child));
            }
        }
        None
    }

    /// Every key and value in libkmod's dump order: a node's values, then its children
    /// in character order (so keys come out byte-sorted), as `modprobe -c` prints them.
    /// Nothing is allocated per entry (`-c` dumps tens of thousands of aliases).
    pub fn for_each(&self, mut f: impl FnMut(&[u8], IndexValue<'_>)) {
        let Some(root) = self.node(self.root) else {
            return;
        };
        let mut budget = self.budget();
        let mut key = Vec::new();
        let mut stack = Vec::new();
        let mut entered = Some((root, 0));
        loop {
            if let Some((node, restore)) = entered.take() {
                key.extend_from_slice(node.prefix);
                for (priority, value) in node.values() {
                    if budget == 0 {
                        return;
                    }
                    budget -= 1;
                    f(&key, to_value((priority, value)));
                }
                stack.push(Frame {
                    node,
                    next_slot: 0,
                    restore,
                });
            }
            let Some(top) = stack.last_mut() else { break };
            if let Some((ch, child)) = self.next_child(top) {
                if !charge(&mut budget, child.prefix.len()) {
                    return;
                }
                let restore = key.len();
                key.push(ch);
                entered = Some((child, restore));
            } else if let Some(done) = stack.pop() {
                key.truncate(done.restore);
            }
        }
    }
}

/// Takes what entering a node with a prefix of `prefix_len` bytes costs (copying and
/// matching it) from `budget`; false, leaving it alone, when there is not enough.
fn charge(budget: &mut usize, prefix_len: usize) -> bool {
    match budget.checked_sub(1 + prefix_len) {
        Some(left) => {
            *budget = left;
            true
        }
        None => false,
    }
}

fn to_value((priority, value): (u32, &[u8])) -> IndexValue<'_> {
    IndexValue { priority, value }
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// From this many values on, a node keeps a set of them for finding duplicates.
const DISTINCT_SET_FROM: usize = 16;

/// An index being built in memory, as depmod builds it, for writing with
/// [`IndexBuilder::write_to`].
pub struct IndexBuilder {
    /// Node 0 is the root. Children are referenced by position.
    nodes: Vec<BuildNode>,
    /// The distinct values of each node holding enough of them that looking for a
    /// duplicate one by one would cost more than a set.
    distinct: HashMap<u32, HashSet<Box<[u8]>>>,
}

#[derive(Default)]
struct BuildNode {
    prefix: Vec<u8>,
    /// Sorted by character.
    children: Vec<(u8, u32)>,
    /// In insertion order; written by ascending priority, the latest insertion
    /// first among equals ([`BuildNode::ordered_values`]).
    values: Vec<(u32, Box<[u8]>)>,
}

impl Default for IndexBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl IndexBuilder {
    pub fn new() -> Self {
        IndexBuilder {
            nodes: vec![BuildNode::default()],
            distinct: HashMap::new(),
        }
    }

    /// Adds `value` under `key` with depmod's `index_insert` rules: nodes are split where
    /// keys diverge, and the value goes before the first one of equal or higher priority.
    /// A repeated (key, value) pair is stored again; the return value says whether it
    /// was already there (depmod's `-w` duplicate warning).
    ///
    /// Keys and values end at their first NUL. depmod rejects bytes >= 0x80 before
    /// inserting; readers reject child characters >= 0x80.
    pub fn insert(&mut self, key: &[u8], value: &[u8], priority: u32) -> bool {
        let key = until_nul(key);
        let value: Box<[u8]> = until_nul(value).into();
        let mut n = 0;
        let mut i = 0;
        loop {
            let node = &self.nodes[n];
            let common = node
                .prefix
                .iter()
                .zip(&key[i..])
                .take_while(|(a, b)| a == b)
                .count();
            if common < node.prefix.len() {
                self.split(n, common);
            }
            i += common;
            let Some(&ch) = key.get(i) else {
                return self.add_value(n, value, priority);
            };
            let children = &self.nodes[n].children;
            match children.binary_search_by_key(&ch, |&(c, _)| c) {
                Ok(at) => {
                    n = children[at].1 as usize;
                    i += 1;
                }
                Err(at) => {
                    let leaf = self.push(BuildNode {
                        prefix: key[i + 1..].to_vec(),
                        values: vec![(priority, value)],
                        ..BuildNode::default()
                    });
                    self.nodes[n].children.insert(at, (ch, leaf));
                    return false;
                }
            }
        }
    }

    /// Splits node `n` after `at` prefix bytes: a new child takes over the rest of the
    /// prefix (minus its arc character), the children and the values.
    fn split(&mut self, n: usize, at: usize) {
        let node = &mut self.nodes[n];
        let ch = node.prefix[at];
        let lower = BuildNode {
            prefix: node.prefix[at + 1..].to_vec(),
            children: std::mem::take(&mut node.children),
            values: std::mem::take(&mut node.values),
        };
        node.prefix.truncate(at);
        let child = self.push(lower);
        if let Some(set) = self.distinct.remove(&(n as u32)) {
            self.distinct.insert(child, set);
        }
        self.nodes[n].children = vec![(ch, child)];
    }

    fn push(&mut self, node: BuildNode) -> u32 {
        self.nodes.push(node);
        (self.nodes.len() - 1) as u32
    }

    /// depmod's value-list insertion into node `n`, which puts the value before
    /// the first one of equal or higher priority; true if the value was already in
    /// the list. Keeping the list in insertion order and sorting once when writing
    /// gives the same order without moving the values already there each time.
    fn add_value(&mut self, n: usize, value: Box<[u8]>, priority: u32) -> bool {
        let values = &mut self.nodes[n].values;
        let duplicate = match self.distinct.get_mut(&(n as u32)) {
            Some(set) => !set.insert(value.clone()),
            None => {
                let duplicate = values.iter().any(|(_, v)| *v == value);
                if values.len() + 1 >= DISTINCT_SET_FROM {
                    let mut set: HashSet<Box<[u8]>> =
                        values.iter().map(|(_, v)| v.clone()).collect();
                    set.insert(value.clone());
                    self.distinct.insert(n as u32, set);
                }
                duplicate
            }
        };
        values.push((priority, value));
        duplicate
    }

    /// Writes the index as kmod >= 34 does: the root at offset 12, every node followed
    /// by its children's subtrees in character order (pre-order).
    pub fn write_to<W: Write>(&self, w: &mut W) -> io::Result<()> {
        // Pre-order layout means each node's offset is the running total of the sizes
        // of the nodes before it in that order.
        let mut order = Vec::with_capacity(self.nodes.len());
        let mut stack = vec![0u32];
        while let Some(n) = stack.pop() {
            order.push(n);
            stack.extend(
                self.nodes[n as usize]
                    .children
                    .iter()
                    .rev()
                    .map(|&(_, c)| c),
            );
        }
        let mut offsets = vec![0u32; self.nodes.len()];
        let mut end = HEADER_LEN;
        for &n in &order {
            offsets[n as usize] = end as u32;
            end += self.nodes[n as usize].size();
        }
        let last_offset = order.last().map_or(0, |&n| offsets[n as usize]);
        if end > u32::MAX as usize || last_offset > NODE_OFFSET_MASK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "index too large for 28-bit node offsets",
            ));
        }
        let word = |n: u32| offsets[n as usize] | self.nodes[n as usize].flags();

        let mut out = Vec::with_capacity(end);
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&word(0).to_be_bytes());
        for &n in &order {
            let node = &self.nodes[n as usize];
            if !node.prefix.is_empty() {
                out.extend_from_slice(&node.prefix);
                out.push(0);
            }
            if let (Some(&(first, _)), Some(&(last, _))) =
                (node.children.first(), node.children.last())
            {
                out.push(first);
                out.push(last);
                let mut children = node.children.iter().peekable();
                for ch in first..=last {
                    let slot = match children.next_if(|&&(c, _)| c == ch) {
                        Some(&(_, child)) => word(child),
                        None => 0,
                    };
                    out.extend_from_slice(&slot.to_be_bytes());
                }
            }
            if !node.values.is_empty() {
                out.extend_from_slice(&(node.values.len() as u32).to_be_bytes());
                for (priority, value) in node.ordered_values() {
                    out.extend_from_slice(&priority.to_be_bytes());
                    out.extend_from_slice(value);
                    out.push(0);
                }
            }
        }
        w.write_all(&out)
    }
}

impl BuildNode {
    fn flags(&self) -> u32 {
        let mut flags = 0;
        if !self.prefix.is_empty() {
            flags |= NODE_PREFIX;
        }
        if !self.children.is_empty() {
            flags |= NODE_CHILDS;
        }
        if !self.values.is_empty() {
            flags |= NODE_VALUES;
        }
        flags
    }

    /// Bytes this node takes in the file, without its children.
    fn size(&self) -> usize {
        let mut size = 0;
        if !self.prefix.is_empty() {
            size += self.prefix.len() + 1;
        }
        if let (Some(&(first, _)), Some(&(last, _))) = (self.children.first(), self.children.last())
        {
            size += 2 + 4 * (usize::from(last - first) + 1);
        }
        if !self.values.is_empty() {
            size += 4 + self
                .values
                .iter()
                .map(|(_, v)| 4 + v.len() + 1)
                .sum::<usize>();
        }
        size
    }

    /// The values in depmod's order: ascending priority, the latest insertion
    /// first among equals.
    fn ordered_values(&self) -> Box<dyn Iterator<Item = &(u32, Box<[u8]>)> + '_> {
        // Usually a single value, or values inserted by rising priority.
        if self.values.windows(2).all(|w| w[0].0 < w[1].0) {
            return Box::new(self.values.iter());
        }
        let mut order: Vec<usize> = (0..self.values.len()).rev().collect();
        order.sort_by_key(|&i| self.values[i].0);
        Box::new(order.into_iter().map(|i| &self.values[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(entries: &[(&str, &str, u32)]) -> Vec<u8> {
        let mut builder = IndexBuilder::new();
        for &(key, value, priority) in entries {
            builder.insert(key.as_bytes(), value.as_bytes(), priority);
        }
        let mut out = Vec::new();
        builder.write_to(&mut out).unwrap();
        out
    }

    fn index(entries: &[(&str, &str, u32)]) -> Index {
        Index::from_bytes(build(entries)).unwrap()
    }

    fn values(found: Vec<IndexValue>) -> Vec<String> {
        found.into_iter().map(|v| text(v.value)).collect()
    }

    /// Index values as text for comparing with literals (display only).
    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    fn lookup(index: &Index, key: &str) -> Option<String> {
        index.lookup(key.as_bytes()).map(text)
    }

    fn dump(index: &Index) -> Vec<(String, u32, String)> {
        let mut out = Vec::new();
        index.for_each(|k, v| out.push((text(k), v.priority, text(v.value))));
        out
    }

    const HEADER: [u8; 8] = [0xb0, 0x07, 0xf4, 0x57, 0, 2, 0, 1];

    #[test]
    fn empty_index_is_a_bare_header() {
        let bytes = build(&[]);
        assert_eq!(bytes[..8], HEADER);
        assert_eq!(bytes[8..], [0, 0, 0, 12]);
        let index = Index::from_bytes(bytes).unwrap();
        assert_eq!(lookup(&index, ""), None);
        assert!(index.search_wildcard(b"x").is_empty());
        assert!(dump(&index).is_empty());
    }

    #[test]
    fn pre_order_layout() {
        // "ab" makes a leaf under 'a'; "ac" splits it into a node with children b, c.
        let bytes = build(&[("ab", "x", 1), ("ac", "y", 0)]);
        let mut want = HEADER.to_vec();
        want.extend([0x20, 0, 0, 12]);
        want.extend([b'a', b'a', 0x20, 0, 0, 18]);
        want.extend([b'b', b'c', 0x40, 0, 0, 28, 0x40, 0, 0, 38]);
        want.extend([0, 0, 0, 1, 0, 0, 0, 1, b'x', 0]);
        want.extend([0, 0, 0, 1, 0, 0, 0, 0, b'y', 0]);
        assert_eq!(bytes, want);
    }

    #[test]
    fn reads_post_order_files() {
        // The same trie as kmod <= 33 wrote it: children first, the root last.
        let mut bytes = HEADER.to_vec();
        bytes.extend([0x20, 0, 0, 42]);
        bytes.extend([0, 0, 0, 1, 0, 0, 0, 1, b'x', 0]);
        bytes.extend([0, 0, 0, 1, 0, 0, 0, 0, b'y', 0]);
        bytes.extend([b'b', b'c', 0x40, 0, 0, 12, 0x40, 0, 0, 22]);
        bytes.extend([b'a', b'a', 0x20, 0, 0, 32]);
        let index = Index::from_bytes(bytes).unwrap();
        assert_eq!(lookup(&index, "ab").as_deref(), Some("x"));
        assert_eq!(lookup(&index, "ac").as_deref(), Some("y"));
        assert_eq!(lookup(&index, "a"), None);
    }

    #[test]
    fn prefixes_split_and_nest() {
        let keys = ["once", "on", "ate", "one", "ask", "", "o", "onc"];
        let entries: Vec<_> = keys.iter().zip(0..).map(|(k, i)| (*k, *k, i)).collect();
        let index = index(&entries);
        for key in keys {
            assert_eq!(lookup(&index, key).as_deref(), Some(key));
        }
        for missing in ["a", "one_", "x", "oncee", "n"] {
            assert_eq!(lookup(&index, missing), None, "{missing}");
        }
        let mut sorted: Vec<_> = entries
            .iter()
            .map(|&(k, v, p)| (k.into(), p, v.into()))
            .collect();
        sorted.sort();
        assert_eq!(dump(&index), sorted);
    }

    #[test]
    fn values_ascend_by_priority_latest_first() {
        let mut builder = IndexBuilder::new();
        assert!(!builder.insert(b"k", b"a", 5));
        assert!(!builder.insert(b"k", b"b", 3));
        assert!(!builder.insert(b"k", b"c", 5));
        assert!(!builder.insert(b"k", b"d", 3));
        assert!(builder.insert(b"k", b"a", 1));
        assert!(!builder.insert(b"kk", b"a", 0));
        let mut out = Vec::new();
        builder.write_to(&mut out).unwrap();
        let index = Index::from_bytes(out).unwrap();
        assert_eq!(values(index.lookup_all(b"k")), ["a", "d", "b", "c", "a"]);
        assert_eq!(lookup(&index, "k").as_deref(), Some("a"));
    }

    /// Many values under one key, priorities and values repeating: the order and
    /// the duplicate answers of depmod's list insertion.
    #[test]
    fn many_values_keep_depmods_order() {
        let mut builder = IndexBuilder::new();
        let mut list: Vec<(u32, String)> = Vec::new();
        let mut x = 12345u32;
        for i in 0..200 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let (priority, value) = ((x >> 16) % 7, format!("v{}", (x >> 8) % 50));
            let duplicate = list.iter().any(|(_, v)| *v == value);
            let at = list.partition_point(|(p, _)| *p < priority);
            list.insert(at, (priority, value.clone()));
            assert_eq!(
                builder.insert(b"key", value.as_bytes(), priority),
                duplicate,
                "insert {i}"
            );
        }
        let mut out = Vec::new();
        builder.write_to(&mut out).unwrap();
        let found: Vec<(u32, String)> = Index::from_bytes(out)
            .unwrap()
            .lookup_all(b"key")
            .into_iter()
            .map(|v| (v.priority, text(v.value)))
            .collect();
        assert_eq!(found, list);
    }

    #[test]
    fn wildcard_search_order() {
        let index = index(&[
            ("pci:*", "a", 2),
            ("pci:v1*", "b", 1),
            ("pci:v1", "c", 2),
            ("pci:?1", "d", 2),
            ("pci:v2", "e", 0),
            ("pci:[uv]1", "f", 1),
        ]);
        // Found in the order a, d, f, b, c; then sorted, later-found first on ties.
        assert_eq!(
            values(index.search_wildcard(b"pci:v1")),
            ["b", "f", "c", "d", "a"]
        );
        assert_eq!(values(index.search_wildcard(b"pci:x")), ["a"]);
        assert!(index.search_wildcard(b"usb:v1").is_empty());
    }

    #[test]
    fn wildcard_inside_a_prefix() {
        let index = index(&[("ab*d", "x", 0)]);
        assert_eq!(values(index.search_wildcard(b"abcd")), ["x"]);
        assert_eq!(values(index.search_wildcard(b"abd")), ["x"]);
        assert!(index.search_wildcard(b"xbcd").is_empty());
        assert!(index.search_wildcard(b"ab").is_empty());
        // Exact search treats the pattern as plain bytes.
        assert_eq!(lookup(&index, "ab*d").as_deref(), Some("x"));
        assert_eq!(lookup(&index, "abcd"), None);
    }

    #[test]
    fn keys_and_values_end_at_nul() {
        let index = index(&[("ab\0cd", "v\0w", 0)]);
        assert_eq!(lookup(&index, "ab").as_deref(), Some("v"));
        assert_eq!(lookup(&index, "ab\0zz").as_deref(), Some("v"));
    }

    /// A root whose only child is the root itself.
    #[test]
    fn self_loop_terminates() {
        let mut bytes = HEADER.to_vec();
        bytes.extend([0x60, 0, 0, 12]);
        bytes.extend([b'*', b'*', 0x60, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, b'v', 0]);
        let index = Index::from_bytes(bytes).unwrap();
        assert_eq!(lookup(&index, "****").as_deref(), Some("v"));
        // The wildcard scan runs out of budget before any key ends: nothing, but no hang.
        let _ = index.search_wildcard(b"anything");
        let _ = index.search_wildcard(b"***");
        assert!(!dump(&index).is_empty());
    }

    /// Forty levels of nodes whose two children are the same next node: 2^40 paths
    /// through a few hundred bytes.
    #[test]
    fn shared_subtrees_terminate() {
        let mut bytes = HEADER.to_vec();
        bytes.extend([0x60, 0, 0, 12]);
        for level in 0..40u32 {
            let next = 12 + 18 * (level + 1);
            let word = (0x6000_0000 | next).to_be_bytes();
            bytes.extend([b'*', b'?']);
            bytes.extend(word);
            bytes.extend(word);
            bytes.extend([0, 0, 0, 1, 0, 0, 0, 0, b'v', 0]);
        }
        bytes.extend([0, 0, 0, 0]);
        let index = Index::from_bytes(bytes).unwrap();
        let _ = index.search_wildcard(b"abc");
        let _ = dump(&index);
    }

    #[test]
    fn value_counts_beyond_the_file() {
        let mut bytes = HEADER.to_vec();
        bytes.extend([0x40, 0, 0, 12]);
        bytes.extend([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, b'v', 0, 0, 0]);
        let index = Index::from_bytes(bytes).unwrap();
        assert_eq!(values(index.lookup_all(b"")), ["v"]);
        assert_eq!(values(index.search_wildcard(b"")), ["v"]);
    }
}
