//! POSIX extended regular expressions as glibc's `regcomp(pattern, REG_EXTENDED |
//! REG_NOSUB)` and `regexec(version)` see them in the C locale: depmod.d's `override` and
//! `external` lines match the kernel version with exactly those calls, so the static (musl)
//! build must not inherit a different C library's answers.
//!
//! # What is accepted
//!
//! The whole ERE syntax glibc compiles with those flags, on bytes: literals and `\`
//! escapes, `.`, bracket expressions (ranges, `^` negation, a leading `]`, a `-` first or
//! last, `[:class:]`, and in the C locale one-byte `[=c=]` and `[.c.]`), `^` and `$`
//! anywhere, groups, `|` with empty alternatives (an empty alternative matches the empty
//! string), `*` `+` `?` `{m}` `{m,}` `{m,n}` `{,n}`, and glibc's GNU escapes `\w` `\W`
//! `\s` `\S` `\b` `\B` `\<` `\>` `` \` `` `\'`. The search is unanchored; pattern and text
//! both end at their first NUL, as C strings do.
//!
//! The parser follows glibc's grammar decision by decision, so a pattern is an error
//! exactly when glibc's `regcomp` fails, with the same error kind. glibc's answers that are
//! easy to get wrong, all checked against glibc 2.36:
//! * `*`, `+`, `?` or `{` at the start of the pattern, of a group or of an alternative, or
//!   after an anchor (`^*`, `a$?`, `\b+`), is an error; a stacked quantifier (`a**`,
//!   `a+?`, `a{2}{3}`) is fine and applies to the repetition before it;
//! * a `{` that doesn't form an interval is an error, never a literal: `a{` and `a{1` are
//!   "unmatched brace", `a{}`, `a{x}`, `a{ 1}`, `a{2,1}`, `a{1,2,3}` and `a{x,` a bad
//!   interval; counts above `RE_DUP_MAX` (32767) are "too big"; `\,` counts as the comma
//!   and `\0` as the digit 0 inside an interval (`a{1\,2}` is `a{1,2}`);
//! * an unmatched `)` and any `}` are literal characters;
//! * `[` and `[^` at the end of the pattern are "invalid pattern", while `[a` and `[]` are
//!   "unmatched bracket"; a `-` that is neither first, last nor a range end is a bad range
//!   (`[a-z-9]`); bracket names longer than 31 bytes are an unmatched bracket;
//! * a back reference is valid only to a group that is already closed, and not in an
//!   earlier alternative of the same group (`(a)|\1` and `(a|\1)` are errors).
//!
//! Matching is the regular language's, except for one glibc quirk around newlines, kept
//! because it is what glibc answers (kernel versions hold no newline anyway). Without
//! REG_NEWLINE, glibc's automaton still treats a newline it consumes as a line break:
//! * `$` holds before a newline that the pattern goes on to consume (`a$.b` matches
//!   "a\nb", `$\s` matches "a\nb"), though a match never ends there (`a$` doesn't match
//!   "a\nb");
//! * `^` holds after a newline that the same match attempt consumed (`\n^b` matches
//!   "a\nb"), though an attempt starting after a newline doesn't get it (`^b` doesn't).
//!
//! # What is not supported
//!
//! * Back references (`\1` … `\9`) compile to [`EreError::BackReference`] when glibc
//!   would accept them: matching them takes backtracking, which this linear-time matcher
//!   refuses to do. depmod treats the error as "no match".
//! * A pattern whose automaton would need more than [`MAX_PROGRAM`] (65,536) instructions,
//!   as nested counted repetitions like `(a{1000}){1000}` would, is [`EreError::TooBig`];
//!   glibc expands those too, slowly. Every single counted repetition of a one-byte item
//!   that glibc accepts (up to `x{0,32767}`) fits. So is a pattern with more than 131,072
//!   syntax nodes or 65,536 nested groups (glibc's recursive parser overflows an 8 MiB
//!   stack at about 30,000). These limits are checked while parsing, so such a pattern
//!   reports TooBig even when glibc would find a syntax error further on.
//!
//! # How it works, and how it is tested
//!
//! The parser keeps an explicit stack of open groups (no recursion), builds a syntax tree
//! in an arena and measures the automaton before building it; the Thompson NFA is built
//! with an explicit work stack and run as a Pike VM over the text: time O(pattern size ×
//! text length), memory O(pattern size). Captures don't matter under `REG_NOSUB`, so no
//! thread carries any.
//!
//! The tests hold a table of real depmod.d patterns, hand-picked glibc answers,
//! pathological patterns that must finish quickly, and, on glibc targets, a differential
//! run of generated patterns and texts against the C library's own `regcomp`/`regexec`,
//! comparing the error kind and every match verdict.

/// glibc's largest repetition count.
const RE_DUP_MAX: u32 = 0x7fff;

/// The most instructions a compiled pattern may have (see the module doc).
pub const MAX_PROGRAM: usize = 1 << 16;

/// glibc's buffer for `[:name:]`, `[=name=]` and `[.name.]` holds this many bytes and a NUL.
const BRACKET_NAME_MAX: usize = 31;

/// Why a pattern doesn't compile: glibc's `regcomp` error for the same pattern, or one of
/// the two documented limits of this implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EreError {
    /// `REG_BADPAT`
    #[error("bracket expression cut short by the end of the pattern")]
    BadPattern,
    /// `REG_ECOLLATE`
    #[error("collating element is not a single character")]
    Collation,
    /// `REG_ECTYPE`
    #[error("unknown character class")]
    CharClass,
    /// `REG_EESCAPE`
    #[error("backslash at the end of the pattern")]
    TrailingBackslash,
    /// `REG_ESUBREG`
    #[error("back reference to a group that is not closed before it")]
    BadBackReference,
    /// `REG_EBRACK`
    #[error("bracket expression without its closing bracket")]
    UnmatchedBracket,
    /// `REG_EPAREN`
    #[error("group without its closing parenthesis")]
    UnmatchedParen,
    /// `REG_EBRACE`
    #[error("interval without its closing brace")]
    UnmatchedBrace,
    /// `REG_BADBR`
    #[error("malformed interval")]
    BadInterval,
    /// `REG_ERANGE`
    #[error("invalid range in a bracket expression")]
    BadRange,
    /// `REG_ESIZE`
    #[error("repetition count above {RE_DUP_MAX}")]
    CountTooLarge,
    /// `REG_BADRPT`
    #[error("repetition operator with nothing to repeat")]
    BadRepetition,
    /// A valid back reference: not supported here (see the module doc).
    #[error("back references are not supported")]
    BackReference,
    /// The pattern is past this implementation's size bounds (see the module doc).
    #[error("pattern too large (more than {MAX_PROGRAM} automaton instructions)")]
    TooBig,
}

