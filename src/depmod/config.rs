//! depmod.d: the configuration depmod reads when it scans a whole tree, turned into
//! the [`Rules`] the scan applies. Files, lines and messages as kmod 34.2 has them.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{io_errno, strerror, Log, Override, Prio, Rules, Search, Show};

/// Where depmod.d files are looked for unless `-C` names others; for a file name
/// found in several, the first directory wins.
pub const CONFIG_DIRS: [&str; 5] = [
    "/etc/depmod.d",
    "/run/depmod.d",
    "/usr/local/lib/depmod.d",
    "/usr/lib/depmod.d",
    "/lib/depmod.d",
];

/// Reads the configuration files of `paths` (files or directories; the standard
/// directories when None) for kernel `version`, in file-name order.
pub fn load_rules(paths: Option<&[PathBuf]>, version: &[u8], log: &Log) -> Rules {
    let defaults: Vec<PathBuf> = CONFIG_DIRS.iter().map(PathBuf::from).collect();
    let mut files: Vec<(Vec<u8>, PathBuf)> = Vec::new();
    for path in paths.unwrap_or(&defaults) {
        list_files(path, &mut files, log);
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rules = Rules::default();
    for (_, file) in &files {
        match std::fs::read(file) {
            Ok(text) => parse(&mut rules, &text, file, version, log),
            Err(e) => log.log(
                Prio::Error,
                format_args!("file parse {}: {}", file.display(), strerror(io_errno(&e))),
            ),
        }
    }
    rules
}

/// Adds the configuration files `path` stands for, unless a file of the same name is
/// there already.
fn list_files(path: &Path, files: &mut Vec<(Vec<u8>, PathBuf)>, log: &Log) {
    let mut add = |name: &[u8], file: PathBuf| {
        if !files.iter().any(|(n, _)| n == name) {
            files.push((name.to_vec(), file));
        }
    };
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        let name = path.file_name().map_or(&b""[..], |n| n.as_bytes());
        add(name, path.to_path_buf());
        return;
    }
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) => {
            log.log(
                Prio::Error,
                format_args!("files list {}: {}", path.display(), strerror(io_errno(&e))),
            );
            return;
        }
    };
    for entry in entries.map_while(Result::ok) {
        let name = entry.file_name();
        let name = name.as_bytes();
        if name.starts_with(b".") {
            continue;
        }
        if name.len() < 6 || !name.ends_with(b".conf") {
            log.log(
                Prio::Info,
                format_args!(
                    "All cfg files need .conf: {}/{}",
                    path.display(),
                    Show(name)
                ),
            );
            continue;
        }
        match std::fs::metadata(entry.path()) {
            Err(_) => log.log(
                Prio::Error,
                format_args!(
                    "Cannot stat directory entry: {}{}",
                    path.display(),
                    Show(name)
                ),
            ),
            Ok(m) if m.is_dir() => log.log(
                Prio::Error,
                format_args!(
                    "Directories inside directories are not supported: {}/{}",
                    path.display(),
                    Show(name)
                ),
            ),
            Ok(_) => add(name, entry.path()),
        }
    }
}

/// Whether a version pattern of an `override` or `external` line matches: `*`, or a
/// POSIX extended regular expression found anywhere in the version. glibc's regcomp
/// and regexec can take gigabytes, minutes or more stack than there is on small
/// hostile patterns (stacked repetitions, nested intervals, back-references), so a
/// pattern that is not [`tame`](RegexShape::is_tame) matches nothing, as if regcomp
/// had failed, which kmod also treats as no match.
fn version_matches(pattern: &[u8], version: &[u8]) -> bool {
    if pattern == b"*" {
        return true;
    }
    if !RegexShape::of(pattern).is_tame() {
        return false;
    }
    let (Ok(pattern), Ok(version)) = (CString::new(pattern), CString::new(version)) else {
        return false;
    };
    // SAFETY: regex_t is plain data that regcomp initialises before regexec reads it,
    // and it is freed only after a successful regcomp. Both strings are NUL-terminated.
    unsafe {
        let mut regex: nix::libc::regex_t = std::mem::zeroed();
        let flags = nix::libc::REG_EXTENDED | nix::libc::REG_NOSUB;
        if nix::libc::regcomp(&mut regex, pattern.as_ptr(), flags) != 0 {
            return false;
        }
        let found = nix::libc::regexec(&regex, version.as_ptr(), 0, std::ptr::null_mut(), 0) == 0;
        nix::libc::regfree(&mut regex);
        found
    }
}

