//! Compressing a signed module again in the format it came in, with the settings the
//! kernel's build uses for modules and the integrity check of the original file.

use std::io::Write;

use crate::compression::{self, Compression};

#[derive(Debug, thiserror::Error)]
pub enum RecompressError {
    #[error("the xz file uses an integrity check this build cannot write (id {0})")]
    XzCheck(u8),
    #[error("{0} compression failed: {1}")]
    Failed(&'static str, String),
    #[error("the recompressed module does not decompress to what was signed")]
    RoundTrip,
}

/// `data` compressed as `kind`, keeping what `original` (the compressed file it came
/// from) chose: the xz check type, zstd's content checksum, gzip's OS byte.
/// Settings otherwise follow Kbuild: `xz --check=crc32 --lzma2=dict=1MiB`, `zstd` at
/// its default level 3, `gzip -n` at level 6. The result is decompressed and
/// compared before it is returned.
pub(super) fn recompress(
    kind: Compression,
    original: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, RecompressError> {
    let out = match kind {
        Compression::None => return Ok(data.to_vec()),
        Compression::Xz => xz(original, data)?,
        Compression::Zstd => zstd(original, data)?,
        Compression::Gzip => gzip(original, data)?,
    };
    match compression::decompress(kind, &out, crate::limits::MODULE_SIZE_LIMIT) {
        Ok(round) if round == data => Ok(out),
        _ => Err(RecompressError::RoundTrip),
    }
}

fn xz(original: &[u8], data: &[u8]) -> Result<Vec<u8>, RecompressError> {
    use liblzma::stream::{Check, Filters, LzmaOptions, Stream};
    let failed = |e: &dyn std::fmt::Display| RecompressError::Failed("xz", e.to_string());
    // Stream header: magic (6 bytes), then flags whose second byte's low nibble is
    // the check type.
    let check = match original.get(7).map(|b| b & 0x0f) {
        Some(0x00) => Check::None,
        Some(0x01) | None => Check::Crc32,
        Some(0x04) => Check::Crc64,
        Some(0x0a) => Check::Sha256,
        Some(other) => return Err(RecompressError::XzCheck(other)),
    };
    let mut options = LzmaOptions::new_preset(6).map_err(|e| failed(&e))?;
    options.dict_size(1 << 20);
    let mut filters = Filters::new();
    filters.lzma2(&options);
    let stream = Stream::new_stream_encoder(&filters, check).map_err(|e| failed(&e))?;
    let mut encoder = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    encoder.write_all(data).map_err(|e| failed(&e))?;
    encoder.finish().map_err(|e| failed(&e))
}

fn zstd(original: &[u8], data: &[u8]) -> Result<Vec<u8>, RecompressError> {
    use zstd::zstd_safe::CParameter;
    let failed = |e: &dyn std::fmt::Display| RecompressError::Failed("zstd", e.to_string());
    // Frame header descriptor (after the 4-byte magic): bit 2 is the content checksum.
    let checksum = original.get(4).is_some_and(|d| d & 0x04 != 0);
    let mut compressor = zstd::bulk::Compressor::new(3).map_err(|e| failed(&e))?;
    compressor
        .set_parameter(CParameter::ChecksumFlag(checksum))
        .map_err(|e| failed(&e))?;
    compressor.compress(data).map_err(|e| failed(&e))
}

fn gzip(original: &[u8], data: &[u8]) -> Result<Vec<u8>, RecompressError> {
    let failed = |e: &dyn std::fmt::Display| RecompressError::Failed("gzip", e.to_string());
    // Byte 9 of the member header names the operating system (3: Unix, as gzip
    // writes it).
    let os = original.get(9).copied().unwrap_or(3);
    let mut encoder = flate2::GzBuilder::new()
        .operating_system(os)
        .write(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(data).map_err(|e| failed(&e))?;
    encoder.finish().map_err(|e| failed(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> Vec<u8> {
        (0..50_000u32).flat_map(|i| (i / 7).to_le_bytes()).collect()
    }

    #[test]
    fn keeps_the_xz_check_type() {
        let data = payload();
        for (check, id) in [
            (liblzma::stream::Check::None, 0),
            (liblzma::stream::Check::Crc32, 1),
            (liblzma::stream::Check::Crc64, 4),
            (liblzma::stream::Check::Sha256, 10),
        ] {
            let stream = liblzma::stream::Stream::new_easy_encoder(1, check).unwrap();
            let mut e = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
            e.write_all(b"original").unwrap();
            let original = e.finish().unwrap();
            assert_eq!(original[7], id);
            let out = recompress(Compression::Xz, &original, &data).unwrap();
            assert_eq!(out[7], id);
            assert_eq!(
                compression::decompress(Compression::Xz, &out, crate::limits::MODULE_SIZE_LIMIT)
                    .unwrap(),
                data
            );
        }
        assert!(matches!(
            recompress(Compression::Xz, b"\xfd7zXZ\0\0\x03", &data),
            Err(RecompressError::XzCheck(3))
        ));
    }

    #[test]
    fn keeps_the_zstd_checksum_flag_and_gzip_os() {
        let data = payload();
        for checksum in [false, true] {
            let mut c = zstd::bulk::Compressor::new(1).unwrap();
            c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(checksum))
                .unwrap();
            let original = c.compress(b"original").unwrap();
            let out = recompress(Compression::Zstd, &original, &data).unwrap();
            assert_eq!(out[4] & 0x04 != 0, checksum);
            assert_eq!(
                compression::decompress(Compression::Zstd, &out, crate::limits::MODULE_SIZE_LIMIT)
                    .unwrap(),
                data
            );
        }
        let original = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        let out = recompress(Compression::Gzip, &original, &data).unwrap();
        assert_eq!(out[9], 3);
        assert_eq!(
            compression::decompress(Compression::Gzip, &out, crate::limits::MODULE_SIZE_LIMIT)
                .unwrap(),
            data
        );
    }
}