/// Whether `pattern` matches anywhere in `text`, as glibc's
/// `regcomp(REG_EXTENDED | REG_NOSUB)` + `regexec` would answer.
pub fn is_match(pattern: &[u8], text: &[u8]) -> Result<bool, EreError> {
    Ok(Regex::new(pattern)?.is_match(text))
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Regex {
    prog: Vec<Inst>,
    sets: Vec<ByteSet>,
    start: u32,
}

impl Regex {
    pub fn new(pattern: &[u8]) -> Result<Regex, EreError> {
        let parsed = Parser::new(until_nul(pattern)).parse()?;
        if parsed.backref {
            return Err(EreError::BackReference);
        }
        let nodes = parsed.nodes;
        let Some(root) = parsed.root else {
            return Ok(Regex {
                prog: vec![Inst::Match],
                sets: Vec::new(),
                start: 0,
            });
        };
        // The arena is in postfix order, so one forward pass sizes every node; one more
        // instruction for the final Match.
        let mut sizes: Vec<u64> = Vec::with_capacity(nodes.len());
        for node in &nodes {
            let size = match *node {
                Node::Set(_) | Node::Look(_) => 1,
                Node::Concat(a, b) => sizes[a as usize].saturating_add(sizes[b as usize]),
                Node::Alt(a, b) => sizes[a as usize]
                    .saturating_add(sizes[b as usize])
                    .saturating_add(1),
                Node::Repeat { node, min, max } => repeat_size(sizes[node as usize], min, max),
            };
            sizes.push(size);
        }
        if sizes[root as usize] >= MAX_PROGRAM as u64 {
            return Err(EreError::TooBig);
        }
        let (prog, start) = compile(&nodes, root, sizes[root as usize] as usize + 1);
        Ok(Regex {
            prog,
            sets: parsed.sets,
            start,
        })
    }

    /// Whether the pattern matches anywhere in `text` (up to its first NUL).
    pub fn is_match(&self, text: &[u8]) -> bool {
        let text = until_nul(text);
        let mut vm = Vm {
            prog: &self.prog,
            text,
            stack: Vec::new(),
        };
        let mut current = Threads::new(self.prog.len());
        let mut next = Threads::new(self.prog.len());
        for pos in 0..=text.len() {
            // A new attempt starts at every position: the search is unanchored. It is added
            // after the threads of earlier attempts, whose `^` holds wherever its does.
            if vm.add(&mut current, self.start, pos, true) {
                return true;
            }
            let Some(&byte) = text.get(pos) else {
                break;
            };
            next.clear();
            for &(pc, newline) in current.iter() {
                if let Inst::Byte { set, next: to } = self.prog[pc as usize] {
                    if (!newline || byte == b'\n')
                        && self.sets[set as usize].contains(byte)
                        && vm.add(&mut next, to, pos + 1, false)
                    {
                        return true;
                    }
                }
            }
            std::mem::swap(&mut current, &mut next);
        }
        false
    }
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    bytes
        .iter()
        .position(|&b| b == 0)
        .map_or(bytes, |end| &bytes[..end])
}

/// Instructions for `node{min,max}` as [`compile`] lays them out.
fn repeat_size(node: u64, min: u32, max: Option<u32>) -> u64 {
    let mandatory = node.saturating_mul(u64::from(min));
    match max {
        // node* is node plus a split; node{m,} is m copies, the last one looping back.
        None => mandatory.max(node).saturating_add(1),
        Some(max) => {
            let optional = node.saturating_add(1).saturating_mul(u64::from(max - min));
            mandatory.saturating_add(optional)
        }
    }
}

/// 256 bits, one per byte value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ByteSet([u64; 4]);

impl ByteSet {
    const EMPTY: ByteSet = ByteSet([0; 4]);

    fn from_fn(f: impl Fn(u8) -> bool) -> ByteSet {
        let mut set = ByteSet::EMPTY;
        for b in 0..=255u8 {
            if f(b) {
                set.insert(b);
            }
        }
        set
    }

    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    fn insert_range(&mut self, lo: u8, hi: u8) {
        for b in lo..=hi {
            self.insert(b);
        }
    }

    fn union(&mut self, other: &ByteSet) {
        for (word, o) in self.0.iter_mut().zip(other.0) {
            *word |= o;
        }
    }

    fn negate(&mut self) {
        for word in &mut self.0 {
            *word = !*word;
        }
    }

    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }
}

/// Character classes of glibc's C locale: ASCII only, bytes from 0x80 are in none.
fn class_set(name: &[u8]) -> Option<ByteSet> {
    let test: fn(u8) -> bool = match name {
        b"alnum" => |c| c.is_ascii_alphanumeric(),
        b"alpha" => |c| c.is_ascii_alphabetic(),
        b"blank" => |c| c == b' ' || c == b'\t',
        b"cntrl" => |c| c.is_ascii_control(),
        b"digit" => |c| c.is_ascii_digit(),
        b"graph" => |c| c.is_ascii_graphic(),
        b"lower" => |c| c.is_ascii_lowercase(),
        b"print" => |c| c.is_ascii_graphic() || c == b' ',
        b"punct" => |c| c.is_ascii_punctuation(),
        b"space" => is_space,
        b"upper" => |c| c.is_ascii_uppercase(),
        b"xdigit" => |c| c.is_ascii_hexdigit(),
        _ => return None,
    };
    Some(ByteSet::from_fn(test))
}

/// `[:space:]` and `\s`: space, \t, \n, \v, \f, \r.
fn is_space(b: u8) -> bool {
    b == b' ' || (b'\t'..=b'\r').contains(&b)
}

/// `\w`'s characters, which also decide word boundaries.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Zero-width assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    /// `^`: the start of the text, or just after a newline this attempt consumed.
    LineStart,
    /// `$`: the end of the text, or just before a newline this attempt consumes next.
    LineEnd,
    /// `` \` ``
    TextStart,
    /// `\'`
    TextEnd,
    /// `\<`
    WordStart,
    /// `\>`
    WordEnd,
    /// `\b`
    WordBoundary,
    /// `\B`
    NotWordBoundary,
}

impl Look {
    /// Whether the assertion holds at `pos`; `LineEnd` is the VM's business. `attempt_start`
    /// says whether `pos` is where the current match attempt started.
    fn holds(self, text: &[u8], pos: usize, attempt_start: bool) -> bool {
        // Outside the text counts as a non-word character.
        let before = pos.checked_sub(1).is_some_and(|i| is_word(text[i]));
        let after = text.get(pos).is_some_and(|&b| is_word(b));
        match self {
            // glibc's automaton enters its "after a newline" state on every newline it
            // consumes, but an attempt that starts after one doesn't begin in that state.
            Look::LineStart if attempt_start => pos == 0,
            Look::LineStart => pos.checked_sub(1).is_some_and(|i| text[i] == b'\n'),
            Look::TextStart => pos == 0,
            Look::LineEnd | Look::TextEnd => pos == text.len(),
            Look::WordStart => !before && after,
            Look::WordEnd => before && !after,
            Look::WordBoundary => before != after,
            Look::NotWordBoundary => before == after,
        }
    }
}

/// The escapes `\w` `\W` `\s` `\S`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shorthand {
    Word,
    NotWord,
    Space,
    NotSpace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    End,
    /// A literal byte, escaped or not.
    Char(u8),
    Any,
    Alt,
    Star,
    Plus,
    Quest,
    OpenBrace,
    CloseBrace,
    OpenParen,
    CloseParen,
    OpenBracket,
    Anchor(Look),
    Shorthand(Shorthand),
    BackRef(u8),
    TrailingBackslash,
}

type NodeId = u32;

/// Syntax tree nodes; the empty regular expression is the absence of a node.
#[derive(Debug, Clone, Copy)]
enum Node {
    /// One byte from the set (an index into `sets`).
    Set(u32),
    Look(Look),
    Concat(NodeId, NodeId),
    Alt(NodeId, NodeId),
    Repeat {
        node: NodeId,
        min: u32,
        max: Option<u32>,
    },
}

struct Parsed {
    nodes: Vec<Node>,
    sets: Vec<ByteSet>,
    root: Option<NodeId>,
    backref: bool,
}

/// An open group (or the whole pattern) while its alternatives are being read.
struct Frame {
    /// The group's number (0 for the first `(`); None for the whole pattern.
    group: Option<u32>,
    /// Union of the finished non-empty alternatives.
    alternatives: Option<NodeId>,
    /// Whether a finished alternative was empty.
    empty_alternative: bool,
    /// The alternative being read.
    branch: Option<NodeId>,
    /// Closed groups (as back-reference bits) when the group opened, and those closed in
    /// its finished alternatives: a back reference sees only groups closed before it in
    /// its own alternative.
    closed_at_open: u16,
    closed_in_alternatives: u16,
}

/// Bracket-expression tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BrTok {
    End,
    Char(u8),
    Hyphen,
    Close,
    Caret,
    /// `[.`, `[=` or `[:`, with its delimiter.
    Open(u8),
}

