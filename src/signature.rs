//! The signature the kernel's `sign-file` appends to a module, and the PKCS#7
//! fields modinfo shows from it.
//!
//! Layout at the end of the (decompressed) module:
//! `[module][signer][key id][signature][12-byte info]["~Module signature appended~\n"]`.
//! For PKCS#7 (all current kernels) the signature bytes are a DER SignedData whose
//! first SignerInfo supplies the signer, key, hash algorithm and signature.

const MAGIC: &[u8] = b"~Module signature appended~\n";
const INFO_LEN: usize = 12;

const HASH_NAMES: [&str; 9] = [
    "md4", "md5", "sha1", "rmd160", "sha256", "sha384", "sha512", "sha224", "sm3",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdType {
    Pgp,
    X509,
    Pkcs7,
}

impl IdType {
    pub fn name(self) -> &'static str {
        match self {
            IdType::Pgp => "PGP",
            IdType::X509 => "X509",
            IdType::Pkcs7 => "PKCS#7",
        }
    }
}

/// What modinfo prints about a module signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureInfo<'a> {
    pub id_type: IdType,
    pub signer: &'a [u8],
    pub key_id: &'a [u8],
    pub hash_algo: String,
    pub signature: &'a [u8],
}

/// Finds and decodes the appended signature; None if the module is not signed or the
/// trailer is inconsistent (as libkmod, which then shows no signature at all).
pub fn parse(module: &[u8]) -> Option<SignatureInfo<'_>> {
    let body = module.strip_suffix(MAGIC)?;
    let info_start = body.len().checked_sub(INFO_LEN)?;
    let info = &body[info_start..];
    let body = &body[..info_start];
    let (algo, hash, id_type, signer_len, key_id_len) =
        (info[0], info[1], info[2], info[3], info[4]);
    let sig_len = u32::from_be_bytes([info[8], info[9], info[10], info[11]]) as usize;
    if algo >= 2 || hash as usize >= HASH_NAMES.len() || id_type >= 3 || sig_len == 0 {
        return None;
    }
    let total = sig_len + signer_len as usize + key_id_len as usize;
    let start = body.len().checked_sub(total)?;
    let signer = &body[start..start + signer_len as usize];
    let key_id =
        &body[start + signer_len as usize..start + signer_len as usize + key_id_len as usize];
    let signature = &body[body.len() - sig_len..];
    let id_type = match id_type {
        0 => IdType::Pgp,
        1 => IdType::X509,
        _ => IdType::Pkcs7,
    };
    if id_type != IdType::Pkcs7 {
        return Some(SignatureInfo {
            id_type,
            signer,
            key_id,
            hash_algo: HASH_NAMES[hash as usize].to_string(),
            signature,
        });
    }
    // kmod (built with OpenSSL) shows no signature at all when the PKCS#7 blob does
    // not parse, so neither do we.
    pkcs7_signer_info(signature)
}

/// A module with a signature appended, split as the kernel splits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended<'a> {
    /// The module as it was before signing: what the signature covers.
    pub content: &'a [u8],
    /// The signature bytes (for PKCS#7, a DER `ContentInfo`).
    pub signature: &'a [u8],
    /// The 12-byte `struct module_signature` after them.
    pub info: [u8; INFO_LEN],
}

/// Why an appended signature's trailer is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrailerError {
    #[error("signature trailer is truncated")]
    Truncated,
    #[error("signature length {len} exceeds the {available} bytes before it")]
    TooLong { len: u64, available: usize },
    #[error("signature length is zero")]
    Empty,
    #[error("signature is not PKCS#7 (identifier type {0})")]
    NotPkcs7(u8),
    #[error("PKCS#7 signature info has unexpected non-zero fields")]
    NonZeroFields,
}