/// The rules one depmod.d file's `text` gives for kernel `version`, with the messages
/// depmod prints for it (the file is named `depmod.conf` in them).
pub fn parse_text(text: &[u8], version: &[u8], log: &Log) -> Rules {
    let mut rules = Rules::default();
    parse(&mut rules, text, Path::new("depmod.conf"), version, log);
    rules
}

/// What makes glibc's regex engine slow or large on a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RegexShape {
    /// An upper estimate of the size of glibc's parse tree: it copies the operand of
    /// `+` (twice) and of an interval (`{m,n}`: n times, `{m,}`: m + 1 times), so
    /// stacked or nested repetitions multiply; everything else adds.
    nodes: u64,
    /// How deeply repetitions nest (`a+`: 1, `(a+)*` and `a++`: 2).
    depth: u32,
    /// Whether a back-reference (`\1`..`\9`) appears, which makes glibc backtrack.
    backreference: bool,
}

impl RegexShape {
    /// Past this, glibc recurses deeper than a thread's stack allows.
    const MAX_NODES: u64 = 2048;
    /// Bound on nodes^(depth + 1), which grows at least as fast as regcomp's and
    /// regexec's time on patterns full of empty alternatives (measured: 20 of them
    /// under 1 to 5 stacked `+` took 76 µs, 6 ms, 150 ms, 4.4 s and 498 s). Version
    /// patterns are a few nodes, one or two repetitions deep.
    const MAX_COST: u64 = 1_000_000;

    fn is_tame(self) -> bool {
        !self.backreference
            && self.nodes <= Self::MAX_NODES
            && self.nodes.saturating_pow(self.depth + 1) <= Self::MAX_COST
    }

    fn of(pattern: &[u8]) -> RegexShape {
        /// One nesting level: the size of its finished branches, of the current
        /// branch, and of the current branch's last atom (what a repetition applies
        /// to), and the repetition depths inside it and inside that atom.
        #[derive(Default)]
        struct Level {
            done: u64,
            branch: u64,
            last: u64,
            depth: u32,
            last_depth: u32,
        }
        let mut backreference = false;
        let mut outer = Level::default();
        let mut groups: Vec<Level> = Vec::new();
        let mut i = 0;
        while i < pattern.len() {
            let c = pattern[i];
            i += 1;
            let top = groups.last_mut().unwrap_or(&mut outer);
            let factor = match c {
                b'*' | b'?' => Some(1),
                b'+' => Some(2),
                b'{' => interval(&pattern[i..]).map(|(low, high, len)| {
                    i += len;
                    high.unwrap_or(low.saturating_add(1)).max(1)
                }),
                _ => None,
            };
            if let Some(factor) = factor {
                let grown = top.last.max(1).saturating_mul(factor);
                top.branch = top.branch.saturating_sub(top.last).saturating_add(grown);
                top.last = grown;
                top.last_depth += 1;
                top.depth = top.depth.max(top.last_depth);
                continue;
            }
            let (atom, atom_depth) = match c {
                b'(' => {
                    groups.push(Level::default());
                    continue;
                }
                b'|' => {
                    top.done = top.done.saturating_add(top.branch).saturating_add(1);
                    top.branch = 0;
                    top.last = 0;
                    top.last_depth = 0;
                    continue;
                }
                b')' => match groups.pop() {
                    Some(group) => (
                        group.done.saturating_add(group.branch).saturating_add(1),
                        group.depth,
                    ),
                    None => (1, 0),
                },
                b'\\' => {
                    backreference |= matches!(pattern.get(i), Some(b'1'..=b'9'));
                    i += 1;
                    (1, 0)
                }
                b'[' => {
                    i += bracket_len(&pattern[i..]);
                    (1, 0)
                }
                _ => (1, 0),
            };
            let top = groups.last_mut().unwrap_or(&mut outer);
            top.branch = top.branch.saturating_add(atom);
            top.last = atom;
            top.last_depth = atom_depth;
            top.depth = top.depth.max(atom_depth);
        }
        // Unclosed groups (a syntax error for regcomp) count as they are.
        let levels = || groups.iter().chain([&outer]);
        RegexShape {
            nodes: levels().fold(0, |sum, l| {
                sum.saturating_add(l.done).saturating_add(l.branch)
            }),
            depth: levels().map(|l| l.depth).max().unwrap_or(0),
            backreference,
        }
    }
}

