//! Shell-style pattern matching with glibc `fnmatch(pattern, string, 0)` semantics in the
//! C locale, which libkmod uses for alias wildcards: `*`, `?`, bracket expressions with
//! ranges, `!`/`^` negation, `[:class:]`, `[=c=]` and `[.c.]` items, and backslash
//! escapes. With flags 0, `/` and leading dots are ordinary characters.
//!
//! glibc's quirks are kept, because alias patterns come from arbitrary modules:
//! * a `[` without a closing `]` is a literal `[`;
//! * a trailing backslash, an unknown class name or a malformed `[.`/`[=` item make the
//!   match fail at that point;
//! * a `[:` whose name has a character outside `a`..`y` is not a class: its `[` is an
//!   ordinary bracket item.
//!
//! Both inputs end at their first NUL, as C strings would.

use super::until_nul;

/// How far glibc scans for the end of a `[:name:]` before giving up on the pattern.
const CLASS_NAME_MAX: usize = 2048;

pub fn fnmatch(pattern: &str, s: &str) -> bool {
    fnmatch_bytes(pattern.as_bytes(), s.as_bytes())
}

pub fn fnmatch_bytes(pattern: &[u8], s: &[u8]) -> bool {
    let mut unlimited = usize::MAX;
    fnmatch_within(pattern, s, &mut unlimited) == Some(true)
}

/// [`fnmatch_bytes`] with a cap on its work, for callers matching many patterns from an
/// untrusted file: each step (a byte of either input read to find its end, an item
/// tried against a character, and for a bracket expression the pattern bytes after it
/// that it may scan) is taken from `steps`.
/// None when they run out before the answer; a match of pattern length P against a
/// string of length S takes at most about P × S steps, and usually P + S.
pub fn fnmatch_within(pattern: &[u8], s: &[u8], steps: &mut usize) -> Option<bool> {
    // Finding the ends of both strings reads them once.
    *steps = steps.checked_sub(pattern.len().saturating_add(s.len()))?;
    let pat = Pattern(until_nul(pattern));
    let s = until_nul(s);
    // Iterative matching that retries from the last `*` only: linear memory, no
    // recursion, and the same answers as glibc's segment-by-segment search.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    loop {
        let cost = if pat.at(p) == b'[' {
            1 + pat.0.len().saturating_sub(p)
        } else {
            1
        };
        *steps = steps.checked_sub(cost)?;
        let advanced = match pat.at(p) {
            0 => {
                if n == s.len() {
                    return Some(true);
                }
                None
            }
            b'*' => {
                while pat.at(p) == b'*' {
                    p += 1;
                }
                star = Some((p, n));
                continue;
            }
            b'?' => (n < s.len()).then_some(p + 1),
            b'\\' => match pat.at(p + 1) {
                0 => None,
                c => (s.get(n) == Some(&c)).then_some(p + 2),
            },
            b'[' => match s.get(n) {
                None => None,
                Some(&c) => match bracket(&pat, p + 1, c) {
                    Bracket::Matched(next) => Some(next),
                    Bracket::Failed => None,
                    Bracket::Unterminated => (c == b'[').then_some(p + 1),
                },
            },
            c => (s.get(n) == Some(&c)).then_some(p + 1),
        };
        match advanced {
            Some(next) => {
                p = next;
                n += 1;
            }
            // Mismatch: let the last star swallow one more character, if it can.
            None => match star {
                Some((sp, sn)) if sn < s.len() => {
                    star = Some((sp, sn + 1));
                    p = sp;
                    n = sn + 1;
                }
                _ => return Some(false),
            },
        }
    }
}

/// A pattern read like a C string: past the end, every byte is NUL.
struct Pattern<'a>(&'a [u8]);

impl Pattern<'_> {
    fn at(&self, i: usize) -> u8 {
        self.0.get(i).copied().unwrap_or(0)
    }
}

enum Bracket {
    /// The character matched; matching resumes at this pattern index.
    Matched(usize),
    Failed,
    /// No closing `]`: the `[` stands for itself.
    Unterminated,
}