/// Splits a (decompressed) module into what was signed and the signature: None when
/// it carries no signature marker. Any well-formed trailer is split, the legacy
/// layouts with a signer name and key id too, so that re-signing replaces them.
pub fn split_appended(module: &[u8]) -> Result<Option<Appended<'_>>, TrailerError> {
    let Some(body) = module.strip_suffix(MAGIC) else {
        return Ok(None);
    };
    let info_start = body
        .len()
        .checked_sub(INFO_LEN)
        .ok_or(TrailerError::Truncated)?;
    let mut info = [0u8; INFO_LEN];
    info.copy_from_slice(&body[info_start..]);
    let body = &body[..info_start];
    let sig_len = u32::from_be_bytes([info[8], info[9], info[10], info[11]]);
    if sig_len == 0 {
        return Err(TrailerError::Empty);
    }
    let total = u64::from(sig_len) + u64::from(info[3]) + u64::from(info[4]);
    let start = usize::try_from(total)
        .ok()
        .and_then(|total| body.len().checked_sub(total))
        .ok_or(TrailerError::TooLong {
            len: total,
            available: body.len(),
        })?;
    Ok(Some(Appended {
        content: &body[..start],
        signature: &body[body.len() - sig_len as usize..],
        info,
    }))
}

impl Appended<'_> {
    /// The kernel's checks on `struct module_signature` before it reads the PKCS#7
    /// message: identifier type PKCS#7 and every other field zero.
    pub fn check_pkcs7_info(&self) -> Result<(), TrailerError> {
        const PKEY_ID_PKCS7: u8 = 2;
        if self.info[2] != PKEY_ID_PKCS7 {
            return Err(TrailerError::NotPkcs7(self.info[2]));
        }
        if self.info[..2] != [0, 0] || self.info[3..8] != [0; 5] {
            return Err(TrailerError::NonZeroFields);
        }
        Ok(())
    }
}

/// `content` with `signature` appended as sign-file appends a PKCS#7 message.
pub fn append_pkcs7(content: &[u8], signature: &[u8]) -> Result<Vec<u8>, TrailerError> {
    let len = u32::try_from(signature.len()).map_err(|_| TrailerError::TooLong {
        len: signature.len() as u64,
        available: u32::MAX as usize,
    })?;
    let mut out = Vec::with_capacity(content.len() + signature.len() + INFO_LEN + MAGIC.len());
    out.extend_from_slice(content);
    out.extend_from_slice(signature);
    out.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(MAGIC);
    Ok(out)
}

/// The first SignerInfo of a DER `ContentInfo { signedData, [0] SignedData }`.
fn pkcs7_signer_info(der: &[u8]) -> Option<SignatureInfo<'_>> {
    const OID_SIGNED_DATA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02];
    let mut content_info = Der::new(der).sequence()?;
    if content_info.expect(TAG_OID)? != OID_SIGNED_DATA {
        return None;
    }
    let signed_data = content_info.explicit(0)?;
    let mut signed_data = Der::new(signed_data).sequence()?;
    signed_data.expect(TAG_INTEGER)?; // version
    signed_data.expect(TAG_SET)?; // digestAlgorithms
    signed_data.expect(TAG_SEQUENCE)?; // encapContentInfo
    let mut signer_infos = loop {
        let (tag, value) = signed_data.next()?;
        // certificates [0] and crls [1] are optional and skipped.
        if tag == TAG_SET {
            break Der::new(value);
        }
    };
    let mut signer = signer_infos.sequence()?;
    signer.expect(TAG_INTEGER)?; // version
    let mut issuer_and_serial = signer.sequence()?;
    let issuer = issuer_and_serial.expect(TAG_SEQUENCE)?;
    let serial = issuer_and_serial.expect(TAG_INTEGER)?;
    let mut digest_algorithm = signer.sequence()?;
    let digest_oid = digest_algorithm.expect(TAG_OID)?;
    let signature = loop {
        let (tag, value) = signer.next()?;
        // signedAttrs [0] is optional; the signature is the first OCTET STRING after
        // the signature algorithm.
        if tag == TAG_OCTET_STRING {
            break value;
        }
    };
    Some(SignatureInfo {
        id_type: IdType::Pkcs7,
        signer: issuer_common_name(issuer).unwrap_or(&[]),
        key_id: strip_leading_zeros(serial),
        hash_algo: digest_name(digest_oid),
        signature,
    })
}