/// After a `{`: an interval `m}`, `m,}`, `m,n}` or `,n}` as (m, n, bytes read).
fn interval(rest: &[u8]) -> Option<(u64, Option<u64>, usize)> {
    let number = |s: &[u8]| -> (Option<u64>, usize) {
        let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
        let value = s[..digits].iter().try_fold(0u64, |v, &d| {
            v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        });
        ((digits > 0).then(|| value.unwrap_or(u64::MAX)), digits)
    };
    let (low, mut at) = number(rest);
    let high = if rest.get(at) == Some(&b',') {
        let (high, len) = number(&rest[at + 1..]);
        at += 1 + len;
        high
    } else {
        Some(low?)
    };
    if rest.get(at) != Some(&b'}') || (low.is_none() && high.is_none()) {
        return None;
    }
    Some((low.unwrap_or(0), high, at + 1))
}

/// After a `[`: how many bytes the bracket expression still takes, through its `]`
/// (a first `]` is a member; `[:...:]`, `[.….]` and `[=...=]` are skipped whole).
fn bracket_len(rest: &[u8]) -> usize {
    let mut i = usize::from(rest.first() == Some(&b'^'));
    if rest.get(i) == Some(&b']') {
        i += 1;
    }
    while i < rest.len() {
        match rest[i] {
            b']' => return i + 1,
            b'[' if matches!(rest.get(i + 1), Some(b':' | b'.' | b'=')) => {
                let close = [rest[i + 1], b']'];
                match rest[i + 2..].windows(2).position(|w| w == close) {
                    Some(end) => i += 2 + end + 2,
                    None => return rest.len(),
                }
            }
            _ => i += 1,
        }
    }
    rest.len()
}