/// Matches `c` against the bracket expression whose items start at `p` (just after `[`).
fn bracket(pat: &Pattern, mut p: usize, c: u8) -> Bracket {
    let negate = matches!(pat.at(p), b'!' | b'^');
    if negate {
        p += 1;
    }
    let matched = |after: usize| match skip_to_close(pat, after) {
        Bracket::Matched(_) if negate => Bracket::Failed,
        outcome => outcome,
    };
    // `item` is the byte that starts the current item; `p` indexes the byte after it.
    let mut item = pat.at(p);
    p += 1;
    loop {
        // Resolve the item to a single character `lo` (which may start a range), unless
        // it is a class or an equivalence class, which are complete in themselves.
        let mut from_symbol = false;
        let lo = if item == b'\\' {
            let escaped = pat.at(p);
            if escaped == 0 {
                return Bracket::Failed;
            }
            p += 1;
            escaped
        } else if item == b'[' && pat.at(p) == b':' {
            match class_item(pat, p) {
                ClassItem::Class(name, next) => match class_contains(name, c) {
                    Some(true) => return matched(next),
                    Some(false) => {
                        item = pat.at(next);
                        p = next + 1;
                        if item == b']' {
                            break;
                        }
                        continue;
                    }
                    None => return Bracket::Failed,
                },
                ClassItem::TooLong => return Bracket::Failed,
                ClassItem::NotAClass => b'[',
            }
        } else if item == b'[' && pat.at(p) == b'=' {
            let x = pat.at(p + 1);
            if x != 0 && pat.at(p + 2) == b'=' && pat.at(p + 3) == b']' {
                if c == x {
                    return matched(p + 4);
                }
                item = pat.at(p + 4);
                p += 5;
                if item == b']' {
                    break;
                }
                continue;
            }
            b'['
        } else if item == 0 {
            return Bracket::Unterminated;
        } else if item == b'[' && pat.at(p) == b'.' {
            let Some((symbol, next)) = collating_symbol(pat, p) else {
                return Bracket::Failed;
            };
            p = next;
            from_symbol = true;
            symbol
        } else {
            item
        };

        // A following `-` makes a range unless it ends the expression.
        let is_range =
            pat.at(p) == b'-' && pat.at(p + 1) != 0 && (from_symbol || pat.at(p + 1) != b']');
        if !is_range && lo == c {
            return matched(p);
        }
        item = pat.at(p);
        p += 1;
        if item == b'-' && pat.at(p) != b']' {
            let mut hi = pat.at(p);
            p += 1;
            if hi == b'[' && pat.at(p) == b'.' {
                let Some((symbol, next)) = collating_symbol(pat, p) else {
                    return Bracket::Failed;
                };
                hi = symbol;
                p = next;
            } else {
                if hi == b'\\' {
                    hi = pat.at(p);
                    p += 1;
                }
                if hi == 0 {
                    return Bracket::Failed;
                }
            }
            if lo <= c && c <= hi {
                return matched(p);
            }
            item = pat.at(p);
            p += 1;
        }
        if item == b']' {
            break;
        }
    }
    if negate {
        Bracket::Matched(p)
    } else {
        Bracket::Failed
    }
}

enum ClassItem<'a> {
    /// A `[:name:]` item and the index after it.
    Class(&'a [u8], usize),
    TooLong,
    /// Not shaped like a class name: the `[` is an ordinary item.
    NotAClass,
}

/// Reads `[:name:]` given `p` at its `:`.
fn class_item<'a>(pat: &Pattern<'a>, p: usize) -> ClassItem<'a> {
    let start = p + 1;
    let mut q = start;
    loop {
        if q - start == CLASS_NAME_MAX {
            return ClassItem::TooLong;
        }
        match pat.at(q) {
            b':' if pat.at(q + 1) == b']' => return ClassItem::Class(&pat.0[start..q], q + 2),
            b'a'..=b'y' => q += 1,
            _ => return ClassItem::NotAClass,
        }
    }
}

