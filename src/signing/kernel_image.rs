//! The certificates a kernel trusts from the moment it boots: the built-in list
//! (`system_certificate_list`, the module signing key and `CONFIG_SYSTEM_TRUSTED_KEYS`)
//! inside its image.
//!
//! The image is an x86 bzImage (its setup header locates the compressed kernel), an
//! EFI zboot image (arm64, riscv64, loongarch64), a compressed kernel (gzip, xz or
//! zstd, as arm64's `Image.gz`), or an uncompressed one (an ELF `vmlinux` or a raw
//! `Image`). In the kernel, the list is DER certificates back to back (each with a
//! two-byte length, as the kernel's loader requires), 8-byte aligned, followed at the
//! next 8-byte boundary (after the zero-filled space `CONFIG_SYSTEM_EXTRA_CERTIFICATE`
//! reserves, if any) by its length as a 64-bit or 32-bit integer: that is how it is
//! told from other certificates in the image. In an ELF image only the init data
//! sections, where the list lives, are searched.
//!
//! Keys the kernel adds at run time (the secondary and machine keyrings, MOK) are not
//! in the image, and its revocation list is not consulted.

use std::io::Read;

use x509_cert::der::Decode;

use super::keys::{Certificate, KeyError};

/// The largest decompressed kernel accepted.
pub const MAX_KERNEL_SIZE: usize = 512 << 20;

