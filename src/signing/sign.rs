//! Signing a module file as the kernel's `scripts/sign-file` does, and beyond it:
//! a compressed module is signed inside (decompressed, signed, compressed again the
//! same way), and a signature already there is replaced, never stacked.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::keys::{Certificate, KeyError, PrivateKey};
use super::pkcs7::{self, Pkcs7Error};
use super::recompress::{recompress, RecompressError};
use super::verify::{self, Verdict};
use super::HashAlgo;
use crate::compression::{self, Compression, DecompressError};
use crate::signature::{self, TrailerError};

/// The largest module file read for signing (the largest modules are tens of MB).
pub const MAX_FILE_SIZE: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{}", crate::compat::io_strerror(.0))]
    Io(#[from] std::io::Error),
    #[error("file too large ({0} bytes)")]
    TooLarge(u64),
    #[error("{0}")]
    Decompress(#[from] DecompressError),
    #[error("the module's signature is malformed: {0}")]
    Trailer(#[from] TrailerError),
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error("{0}")]
    Pkcs7(#[from] Pkcs7Error),
    #[error("{0}")]
    Recompress(#[from] RecompressError),
    #[error("the signature does not verify with the certificate: {0}")]
    RawSignature(String),
}

/// Reads a whole file of at most `limit` bytes, growing the buffer fallibly.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, SignError> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    if size > limit {
        return Err(SignError::TooLarge(size));
    }
    let mut data = Vec::new();
    data.try_reserve_exact(size as usize)
        .map_err(|_| SignError::TooLarge(size))?;
    // The size can change under us: read at most one byte past the limit.
    Read::by_ref(&mut file)
        .take(limit + 1)
        .read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(SignError::TooLarge(data.len() as u64));
    }
    Ok(data)
}

/// A module as it is signed: its compression, and its content without any signature
/// it carried.
pub struct ModuleImage {
    pub compression: Compression,
    /// The start of the file as it was, whose header settings recompression keeps.
    head: Vec<u8>,
    /// The decompressed module, signature removed: what the signature covers.
    pub content: Vec<u8>,
    /// Whether a signature was removed.
    pub was_signed: bool,
}

impl ModuleImage {
    pub fn read(path: &Path) -> Result<ModuleImage, SignError> {
        Self::from_bytes(read_limited(path, MAX_FILE_SIZE)?)
    }

    pub fn from_bytes(raw: Vec<u8>) -> Result<ModuleImage, SignError> {
        let kind = Compression::detect(&raw);
        let head = raw[..raw.len().min(16)].to_vec();
        let mut content = compression::decompress(kind, &raw, crate::limits::MODULE_SIZE_LIMIT)?;
        let kept = signature::split_appended(&content)?.map(|a| a.content.len());
        if let Some(len) = kept {
            content.truncate(len);
        }
        Ok(ModuleImage {
            compression: kind,
            head,
            content,
            was_signed: kept.is_some(),
        })
    }

    /// The module with `signature` (a PKCS#7 message) appended, compressed as the
    /// original was.
    pub fn with_signature(&self, signature: &[u8]) -> Result<Vec<u8>, SignError> {
        let signed = signature::append_pkcs7(&self.content, signature)?;
        Ok(recompress(self.compression, &self.head, &signed)?)
    }
}

/// The PKCS#7 message sign-file makes for `content`: `key` signs its `hash` digest
/// and the message names `cert` (by issuer and serial, or with `by_key_id` by subject
/// key identifier). The key must be the certificate's.
pub fn sign(
    content: &[u8],
    key: &PrivateKey,
    cert: &Certificate,
    hash: HashAlgo,
    by_key_id: bool,
) -> Result<Vec<u8>, SignError> {
    if &key.public_key() != cert.public_key() {
        return Err(KeyError::Mismatch.into());
    }
    let signature = key.sign_digest(hash, &hash.digest(content))?;
    Ok(pkcs7::build(cert, hash, key.kind(), &signature, by_key_id)?)
}

/// Checks a signature made elsewhere (sign-file's `-s`) before it is appended: it
/// must be a PKCS#7 message that `cert` verifies over `content`.
pub fn check_raw_signature(
    content: &[u8],
    raw: &[u8],
    cert: &Certificate,
) -> Result<(), SignError> {
    let signed = signature::append_pkcs7(content, raw)?;
    let report = verify::verify(&signed, std::slice::from_ref(cert));
    match report.verdict {
        Verdict::Valid => Ok(()),
        Verdict::UnknownSigner => Err(SignError::RawSignature(
            "it was made by another signer".into(),
        )),
        Verdict::Invalid(why) => Err(SignError::RawSignature(why)),
        Verdict::Unsigned => Err(SignError::RawSignature("no signature".into())),
    }
}

/// Replaces `path` with `bytes` atomically: written to a new file beside it, synced,
/// renamed over it. The new file keeps an existing file's mode and (when allowed)
/// owner; a file that did not exist is created with the umask's mode.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name() else {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    };
    let existing = std::fs::metadata(path).ok();
    for attempt in 0..1000u32 {
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.{attempt}.tmp", std::process::id()));
        let tmp = dir.join(tmp_name);
        let file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&tmp)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let result = (|| {
            if let Some(meta) = &existing {
                // Ownership first: changing it may clear set-id bits of the mode.
                let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
                file.set_permissions(meta.permissions())?;
            }
            (&file).write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        } else if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        return result;
    }
    Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists))
}

/// Where sign-file's `-p` and `-d` put the signature: the module's name plus `.p7s`.
pub fn p7s_path(module: &Path) -> std::path::PathBuf {
    let mut name = module.as_os_str().to_os_string();
    name.push(".p7s");
    name.into()
}