/// A bracket item before it is added to the set.
enum Item<'a> {
    Byte(u8),
    Collating(&'a [u8]),
    Equivalence(&'a [u8]),
    Class(&'a [u8]),
}

struct Parser<'a> {
    pat: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    sets: Vec<ByteSet>,
    groups: u32,
    /// Bit n-1 set when group n (1..=9) is closed and may be referred to.
    closed: u16,
    backref: bool,
}

impl<'a> Parser<'a> {
    fn new(pat: &'a [u8]) -> Parser<'a> {
        Parser {
            pat,
            pos: 0,
            nodes: Vec::new(),
            sets: Vec::new(),
            groups: 0,
            closed: 0,
            backref: false,
        }
    }

    fn next_token(&mut self) -> Tok {
        let Some(&c) = self.pat.get(self.pos) else {
            return Tok::End;
        };
        self.pos += 1;
        if c == b'\\' {
            let Some(&c) = self.pat.get(self.pos) else {
                return Tok::TrailingBackslash;
            };
            self.pos += 1;
            return match c {
                b'1'..=b'9' => Tok::BackRef(c - b'0'),
                b'<' => Tok::Anchor(Look::WordStart),
                b'>' => Tok::Anchor(Look::WordEnd),
                b'b' => Tok::Anchor(Look::WordBoundary),
                b'B' => Tok::Anchor(Look::NotWordBoundary),
                b'`' => Tok::Anchor(Look::TextStart),
                b'\'' => Tok::Anchor(Look::TextEnd),
                b'w' => Tok::Shorthand(Shorthand::Word),
                b'W' => Tok::Shorthand(Shorthand::NotWord),
                b's' => Tok::Shorthand(Shorthand::Space),
                b'S' => Tok::Shorthand(Shorthand::NotSpace),
                _ => Tok::Char(c),
            };
        }
        match c {
            b'|' => Tok::Alt,
            b'*' => Tok::Star,
            b'+' => Tok::Plus,
            b'?' => Tok::Quest,
            b'{' => Tok::OpenBrace,
            b'}' => Tok::CloseBrace,
            b'(' => Tok::OpenParen,
            b')' => Tok::CloseParen,
            b'[' => Tok::OpenBracket,
            b'.' => Tok::Any,
            b'^' => Tok::Anchor(Look::LineStart),
            b'$' => Tok::Anchor(Look::LineEnd),
            _ => Tok::Char(c),
        }
    }

    /// Adds a node. The cap bounds memory: a tree this big, if all of it is used, needs more
    /// than [`MAX_PROGRAM`] instructions anyway, since every node but a concatenation costs
    /// at least one.
    fn push(&mut self, node: Node) -> Result<NodeId, EreError> {
        if self.nodes.len() >= 2 * MAX_PROGRAM {
            return Err(EreError::TooBig);
        }
        self.nodes.push(node);
        Ok((self.nodes.len() - 1) as NodeId)
    }

    fn set(&mut self, set: ByteSet) -> Result<NodeId, EreError> {
        let id = self.sets.len() as u32;
        let node = self.push(Node::Set(id))?;
        self.sets.push(set);
        Ok(node)
    }

    fn concat(&mut self, a: Option<NodeId>, b: Option<NodeId>) -> Result<Option<NodeId>, EreError> {
        Ok(match (a, b) {
            (Some(a), Some(b)) => Some(self.push(Node::Concat(a, b))?),
            (a, None) => a,
            (None, b) => b,
        })
    }

    fn repeat(
        &mut self,
        node: Option<NodeId>,
        min: u32,
        max: Option<u32>,
    ) -> Result<Option<NodeId>, EreError> {
        Ok(match (node, min, max) {
            (None, _, _) | (_, 0, Some(0)) => None,
            (node, 1, Some(1)) => node,
            (Some(node), min, max) => Some(self.push(Node::Repeat { node, min, max })?),
        })
    }

    fn open_frame(&self, group: Option<u32>) -> Frame {
        Frame {
            group,
            alternatives: None,
            empty_alternative: false,
            branch: None,
            closed_at_open: self.closed,
            closed_in_alternatives: 0,
        }
    }

    /// Ends the current alternative of `frame`.
    fn end_branch(&mut self, frame: &mut Frame) -> Result<(), EreError> {
        match frame.branch.take() {
            None => frame.empty_alternative = true,
            Some(branch) => {
                frame.alternatives = Some(match frame.alternatives {
                    None => branch,
                    Some(alternatives) => self.push(Node::Alt(alternatives, branch))?,
                });
            }
        }
        frame.closed_in_alternatives |= self.closed;
        self.closed = frame.closed_at_open;
        Ok(())
    }

    /// Ends the last alternative of `frame` and returns the whole alternation.
    fn close_frame(&mut self, mut frame: Frame) -> Result<Option<NodeId>, EreError> {
        let seen_alternative = frame.alternatives.is_some() || frame.empty_alternative;
        let branch = frame.branch.take();
        if !seen_alternative {
            return Ok(branch);
        }
        frame.branch = branch;
        self.end_branch(&mut frame)?;
        self.closed |= frame.closed_in_alternatives;
        if frame.empty_alternative {
            // x|(empty) matches what x? matches.
            return self.repeat(frame.alternatives, 0, Some(1));
        }
        Ok(frame.alternatives)
    }

    fn parse(mut self) -> Result<Parsed, EreError> {
        let mut frames = vec![self.open_frame(None)];
        let mut tok = self.next_token();
        loop {
            let nested = frames.len() > 1;
            let atom = match tok {
                Tok::End if nested => return Err(EreError::UnmatchedParen),
                Tok::End => {
                    let frame = frames.pop().ok_or(EreError::UnmatchedParen)?;
                    let root = self.close_frame(frame)?;
                    return Ok(Parsed {
                        nodes: self.nodes,
                        sets: self.sets,
                        root,
                        backref: self.backref,
                    });
                }
                Tok::Alt => {
                    let frame = frames.last_mut().ok_or(EreError::UnmatchedParen)?;
                    self.end_branch(frame)?;
                    tok = self.next_token();
                    continue;
                }
                Tok::OpenParen => {
                    // glibc's own recursive parser overflows an 8 MiB stack near 30,000.
                    if frames.len() > MAX_PROGRAM {
                        return Err(EreError::TooBig);
                    }
                    frames.push(self.open_frame(Some(self.groups)));
                    self.groups = self.groups.saturating_add(1);
                    tok = self.next_token();
                    continue;
                }
                Tok::CloseParen if nested => {
                    let frame = frames.pop().ok_or(EreError::UnmatchedParen)?;
                    let group = frame.group;
                    let node = self.close_frame(frame)?;
                    if let Some(n @ 0..=8) = group {
                        self.closed |= 1 << n;
                    }
                    node
                }
                Tok::Star | Tok::Plus | Tok::Quest | Tok::OpenBrace => {
                    return Err(EreError::BadRepetition)
                }
                Tok::Anchor(look) => {
                    // An anchor takes no repetition: the operator after it starts the next
                    // item, where it is an error.
                    let node = self.push(Node::Look(look))?;
                    let frame = frames.last_mut().ok_or(EreError::UnmatchedParen)?;
                    frame.branch = self.concat(frame.branch, Some(node))?;
                    tok = self.next_token();
                    continue;
                }
                Tok::Char(c) => Some(self.set(ByteSet::from_fn(|b| b == c))?),
                Tok::CloseParen => Some(self.set(ByteSet::from_fn(|b| b == b')'))?),
                Tok::CloseBrace => Some(self.set(ByteSet::from_fn(|b| b == b'}'))?),
                Tok::Any => Some(self.set(ByteSet::from_fn(|b| b != 0))?),
                Tok::Shorthand(kind) => Some(self.set(ByteSet::from_fn(|b| match kind {
                    Shorthand::Word => is_word(b),
                    Shorthand::NotWord => !is_word(b),
                    Shorthand::Space => is_space(b),
                    Shorthand::NotSpace => !is_space(b),
                }))?),
                Tok::OpenBracket => {
                    let set = self.bracket()?;
                    Some(self.set(set)?)
                }
                Tok::BackRef(n) => {
                    if self.closed & (1 << (n - 1)) == 0 {
                        return Err(EreError::BadBackReference);
                    }
                    self.backref = true;
                    None
                }
                Tok::TrailingBackslash => return Err(EreError::TrailingBackslash),
            };
            tok = self.next_token();
            let mut atom = atom;
            while matches!(tok, Tok::Star | Tok::Plus | Tok::Quest | Tok::OpenBrace) {
                let (min, max) = self.repetition(tok)?;
                tok = self.next_token();
                atom = self.repeat(atom, min, max)?;
            }
            let frame = frames.last_mut().ok_or(EreError::UnmatchedParen)?;
            frame.branch = self.concat(frame.branch, atom)?;
        }
    }

    /// The bounds of a repetition operator; for `{`, reads the interval up to its `}`.
    fn repetition(&mut self, tok: Tok) -> Result<(u32, Option<u32>), EreError> {
        match tok {
            Tok::Star => return Ok((0, None)),
            Tok::Plus => return Ok((1, None)),
            Tok::Quest => return Ok((0, Some(1))),
            _ => {}
        }
        let (mut min, mut last) = self.interval_number();
        if min == Number::Missing {
            if last != Tok::Char(b',') {
                return Err(EreError::BadInterval);
            }
            // `{,n}` is `{0,n}`.
            min = Number::Value(0);
        }
        let max = match (min, last) {
            (Number::Invalid, _) => Number::Invalid,
            (_, Tok::CloseBrace) => min,
            (_, Tok::Char(b',')) => {
                let (max, after) = self.interval_number();
                last = after;
                max
            }
            _ => Number::Invalid,
        };
        let (min, max) = match (min, max) {
            (Number::Value(min), Number::Value(max)) => (min, Some(max)),
            (Number::Value(min), Number::Missing) => (min, None),
            _ if last == Tok::End => return Err(EreError::UnmatchedBrace),
            _ => return Err(EreError::BadInterval),
        };
        if max.is_some_and(|max| min > max) || last != Tok::CloseBrace {
            return Err(EreError::BadInterval);
        }
        if max.unwrap_or(min) > RE_DUP_MAX {
            return Err(EreError::CountTooLarge);
        }
        Ok((min, max))
    }

    /// Reads tokens up to a `}`, a `,` or the end, as a decimal number; anything but
    /// digits makes it invalid. Values saturate just above RE_DUP_MAX.
    fn interval_number(&mut self) -> (Number, Tok) {
        let mut number = Number::Missing;
        loop {
            let tok = self.next_token();
            number = match (tok, number) {
                (Tok::End, _) => return (Number::Invalid, tok),
                (Tok::CloseBrace | Tok::Char(b','), _) => return (number, tok),
                (Tok::Char(c @ b'0'..=b'9'), Number::Missing) => Number::Value(u32::from(c - b'0')),
                (Tok::Char(c @ b'0'..=b'9'), Number::Value(n)) => {
                    Number::Value((n * 10 + u32::from(c - b'0')).min(RE_DUP_MAX + 1))
                }
                _ => Number::Invalid,
            };
        }
    }

    fn peek_bracket(&self) -> (BrTok, usize) {
        let Some(&c) = self.pat.get(self.pos) else {
            return (BrTok::End, 0);
        };
        match c {
            b'[' => match self.pat.get(self.pos + 1) {
                Some(&d @ (b'.' | b'=' | b':')) => (BrTok::Open(d), 2),
                _ => (BrTok::Char(b'['), 1),
            },
            b'-' => (BrTok::Hyphen, 1),
            b']' => (BrTok::Close, 1),
            b'^' => (BrTok::Caret, 1),
            _ => (BrTok::Char(c), 1),
        }
    }

    /// A bracket expression, from just after its `[` to just after its `]`.
    fn bracket(&mut self) -> Result<ByteSet, EreError> {
        let mut set = ByteSet::EMPTY;
        let (mut tok, mut len) = self.peek_bracket();
        if tok == BrTok::End {
            return Err(EreError::BadPattern);
        }
        let negate = tok == BrTok::Caret;
        if negate {
            self.pos += len;
            (tok, len) = self.peek_bracket();
            if tok == BrTok::End {
                return Err(EreError::BadPattern);
            }
        }
        if tok == BrTok::Close {
            // A `]` first is an ordinary character.
            tok = BrTok::Char(b']');
        }
        let mut first = true;
        loop {
            let start = self.bracket_item(tok, len, first)?;
            first = false;
            (tok, len) = self.peek_bracket();
            let mut range_end = None;
            if !matches!(start, Item::Class(_) | Item::Equivalence(_)) {
                if tok == BrTok::End {
                    return Err(EreError::UnmatchedBracket);
                }
                if tok == BrTok::Hyphen {
                    self.pos += len;
                    let (tok2, len2) = self.peek_bracket();
                    match tok2 {
                        BrTok::End => return Err(EreError::UnmatchedBracket),
                        BrTok::Close => {
                            // A `-` before the `]` is an ordinary character, read as the
                            // next item.
                            self.pos -= len;
                            tok = BrTok::Char(b'-');
                        }
                        _ => range_end = Some((tok2, len2)),
                    }
                }
            }
            match range_end {
                Some((tok2, len2)) => {
                    let end = self.bracket_item(tok2, len2, true)?;
                    (tok, len) = self.peek_bracket();
                    if [&start, &end]
                        .iter()
                        .any(|item| matches!(item, Item::Class(_) | Item::Equivalence(_)))
                    {
                        return Err(EreError::BadRange);
                    }
                    let (lo, hi) = (range_bound(&start)?, range_bound(&end)?);
                    if lo > hi {
                        return Err(EreError::BadRange);
                    }
                    set.insert_range(lo, hi);
                }
                None => match start {
                    Item::Byte(b) => set.insert(b),
                    Item::Collating(name) | Item::Equivalence(name) => match name {
                        &[b] => set.insert(b),
                        _ => return Err(EreError::Collation),
                    },
                    Item::Class(name) => set.union(&class_set(name).ok_or(EreError::CharClass)?),
                },
            }
            match tok {
                BrTok::End => return Err(EreError::UnmatchedBracket),
                BrTok::Close => break,
                _ => {}
            }
        }
        self.pos += len;
        if negate {
            set.negate();
        }
        Ok(set)
    }

    /// Consumes one bracket item starting with `tok`. A `-` is an item only first, as a
    /// range end, or just before the `]`.
    fn bracket_item(
        &mut self,
        tok: BrTok,
        len: usize,
        hyphen_ok: bool,
    ) -> Result<Item<'a>, EreError> {
        self.pos += len;
        Ok(match tok {
            BrTok::Open(delimiter) => self.bracket_name(delimiter)?,
            BrTok::Hyphen => {
                if !hyphen_ok && self.peek_bracket().0 != BrTok::Close {
                    return Err(EreError::BadRange);
                }
                Item::Byte(b'-')
            }
            BrTok::Char(c) => Item::Byte(c),
            BrTok::Close => Item::Byte(b']'),
            BrTok::Caret => Item::Byte(b'^'),
            BrTok::End => return Err(EreError::UnmatchedBracket),
        })
    }

    /// The name of a `[.name.]`, `[=name=]` or `[:name:]`, from just after its opening.
    fn bracket_name(&mut self, delimiter: u8) -> Result<Item<'a>, EreError> {
        let start = self.pos;
        if start >= self.pat.len() {
            return Err(EreError::UnmatchedBracket);
        }
        let mut len = 0;
        loop {
            if len > BRACKET_NAME_MAX {
                return Err(EreError::UnmatchedBracket);
            }
            let c = self.pat[self.pos];
            self.pos += 1;
            let Some(&after) = self.pat.get(self.pos) else {
                return Err(EreError::UnmatchedBracket);
            };
            if c == delimiter && after == b']' {
                break;
            }
            len += 1;
        }
        self.pos += 1;
        let name = &self.pat[start..start + len];
        Ok(match delimiter {
            b'.' => Item::Collating(name),
            b'=' => Item::Equivalence(name),
            _ => Item::Class(name),
        })
    }
}

