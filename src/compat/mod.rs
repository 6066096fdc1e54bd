//! C behaviour the tools must reproduce, in one place: how C string functions see a
//! buffer, `isspace`, `strtoul`, `fgets`, glibc's errno texts, `fnmatch` and the POSIX
//! extended regular expressions of depmod.d; and the one allocator call depmod makes.
//!
//! kmod's output depends on these details (a number with a sign, a line longer than a
//! buffer, a NUL inside a string), and the static musl build must behave exactly
//! like a glibc build, so none of them calls the C library; the tests compare with
//! it where the host's is glibc. [`release_free_memory`] is the exception: it
//! changes no output, only how much memory stays resident.

pub mod ere;
pub mod errno;
pub mod fnmatch;

pub use errno::{io_errno, io_strerror, strerror};

/// Returns the memory freed so far to the system (glibc's `malloc_trim`), in every
/// allocator arena. For a program that freed a lot in some threads and now
/// allocates in another: without it, both stay resident. musl gives freed memory
/// back by itself.
pub fn release_free_memory() {
    // SAFETY: malloc_trim takes the arenas' locks itself; it frees nothing in use.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// C's `isspace` in the C locale.
pub fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// What C string functions see of a buffer: everything before the first NUL.
pub fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

/// The NUL-terminated string at `at`; None when it runs off the end unterminated.
pub fn c_string_at(data: &[u8], at: usize) -> Option<&[u8]> {
    let rest = data.get(at..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    Some(&rest[..len])
}

/// Splits `data` the way repeated `fgets(buf, size, fp)` calls read it: each piece
/// ends after a newline or once `size - 1` bytes were read.
pub fn fgets_lines(data: &[u8], size: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    let limit = size.saturating_sub(1).max(1);
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let window = &rest[..rest.len().min(limit)];
        let end = window
            .iter()
            .position(|&b| b == b'\n')
            .map_or(window.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        Some(line)
    })
}

/// A number as `strtoul`/`strtoull` read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Number {
    /// The value: wrapped for a `-` sign, saturated on overflow (as C returns it).
    pub value: u64,
    /// Bytes consumed, leading white space and sign included (C's `endptr - s`).
    pub end: usize,
    /// The digits did not fit (C sets `errno` to ERANGE).
    pub overflow: bool,
}