fn parse(rules: &mut Rules, text: &[u8], file: &Path, version: &[u8], log: &Log) {
    let file = file.display();
    for (number, line) in crate::config::logical_lines(text) {
        if line.first().is_none_or(|&b| b == b'#') {
            continue;
        }
        let mut words = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty());
        let Some(command) = words.next() else {
            continue;
        };
        let mut arguments = |n: usize| -> Option<Vec<&[u8]>> {
            let args: Vec<&[u8]> = words.by_ref().take(n).collect();
            (args.len() == n).then_some(args)
        };
        let bad = match command {
            b"search" => {
                rules.search.extend(words.by_ref().map(|w| match w {
                    b"built-in" => Search::BuiltIn,
                    b"external" => Search::External,
                    dir => Search::Dir(dir.to_vec()),
                }));
                false
            }
            b"exclude" => {
                rules.excludes.extend(words.by_ref().map(<[u8]>::to_vec));
                false
            }
            b"override" => match arguments(3) {
                None => true,
                Some(args) => {
                    if version_matches(args[1], version) {
                        rules.overrides.push(Override {
                            modname: args[0].to_vec(),
                            subdir: args[2].to_vec(),
                        });
                    } else {
                        log.log(
                            Prio::Info,
                            format_args!(
                                "{file}:{number}: override kernel did not match {}",
                                Show(args[1])
                            ),
                        );
                    }
                    false
                }
            },
            b"external" => match arguments(2) {
                None => true,
                Some(args) => {
                    if version_matches(args[0], version) {
                        rules.externals.push(args[1].to_vec());
                    } else {
                        log.log(
                            Prio::Info,
                            format_args!(
                                "{file}:{number}: external directory did not match {}",
                                Show(args[0])
                            ),
                        );
                    }
                    false
                }
            },
            b"include" | b"make_map_files" => {
                log.log(
                    Prio::Info,
                    format_args!(
                        "{file}:{number}: command {} not implemented yet",
                        Show(command)
                    ),
                );
                false
            }
            _ => true,
        };
        if bad {
            log.log(
                Prio::Error,
                format_args!(
                    "{file}:{number}: ignoring bad line starting with '{}'",
                    Show(command)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_lines() {
        let text = b"a \\\nb\n\\#c\nd\\";
        let expected: Vec<(usize, Vec<u8>)> = vec![
            (2, b"a b".to_vec()),
            (3, b"#c".to_vec()),
            (4, b"d".to_vec()),
        ];
        assert_eq!(crate::config::logical_lines(text), expected);
    }

    #[test]
    fn versions() {
        assert!(version_matches(b"*", b"6.1.0"));
        assert!(version_matches(b"4\\.4\\..*", b"4.4.4"));
        assert!(version_matches(b"1", b"6.1.0"));
        assert!(!version_matches(b"^5", b"6.1.0"));
        assert!(!version_matches(b"(", b"6.1.0"));
    }

    #[test]
    fn regex_shapes() {
        let shape = |p: &[u8]| {
            let s = RegexShape::of(p);
            (s.nodes, s.depth)
        };
        for (pattern, expected) in [
            (&b"4\\.4\\..*"[..], (5, 1)),
            (b"^6\\.1[0-9]", (5, 0)),
            (b"(a|b)+", (8, 1)),
            (b"a{3}", (3, 1)),
            (b"a{2,5}b", (6, 1)),
            (b"a{,4}", (4, 1)),
            (b"a{7,}", (8, 1)),
            (b"x{y}", (4, 0)),
            (b"[]a[:digit:]]x", (2, 0)),
            (b"6\\.(1|2)+(\\.[0-9]+)*", (14, 2)),
            (b"a++", (4, 2)),
        ] {
            assert_eq!(
                shape(pattern),
                expected,
                "{}",
                String::from_utf8_lossy(pattern)
            );
        }
        // Plausible version patterns are tame.
        for pattern in [
            &b"6\\.(1|2)+(\\.[0-9]+)*"[..],
            b"^(5|6)\\.[0-9]+\\.[0-9]+-[0-9]+-(amd64|arm64|cloud-amd64)$",
            b"4\\.4\\..*",
            &[b'a'; 2000],
        ] {
            assert!(
                RegexShape::of(pattern).is_tame(),
                "{}",
                String::from_utf8_lossy(pattern)
            );
        }
        assert!(version_matches(b"6\\.1+\\.(0|1)+", b"6.11.0"));
        // What fuzzing found, and its relatives: regcomp took gigabytes, regexec
        // minutes, or glibc overflowed the stack on these.
        for pattern in [
            [&b"6."[..], &[b'+'; 40], b"*"].concat(),
            [&b"(\xff"[..], &[b'|'; 23], b"])+++++"].concat(),
            b"((a{1000}){1000}){1000}".to_vec(),
            b"((|a){1,100}){1,100}".to_vec(),
            b"(a)\\1".to_vec(),
            vec![b'a'; 3000],
        ] {
            assert!(
                !RegexShape::of(&pattern).is_tame(),
                "{}",
                String::from_utf8_lossy(&pattern)
            );
            assert!(!version_matches(&pattern, b"6.1.0"));
        }
    }

    #[test]
    fn directives() {
        let log = Log::new("test", 0);
        let mut rules = Rules::default();
        let text = b"search updates built-in\nexternal * /ext\nexternal ^9 /no\n\
                     override a 6.* extra\nexclude build2\n\tsearch external\n";
        parse(&mut rules, text, Path::new("x.conf"), b"6.1", &log);
        assert_eq!(
            rules.search,
            [
                Search::Dir(b"updates".to_vec()),
                Search::BuiltIn,
                Search::External
            ]
        );
        assert_eq!(rules.externals, [b"/ext".to_vec()]);
        assert_eq!(rules.overrides.len(), 1);
        assert_eq!(rules.excludes, [b"build2".to_vec()]);
    }
}
