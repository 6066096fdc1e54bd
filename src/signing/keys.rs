//! Private keys and X.509 certificates, read the way sign-file's OpenSSL reads them,
//! and the signature operations on them: RSA (PKCS#1 v1.5) and ECDSA on P-256 and
//! P-384.

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use x509_cert::der::asn1::OctetString;
use x509_cert::der::oid::db::{rfc4519, rfc5280, rfc5912};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Reader, SliceReader};

use super::pem::{self, PemError};
use super::HashAlgo;

/// The largest RSA modulus accepted, in bits (the kernel's limit is lower).
const RSA_MAX_BITS: usize = 16384;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Pem(#[from] PemError),
    #[error("no private key found (expected a PEM block PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)")]
    NoPrivateKey,
    #[error("the private key is encrypted; kmod sign reads unencrypted keys only (decrypt it with `openssl pkey`)")]
    Encrypted,
    #[error("malformed private key: {0}")]
    BadPrivateKey(String),
    #[error("unsupported key: {0} (RSA, ECDSA P-256 and P-384 are supported)")]
    Unsupported(String),
    #[error("no certificate found (expected DER or a PEM block CERTIFICATE)")]
    NoCertificate,
    #[error("malformed certificate: {0}")]
    BadCertificate(String),
    #[error("the private key does not match the certificate")]
    Mismatch,
    #[error("the certificate has no subject key identifier")]
    NoKeyId,
    #[error("signing failed: {0}")]
    Signing(String),
}

/// A private key that can sign module digests.
pub enum PrivateKey {
    Rsa(Box<rsa::RsaPrivateKey>),
    P256(p256::SecretKey),
    P384(p384::SecretKey),
}

/// A certificate's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    Rsa(rsa::RsaPublicKey),
    P256(p256::PublicKey),
    P384(p384::PublicKey),
    /// A key this implementation cannot use, with what it is.
    Unsupported(String),
}

/// The key algorithms of a signature, as a SignerInfo names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    Ecdsa,
}

const ID_EC_PUBLIC_KEY: ObjectIdentifier = rfc5912::ID_EC_PUBLIC_KEY;
const RSA_ENCRYPTION: ObjectIdentifier = rfc5912::RSA_ENCRYPTION;
const SECP256R1: ObjectIdentifier = rfc5912::SECP_256_R_1;
const SECP384R1: ObjectIdentifier = rfc5912::SECP_384_R_1;

impl PrivateKey {
    /// The first private key in a PEM file, as OpenSSL's `PEM_read_bio_PrivateKey`
    /// takes it: PKCS#8 (`PRIVATE KEY`) or the traditional RSA and EC forms; other
    /// blocks (a certificate beside the key, EC parameters) are passed over.
    pub fn from_pem(text: &[u8]) -> Result<PrivateKey, KeyError> {
        for block in pem::blocks(text)? {
            let bad = |e: &dyn std::fmt::Display| KeyError::BadPrivateKey(e.to_string());
            match &block.label[..] {
                b"ENCRYPTED PRIVATE KEY" => return Err(KeyError::Encrypted),
                _ if block.is_encrypted() => return Err(KeyError::Encrypted),
                b"PRIVATE KEY" => return Self::from_pkcs8(&block.der),
                b"RSA PRIVATE KEY" => {
                    let key =
                        rsa::RsaPrivateKey::from_pkcs1_der(&block.der).map_err(|e| bad(&e))?;
                    return rsa_key(key);
                }
                b"EC PRIVATE KEY" => {
                    // The key names its curve; each curve's reader checks it.
                    if let Ok(key) = p256::SecretKey::from_sec1_der(&block.der) {
                        return Ok(PrivateKey::P256(key));
                    }
                    return p384::SecretKey::from_sec1_der(&block.der)
                        .map(PrivateKey::P384)
                        .map_err(|_| {
                            KeyError::Unsupported(
                                "EC key not on P-256 or P-384, or malformed".into(),
                            )
                        });
                }
                _ => {}
            }
        }
        Err(KeyError::NoPrivateKey)
    }