/// glibc's decimal interval numbers: none read yet, or something that isn't a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Number {
    Missing,
    Invalid,
    Value(u32),
}

/// The byte a range starts or ends with: in the C locale, collation order is byte order.
fn range_bound(item: &Item) -> Result<u8, EreError> {
    match *item {
        Item::Byte(b) | Item::Collating(&[b]) => Ok(b),
        Item::Collating(_) => Err(EreError::Collation),
        Item::Class(_) | Item::Equivalence(_) => Err(EreError::BadRange),
    }
}

/// NFA instructions. Targets are instruction indices.
#[derive(Debug, Clone, Copy)]
enum Inst {
    /// Consume one byte of `sets[set]`.
    Byte {
        set: u32,
        next: u32,
    },
    Split(u32, u32),
    Look {
        look: Look,
        next: u32,
    },
    Match,
}

/// A target not yet known while a fragment is built.
const HOLE: u32 = u32::MAX;

/// A partly built automaton: its entry, and the target slots (instruction, second slot of
/// a split?) that must point to whatever follows it.
struct Fragment {
    start: u32,
    holes: Vec<(u32, bool)>,
}

enum Task {
    Visit(NodeId),
    Concat,
    Alt,
    Star,
    Plus,
    Quest,
}

/// Thompson construction over the tree, with explicit stacks; `capacity` is the exact
/// instruction count, measured beforehand.
fn compile(nodes: &[Node], root: NodeId, capacity: usize) -> (Vec<Inst>, u32) {
    let mut prog: Vec<Inst> = Vec::with_capacity(capacity);
    let mut tasks = vec![Task::Visit(root)];
    let mut frags: Vec<Fragment> = Vec::new();
    let patch = |prog: &mut Vec<Inst>, holes: &[(u32, bool)], to: u32| {
        for &(pc, second) in holes {
            match &mut prog[pc as usize] {
                Inst::Byte { next, .. } | Inst::Look { next, .. } => *next = to,
                Inst::Split(a, b) => *(if second { b } else { a }) = to,
                Inst::Match => {}
            }
        }
    };
    while let Some(task) = tasks.pop() {
        let pc = prog.len() as u32;
        match task {
            Task::Visit(id) => match nodes[id as usize] {
                Node::Set(set) => {
                    prog.push(Inst::Byte { set, next: HOLE });
                    frags.push(Fragment {
                        start: pc,
                        holes: vec![(pc, false)],
                    });
                }
                Node::Look(look) => {
                    prog.push(Inst::Look { look, next: HOLE });
                    frags.push(Fragment {
                        start: pc,
                        holes: vec![(pc, false)],
                    });
                }
                Node::Concat(a, b) => tasks.extend([Task::Concat, Task::Visit(b), Task::Visit(a)]),
                Node::Alt(a, b) => tasks.extend([Task::Alt, Task::Visit(b), Task::Visit(a)]),
                Node::Repeat { node, min, max } => {
                    // The steps in execution order, then pushed reversed onto the stack.
                    let mut steps = Vec::new();
                    match max {
                        None if min == 0 => steps.extend([Task::Visit(node), Task::Star]),
                        None => {
                            for i in 0..min {
                                steps.push(Task::Visit(node));
                                if i + 1 == min {
                                    steps.push(Task::Plus);
                                }
                                if i > 0 {
                                    steps.push(Task::Concat);
                                }
                            }
                        }
                        Some(max) => {
                            for i in 0..min {
                                steps.push(Task::Visit(node));
                                if i > 0 {
                                    steps.push(Task::Concat);
                                }
                            }
                            // (x(x(x)?)?)? for the optional copies.
                            let optional = max - min;
                            if optional > 0 {
                                steps.extend((0..optional).map(|_| Task::Visit(node)));
                                steps.push(Task::Quest);
                                for _ in 1..optional {
                                    steps.extend([Task::Concat, Task::Quest]);
                                }
                                if min > 0 {
                                    steps.push(Task::Concat);
                                }
                            }
                        }
                    }
                    tasks.extend(steps.into_iter().rev());
                }
            },
            Task::Concat => {
                let (Some(b), Some(a)) = (frags.pop(), frags.pop()) else {
                    continue;
                };
                patch(&mut prog, &a.holes, b.start);
                frags.push(Fragment {
                    start: a.start,
                    holes: b.holes,
                });
            }
            Task::Alt => {
                let (Some(b), Some(a)) = (frags.pop(), frags.pop()) else {
                    continue;
                };
                prog.push(Inst::Split(a.start, b.start));
                let (mut holes, other) = if a.holes.len() >= b.holes.len() {
                    (a.holes, b.holes)
                } else {
                    (b.holes, a.holes)
                };
                holes.extend(other);
                frags.push(Fragment { start: pc, holes });
            }
            Task::Star | Task::Plus => {
                let Some(x) = frags.pop() else {
                    continue;
                };
                prog.push(Inst::Split(x.start, HOLE));
                patch(&mut prog, &x.holes, pc);
                let start = if matches!(task, Task::Star) {
                    pc
                } else {
                    x.start
                };
                frags.push(Fragment {
                    start,
                    holes: vec![(pc, true)],
                });
            }
            Task::Quest => {
                let Some(mut x) = frags.pop() else {
                    continue;
                };
                prog.push(Inst::Split(x.start, HOLE));
                x.holes.push((pc, true));
                frags.push(Fragment {
                    start: pc,
                    holes: x.holes,
                });
            }
        }
    }
    let end = prog.len() as u32;
    prog.push(Inst::Match);
    match frags.pop() {
        Some(root) => {
            patch(&mut prog, &root.holes, end);
            (prog, root.start)
        }
        None => (prog, end),
    }
}