/// How far past the list its length may be, to allow for an extra certificate's
/// reserved space (`CONFIG_SYSTEM_EXTRA_CERTIFICATE_SIZE`, 4 KiB by default).
const MAX_RESERVED: usize = 64 << 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelImageError {
    #[error("the kernel is compressed with {0}, which this build cannot decompress")]
    UnsupportedCompression(&'static str),
    #[error("the kernel does not decompress: {0}")]
    Decompress(String),
    #[error("the decompressed kernel is larger than {} MiB", MAX_KERNEL_SIZE >> 20)]
    TooLarge,
    #[error("the kernel image's header points outside the file")]
    BadHeader,
    #[error("no built-in certificate list found in the kernel")]
    NoCertificateList,
    #[error("the built-in certificate list is malformed: {0}")]
    BadCertificate(KeyError),
}

/// The built-in trusted certificates of a kernel image.
pub fn builtin_certificates(image: &[u8]) -> Result<Vec<Certificate>, KernelImageError> {
    let kernel = kernel_proper(image)?;
    let list = certificate_list(&kernel).ok_or(KernelImageError::NoCertificateList)?;
    split_list(list)
}

/// The uncompressed kernel inside an image.
fn kernel_proper(image: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, KernelImageError> {
    if let Some(payload) = bzimage_payload(image)? {
        return decompress(payload).map(Into::into);
    }
    if let Some(payload) = zboot_payload(image)? {
        return decompress(payload).map(Into::into);
    }
    if compression_of(image).is_some() {
        return decompress(image).map(Into::into);
    }
    Ok(image.into())
}

fn u32_le(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// An x86 bzImage's compressed kernel: the setup header (`HdrS`, protocol 2.08 or
/// later) gives its offset and length from the start of the protected-mode code,
/// which follows the setup sectors.
fn bzimage_payload(image: &[u8]) -> Result<Option<&[u8]>, KernelImageError> {
    if image.get(0x202..0x206) != Some(b"HdrS") {
        return Ok(None);
    }
    // The boot protocol version; 2.08 added the payload fields.
    match image.get(0x206..0x208) {
        Some(v) if u16::from_le_bytes([v[0], v[1]]) >= 0x208 => {}
        _ => return Ok(None),
    }
    let setup_sects = match image.get(0x1f1) {
        Some(0) => 4,
        Some(&n) => usize::from(n),
        None => return Err(KernelImageError::BadHeader),
    };
    let start = (setup_sects + 1) * 512;
    let (Some(offset), Some(length)) = (u32_le(image, 0x248), u32_le(image, 0x24c)) else {
        return Err(KernelImageError::BadHeader);
    };
    let begin = start
        .checked_add(offset as usize)
        .ok_or(KernelImageError::BadHeader)?;
    payload_at(image, begin, length)
}

/// `length` bytes of `image` from `begin`, which a header said are there.
fn payload_at(image: &[u8], begin: usize, length: u32) -> Result<Option<&[u8]>, KernelImageError> {
    let end = begin
        .checked_add(length as usize)
        .ok_or(KernelImageError::BadHeader)?;
    image
        .get(begin..end)
        .map(Some)
        .ok_or(KernelImageError::BadHeader)
}

/// An EFI zboot image's payload: `MZ`, then `zimg`, the payload's offset and size.
fn zboot_payload(image: &[u8]) -> Result<Option<&[u8]>, KernelImageError> {
    if image.get(..2) != Some(b"MZ") || image.get(4..8) != Some(b"zimg") {
        return Ok(None);
    }
    let (Some(offset), Some(size)) = (u32_le(image, 8), u32_le(image, 12)) else {
        return Err(KernelImageError::BadHeader);
    };
    payload_at(image, offset as usize, size)
}

/// The compression of a kernel payload, by its magic; an error names the formats the
/// kernel can use that this build does not read.
fn compression_of(data: &[u8]) -> Option<Result<&'static str, KernelImageError>> {
    const FORMATS: [(&[u8], &str); 7] = [
        (&[0x1f, 0x8b], "gzip"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (&[0x5d, 0, 0], "lzma"),
        (b"BZh", "bzip2"),
        (&[0x89, b'L', b'Z', b'O'], "lzo"),
        (&[0x02, 0x21, 0x4c, 0x18], "lz4"),
    ];
    let (_, name) = FORMATS.iter().find(|(magic, _)| data.starts_with(magic))?;
    Some(match *name {
        "gzip" | "xz" | "zstd" => Ok(name),
        other => Err(KernelImageError::UnsupportedCompression(other)),
    })
}

/// Decompresses one stream (the kernel's build appends the size after it, which is
/// ignored), growing the output fallibly up to [`MAX_KERNEL_SIZE`].
fn decompress(payload: &[u8]) -> Result<Vec<u8>, KernelImageError> {
    let failed = |e: std::io::Error| KernelImageError::Decompress(e.to_string());
    let format = compression_of(payload)
        .unwrap_or(Err(KernelImageError::Decompress("unknown format".into())))?;
    let reader: Box<dyn Read + '_> = match format {
        "gzip" => Box::new(flate2::read::GzDecoder::new(payload)),
        "xz" => Box::new(liblzma::read::XzDecoder::new(payload)),
        _ => Box::new(
            zstd::stream::read::Decoder::with_buffer(payload)
                .map_err(failed)?
                .single_frame(),
        ),
    };
    let mut out = Vec::new();
    let mut limited = reader.take(MAX_KERNEL_SIZE as u64 + 1);
    loop {
        const CHUNK: usize = 1 << 20;
        if out.len() > MAX_KERNEL_SIZE {
            return Err(KernelImageError::TooLarge);
        }
        out.try_reserve(CHUNK)
            .map_err(|_| KernelImageError::TooLarge)?;
        let start = out.len();
        out.resize(start + CHUNK, 0);
        let n = loop {
            match limited.read(&mut out[start..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match n {
            Ok(0) => {
                out.truncate(start);
                return Ok(out);
            }
            Ok(n) => out.truncate(start + n),
            Err(e) => return Err(failed(e)),
        }
    }
}

/// The regions of the kernel to search: the ELF sections holding init data, else the
/// whole image.
fn search_regions(kernel: &[u8]) -> Vec<&[u8]> {
    use object::{Object, ObjectSection};
    let regions: Vec<&[u8]> = object::File::parse(kernel)
        .map(|elf| {
            elf.sections()
                .filter(|s| matches!(s.name(), Ok(".init.data" | ".init.rodata")))
                .filter_map(|s| {
                    let (offset, size) = s.file_range()?;
                    let end = offset.checked_add(size)?;
                    kernel.get(usize::try_from(offset).ok()?..usize::try_from(end).ok()?)
                })
                .collect()
        })
        .unwrap_or_default();
    if regions.is_empty() {
        vec![kernel]
    } else {
        regions
    }
}

/// The first run of certificates at an 8-byte boundary followed by its own length.
fn certificate_list(kernel: &[u8]) -> Option<&[u8]> {
    for region in search_regions(kernel) {
        // Section data starts 8-aligned in the file as in memory (alignment of the
        // section, which is larger), and so does a raw image.
        let mut at = 0;
        while at + 8 <= region.len() {
            let bounds = certificate_run(region, at);
            let Some((&end, starts)) = bounds.split_last().filter(|(_, s)| !s.is_empty()) else {
                at += 8;
                continue;
            };
            // The list may start after other certificates that happen to precede it.
            for &start in starts.iter().filter(|&&s| s % 8 == 0) {
                if length_follows(region, start, end) {
                    return Some(&region[start..end]);
                }
            }
            at = end.next_multiple_of(8);
        }
    }
    None
}

/// The boundaries of the certificates back to back from `start` (each `30 82 LL LL`,
/// starting with a TBS `30 82`, and parsing as a certificate): `start`, the end of
/// each one.
fn certificate_run(data: &[u8], start: usize) -> Vec<usize> {
    let mut bounds = vec![start];
    let mut at = start;
    while let Some(header) = data.get(at..at + 6) {
        if header[0] != 0x30 || header[1] != 0x82 || header[4] != 0x30 || header[5] != 0x82 {
            break;
        }
        let end = at + 4 + usize::from(u16::from_be_bytes([header[2], header[3]]));
        match data.get(at..end) {
            Some(cert) if x509_cert::Certificate::from_der(cert).is_ok() => {}
            _ => break,
        }
        at = end;
        bounds.push(at);
    }
    bounds
}

/// Whether the list's length in bytes follows the run `start..end`: at the next
/// 8-byte boundary, or after zero bytes reserved there; as a little- or big-endian
/// 64-bit or 32-bit integer.
fn length_follows(data: &[u8], start: usize, end: usize) -> bool {
    let Ok(len) = u32::try_from(end - start) else {
        return false;
    };
    let mut at = end.next_multiple_of(8);
    let limit = at + MAX_RESERVED + 16;
    while let Some(word) = data.get(at..at + 8) {
        let le = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        let be = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        let be64_low = u32::from_be_bytes([word[4], word[5], word[6], word[7]]);
        if le == len || be == len || (be == 0 && be64_low == len) {
            return true;
        }
        if word != [0; 8] || at >= limit {
            return false;
        }
        at += 8;
    }
    false
}

/// The certificates of a list found in the image.
fn split_list(list: &[u8]) -> Result<Vec<Certificate>, KernelImageError> {
    let mut certs = Vec::new();
    let mut at = 0;
    while at < list.len() {
        let len = list
            .get(at + 2..at + 4)
            .map(|l| 4 + usize::from(u16::from_be_bytes([l[0], l[1]])))
            .ok_or(KernelImageError::NoCertificateList)?;
        let der = list
            .get(at..at + len)
            .ok_or(KernelImageError::NoCertificateList)?;
        certs.push(Certificate::from_der(der).map_err(KernelImageError::BadCertificate)?);
        at += len;
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_after_the_list() {
        let mut data = vec![0u8; 64];
        data[16..20].copy_from_slice(&13u32.to_le_bytes());
        assert!(length_follows(&data, 0, 13));
        assert!(!length_follows(&data, 0, 12));
        // After reserved zero space, big-endian 64-bit.
        let mut data = vec![0u8; 128];
        data[100..104].copy_from_slice(&13u32.to_be_bytes());
        assert!(length_follows(&data, 0, 13));
        // Something else in between stops the search.
        data[24] = 1;
        assert!(!length_follows(&data, 0, 13));
        assert!(!length_follows(&data[..20], 0, 13));
    }

    #[test]
    fn images_that_are_not_kernels() {
        assert_eq!(
            builtin_certificates(b"").unwrap_err(),
            KernelImageError::NoCertificateList
        );
        let mut bz = vec![0u8; 0x300];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        bz[0x206] = 0x0f;
        bz[0x207] = 0x02;
        bz[0x248..0x24c].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            builtin_certificates(&bz).unwrap_err(),
            KernelImageError::BadHeader
        );
        assert_eq!(
            builtin_certificates(b"BZh91AY&SY").unwrap_err(),
            KernelImageError::UnsupportedCompression("bzip2")
        );
        assert!(matches!(
            builtin_certificates(&[0x1f, 0x8b, 8, 0, 0]).unwrap_err(),
            KernelImageError::Decompress(_)
        ));
    }
}
