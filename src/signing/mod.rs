//! Module signatures made and checked: `kmod sign` writes what the kernel's
//! `scripts/sign-file` writes, byte for byte, and `kmod verify` checks a signature the
//! way the kernel will before loading the module.
//!
//! - [`pem`] and [`keys`]: private keys (PEM, PKCS#8 or the traditional forms) and
//!   X.509 certificates (PEM or DER).
//! - [`pkcs7`]: the CMS `SignedData` sign-file appends, built and parsed.
//! - [`sign`] and [`verify`]: whole module files, compressed ones included.
//! - [`kernel_image`]: the certificates a kernel image trusts (its built-in list).
//!
//! The cryptography is RustCrypto's (`rsa`, `p256`, `p384`, `sha2`); see
//! `docs/signing.md` for what its advisories mean for a signing tool.

pub mod kernel_image;
pub mod keys;
pub mod pem;
pub mod pkcs7;
mod recompress;
pub mod sign;
pub mod verify;

use sha2::Digest;
use x509_cert::der::oid::db::rfc5912;
use x509_cert::der::oid::ObjectIdentifier;

/// The digests module signatures use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgo {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlgo {
    pub const ALL: [HashAlgo; 3] = [HashAlgo::Sha256, HashAlgo::Sha384, HashAlgo::Sha512];

    /// A name as sign-file's OpenSSL takes it: `sha256`, `SHA256`, `SHA2-256`,
    /// `SHA-256` and so on, in any case.
    pub fn from_name(name: &[u8]) -> Option<HashAlgo> {
        let name = name.to_ascii_lowercase();
        Self::ALL.into_iter().find(|h| {
            let bits = &h.name()[3..];
            [
                h.name().to_string(),
                format!("sha-{bits}"),
                format!("sha2-{bits}"),
                h.oid().to_string(),
            ]
            .iter()
            .any(|n| n.as_bytes() == name)
        })
    }

    /// The name OpenSSL and modinfo print.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha384 => "sha384",
            HashAlgo::Sha512 => "sha512",
        }
    }

    pub fn oid(self) -> ObjectIdentifier {
        match self {
            HashAlgo::Sha256 => rfc5912::ID_SHA_256,
            HashAlgo::Sha384 => rfc5912::ID_SHA_384,
            HashAlgo::Sha512 => rfc5912::ID_SHA_512,
        }
    }

    pub fn from_oid(oid: &ObjectIdentifier) -> Option<HashAlgo> {
        Self::ALL.into_iter().find(|h| h.oid() == *oid)
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlgo::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlgo::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlgo::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_names_as_openssl_takes_them() {
        for (name, hash) in [
            (&b"sha256"[..], HashAlgo::Sha256),
            (b"SHA384", HashAlgo::Sha384),
            (b"SHA2-512", HashAlgo::Sha512),
            (b"sha-256", HashAlgo::Sha256),
            (b"2.16.840.1.101.3.4.2.3", HashAlgo::Sha512),
        ] {
            assert_eq!(HashAlgo::from_name(name), Some(hash), "{name:?}");
        }
        for name in [&b"md5"[..], b"sha1", b"sha3-256", b"", b"sha256\0"] {
            assert_eq!(HashAlgo::from_name(name), None, "{name:?}");
        }
        assert_eq!(HashAlgo::Sha384.digest(b"").len(), 48);
        assert_eq!(
            HashAlgo::from_oid(&HashAlgo::Sha512.oid()),
            Some(HashAlgo::Sha512)
        );
    }
}