/// A set of VM threads with O(1) insert, clear and iteration. A thread is an
/// instruction and whether a `$` it passed at this position still needs the next byte to
/// be a newline; a thread without that condition makes the same one with it redundant.
struct Threads {
    dense: Vec<(u32, bool)>,
    sparse: Vec<u32>,
}

impl Threads {
    fn new(instructions: usize) -> Threads {
        Threads {
            dense: Vec::with_capacity(2 * instructions),
            sparse: vec![0; 2 * instructions],
        }
    }

    fn contains(&self, pc: u32, newline: bool) -> bool {
        let key = 2 * pc as usize + usize::from(newline);
        let slot = self.sparse[key] as usize;
        self.dense.get(slot) == Some(&(pc, newline))
    }

    fn insert(&mut self, pc: u32, newline: bool) -> bool {
        if self.contains(pc, false) || self.contains(pc, newline) {
            return false;
        }
        self.sparse[2 * pc as usize + usize::from(newline)] = self.dense.len() as u32;
        self.dense.push((pc, newline));
        true
    }

    fn clear(&mut self) {
        self.dense.clear();
    }

    fn iter(&self) -> std::slice::Iter<'_, (u32, bool)> {
        self.dense.iter()
    }
}

struct Vm<'p, 't> {
    prog: &'p [Inst],
    text: &'t [u8],
    stack: Vec<(u32, bool)>,
}

