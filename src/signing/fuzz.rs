//! Entry points for fuzzing the parsers of untrusted bytes in signing and
//! verification, ready to wrap in a cargo-fuzz `fuzz_target!`. Each returns normally
//! for any input; a panic, abort or failed assertion is a finding.

use super::keys::{read_certificates, PrivateKey};
use super::{kernel_image, pkcs7, verify};
use crate::signature;

/// A module's appended signature: the trailer, the PKCS#7 message, and verification
/// against a certificate taken from the same input (a signer found in the message
/// then meets a key of any shape).
pub fn signature(data: &[u8]) {
    if let Ok(Some(appended)) = signature::split_appended(data) {
        assert!(appended.content.len() + appended.signature.len() <= data.len());
        let _ = appended.check_pkcs7_info();
    }
    let _ = pkcs7::parse(data);
    let trusted = read_certificates(data).unwrap_or_default();
    let report = verify::verify(data, &trusted);
    if report.verdict == verify::Verdict::Valid {
        assert!(report.signer.is_some());
    }
}

/// Certificate and private key files: PEM (any blocks) or DER, one or several.
pub fn key_files(data: &[u8]) {
    if let Ok(certs) = read_certificates(data) {
        for cert in &certs {
            let _ = cert.subject_name();
            let _ = cert.public_key().description();
        }
    }
    // Keys are parsed, not used: signing with a key of any size is slow, not unsafe.
    if let Ok(key) = PrivateKey::from_pem(data) {
        let _ = key.public_key().description();
    }
}

/// A kernel image, for its built-in certificate list.
pub fn kernel_image(data: &[u8]) {
    let _ = kernel_image::builtin_certificates(data);
}