/// The issuer's commonName, else the value of its last attribute (OpenSSL's behaviour
/// that kmod shows).
fn issuer_common_name(name: &[u8]) -> Option<&[u8]> {
    const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    let mut rdns = Der::new(name);
    let mut last = None;
    while let Some((_, rdn)) = rdns.next() {
        let mut attrs = Der::new(rdn);
        while let Some(mut attr) = attrs.sequence() {
            let oid = attr.expect(TAG_OID)?;
            let (_, value) = attr.next()?;
            if oid == OID_COMMON_NAME {
                return Some(value);
            }
            last = Some(value);
        }
    }
    last
}

fn strip_leading_zeros(mut bytes: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = bytes {
        bytes = rest;
    }
    bytes
}

/// The digest algorithm's name as OpenSSL's `OBJ_obj2txt` gives it (what kmod prints):
/// the long name of a known OID, else its dotted numeric form.
fn digest_name(oid: &[u8]) -> String {
    known_digest_name(oid).map_or_else(|| dotted_oid(oid), str::to_string)
}

fn dotted_oid(oid: &[u8]) -> String {
    let mut arcs = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        value = (value << 7) | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            arcs.push(value);
            value = 0;
        }
    }
    let mut text = String::new();
    if let Some(&first) = arcs.first() {
        let (a, b) = match first {
            0..=39 => (0, first),
            40..=79 => (1, first - 40),
            _ => (2, first - 80),
        };
        text = format!("{a}.{b}");
        for arc in &arcs[1..] {
            text.push_str(&format!(".{arc}"));
        }
    }
    text
}

fn known_digest_name(oid: &[u8]) -> Option<&'static str> {
    const NIST_HASH: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];
    const RSADSI_DIGEST: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x02];
    if let Some(&[n]) = oid.strip_prefix(NIST_HASH) {
        return match n {
            1 => Some("sha256"),
            2 => Some("sha384"),
            3 => Some("sha512"),
            4 => Some("sha224"),
            8 => Some("sha3-256"),
            9 => Some("sha3-384"),
            10 => Some("sha3-512"),
            _ => None,
        };
    }
    if let Some(&[n]) = oid.strip_prefix(RSADSI_DIGEST) {
        return match n {
            4 => Some("md4"),
            5 => Some("md5"),
            _ => None,
        };
    }
    match oid {
        [0x2B, 0x0E, 0x03, 0x02, 0x1A] => Some("sha1"),
        [0x2B, 0x24, 0x03, 0x02, 0x01] => Some("ripemd160"),
        [0x2A, 0x81, 0x1C, 0xCF, 0x55, 0x01, 0x83, 0x11] => Some("sm3"),
        _ => None,
    }
}

const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;

/// A minimal DER reader: definite lengths only, single-byte tags, bounds-checked.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(data: &'a [u8]) -> Self {
        Der { rest: data }
    }

    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.rest.split_first()?;
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            first as usize
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | b as usize);
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return None;
        }
        self.rest = &rest[len..];
        Some((tag, &rest[..len]))
    }

    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        self.next().filter(|(t, _)| *t == tag).map(|(_, v)| v)
    }

    fn sequence(&mut self) -> Option<Der<'a>> {
        self.expect(TAG_SEQUENCE).map(Der::new)
    }

    /// The content of an explicit context-specific constructed tag `[n]`.
    fn explicit(&mut self, n: u8) -> Option<&'a [u8]> {
        self.expect(0xA0 | n)
    }
}

/// Formats bytes as kmod does: uppercase hex pairs joined by `:`, and after every
/// 20th byte that is not the last, a newline and two tabs.
pub fn hex_wrapped(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3 + bytes.len() / 20 * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
            if i % 20 == 0 {
                out.push_str("\n\t\t");
            }
        }
        out.push(char::from(HEX[(b >> 4) as usize]));
        out.push(char::from(HEX[(b & 0xf) as usize]));
    }
    out
}