    fn from_pkcs8(der: &[u8]) -> Result<PrivateKey, KeyError> {
        let bad = |e: &dyn std::fmt::Display| KeyError::BadPrivateKey(e.to_string());
        let info = rsa::pkcs8::PrivateKeyInfo::try_from(der).map_err(|e| bad(&e))?;
        let oid = info.algorithm.oid;
        if oid == RSA_ENCRYPTION {
            let key = rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(|e| bad(&e))?;
            return rsa_key(key);
        }
        if oid != ID_EC_PUBLIC_KEY {
            return Err(KeyError::Unsupported(format!("key algorithm {oid}")));
        }
        match info.algorithm.parameters_oid() {
            Ok(SECP256R1) => p256::SecretKey::from_pkcs8_der(der)
                .map(PrivateKey::P256)
                .map_err(|e| bad(&e)),
            Ok(SECP384R1) => p384::SecretKey::from_pkcs8_der(der)
                .map(PrivateKey::P384)
                .map_err(|e| bad(&e)),
            Ok(curve) => Err(KeyError::Unsupported(format!("elliptic curve {curve}"))),
            Err(_) => Err(KeyError::Unsupported("EC key without a named curve".into())),
        }
    }

    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::Rsa(k) => PublicKey::Rsa(k.to_public_key()),
            PrivateKey::P256(k) => PublicKey::P256(k.public_key()),
            PrivateKey::P384(k) => PublicKey::P384(k.public_key()),
        }
    }

    pub fn kind(&self) -> KeyKind {
        match self {
            PrivateKey::Rsa(_) => KeyKind::Rsa,
            PrivateKey::P256(_) | PrivateKey::P384(_) => KeyKind::Ecdsa,
        }
    }

    /// Signs a digest: RSA PKCS#1 v1.5 (deterministic, so the same bytes OpenSSL
    /// makes; computed with blinding), or ECDSA with RFC 6979 nonces, DER-encoded.
    pub fn sign_digest(&self, hash: HashAlgo, digest: &[u8]) -> Result<Vec<u8>, KeyError> {
        use ecdsa::signature::hazmat::PrehashSigner;
        let failed = |e: &dyn std::fmt::Display| KeyError::Signing(e.to_string());
        match self {
            PrivateKey::Rsa(key) => key
                .sign_with_rng(&mut rand_core::OsRng, pkcs1v15(hash), digest)
                .map_err(|e| failed(&e)),
            PrivateKey::P256(key) => {
                let signature: p256::ecdsa::Signature = p256::ecdsa::SigningKey::from(key)
                    .sign_prehash(digest)
                    .map_err(|e| failed(&e))?;
                Ok(signature.to_der().as_bytes().to_vec())
            }
            PrivateKey::P384(key) => {
                let signature: p384::ecdsa::Signature = p384::ecdsa::SigningKey::from(key)
                    .sign_prehash(digest)
                    .map_err(|e| failed(&e))?;
                Ok(signature.to_der().as_bytes().to_vec())
            }
        }
    }
}

fn rsa_key(key: rsa::RsaPrivateKey) -> Result<PrivateKey, KeyError> {
    let bits = key.n().bits();
    if bits > RSA_MAX_BITS {
        return Err(KeyError::Unsupported(format!("RSA-{bits}")));
    }
    Ok(PrivateKey::Rsa(Box::new(key)))
}

fn pkcs1v15(hash: HashAlgo) -> rsa::Pkcs1v15Sign {
    match hash {
        HashAlgo::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
        HashAlgo::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
        HashAlgo::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
    }
}

/// Why a signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature does not match")]
    Mismatch,
    #[error("the signature is {0} but the certificate's key is {1}")]
    WrongKeyType(&'static str, &'static str),
    #[error("the certificate's key is unsupported: {0}")]
    UnsupportedKey(String),
    #[error("the ECDSA signature is malformed")]
    MalformedEcdsa,
}

