//! Module file compression: detection by magic bytes and in-memory decompression.
//!
//! Like libkmod, the file name plays no part in detection; only the first bytes do.

use std::io::Read;

/// How a module file is compressed, as told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd,
    Xz,
    Gzip,
}

const ZSTD_MAGIC: &[u8] = &[0x28, 0xB5, 0x2F, 0xFD];
const XZ_MAGIC: &[u8] = &[0xFD, b'7', b'z', b'X', b'Z', 0x00];
const GZIP_MAGIC: &[u8] = &[0x1F, 0x8B];

/// Smallest file libkmod accepts: it reads six magic bytes before anything else.
pub const MIN_FILE_SIZE: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    #[error("corrupt or truncated {0} data ({1})")]
    Corrupt(&'static str, String),
}

impl Compression {
    /// Classifies data by its leading magic, in libkmod's order (zstd, xz, gzip).
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else if head.starts_with(XZ_MAGIC) {
            Compression::Xz
        } else if head.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else {
            Compression::None
        }
    }

    /// The name the kernel uses in `/sys/module/compression`.
    pub fn kernel_name(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Zstd => Some("zstd"),
            Compression::Xz => Some("xz"),
            Compression::Gzip => Some("gzip"),
        }
    }

    /// Parses the content of `/sys/module/compression`.
    pub fn from_kernel_name(text: &str) -> Option<Compression> {
        match text.trim_end_matches('\n') {
            "zstd" => Some(Compression::Zstd),
            "xz" => Some(Compression::Xz),
            "gzip" => Some(Compression::Gzip),
            _ => None,
        }
    }
}

/// Decompresses `data` (already classified as `kind`) into a new buffer.
///
/// Uncompressed data is returned as is. Truncated or corrupt streams are errors,
/// never partial results.
pub fn decompress(kind: Compression, data: Vec<u8>) -> Result<Vec<u8>, DecompressError> {
    match kind {
        Compression::None => Ok(data),
        Compression::Xz => {
            let mut out = Vec::with_capacity(data.len() * 4);
            // Multi-stream like liblzma's `lzma_stream_decoder(.., LZMA_CONCATENATED)`.
            liblzma::read::XzDecoder::new_multi_decoder(&data[..])
                .read_to_end(&mut out)
                .map_err(|e| DecompressError::Corrupt("xz", e.to_string()))?;
            Ok(out)
        }
        Compression::Gzip => {
            let mut out = Vec::with_capacity(data.len() * 4);
            flate2::read::MultiGzDecoder::new(&data[..])
                .read_to_end(&mut out)
                .map_err(|e| DecompressError::Corrupt("gzip", e.to_string()))?;
            Ok(out)
        }
        Compression::Zstd => decompress_zstd(&data),
    }
}

fn decompress_zstd(data: &[u8]) -> Result<Vec<u8>, DecompressError> {
    // Pre-size from the frame header when it declares one; fall back to streaming so
    // frames written without a content size still decode (libkmod refuses those, which
    // is a limitation, not something callers rely on).
    let declared = zstd::zstd_safe::get_frame_content_size(data).ok().flatten();
    let mut out = Vec::with_capacity(declared.map_or(data.len() * 4, |n| n.min(1 << 30) as usize));
    zstd::stream::read::Decoder::with_buffer(data)
        .and_then(|mut d| d.read_to_end(&mut out))
        .map_err(|e| DecompressError::Corrupt("zstd", e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn detects_by_magic_only() {
        assert_eq!(
            Compression::detect(&[0x28, 0xB5, 0x2F, 0xFD, 0, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"\xFD7zXZ\0"), Compression::Xz);
        assert_eq!(
            Compression::detect(&[0x1F, 0x8B, 8, 0, 0, 0]),
            Compression::Gzip
        );
        assert_eq!(Compression::detect(b"\x7FELF\x02\x01"), Compression::None);
        assert_eq!(Compression::detect(b""), Compression::None);
    }

    #[test]
    fn round_trips_every_format() {
        let payload: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let xz = {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
            e.write_all(&payload).unwrap();
            e.finish().unwrap()
        };
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&payload).unwrap();
            e.finish().unwrap()
        };
        let zst = zstd::encode_all(&payload[..], 3).unwrap();
        for data in [xz, gz, zst] {
            let kind = Compression::detect(&data);
            assert_ne!(kind, Compression::None);
            assert_eq!(decompress(kind, data.clone()).unwrap(), payload);
            // Every truncation is an error, never a panic or a short result.
            for cut in [1, data.len() / 2, data.len() - 1] {
                assert!(
                    decompress(kind, data[..cut].to_vec()).is_err(),
                    "{kind:?} cut at {cut}"
                );
            }
        }
    }
}