/// Bytes as uppercase hex pairs joined by `:`, on one line.
pub fn hex_colons(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push(char::from(HEX[(b >> 4) as usize]));
        out.push(char::from(HEX[(b & 0xf) as usize]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_wraps_after_twenty_bytes() {
        assert_eq!(hex_wrapped(&[]), "");
        assert_eq!(hex_wrapped(&[0xab, 0x01]), "AB:01");
        let twenty_one: Vec<u8> = (0..21).collect();
        let s = hex_wrapped(&twenty_one);
        assert!(s.ends_with("12:13:\n\t\t14"), "{s}");
        assert_eq!(hex_wrapped(&twenty_one[..20]).matches('\n').count(), 0);
        assert_eq!(hex_colons(&[0x1b, 0xf8, 0]), "1B:F8:00");
        assert_eq!(hex_colons(&[]), "");
    }

    #[test]
    fn legacy_trailer() {
        let mut m = b"\x7fELF....".to_vec();
        m.extend_from_slice(b"signer");
        m.extend_from_slice(&[1, 2, 3]);
        m.extend_from_slice(&[9; 5]);
        m.extend_from_slice(&[1, 4, 1, 6, 3, 0, 0, 0, 0, 0, 0, 5]);
        m.extend_from_slice(MAGIC);
        let s = parse(&m).unwrap();
        assert_eq!(s.id_type, IdType::X509);
        assert_eq!(s.signer, b"signer");
        assert_eq!(s.key_id, &[1, 2, 3]);
        assert_eq!(s.hash_algo, "sha256");
        assert_eq!(
            dotted_oid(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x02, 0x63]),
            "1.2.840.113549.2.99"
        );
        assert_eq!(s.signature, &[9; 5]);
    }

    #[test]
    fn appended_signature_split_and_join() {
        let signed = append_pkcs7(b"\x7fELF module", b"SIG").unwrap();
        let split = split_appended(&signed).unwrap().unwrap();
        assert_eq!(split.content, b"\x7fELF module");
        assert_eq!(split.signature, b"SIG");
        assert_eq!(split.check_pkcs7_info(), Ok(()));
        assert_eq!(split_appended(b"\x7fELF module"), Ok(None));
        // A legacy trailer with a signer name and key id is split off whole.
        let mut legacy = b"\x7fELF".to_vec();
        legacy.extend_from_slice(b"signerKEYsig");
        legacy.extend_from_slice(&[1, 4, 1, 6, 3, 0, 0, 0, 0, 0, 0, 3]);
        legacy.extend_from_slice(MAGIC);
        let split = split_appended(&legacy).unwrap().unwrap();
        assert_eq!(split.content, b"\x7fELF");
        assert_eq!(split.signature, b"sig");
        assert_eq!(split.check_pkcs7_info(), Err(TrailerError::NotPkcs7(1)));
        let mut odd = signed.clone();
        let at = odd.len() - MAGIC.len() - INFO_LEN;
        odd[at + 5] = 1;
        let split = split_appended(&odd).unwrap().unwrap();
        assert_eq!(split.check_pkcs7_info(), Err(TrailerError::NonZeroFields));
        assert_eq!(
            split_appended(&signed[3..]).unwrap().unwrap().content,
            b"F module"
        );
        assert_eq!(
            split_appended(&signed[12..]),
            Err(TrailerError::TooLong {
                len: 3,
                available: 2
            })
        );
        assert_eq!(
            split_appended(&signed[signed.len() - MAGIC.len() - 4..]),
            Err(TrailerError::Truncated)
        );
        let mut empty = b"x".to_vec();
        empty.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        empty.extend_from_slice(MAGIC);
        assert_eq!(split_appended(&empty), Err(TrailerError::Empty));
    }

    #[test]
    fn inconsistent_trailers_are_ignored() {
        for info in [
            [2, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1],    // bad algo
            [1, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1],    // bad hash
            [1, 4, 3, 0, 0, 0, 0, 0, 0, 0, 0, 1],    // bad id type
            [1, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],    // empty signature
            [1, 4, 1, 0, 0, 0, 0, 0, 0xff, 0, 0, 0], // longer than the file
        ] {
            let mut m = vec![0u8; 4];
            m.extend_from_slice(&info);
            m.extend_from_slice(MAGIC);
            assert_eq!(parse(&m), None, "{info:?}");
        }
        assert_eq!(parse(MAGIC), None);
    }
}