impl PublicKey {
    fn type_name(&self) -> &'static str {
        match self {
            PublicKey::Rsa(_) => "RSA",
            PublicKey::P256(_) | PublicKey::P384(_) => "ECDSA",
            PublicKey::Unsupported(_) => "unsupported",
        }
    }

    /// What the key is, for messages: `RSA-4096`, `ECDSA P-384`.
    pub fn description(&self) -> String {
        match self {
            PublicKey::Rsa(k) => format!("RSA-{}", k.n().bits()),
            PublicKey::P256(_) => "ECDSA P-256".into(),
            PublicKey::P384(_) => "ECDSA P-384".into(),
            PublicKey::Unsupported(what) => what.clone(),
        }
    }

    /// Checks `signature` over `digest` (made with `hash`) by a key of `kind`.
    pub fn verify_digest(
        &self,
        kind: KeyKind,
        hash: HashAlgo,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        use ecdsa::signature::hazmat::PrehashVerifier;
        let kind_name = match kind {
            KeyKind::Rsa => "RSA",
            KeyKind::Ecdsa => "ECDSA",
        };
        match (self, kind) {
            (PublicKey::Unsupported(what), _) => Err(SignatureError::UnsupportedKey(what.clone())),
            (PublicKey::Rsa(key), KeyKind::Rsa) => key
                .verify(pkcs1v15(hash), digest, signature)
                .map_err(|_| SignatureError::Mismatch),
            (PublicKey::P256(key), KeyKind::Ecdsa) => {
                let sig = p256::ecdsa::Signature::from_der(signature)
                    .map_err(|_| SignatureError::MalformedEcdsa)?;
                p256::ecdsa::VerifyingKey::from(key)
                    .verify_prehash(digest, &sig)
                    .map_err(|_| SignatureError::Mismatch)
            }
            (PublicKey::P384(key), KeyKind::Ecdsa) => {
                let sig = p384::ecdsa::Signature::from_der(signature)
                    .map_err(|_| SignatureError::MalformedEcdsa)?;
                p384::ecdsa::VerifyingKey::from(key)
                    .verify_prehash(digest, &sig)
                    .map_err(|_| SignatureError::Mismatch)
            }
            _ => Err(SignatureError::WrongKeyType(kind_name, self.type_name())),
        }
    }

    fn from_spki(spki: &x509_cert::spki::SubjectPublicKeyInfoOwned) -> PublicKey {
        let oid = spki.algorithm.oid;
        let Some(bits) = spki.subject_public_key.as_bytes() else {
            return PublicKey::Unsupported("public key with unused bits".into());
        };
        if oid == RSA_ENCRYPTION {
            let Ok(key) = rsa::pkcs1::RsaPublicKey::from_der(bits) else {
                return PublicKey::Unsupported("malformed RSA public key".into());
            };
            let n = rsa::BigUint::from_bytes_be(key.modulus.as_bytes());
            let e = rsa::BigUint::from_bytes_be(key.public_exponent.as_bytes());
            return match rsa::RsaPublicKey::new_with_max_size(n, e, RSA_MAX_BITS) {
                Ok(key) => PublicKey::Rsa(key),
                Err(e) => PublicKey::Unsupported(format!("RSA public key: {e}")),
            };
        }
        if oid != ID_EC_PUBLIC_KEY {
            return PublicKey::Unsupported(format!("public key algorithm {oid}"));
        }
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        match curve {
            Some(SECP256R1) => p256::PublicKey::from_sec1_bytes(bits).map_or_else(
                |_| PublicKey::Unsupported("malformed P-256 key".into()),
                PublicKey::P256,
            ),
            Some(SECP384R1) => p384::PublicKey::from_sec1_bytes(bits).map_or_else(
                |_| PublicKey::Unsupported("malformed P-384 key".into()),
                PublicKey::P384,
            ),
            Some(curve) => PublicKey::Unsupported(format!("elliptic curve {curve}")),
            None => PublicKey::Unsupported("EC key without a named curve".into()),
        }
    }
}