/// Reads `[.c.]` given `p` at its first `.`: the character and the index after it. In
/// the C locale only one-character symbols exist; anything else fails the match.
fn collating_symbol(pat: &Pattern, p: usize) -> Option<(u8, usize)> {
    let start = p + 1;
    let mut q = start;
    loop {
        match pat.at(q) {
            0 => return None,
            b'.' if pat.at(q + 1) == b']' => break,
            _ => q += 1,
        }
    }
    (q - start == 1).then(|| (pat.at(start), q + 2))
}

/// After a successful item, skips the rest of the expression as glibc does, checking
/// only its shape: Matched with the index after the closing `]`, Unterminated if there
/// is none, or Failed on a malformed item.
fn skip_to_close(pat: &Pattern, mut p: usize) -> Bracket {
    loop {
        let c = pat.at(p);
        p += 1;
        match c {
            b']' => return Bracket::Matched(p),
            0 => return Bracket::Unterminated,
            b'\\' => {
                if pat.at(p) == 0 {
                    return Bracket::Failed;
                }
                p += 1;
            }
            b'[' if pat.at(p) == b':' => {
                let start = p;
                let mut len = 0;
                loop {
                    p += 1;
                    len += 1;
                    if len == CLASS_NAME_MAX {
                        return Bracket::Failed;
                    }
                    if pat.at(p) == b':' && pat.at(p + 1) == b']' {
                        p += 2;
                        break;
                    }
                    if !(b'a'..=b'y').contains(&pat.at(p)) {
                        // Not a class after all: go on from its `:`.
                        p = start;
                        break;
                    }
                }
            }
            b'[' if pat.at(p) == b'=' => {
                if pat.at(p + 1) == 0 || pat.at(p + 2) != b'=' || pat.at(p + 3) != b']' {
                    return Bracket::Failed;
                }
                p += 4;
            }
            b'[' if pat.at(p) == b'.' => {
                p += 1;
                loop {
                    match pat.at(p) {
                        0 => return Bracket::Failed,
                        b'.' if pat.at(p + 1) == b']' => break,
                        _ => p += 1,
                    }
                }
                p += 2;
            }
            _ => {}
        }
    }
}