/// C's `strtoull(s, &end, base)` on 64-bit Linux (where `strtoul` is the same) for
/// base 0 (prefix decides: `0x` hex, `0` octal, else decimal), 8, 10 or 16. None when
/// no digits were found, where C consumes nothing and returns 0.
pub fn strtoul(s: &[u8], base: u32) -> Option<Number> {
    let mut i = s.iter().position(|&b| !is_space(b)).unwrap_or(s.len());
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digit = |b: Option<&u8>, radix: u32| b.and_then(|&b| (b as char).to_digit(radix));
    let has_hex_prefix = s.get(i) == Some(&b'0')
        && matches!(s.get(i + 1), Some(b'x' | b'X'))
        && digit(s.get(i + 2), 16).is_some();
    let radix = match base {
        0 if has_hex_prefix => 16,
        0 if s.get(i) == Some(&b'0') => 8,
        0 => 10,
        b => b,
    };
    if radix == 16 && has_hex_prefix {
        i += 2;
    }
    let start = i;
    let mut value = 0u64;
    let mut overflow = false;
    while let Some(d) = digit(s.get(i), radix) {
        match value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start {
        return None;
    }
    let value = if overflow {
        u64::MAX
    } else if negative {
        value.wrapping_neg()
    } else {
        value
    };
    Some(Number {
        value,
        end: i,
        overflow,
    })
}

/// `strtoul(s, &end, base)` that must consume all of a non-empty `s`, as option
/// parsers check it (`!*s || *end` is an error).
pub fn strtoul_whole(s: &[u8], base: u32) -> Option<u64> {
    strtoul(s, base)
        .filter(|n| n.end == s.len())
        .map(|n| n.value)
}

/// sscanf's `%u`: a number with strtoul's rules (base 10), stored in an unsigned int.
/// Returns the value and the rest of the input.
pub fn scan_u32(s: &[u8]) -> Option<(u32, &[u8])> {
    let n = strtoul(s, 10)?;
    Some((n.value as u32, &s[n.end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_end_at_nul() {
        assert_eq!(until_nul(b"ab\0cd"), b"ab");
        assert_eq!(until_nul(b"ab"), b"ab");
        assert_eq!(c_string_at(b"x\0ab\0", 2), Some(&b"ab"[..]));
        assert_eq!(c_string_at(b"x\0ab", 2), None);
        assert_eq!(c_string_at(b"x", 5), None);
    }

    #[test]
    fn fgets_pieces() {
        let pieces: Vec<&[u8]> = fgets_lines(b"ab\ncdefg\n\nh", 4).collect();
        assert_eq!(pieces, [&b"ab\n"[..], b"cde", b"fg\n", b"\n", b"h"]);
    }

    #[test]
    fn numbers() {
        let n = |s: &str, base| strtoul(s.as_bytes(), base).map(|n| (n.value, n.end, n.overflow));
        assert_eq!(n(" \t+12x", 10), Some((12, 5, false)));
        assert_eq!(n("-1", 10), Some((u64::MAX, 2, false)));
        assert_eq!(n("0x1f", 0), Some((31, 4, false)));
        assert_eq!(n("0x1f", 16), Some((31, 4, false)));
        assert_eq!(n("0xg", 16), Some((0, 1, false)));
        assert_eq!(n("010", 0), Some((8, 3, false)));
        assert_eq!(n("09", 0), Some((0, 1, false)));
        assert_eq!(n("99999999999999999999", 10), Some((u64::MAX, 20, true)));
        assert_eq!(n("-99999999999999999999", 10), Some((u64::MAX, 21, true)));
        assert_eq!(n("x", 10), None);
        assert_eq!(n("", 0), None);
        assert_eq!(n("-", 10), None);
        assert_eq!(strtoul_whole(b"100", 0), Some(100));
        assert_eq!(strtoul_whole(b"12x", 0), None);
        assert_eq!(strtoul_whole(b"", 0), None);
        assert_eq!(scan_u32(b"-1:2"), Some((u32::MAX, &b":2"[..])));
    }

    /// The same answers as the C library's strtoull, where it is glibc.
    #[cfg(target_env = "gnu")]
    #[test]
    fn strtoul_matches_the_c_library() {
        let inputs = [
            "0",
            "12",
            " 12",
            "\n\t-7",
            "+0x10",
            "0X1F",
            "0x",
            "0xz",
            "017",
            "019",
            "08",
            "-0",
            "18446744073709551615",
            "18446744073709551616",
            "-18446744073709551615",
            "ffff",
            "FFg",
            " +",
            "",
            "  ",
            "1 2",
            "0b1",
            "+-1",
            "077777777777777777777777",
        ];
        for input in inputs {
            for base in [0, 8, 10, 16] {
                let c = std::ffi::CString::new(input).unwrap();
                let mut end: *mut nix::libc::c_char = std::ptr::null_mut();
                // SAFETY: a valid NUL-terminated string and a valid end pointer.
                let value = unsafe { nix::libc::strtoull(c.as_ptr(), &mut end, base as i32) };
                // SAFETY: strtoull sets end inside the string it was given.
                let consumed = unsafe { end.offset_from(c.as_ptr()) } as usize;
                let ours = strtoul(input.as_bytes(), base);
                let expected = (consumed > 0).then_some((value, consumed));
                assert_eq!(
                    ours.map(|n| (n.value, n.end)),
                    expected,
                    "strtoull({input:?}, {base})"
                );
            }
        }
    }

    #[cfg(target_env = "gnu")]
    #[test]
    fn isspace_matches_the_c_library() {
        for b in 0..=255u8 {
            // SAFETY: isspace takes any unsigned char value; the test runs in the C locale.
            let c = unsafe { nix::libc::isspace(i32::from(b)) } != 0;
            assert_eq!(is_space(b), c, "isspace({b})");
        }
    }
}
