//! Checking a module's appended signature against trusted certificates, with the
//! kernel's rules: the `module_signature` trailer must announce PKCS#7 with every
//! other field zero, the message must be detached signed data of type `id-data`
//! without signed attributes, and a signer is found by issuer and serial number or by
//! subject key identifier. Every signer whose certificate is trusted must verify, and
//! at least one must be trusted.

use x509_cert::der::oid::db::rfc5911;

use super::keys::{display_name, Certificate};
use super::pkcs7::{self, Signer, SignerId};
use crate::signature;

/// The outcome for one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A trusted signer's signature over the module verifies.
    Valid,
    /// The signature is unusable or does not verify, and why.
    Invalid(String),
    /// The module carries no signature.
    Unsigned,
    /// The signature is well-formed but none of its signers is trusted.
    UnknownSigner,
}

/// How a signer is identified: the certificate's serial number, or its subject key
/// identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyId {
    Serial(Vec<u8>),
    SubjectKeyId(Vec<u8>),
}

/// Who signed, as far as the signature (and a matching certificate) tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerSummary {
    /// The signer's common name: the trusted certificate's subject when one matched,
    /// else the issuer the signature names (what modinfo shows); may be empty.
    pub name: Vec<u8>,
    pub key_id: KeyId,
    /// The digest algorithm's name, or its OID when unknown.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub verdict: Verdict,
    /// The signer the verdict is about, when the signature could be read.
    pub signer: Option<SignerSummary>,
}

/// Verifies the (decompressed) module `module` against `trusted`.
pub fn verify(module: &[u8], trusted: &[Certificate]) -> Report {
    let invalid = |why: String| Report {
        verdict: Verdict::Invalid(why),
        signer: None,
    };
    let appended = match signature::split_appended(module) {
        Ok(Some(appended)) => appended,
        Ok(None) => {
            return Report {
                verdict: Verdict::Unsigned,
                signer: None,
            }
        }
        Err(e) => return invalid(e.to_string()),
    };
    if let Err(e) = appended.check_pkcs7_info() {
        return invalid(e.to_string());
    }
    let message = match pkcs7::parse(appended.signature) {
        Ok(message) => message,
        Err(e) => return invalid(e.to_string()),
    };
    // What the kernel checks of the message as a whole before it looks for keys.
    let refused = if message.content_type != rfc5911::ID_DATA {
        Some(format!(
            "the signed content is of type {}, not data",
            message.content_type
        ))
    } else if message.has_content {
        Some("the message carries its content; a module signature is detached".into())
    } else if message.signers.iter().any(|s| s.has_signed_attributes) {
        Some("the kernel refuses module signatures with signed attributes".into())
    } else {
        None
    };
    if let Some(why) = refused {
        return Report {
            verdict: Verdict::Invalid(why),
            signer: message.signers.first().map(|s| summary(s, None)),
        };
    }
    let mut valid = None;
    for signer in &message.signers {
        let cert = trusted.iter().find(|c| signer.id.names(c));
        let summary = summary(signer, cert);
        let Some(cert) = cert else {
            continue;
        };
        match check(signer, cert, appended.content) {
            Err(why) => {
                return Report {
                    verdict: Verdict::Invalid(why),
                    signer: Some(summary),
                }
            }
            Ok(()) => valid = valid.or(Some(summary)),
        }
    }
    match valid {
        Some(summary) => Report {
            verdict: Verdict::Valid,
            signer: Some(summary),
        },
        None => Report {
            verdict: Verdict::UnknownSigner,
            signer: message.signers.first().map(|s| summary(s, None)),
        },
    }
}

fn summary(signer: &Signer, cert: Option<&Certificate>) -> SignerSummary {
    let (name, key_id) = match &signer.id {
        SignerId::IssuerAndSerial { issuer, serial } => (
            cert.map_or_else(|| display_name(issuer), Certificate::subject_name),
            KeyId::Serial(strip_leading_zeros(serial.as_bytes()).to_vec()),
        ),
        SignerId::KeyId(id) => (
            cert.map(Certificate::subject_name).unwrap_or_default(),
            KeyId::SubjectKeyId(id.clone()),
        ),
    };
    let hash = match &signer.digest {
        Ok(hash) => hash.name().to_string(),
        Err(oid) => oid.to_string(),
    };
    SignerSummary { name, key_id, hash }
}

fn strip_leading_zeros(mut bytes: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = bytes {
        bytes = rest;
    }
    bytes
}

/// One signer's signature over `content`, with `cert`'s key.
fn check(signer: &Signer, cert: &Certificate, content: &[u8]) -> Result<(), String> {
    let hash = signer
        .digest
        .map_err(|oid| format!("unsupported digest algorithm {oid}"))?;
    let kind = signer
        .key_kind
        .map_err(|oid| format!("unsupported signature algorithm {oid}"))?;
    let digest = hash.digest(content);
    cert.public_key()
        .verify_digest(kind, hash, &digest, &signer.signature)
        .map_err(|e| match e {
            super::keys::SignatureError::Mismatch => {
                "the signature does not match the module".to_string()
            }
            other => other.to_string(),
        })
}