/// An X.509 certificate: what a signature names it by, and its key.
#[derive(Debug, Clone)]
pub struct Certificate {
    cert: x509_cert::Certificate,
    subject_key_id: Option<Vec<u8>>,
    key: PublicKey,
}

impl Certificate {
    /// One DER certificate; bytes after it are an error.
    pub fn from_der(der: &[u8]) -> Result<Certificate, KeyError> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| KeyError::BadCertificate(e.to_string()))?;
        Self::from_parsed(cert)
    }

    fn from_parsed(cert: x509_cert::Certificate) -> Result<Certificate, KeyError> {
        let subject_key_id = match cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)
        {
            Some(ext) => Some(
                OctetString::from_der(ext.extn_value.as_bytes())
                    .map_err(|e| KeyError::BadCertificate(format!("subject key identifier: {e}")))?
                    .into_bytes(),
            ),
            None => None,
        };
        let key = PublicKey::from_spki(&cert.tbs_certificate.subject_public_key_info);
        Ok(Certificate {
            cert,
            subject_key_id,
            key,
        })
    }

    pub fn issuer(&self) -> &x509_cert::name::Name {
        &self.cert.tbs_certificate.issuer
    }

    pub fn serial_number(&self) -> &x509_cert::serial_number::SerialNumber {
        &self.cert.tbs_certificate.serial_number
    }

    pub fn subject_key_id(&self) -> Option<&[u8]> {
        self.subject_key_id.as_deref()
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// The subject's common name (else its last attribute), as modinfo names a
    /// signer.
    pub fn subject_name(&self) -> Vec<u8> {
        display_name(&self.cert.tbs_certificate.subject)
    }
}

/// A name's commonName value, else the value of its last attribute: what modinfo
/// shows as the signer.
pub fn display_name(name: &x509_cert::name::Name) -> Vec<u8> {
    let mut last: Option<&x509_cert::der::Any> = None;
    for rdn in name.0.iter() {
        for attr in rdn.0.iter() {
            if attr.oid == rfc4519::COMMON_NAME {
                return attr.value.value().to_vec();
            }
            last = Some(&attr.value);
        }
    }
    last.map(|v| v.value().to_vec()).unwrap_or_default()
}

/// Every certificate in a file: DER (one, or several back to back as in the kernel's
/// certificate list), or PEM `CERTIFICATE` blocks. sign-file's test for DER: the
/// first byte is a SEQUENCE tag and the second a long length.
pub fn read_certificates(data: &[u8]) -> Result<Vec<Certificate>, KeyError> {
    let mut certs = Vec::new();
    if data.len() >= 2 && data[0] == 0x30 && (0x81..=0x84).contains(&data[1]) {
        let mut reader =
            SliceReader::new(data).map_err(|e| KeyError::BadCertificate(e.to_string()))?;
        while !reader.is_finished() {
            let cert = x509_cert::Certificate::decode(&mut reader)
                .map_err(|e| KeyError::BadCertificate(e.to_string()))?;
            certs.push(Certificate::from_parsed(cert)?);
        }
        return Ok(certs);
    }
    for block in pem::blocks(data)? {
        match &block.label[..] {
            b"CERTIFICATE" | b"X509 CERTIFICATE" => certs.push(Certificate::from_der(&block.der)?),
            // OpenSSL's trusted form: the certificate followed by its trust settings.
            b"TRUSTED CERTIFICATE" => {
                let mut reader = SliceReader::new(&block.der)
                    .map_err(|e| KeyError::BadCertificate(e.to_string()))?;
                let cert = x509_cert::Certificate::decode(&mut reader)
                    .map_err(|e| KeyError::BadCertificate(e.to_string()))?;
                certs.push(Certificate::from_parsed(cert)?);
            }
            _ => {}
        }
    }
    if certs.is_empty() {
        return Err(KeyError::NoCertificate);
    }
    Ok(certs)
}
