//! Shell-style pattern matching with glibc `fnmatch(pattern, string, 0)` semantics,
//! which libkmod uses for alias wildcards: `*`, `?`, bracket expressions with ranges,
//! negation (`!` or `^`) and `[:class:]` names, and backslash escapes. With flags 0,
//! `/` and leading dots are ordinary characters.

pub fn fnmatch(pattern: &str, s: &str) -> bool {
    fnmatch_bytes(pattern.as_bytes(), s.as_bytes())
}

pub fn fnmatch_bytes(pattern: &[u8], s: &[u8]) -> bool {
    // Iterative matching with backtracking to the last `*`: linear memory, no recursion.
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    // Consecutive stars are one star.
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    star = Some((p, i));
                    continue;
                }
                b'?' => {
                    if i < s.len() {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
                b'[' => match bracket(pattern, p, s.get(i).copied()) {
                    Some((true, next)) => {
                        p = next;
                        i += 1;
                        continue;
                    }
                    Some((false, _)) => {}
                    // An unterminated bracket is a literal '['.
                    None if s.get(i) == Some(&b'[') => {
                        p += 1;
                        i += 1;
                        continue;
                    }
                    None => {}
                },
                c => {
                    // A backslash escapes the next character; a trailing one is literal.
                    let (literal, width) = match pattern.get(p + 1) {
                        Some(&next) if c == b'\\' => (next, 2),
                        _ => (c, 1),
                    };
                    if s.get(i) == Some(&literal) {
                        p += width;
                        i += 1;
                        continue;
                    }
                }
            }
        } else if i == s.len() {
            return true;
        }
        // Mismatch: let the last star swallow one more character, if it can.
        match star {
            Some((sp, si)) if si < s.len() => {
                star = Some((sp, si + 1));
                p = sp;
                i = si + 1;
            }
            _ => return false,
        }
    }
}

/// Matches `c` against the bracket expression starting at `pattern[start] == '['`.
/// Returns (matched, index after the closing `]`), or None if it is unterminated.
fn bracket(pattern: &[u8], start: usize, c: Option<u8>) -> Option<(bool, usize)> {
    let mut p = start + 1;
    let negate = matches!(pattern.get(p), Some(b'!') | Some(b'^'));
    if negate {
        p += 1;
    }
    let present = c.is_some();
    let c = c.unwrap_or(0);
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *pattern.get(p)?;
        if ch == b']' && !first {
            // Past the end of the string nothing matches, negated or not.
            return Some((present && matched != negate, p + 1));
        }
        first = false;
        if ch == b'[' && pattern.get(p + 1) == Some(&b':') {
            let end = pattern[p + 2..].windows(2).position(|w| w == b":]")? + p + 2;
            let name = &pattern[p + 2..end];
            matched |= class_contains(name, c)?;
            p = end + 2;
            continue;
        }
        let (lo, next) = literal(pattern, p)?;
        if pattern.get(next) == Some(&b'-') && pattern.get(next + 1).is_some_and(|&b| b != b']') {
            let (hi, after) = literal(pattern, next + 1)?;
            matched |= lo <= c && c <= hi;
            p = after;
        } else {
            matched |= lo == c;
            p = next;
        }
    }
}

/// One possibly backslash-escaped character of a bracket expression.
fn literal(pattern: &[u8], p: usize) -> Option<(u8, usize)> {
    match *pattern.get(p)? {
        b'\\' => Some((*pattern.get(p + 1)?, p + 2)),
        c => Some((c, p + 1)),
    }
}

/// Character classes in the C locale; None for an unknown name (the pattern is then
/// invalid and matches nothing, as in glibc).
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
    use super::fnmatch;

    #[test]
    fn glibc_semantics() {
        let cases = [
            ("*", "", true),
            ("*", "a/b", true),
            ("a*b", "ab", true),
            ("a*b", "axxbxb", true),
            ("a*b", "axxbx", false),
            ("?", "", false),
            ("?", "x", true),
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
            ("[abc]", "b", true),
            ("[!abc]", "b", false),
            ("[^abc]", "d", true),
            ("[a-c]x", "bx", true),
            ("[]]", "]", true),
            ("[a-]", "-", true),
            ("[[:digit:]]*", "7z", true),
            ("[[:alpha:]]", "7", false),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("[", "[", true),
            ("a[", "a[", true),
            ("*[", "x[", true),
            (
                "usb:v*p*d*dc*dsc*dp*ic03isc01ip02in*",
                "usb:v046Dp1234d0100dc00dsc00dp00ic03isc01ip02in00",
                true,
            ),
        ];
        for (p, s, want) in cases {
            assert_eq!(fnmatch(p, s), want, "fnmatch({p:?}, {s:?})");
        }
    }
}
