//! PEM blocks as OpenSSL reads them: anything outside `-----BEGIN LABEL-----` and
//! `-----END LABEL-----` lines is ignored (so one file may hold text, a key and a
//! certificate, like the kernel's `signing_key.pem`), RFC 1421 headers
//! (`Proc-Type: ...`) are kept apart, and the body is base64 with white space
//! anywhere.

/// One PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub label: Vec<u8>,
    /// The header lines between BEGIN and the body (`Proc-Type`, `DEK-Info`).
    pub headers: Vec<Vec<u8>>,
    pub der: Vec<u8>,
}

impl Block {
    /// Whether the headers say the body is encrypted (OpenSSL's traditional format).
    pub fn is_encrypted(&self) -> bool {
        self.headers
            .iter()
            .any(|h| h.starts_with(b"Proc-Type:") && h.windows(9).any(|w| w == b"ENCRYPTED"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("PEM block {} has no END line", label_text(.0))]
    Unterminated(Vec<u8>),
    #[error("PEM block {} is not valid base64", label_text(.0))]
    Base64(Vec<u8>),
}

/// Every block in `text`, in order. A block that is cut off or whose body does not
/// decode is an error, not skipped: it is most likely the one the caller wants.
pub fn blocks(text: &[u8]) -> Result<Vec<Block>, PemError> {
    let mut out = Vec::new();
    let mut lines = text.split(|&b| b == b'\n').map(trim_line);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix(b"-----BEGIN ")
            .and_then(|l| l.strip_suffix(b"-----"))
        else {
            continue;
        };
        let label = label.to_vec();
        let end = [&b"-----END "[..], &label, b"-----"].concat();
        let mut headers = Vec::new();
        let mut body = Vec::new();
        let mut in_headers = true;
        let mut ended = false;
        for line in lines.by_ref() {
            if line == end {
                ended = true;
                break;
            }
            if in_headers {
                if line.contains(&b':') {
                    headers.push(line.to_vec());
                    continue;
                }
                in_headers = false;
                if line.is_empty() && !headers.is_empty() {
                    continue;
                }
            }
            body.extend_from_slice(line);
        }
        if !ended {
            return Err(PemError::Unterminated(label));
        }
        let der = base64_decode(&body).ok_or_else(|| PemError::Base64(label.clone()))?;
        out.push(Block {
            label,
            headers,
            der,
        });
    }
    Ok(out)
}

/// A label inside an error message, which is text (display only).
fn label_text(label: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(label)
}

fn trim_line(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let start = line[..end]
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(end);
    &line[start..end]
}

/// Standard base64 with `=` padding; white space is skipped.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    let mut padding = 0;
    for &c in text.iter().filter(|c| !c.is_ascii_whitespace()) {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding += 1;
                continue;
            }
            _ => return None,
        };
        // Nothing may follow the padding.
        if padding > 0 {
            return None;
        }
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be the zero bits of a final partial group, and the padding
    // must complete it.
    let complete = match bits {
        0 => padding == 0,
        2 => padding == 1 || padding == 0,
        4 => padding == 2 || padding == 0,
        _ => false,
    };
    (complete && acc == 0 && padding <= 2).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode(b"").unwrap(), b"");
        assert_eq!(base64_decode(b"TWFu").unwrap(), b"Man");
        assert_eq!(base64_decode(b"TWE=").unwrap(), b"Ma");
        assert_eq!(base64_decode(b"TQ==").unwrap(), b"M");
        assert_eq!(base64_decode(b"TQ").unwrap(), b"M");
        assert_eq!(base64_decode(b"T W\nF u").unwrap(), b"Man");
        assert_eq!(base64_decode(b"TQ==TQ=="), None);
        assert_eq!(base64_decode(b"TR=="), None); // non-zero leftover bits
        assert_eq!(base64_decode(b"T"), None);
        assert_eq!(base64_decode(b"TWFu!"), None);
    }

    #[test]
    fn blocks_with_text_headers_and_several_labels() {
        let text = b"Some text\n-----BEGIN PRIVATE KEY-----\r\nTWFu\r\n-----END PRIVATE KEY-----\n\
            junk\n-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n\
            TWE=\n-----END RSA PRIVATE KEY-----\n  -----BEGIN CERTIFICATE-----  \nTQ==\n-----END CERTIFICATE-----";
        let blocks = blocks(text).unwrap();
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0].label, b"PRIVATE KEY");
        assert_eq!(blocks[0].der, b"Man");
        assert!(!blocks[0].is_encrypted());
        assert_eq!(blocks[1].label, b"RSA PRIVATE KEY");
        assert_eq!(blocks[1].der, b"Ma");
        assert!(blocks[1].is_encrypted());
        assert_eq!(blocks[2].label, b"CERTIFICATE");
        assert_eq!(blocks[2].der, b"M");
    }

    #[test]
    fn broken_blocks_are_errors() {
        assert_eq!(
            blocks(b"-----BEGIN X-----\nTWFu\n"),
            Err(PemError::Unterminated("X".into()))
        );
        assert_eq!(
            blocks(b"-----BEGIN X-----\nTW*u\n-----END X-----\n"),
            Err(PemError::Base64("X".into()))
        );
        assert_eq!(blocks(b"no PEM here\n\xff\xfe").unwrap(), vec![]);
    }

    #[test]
    fn a_label_that_is_not_utf8_still_meets_its_end_line() {
        let found = blocks(b"-----BEGIN \xe9-----\nTWFu\n-----END \xe9-----\n").unwrap();
        assert_eq!(found[0].label, b"\xe9");
        assert_eq!(found[0].der, b"Man");
        assert_eq!(
            blocks(b"-----BEGIN \xe9-----\nTWFu\n-----END \xe8-----\n"),
            Err(PemError::Unterminated(b"\xe9".to_vec()))
        );
    }
}
