//! The PKCS#7 (CMS) message a module signature is: a DER `ContentInfo` holding a
//! `SignedData` with detached content.
//!
//! What sign-file's OpenSSL writes (`CMS_sign` with `CMS_NOCERTS | CMS_DETACHED |
//! CMS_BINARY`, `CMS_add1_signer` with `CMS_NOATTR`), read off its output byte by
//! byte:
//!
//! - no certificates, no CRLs, no signed or unsigned attributes;
//! - `encapContentInfo` is `id-data` with no content;
//! - the digest algorithm (in `digestAlgorithms` and in the SignerInfo) is the bare
//!   hash OID, without parameters;
//! - the signature algorithm is `rsaEncryption` with NULL parameters for RSA, and
//!   `ecdsa-with-SHA256/384/512` (by the digest) without parameters for ECDSA;
//! - the signer is named by issuer and serial number (versions 1), or with `-k` by
//!   the certificate's subject key identifier (`[0]`, versions 3).

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use x509_cert::der::asn1::{Any, OctetString, SetOfVec};
use x509_cert::der::oid::db::{rfc5911, rfc5912};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::keys::{Certificate, KeyError, KeyKind};
use super::HashAlgo;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Pkcs7Error {
    #[error("malformed PKCS#7 message: {0}")]
    Der(String),
    #[error("the PKCS#7 message is {0}, not signed data")]
    NotSignedData(ObjectIdentifier),
    #[error("the PKCS#7 message has no signer")]
    NoSigner,
    #[error("{0}")]
    Key(#[from] KeyError),
}

fn der_error(e: x509_cert::der::Error) -> Pkcs7Error {
    Pkcs7Error::Der(e.to_string())
}

/// How a SignerInfo names its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerId {
    IssuerAndSerial { issuer: Name, serial: SerialNumber },
    KeyId(Vec<u8>),
}

impl SignerId {
    /// Whether `cert` is the certificate named.
    pub fn names(&self, cert: &Certificate) -> bool {
        match self {
            SignerId::IssuerAndSerial { issuer, serial } => {
                cert.issuer() == issuer && cert.serial_number() == serial
            }
            SignerId::KeyId(id) => cert.subject_key_id() == Some(id),
        }
    }
}

/// One SignerInfo, with its algorithms resolved where they are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub id: SignerId,
    pub digest: Result<HashAlgo, ObjectIdentifier>,
    pub key_kind: Result<KeyKind, ObjectIdentifier>,
    /// Whether the signer has signed attributes (the kernel refuses them in module
    /// signatures).
    pub has_signed_attributes: bool,
    pub signature: Vec<u8>,
}

/// A parsed module signature message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub signers: Vec<Signer>,
    /// The type of the signed content (`id-data` for modules).
    pub content_type: ObjectIdentifier,
    /// Whether the message carries the signed content itself (a module signature
    /// must not: the kernel supplies the module as detached data).
    pub has_content: bool,
}

/// Parses a DER `ContentInfo` holding `SignedData`; trailing bytes are an error.
pub fn parse(der: &[u8]) -> Result<Message, Pkcs7Error> {
    let info = ContentInfo::from_der(der).map_err(der_error)?;
    if info.content_type != rfc5911::ID_SIGNED_DATA {
        return Err(Pkcs7Error::NotSignedData(info.content_type));
    }
    let data: SignedData = info.content.decode_as().map_err(der_error)?;
    let signers: Vec<Signer> = data.signer_infos.0.iter().map(signer).collect();
    if signers.is_empty() {
        return Err(Pkcs7Error::NoSigner);
    }
    Ok(Message {
        signers,
        content_type: data.encap_content_info.econtent_type,
        has_content: data.encap_content_info.econtent.is_some(),
    })
}

fn signer(si: &SignerInfo) -> Signer {
    let id = match &si.sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => SignerId::IssuerAndSerial {
            issuer: ias.issuer.clone(),
            serial: ias.serial_number.clone(),
        },
        SignerIdentifier::SubjectKeyIdentifier(ski) => SignerId::KeyId(ski.0.as_bytes().to_vec()),
    };
    Signer {
        id,
        digest: HashAlgo::from_oid(&si.digest_alg.oid).ok_or(si.digest_alg.oid),
        key_kind: key_kind(&si.signature_algorithm.oid).ok_or(si.signature_algorithm.oid),
        has_signed_attributes: si.signed_attrs.is_some(),
        signature: si.signature.as_bytes().to_vec(),
    }
}

/// The key type a SignerInfo's signature algorithm stands for: the bare key
/// algorithms and their combinations with SHA-2, as the kernel's parser takes them.
fn key_kind(oid: &ObjectIdentifier) -> Option<KeyKind> {
    [
        (rfc5912::RSA_ENCRYPTION, KeyKind::Rsa),
        (rfc5912::SHA_256_WITH_RSA_ENCRYPTION, KeyKind::Rsa),
        (rfc5912::SHA_384_WITH_RSA_ENCRYPTION, KeyKind::Rsa),
        (rfc5912::SHA_512_WITH_RSA_ENCRYPTION, KeyKind::Rsa),
        (rfc5912::ID_EC_PUBLIC_KEY, KeyKind::Ecdsa),
        (rfc5912::ECDSA_WITH_SHA_256, KeyKind::Ecdsa),
        (rfc5912::ECDSA_WITH_SHA_384, KeyKind::Ecdsa),
        (rfc5912::ECDSA_WITH_SHA_512, KeyKind::Ecdsa),
    ]
    .into_iter()
    .find_map(|(o, kind)| (o == *oid).then_some(kind))
}

/// The message sign-file writes for one signature over the module's digest.
pub fn build(
    cert: &Certificate,
    hash: HashAlgo,
    kind: KeyKind,
    signature: &[u8],
    by_key_id: bool,
) -> Result<Vec<u8>, Pkcs7Error> {
    let digest_alg = AlgorithmIdentifierOwned {
        oid: hash.oid(),
        parameters: None,
    };
    let signature_algorithm = match kind {
        KeyKind::Rsa => AlgorithmIdentifierOwned {
            oid: rfc5912::RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        KeyKind::Ecdsa => AlgorithmIdentifierOwned {
            oid: match hash {
                HashAlgo::Sha256 => rfc5912::ECDSA_WITH_SHA_256,
                HashAlgo::Sha384 => rfc5912::ECDSA_WITH_SHA_384,
                HashAlgo::Sha512 => rfc5912::ECDSA_WITH_SHA_512,
            },
            parameters: None,
        },
    };
    let (version, sid) = if by_key_id {
        let id = cert.subject_key_id().ok_or(KeyError::NoKeyId)?;
        let id = OctetString::new(id).map_err(der_error)?;
        (
            CmsVersion::V3,
            SignerIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(id)),
        )
    } else {
        (
            CmsVersion::V1,
            SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: cert.issuer().clone(),
                serial_number: cert.serial_number().clone(),
            }),
        )
    };
    let signer = SignerInfo {
        version,
        sid,
        digest_alg: digest_alg.clone(),
        signed_attrs: None,
        signature_algorithm,
        signature: OctetString::new(signature).map_err(der_error)?,
        unsigned_attrs: None,
    };
    let data = SignedData {
        version,
        digest_algorithms: SetOfVec::try_from(vec![digest_alg]).map_err(der_error)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: rfc5911::ID_DATA,
            econtent: None,
        },
        certificates: None,
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer]).map_err(der_error)?),
    };
    let info = ContentInfo {
        content_type: rfc5911::ID_SIGNED_DATA,
        content: Any::encode_from(&data).map_err(der_error)?,
    };
    info.to_der().map_err(der_error)
}