/// Character classes of the C locale; None for an unknown name.
fn class_contains(name: &[u8], c: u8) -> Option<bool> {
    Some(match name {
        b"alnum" => c.is_ascii_alphanumeric(),
        b"alpha" => c.is_ascii_alphabetic(),
        b"blank" => c == b' ' || c == b'\t',
        b"cntrl" => c.is_ascii_control(),
        b"digit" => c.is_ascii_digit(),
        b"graph" => c.is_ascii_graphic(),
        b"lower" => c.is_ascii_lowercase(),
        b"print" => c.is_ascii_graphic() || c == b' ',
        b"punct" => c.is_ascii_punctuation(),
        b"space" => c.is_ascii_whitespace() || c == 0x0b,
        b"upper" => c.is_ascii_uppercase(),
        b"xdigit" => c.is_ascii_hexdigit(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::{fnmatch, fnmatch_bytes, fnmatch_within};

    #[test]
    fn bounded_matching_gives_the_same_answers_or_none() {
        let pattern = b"pci:v*d*sv*sd*bc*sc*i*";
        let text = b"pci:v00008086d00001234sv00000000sd00000000bc02sc00i00";
        let mut plenty = usize::MAX;
        assert_eq!(fnmatch_within(pattern, text, &mut plenty), Some(true));
        let used = usize::MAX - plenty;
        assert!(used < 4 * (pattern.len() + text.len()), "{used}");
        let mut exact = used;
        assert_eq!(fnmatch_within(pattern, text, &mut exact), Some(true));
        assert_eq!(exact, 0);
        let mut short = used - 1;
        assert_eq!(fnmatch_within(pattern, text, &mut short), None);
        // The worst case, many stars that each retry, is what the bound is for.
        let stars = b"*a*a*a*a*a*a*a*a*a*a*a*b".repeat(20);
        let mut limit = 10_000;
        assert_eq!(fnmatch_within(&stars, &[b'a'; 5000], &mut limit), None);
    }

    #[test]
    fn wildcards() {
        let cases = [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "a/b", true),
            ("**", "ab", true),
            (".*", ".hidden", true),
            ("a*b", "ab", true),
            ("a*b", "axxbxb", true),
            ("a*b", "axxbx", false),
            ("a*b*c", "abbbcbc", true),
            ("*?", "", false),
            ("*??", "ab", true),
            ("*??", "a", false),
            ("?", "", false),
            ("?", "x", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            (
                "pci:v00008086d*sv*sd*bc*sc*i*",
                "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00",
                true,
            ),
            (
                "pci:v00008086d*sv*sd*bc03sc*i*",
                "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00",
                false,
            ),
            (
                "usb:v*p*d*dc*dsc*dp*ic03isc01ip02in*",
                "usb:v046Dp1234d0100dc00dsc00dp00ic03isc01ip02in00",
                true,
            ),
        ];
        check(&cases);
    }

    #[test]
    fn escapes() {
        let cases = [
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("\\a", "a", true),
            ("a\\", "a", false),
            ("a\\", "a\\", false),
            ("*\\", "x\\", false),
            ("[\\]]", "]", true),
            ("[\\", "[\\", false),
            ("[a\\-z]", "-", true),
            ("[a\\-z]", "b", false),
            ("[a-\\z]", "m", true),
        ];
        check(&cases);
    }

    #[test]
    fn brackets() {
        let cases = [
            ("[abc]", "b", true),
            ("[abc]", "", false),
            ("[!abc]", "b", false),
            ("[!abc]", "d", true),
            ("[^abc]", "d", true),
            ("[^abc]", "a", false),
            ("[a-c]x", "bx", true),
            ("[a-c]x", "dx", false),
            ("[c-a]", "b", false),
            ("[]]", "]", true),
            ("[]a]", "a", true),
            ("[!]]", "]", false),
            ("[!]]", "a", true),
            ("[a-]", "-", true),
            ("[a-]", "b", false),
            ("[--0]", "/", true),
            ("[%--]", ",", true),
            ("[a-c-e]", "-", true),
            ("[a-c-e]", "d", false),
            ("[a-c-e]", "e", true),
            ("[*?]", "?", true),
            ("[*?]", "x", false),
            ("*[0-9]", "abc7", true),
            ("*[0-9]", "abc", false),
        ];
        check(&cases);
    }

    #[test]
    fn unterminated_brackets() {
        let cases = [
            ("[", "[", true),
            ("[", "", false),
            ("a[", "a[", true),
            ("*[", "x[", true),
            ("[ab", "[ab", true),
            ("[ab", "a", false),
            ("[!ab", "[!ab", true),
            ("[!ab", "x", false),
            ("[a-", "[a-", false),
            ("[a-", "a", false),
            ("[a-b", "[a-b", true),
            // An item matched but nothing closes the bracket: still a literal `[`.
            ("[1[[", "[1[[", true),
            ("[[a", "[[a", true),
            ("[[a", "[a", false),
            ("[a[:alpha:]", "[a[:alpha:]", false),
        ];
        check(&cases);
    }

    #[test]
    fn classes_and_symbols() {
        let cases = [
            ("[[:digit:]]*", "7z", true),
            ("[[:alpha:]]", "7", false),
            ("[[:alpha:][:digit:]]", "7", true),
            ("[![:space:]]", " ", false),
            ("[[:space:]]", "\x0b", true),
            ("[[:punct:]]", "_", true),
            ("[[:xdigit:]]", "g", false),
            ("[[:upper:]-]", "-", true),
            // Unknown names fail, even if the character would match something later.
            ("[[:foo:]a]", "a", false),
            // ...but a match before the unknown name wins: the rest is only skipped.
            ("[a[:foo:]]", "a", true),
            ("*[a[:foo:]]", "ba", true),
            // A `z` means it cannot be a class name, so `[` is an ordinary item.
            ("[[:z:]]", "[]", true),
            ("[[:z:]]", ":]", true),
            ("[[:]", "[", true),
            ("[[:]", ":", true),
            ("[[=a=]]", "a", true),
            ("[[=a=]b]", "b", true),
            ("[[=ab=]]", "[]", true),
            ("[[=ab=]]", "[ab=]", false),
            ("[[.a.]]", "a", true),
            ("[[.-.]]", "-", true),
            ("[[.a.]-c]", "b", true),
            // A symbol before `-]` still counts as starting a range, so it never matches.
            ("[[.a.]-]", "a", false),
            ("[[.a.]-]", "-", true),
            ("[a-[.c.]]", "b", true),
            ("[[.ab.]]", "a", false),
            ("[[.a]", "[.a]", false),
            ("[a[.b]", "a", false),
            ("[a[=b]", "a", false),
        ];
        check(&cases);
    }

    #[test]
    fn c_strings_and_bytes() {
        assert!(fnmatch("ab\0cd", "ab"));
        assert!(fnmatch("ab", "ab\0zz"));
        assert!(fnmatch_bytes(b"[\x80-\xff]", b"\xc3"));
        assert!(!fnmatch_bytes(b"[[:alpha:]]", b"\xc3"));
        assert!(fnmatch_bytes(b"?", b"\xff"));
    }

    /// Random patterns built from the troublesome pieces, against the C library's own
    /// fnmatch (tests run in the C locale).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn agrees_with_glibc() {
        use std::ffi::{c_char, c_int, CString};
        extern "C" {
            fn fnmatch(pattern: *const c_char, string: *const c_char, flags: c_int) -> c_int;
        }
        const PIECES: &[&[u8]] = &[
            b"a",
            b"b",
            b"-",
            b"]",
            b"[",
            b"!",
            b"^",
            b"*",
            b"?",
            b"\\",
            b":",
            b"=",
            b".",
            b"[:alpha:]",
            b"[:digit:]",
            b"[:nope:]",
            b"[=a=]",
            b"[.b.]",
            b"[.-.]",
            b"z",
            b"A",
            b"1",
            b"[!",
            b"\xe9",
            b"[:",
            b":]",
            b"[:z:]",
        ];
        const CHARS: &[u8] = b"ab-]![*?\\:=.zA1^\xe9";
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut matches = 0;
        for _ in 0..100_000 {
            let pattern: Vec<u8> = (0..next(7))
                .flat_map(|_| PIECES[next(PIECES.len())])
                .copied()
                .collect();
            // Half the strings are the pattern itself, slightly damaged, so that enough
            // of them match for the bracket details to matter.
            let s: Vec<u8> = if next(2) == 0 {
                (0..next(7)).map(|_| CHARS[next(CHARS.len())]).collect()
            } else {
                let mut s = Vec::new();
                for &b in &pattern {
                    match next(8) {
                        0 => {}
                        1 | 2 => s.push(CHARS[next(CHARS.len())]),
                        _ => s.push(b),
                    }
                }
                s
            };
            let (cp, cs) = (
                CString::new(pattern.clone()).unwrap(),
                CString::new(s.clone()).unwrap(),
            );
            // SAFETY: both are NUL-terminated strings that outlive the call.
            let want = unsafe { fnmatch(cp.as_ptr(), cs.as_ptr(), 0) } == 0;
            matches += usize::from(want);
            assert_eq!(
                fnmatch_bytes(&pattern, &s),
                want,
                // Assertion message (display only).
                "fnmatch({:?}, {:?})",
                String::from_utf8_lossy(&pattern),
                String::from_utf8_lossy(&s)
            );
        }
        assert!(matches > 10_000, "only {matches} matches");
    }

    fn check(cases: &[(&str, &str, bool)]) {
        for &(p, s, want) in cases {
            assert_eq!(fnmatch(p, s), want, "fnmatch({p:?}, {s:?})");
        }
    }
}