impl Vm<'_, '_> {
    /// Adds the thread at `pc` and every thread it reaches without consuming a byte at
    /// `pos` to `threads`; true when one of them matches.
    ///
    /// glibc checks a `$` lazily: against the byte its automaton consumes next (which
    /// must be a newline, REG_NEWLINE or not) or, where the match would end, against the
    /// end of the text. Threads carry that pending check.
    fn add(&mut self, threads: &mut Threads, pc: u32, pos: usize, attempt_start: bool) -> bool {
        self.stack.clear();
        self.stack.push((pc, false));
        while let Some((pc, newline)) = self.stack.pop() {
            if !threads.insert(pc, newline) {
                continue;
            }
            match self.prog[pc as usize] {
                Inst::Match => {
                    if !newline {
                        return true;
                    }
                }
                Inst::Byte { .. } => {}
                Inst::Split(a, b) => self.stack.extend([(b, newline), (a, newline)]),
                Inst::Look {
                    look: Look::LineEnd,
                    next,
                } => self.stack.push((next, newline || pos < self.text.len())),
                Inst::Look { look, next } => {
                    if look.holds(self.text, pos, attempt_start) {
                        self.stack.push((next, newline));
                    }
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::{is_match, EreError, Regex, MAX_PROGRAM};
    use std::time::{Duration, Instant};

    fn check(pattern: &str, text: &str, want: bool) {
        assert_eq!(
            is_match(pattern.as_bytes(), text.as_bytes()),
            Ok(want),
            "{pattern:?} on {text:?}"
        );
    }

    /// Kernel-version patterns as depmod.d files write them (`*` alone is the caller's).
    #[test]
    fn depmod_patterns() {
        let cases: &[(&str, &str, bool)] = &[
            (r"^6\.1\.", "6.1.0-28-amd64", true),
            (r"^6\.1\.", "6.10.0", false),
            (r"^6\.1\.", "16.1.0", false),
            (r"4\.4\..*", "4.4.302-generic", true),
            (r"4\.4\..*", "4.14.0", false),
            (r".*-amd64$", "6.1.0-28-amd64", true),
            (r".*-amd64$", "6.1.0-28-amd64-dbg", false),
            (r"-amd64$", "6.12.12+bpo-amd64", true),
            (r"(5|6)\.[0-9]+", "6.12.9", true),
            (r"(5|6)\.[0-9]+", "4.19.0", false),
            ("6.1", "6.1.0", true),
            ("6.1", "6x1", true),
            ("6.1", "6.0.1", false),
            (r"[[:digit:]]+\.[[:digit:]]+", "6.1.0-28-amd64", true),
            (r"[[:digit:]]+\.[[:digit:]]+", "abc.def", false),
            (
                "^6\\.(1|6)\\.[0-9]+-[0-9]+-(amd64|cloud-amd64)$",
                "6.1.0-28-cloud-amd64",
                true,
            ),
            (
                "^6\\.(1|6)\\.[0-9]+-[0-9]+-(amd64|cloud-amd64)$",
                "6.6.0-1-arm64",
                false,
            ),
            (r"^[5-6]\.[0-9]{1,2}\.", "5.15.0", true),
            (r"^[5-6]\.[0-9]{1,2}\.", "5.150.0", false),
            (r"^4\.(9|1[0-9])\.", "4.14.336", true),
            (r"^4\.(9|1[0-9])\.", "4.4.1", false),
            (r"rt", "6.1.0-28-rt-amd64", true),
            (r"-rt-", "6.1.0-28-amd64", false),
            (r"^6\.[^0]", "6.1.0", true),
            (r"^6\.[^0]", "6.0.0", false),
            (r"generic|lowlatency", "5.15.0-91-lowlatency", true),
            (r"^$", "", true),
            ("", "6.1.0", true),
            (r"6\.1\.0-28-amd64", "6.1.0-28-amd64", true),
        ];
        for &(pattern, text, want) in cases {
            check(pattern, text, want);
        }
    }

    /// glibc's compile verdicts, checked by hand against glibc 2.36.
    #[test]
    fn compile_errors() {
        use EreError::*;
        let cases: &[(&str, Result<(), EreError>)] = &[
            ("", Ok(())),
            ("[", Err(BadPattern)),
            ("[^", Err(BadPattern)),
            ("[a", Err(UnmatchedBracket)),
            ("[]", Err(UnmatchedBracket)),
            ("[]a]", Ok(())),
            ("*a", Err(BadRepetition)),
            ("(*a)", Err(BadRepetition)),
            ("a|*b", Err(BadRepetition)),
            ("^*", Err(BadRepetition)),
            ("a$?", Err(BadRepetition)),
            (r"\b*", Err(BadRepetition)),
            ("{", Err(BadRepetition)),
            ("a**", Ok(())),
            ("a+*?", Ok(())),
            ("(^)*a", Ok(())),
            ("a{", Err(UnmatchedBrace)),
            ("a{1", Err(UnmatchedBrace)),
            ("a{1,", Err(UnmatchedBrace)),
            ("a{x", Err(UnmatchedBrace)),
            ("a{x,", Err(BadInterval)),
            ("a{}", Err(BadInterval)),
            ("a{ 1}", Err(BadInterval)),
            ("a{1x}", Err(BadInterval)),
            ("a{1,2,3}", Err(BadInterval)),
            ("a{2,1}", Err(BadInterval)),
            ("a{40000,1}", Err(BadInterval)),
            (r"a{\1}", Err(BadInterval)),
            (r"a{\02}", Ok(())),
            (r"a{1\,2}", Ok(())),
            ("a{,}", Ok(())),
            ("a{,2}", Ok(())),
            ("a{32767}", Ok(())),
            ("a{32768}", Err(CountTooLarge)),
            ("a{0,32768}", Err(CountTooLarge)),
            ("a{32768,}", Err(CountTooLarge)),
            ("a{99999999999999999999}", Err(CountTooLarge)),
            ("}", Ok(())),
            (")", Ok(())),
            ("a)", Ok(())),
            ("(", Err(UnmatchedParen)),
            ("(a|b", Err(UnmatchedParen)),
            ("()", Ok(())),
            ("(|a)", Ok(())),
            ("|", Ok(())),
            ("a||b", Ok(())),
            ("\\", Err(TrailingBackslash)),
            ("a\\", Err(TrailingBackslash)),
            (r"\1", Err(BadBackReference)),
            (r"(a)\2", Err(BadBackReference)),
            (r"(a|\1)", Err(BadBackReference)),
            (r"(a)|\1", Err(BadBackReference)),
            (r"((a)|\2)", Err(BadBackReference)),
            (r"(a)\1", Err(BackReference)),
            (r"(a)(b|\1)", Err(BackReference)),
            ("[[:foo:]]", Err(CharClass)),
            ("[[:digit:]-a]", Err(BadRange)),
            ("[a-[:digit:]]", Err(BadRange)),
            ("[a-[:foo:]]", Err(BadRange)),
            ("[[=a=]-z]", Err(BadRange)),
            ("[z-a]", Err(BadRange)),
            ("[a-z-9]", Err(BadRange)),
            ("[--a]", Ok(())),
            ("[a-]", Ok(())),
            ("[[.a.]-c]", Ok(())),
            ("[[.ab.]]", Err(Collation)),
            ("[[.ab.]-a]", Err(Collation)),
            ("[[.ab.]-[=b=]]", Err(BadRange)),
            ("[[=ab=]]", Err(Collation)),
            ("[[==]]", Err(Collation)),
            ("[[..]]", Err(Collation)),
            ("[[...]]", Ok(())),
            ("[[.].]]", Ok(())),
            ("[[:]", Err(UnmatchedBracket)),
            ("[[:a]", Err(UnmatchedBracket)),
            ("[[:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:]]", Err(CharClass)),
            (
                "[[:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:]]",
                Err(UnmatchedBracket),
            ),
            ("[\\]", Ok(())),
        ];
        for &(pattern, want) in cases {
            assert_eq!(
                Regex::new(pattern.as_bytes()).map(|_| ()),
                want,
                "{pattern:?}"
            );
        }
    }

    #[test]
    fn matching() {
        let cases: &[(&str, &str, bool)] = &[
            ("[]a]", "]", true),
            ("[]a]", "-", false),
            ("[^]a]", "]", false),
            ("[^]a]", "b", true),
            ("[--a]", "-", true),
            ("[a-]", "-", true),
            ("[[.-.]]", "-", true),
            ("[[.-.]]", ".", false),
            ("[[=a=]b]", "b", true),
            ("[\\]", "\\", true),
            ("[[:alpha:]]", "\u{e9}", false),
            (".", "\n", true),
            ("[^a]", "\n", true),
            ("a.c", "a\nc", true),
            ("a{0}", "", true),
            ("a{,2}b", "b", true),
            ("^a{2,3}$", "aaaa", false),
            ("^a{2,3}$", "aaa", true),
            ("a{1,2}{3}", "aa", false),
            ("a{1,2}{3}", "aaa", true),
            (r"a{1\,2}", "a", true),
            ("}", "a{1}", true),
            (")", "a)", true),
            (r"a\|b", "a|b", true),
            (r"a\|b", "a", false),
            (r"\{", "{", true),
            ("a^b", "a^b", false),
            ("a$b", "a$b", false),
            ("(a|^)b", "ab", true),
            ("(a|^)b", "cb", false),
            ("(^|a)*b", "a b", true),
            ("x($|a)*", "xb", true),
            ("x($|a)*$", "xb", false),
            ("(a|)+b", "b", true),
            ("()*", "", true),
            (r"\w", "_", true),
            (r"\W", "a", false),
            (r"\s+", "b a", true),
            (r"\S", " \t", false),
            (r"\`a", "ba", false),
            (r"a\'", "ab", false),
            (r"\<a", "b a", true),
            (r"\<a", "ba", false),
            (r"a\>", "a_", false),
            (r"a\>", "a-", true),
            (r"\ba\b", "a", true),
            (r"\Ba", "aa", true),
            (r"\Ba", "a", false),
            (r"\B", "", true),
            (r"a\>b", "ab", false),
            ("a(\\b)*b", "ab", true),
            // glibc's newline quirk (see the module doc).
            ("a$", "a\nb", false),
            ("a$.b", "a\nb", true),
            ("a$\nb", "a\nb", true),
            (r"$\s", "a\nb", true),
            (r"$\S", "a\nb", false),
            (r"a\'.", "a\nb", false),
            ("^b", "a\nb", false),
            ("\n^b", "a\nb", true),
            ("(\n|x)^b", "xb", false),
            ("\n^$", "a\n", true),
            ("\n^$", "a\n\nb", false),
            ("$^", "\n", false),
            ("\n\\`b", "a\nb", false),
        ];
        for &(pattern, text, want) in cases {
            check(pattern, text, want);
        }
    }

    #[test]
    fn c_strings_and_bytes() {
        assert_eq!(is_match(b"a\0b", b"a"), Ok(true));
        assert_eq!(is_match(b"^ab$", b"ab\0cd"), Ok(true));
        assert_eq!(is_match(b"c", b"ab\0c"), Ok(false));
        assert_eq!(is_match(b"\0*", b"x"), Ok(true));
        assert_eq!(is_match(b"\xe9.", b"\xe9\xff"), Ok(true));
        assert_eq!(is_match(b"[\x80-\xff]", b"a\x90"), Ok(true));
        assert_eq!(is_match(b"[^\x80-\xff]", b"\x90"), Ok(false));
    }

    #[test]
    fn size_bound() {
        assert!(Regex::new(b"x{32767}").is_ok());
        assert!(Regex::new(b"x{0,32767}").is_ok());
        assert!(Regex::new(b"[0-9]{1,32767}").is_ok());
        assert_eq!(Regex::new(b"(a{1000}){1000}").err(), Some(EreError::TooBig));
        assert_eq!(Regex::new(b"(abc){32767}").err(), Some(EreError::TooBig));
        assert_eq!(
            Regex::new(b"((((a{10}){10}){10}){10}){10}").err(),
            Some(EreError::TooBig)
        );
        // A syntax error after an oversized part is still reported as glibc reports it.
        assert_eq!(
            Regex::new(b"(a{1000}){1000}(").err(),
            Some(EreError::UnmatchedParen)
        );
        let long = "a".repeat(MAX_PROGRAM - 1);
        assert!(Regex::new(long.as_bytes()).is_ok());
        let longer = "a".repeat(MAX_PROGRAM);
        assert_eq!(Regex::new(longer.as_bytes()).err(), Some(EreError::TooBig));
        let nested = |depth| format!("{}a{}", "(".repeat(depth), ")".repeat(depth));
        assert!(Regex::new(nested(MAX_PROGRAM).as_bytes()).is_ok());
        assert_eq!(
            Regex::new(nested(MAX_PROGRAM + 2).as_bytes()).err(),
            Some(EreError::TooBig)
        );
        let unused = "a{0}".repeat(2 * MAX_PROGRAM + 1);
        assert_eq!(Regex::new(unused.as_bytes()).err(), Some(EreError::TooBig));
        let big = Regex::new(b"^x{32767}$").unwrap();
        assert!(big.is_match(&[b'x'; 32767]));
        assert!(!big.is_match(&[b'x'; 32766]));
        assert!(!big.is_match(&[b'x'; 32768]));
    }

    /// Patterns that take exponential time in a backtracking matcher, or deep nesting,
    /// finish quickly here. The time limits are hang guards, not benchmarks.
    #[test]
    fn pathological_patterns() {
        let a = vec![b'a'; 20_000];
        let deep_groups = format!("{}a{}", "(".repeat(50_000), ")".repeat(50_000));
        let deep_stars = format!("a{}", "*".repeat(50_000));
        let deep_alternatives = format!("{}b", "(a|".repeat(10_000) + &")".repeat(10_000));
        let cases: Vec<(Vec<u8>, &[u8], bool)> = vec![
            (b"(a*)*b".to_vec(), &a, false),
            (b"(a|a)*b".to_vec(), &a, false),
            (b"(a|aa)*c".to_vec(), &a, false),
            (b"(a?){100}a{100}b".to_vec(), &a, false),
            (b"((a*)*)*$".to_vec(), &a, true),
            (b"(.*)*(.*)*(.*)*x".to_vec(), &a, false),
            (b"(\\b|\\B)*b".to_vec(), &a, false),
            (b"a{0,200}a{200}b".to_vec(), &a, false),
            (deep_groups.into_bytes(), &a, true),
            (deep_stars.into_bytes(), &a, true),
            (deep_alternatives.into_bytes(), b"aab", true),
        ];
        for (pattern, text, want) in cases {
            let started = Instant::now();
            assert_eq!(
                is_match(&pattern, text),
                Ok(want),
                // Assertion messages (display only).
                "{:?}",
                String::from_utf8_lossy(&pattern[..pattern.len().min(40)])
            );
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{:?} took {:?}",
                String::from_utf8_lossy(&pattern[..pattern.len().min(40)]),
                started.elapsed()
            );
        }
    }

    /// The C library's own regcomp/regexec (tests run in the C locale).
    #[cfg(target_env = "gnu")]
    mod glibc {
        use super::{EreError, Regex};
        use nix::libc;
        use std::ffi::CString;

        /// regcomp's error code, or regexec's verdicts on `texts`.
        fn glibc(pattern: &[u8], texts: &[Vec<u8>]) -> Result<Vec<bool>, libc::c_int> {
            let pattern = CString::new(pattern).unwrap();
            // SAFETY: regex_t is plain data that regcomp fills in before regexec reads it,
            // and it is freed only after a successful regcomp; all strings are
            // NUL-terminated and outlive the calls.
            unsafe {
                let mut regex: libc::regex_t = std::mem::zeroed();
                let flags = libc::REG_EXTENDED | libc::REG_NOSUB;
                let code = libc::regcomp(&mut regex, pattern.as_ptr(), flags);
                if code != 0 {
                    return Err(code);
                }
                let verdicts = texts
                    .iter()
                    .map(|text| {
                        let text = CString::new(text.as_slice()).unwrap();
                        libc::regexec(&regex, text.as_ptr(), 0, std::ptr::null_mut(), 0) == 0
                    })
                    .collect();
                libc::regfree(&mut regex);
                Ok(verdicts)
            }
        }

        /// glibc's code for our error; None for our own limits.
        fn code(error: EreError) -> Option<libc::c_int> {
            use EreError::*;
            Some(match error {
                BadPattern => libc::REG_BADPAT,
                Collation => libc::REG_ECOLLATE,
                CharClass => libc::REG_ECTYPE,
                TrailingBackslash => libc::REG_EESCAPE,
                BadBackReference => libc::REG_ESUBREG,
                UnmatchedBracket => libc::REG_EBRACK,
                UnmatchedParen => libc::REG_EPAREN,
                UnmatchedBrace => libc::REG_EBRACE,
                BadInterval => libc::REG_BADBR,
                BadRange => libc::REG_ERANGE,
                CountTooLarge => libc::REG_ESIZE,
                BadRepetition => libc::REG_BADRPT,
                BackReference | TooBig => return None,
            })
        }

        /// A small deterministic generator (xorshift64): `next(n)` is in 0..n.
        fn generator(mut seed: u64) -> impl FnMut(usize) -> usize {
            move |n| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % n as u64) as usize
            }
        }

        #[derive(Default, Debug)]
        struct Counts {
            patterns: usize,
            compiled: usize,
            backrefs: usize,
            verdicts: usize,
            matches: usize,
        }

        /// Compiles `pattern` with both and compares the error kind, or every verdict.
        fn compare(pattern: &[u8], texts: &[Vec<u8>], counts: &mut Counts) {
            counts.patterns += 1;
            // For assertion messages (display only).
            let shown = String::from_utf8_lossy(pattern);
            let regex = match Regex::new(pattern) {
                Ok(regex) => regex,
                Err(error) => {
                    let Some(want) = code(error) else {
                        // The generated patterns are far below the size bounds, so this is
                        // a back reference, which glibc accepts.
                        assert_eq!(error, EreError::BackReference, "{shown:?}");
                        assert_eq!(glibc(pattern, &[]).err(), None, "regcomp({shown:?})");
                        counts.backrefs += 1;
                        return;
                    };
                    assert_eq!(
                        glibc(pattern, &[]).err(),
                        Some(want),
                        "regcomp({shown:?}): we say {error:?}"
                    );
                    return;
                }
            };
            let theirs = glibc(pattern, texts);
            let Ok(theirs) = theirs else {
                panic!("regcomp({shown:?}) fails with {theirs:?}, we compile it");
            };
            counts.compiled += 1;
            for (text, want) in texts.iter().zip(theirs) {
                counts.verdicts += 1;
                counts.matches += usize::from(want);
                assert_eq!(
                    regex.is_match(text),
                    want,
                    "regexec({shown:?}, {:?})", // display only
                    String::from_utf8_lossy(text)
                );
            }
        }

        /// Patterns from pieces rich in metacharacters, against random texts and damaged
        /// copies of the pattern (so that enough of them match for the details to matter).
        #[test]
        fn agrees_on_metacharacters() {
            const PIECES: &[&[u8]] = &[
                b"a",
                b"a",
                b"b",
                b"b",
                b"x",
                b"0",
                b"1",
                b"2",
                b".",
                b".",
                b"*",
                b"*",
                b"+",
                b"?",
                b"|",
                b"|",
                b"(",
                b"(",
                b")",
                b")",
                b"[",
                b"[",
                b"]",
                b"]",
                b"^",
                b"^",
                b"$",
                b"$",
                b"{",
                b"}",
                b",",
                b"\\",
                b":",
                b"-",
                b"-",
                b"=",
                b"_",
                b" ",
                b"\xe9",
                b"\t",
                b"\n",
                b"\n",
                b"\x7f",
                b"[:digit:]",
                b"[:alpha:]",
                b"[:space:]",
                b"[:punct:]",
                b"[:foo:]",
                b"[.a.]",
                b"[.-.]",
                b"[.].]",
                b"[=a=]",
                b"[.ab.]",
                b"\\.",
                b"\\b",
                b"\\B",
                b"\\<",
                b"\\>",
                b"\\w",
                b"\\W",
                b"\\s",
                b"\\S",
                b"\\`",
                b"\\'",
                b"\\1",
                b"\\2",
                b"\\{",
                b"\\,",
                b"\\0",
                b"\\|",
                b"\\(",
                b"\\)",
                b"{1}",
                b"{1,2}",
                b"{,2}",
                b"{2,}",
                b"{0}",
                b"{0,1}",
                b"{3,1}",
                b"[^",
                b"[]",
                b"a-z",
                b"0-9",
                b"(a|b)",
                b"()",
                b".*",
                b"[^a]",
                b"((",
                b"))",
                b"|)",
                b"(|",
                b"[a-]",
                b"[]a]",
                b"[[.-.]-a]",
                b"[\x80-\xff]",
                b"^*",
                b"$)",
            ];
            const CHARS: &[u8] = b"aabbx0129.-_ :,{}[]()^$|*+?\\\t\n\xe9\x7f";
            let mut next = generator(0x2545_F491_4F6C_DD1D);
            let mut counts = Counts::default();
            for _ in 0..200_000 {
                let pattern: Vec<u8> = (0..1 + next(10))
                    .flat_map(|_| PIECES[next(PIECES.len())])
                    .copied()
                    .collect();
                let texts: Vec<Vec<u8>> = (0..8)
                    .map(|i| {
                        if i % 2 == 0 {
                            return (0..next(10)).map(|_| CHARS[next(CHARS.len())]).collect();
                        }
                        let mut text = Vec::new();
                        for &b in &pattern {
                            match next(6) {
                                0 => {}
                                1 => text.push(CHARS[next(CHARS.len())]),
                                2 => text.extend([b, b]),
                                _ => text.push(b),
                            }
                        }
                        text
                    })
                    .collect();
                compare(&pattern, &texts, &mut counts);
            }
            eprintln!("{counts:?}");
            assert!(counts.compiled > 50_000 && counts.backrefs > 0);
            assert!(counts.matches > 100_000 && counts.verdicts - counts.matches > 100_000);
        }

        /// Kernel-version-shaped patterns against real version strings.
        #[test]
        fn agrees_on_versions() {
            const PIECES: &[&[u8]] = &[
                b"6",
                b"5",
                b"1",
                b"0",
                b"4",
                b"\\.",
                b"\\.",
                b".",
                b".*",
                b"[0-9]",
                b"[0-9]+",
                b"[[:digit:]]",
                b"[[:digit:]]*",
                b"-",
                b"-amd64",
                b"-rt",
                b"cloud",
                b"+",
                b"*",
                b"?",
                b"{1,2}",
                b"{2}",
                b"(",
                b")",
                b"|",
                b"^",
                b"^",
                b"$",
                b"$",
                b"[^0]",
                b"[5-6]",
                b"(5|6)",
                b"(amd64|arm64)",
                b"bpo",
                b"~",
            ];
            const VERSIONS: &[&[u8]] = &[
                b"6.1.0-28-amd64",
                b"6.1.0-28-cloud-amd64",
                b"6.1.0-28-rt-amd64",
                b"6.12.12+bpo-amd64",
                b"5.10.0-33-arm64",
                b"4.19.0-27-686-pae",
                b"4.4.302",
                b"6.6.0",
                b"6.10.14-1~exp1",
                b"16.1.0",
                b"6.0",
                b"",
            ];
            let mut next = generator(0x9E37_79B9_7F4A_7C15);
            let mut counts = Counts::default();
            let texts: Vec<Vec<u8>> = VERSIONS.iter().map(|v| v.to_vec()).collect();
            for _ in 0..30_000 {
                let pattern: Vec<u8> = (0..1 + next(8))
                    .flat_map(|_| PIECES[next(PIECES.len())])
                    .copied()
                    .collect();
                compare(&pattern, &texts, &mut counts);
            }
            eprintln!("{counts:?}");
            assert!(counts.compiled > 10_000);
            assert!(counts.matches > 50_000 && counts.verdicts - counts.matches > 50_000);
        }
    }
}
