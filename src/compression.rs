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
        Compression::Xz => decompress_xz(&data),
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

/// Decodes every block of an .xz file, using a thread per core when the file has
/// several blocks (xz 5.4+ writes large files that way). Concatenated streams are
/// decoded one after the other, with stream padding between them, as liblzma's
/// `LZMA_CONCATENATED` does.
fn decompress_xz(data: &[u8]) -> Result<Vec<u8>, DecompressError> {
    use liblzma::stream::{Action, MtStreamBuilder, Status, Stream};
    let corrupt = |e: liblzma::stream::Error| DecompressError::Corrupt("xz", e.to_string());
    // Threads only pay for themselves when there are blocks to share out and the
    // cores are not already busy (in depmod's pool they are: reading one file per core).
    let threads = match xz_last_stream_blocks(data) {
        Some(blocks) if blocks > 1 && rayon::current_thread_index().is_none() => {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get().min(blocks.min(8) as usize) as u32)
        }
        _ => 1,
    };
    let mut out: Vec<u8> = Vec::with_capacity(data.len() * 4);
    let mut input = data;
    loop {
        let mut stream = if threads > 1 {
            MtStreamBuilder::new()
                .threads(threads)
                .memlimit_threading(u64::MAX)
                .memlimit_stop(u64::MAX)
                .decoder()
        } else {
            Stream::new_stream_decoder(u64::MAX, 0)
        }
        .map_err(corrupt)?;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(4096));
            }
            let before = stream.total_in();
            let action = if input.is_empty() {
                Action::Finish
            } else {
                Action::Run
            };
            let status = stream
                .process_vec(input, &mut out, action)
                .map_err(corrupt)?;
            input = &input[(stream.total_in() - before) as usize..];
            match status {
                Status::StreamEnd => break,
                // liblzma's LZMA_BUF_ERROR: no progress is possible, and as there is
                // room for output, the input ended too soon.
                Status::MemNeeded => {
                    return Err(DecompressError::Corrupt(
                        "xz",
                        "unexpected end of input".into(),
                    ))
                }
                Status::Ok | Status::GetCheck => {}
            }
        }
        // Stream padding: NUL bytes in groups of four.
        let padding = input.iter().take_while(|&&b| b == 0).count();
        if padding % 4 != 0 {
            return Err(DecompressError::Corrupt("xz", "bad stream padding".into()));
        }
        input = &input[padding..];
        if input.is_empty() {
            return Ok(out);
        }
    }
}

/// The number of blocks the last .xz stream's index records, read from the stream
/// footer (12 bytes: CRC32, backward size, flags, "YZ") and the index it points to.
fn xz_last_stream_blocks(data: &[u8]) -> Option<u64> {
    let end = data.len() - data.iter().rev().take_while(|&&b| b == 0).count();
    let footer = data.get(end.checked_sub(12)?..end)?;
    if &footer[10..] != b"YZ" {
        return None;
    }
    let backward = (u32::from_le_bytes(footer[4..8].try_into().ok()?) as usize + 1) * 4;
    let index = data.get(end.checked_sub(12 + backward)?..)?;
    if index.first() != Some(&0) {
        return None;
    }
    // Number of records: a little-endian base-128 integer.
    let mut count = 0u64;
    for (i, &b) in index[1..].iter().take(9).enumerate() {
        count |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(count);
        }
    }
    None
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

    #[test]
    fn xz_with_several_blocks_and_streams() {
        use liblzma::stream::{Check, MtStreamBuilder};
        let payload: Vec<u8> = (0..400_000u32)
            .flat_map(|i| (i / 3).to_le_bytes())
            .collect();
        let encoder = MtStreamBuilder::new()
            .threads(2)
            .block_size(256 * 1024)
            .preset(1)
            .check(Check::Crc32)
            .encoder()
            .unwrap();
        let mut blocks = Vec::new();
        let mut e = liblzma::write::XzEncoder::new_stream(&mut blocks, encoder);
        e.write_all(&payload).unwrap();
        e.finish().unwrap();
        assert_eq!(xz_last_stream_blocks(&blocks), Some(7));
        assert_eq!(
            decompress(Compression::Xz, blocks.clone()).unwrap(),
            payload
        );
        // Inside a rayon pool the same data is decoded on the calling thread.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert_eq!(
            pool.install(|| decompress(Compression::Xz, blocks.clone()))
                .unwrap(),
            payload
        );

        // Two streams with stream padding between them, as `xz` concatenates them.
        let single = {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(b"tail").unwrap();
            e.finish().unwrap()
        };
        assert_eq!(xz_last_stream_blocks(&single), Some(1));
        let two = [&blocks[..], &[0; 8], &single[..], &[0; 4]].concat();
        let mut expected = payload.clone();
        expected.extend_from_slice(b"tail");
        assert_eq!(decompress(Compression::Xz, two).unwrap(), expected);
        let bad_padding = [&blocks[..], &[0; 3], &single[..]].concat();
        assert!(decompress(Compression::Xz, bad_padding).is_err());
        let garbage_after = [&blocks[..], b"junk"].concat();
        assert!(decompress(Compression::Xz, garbage_after).is_err());
        for cut in [12, blocks.len() / 2, blocks.len() - 1] {
            assert!(decompress(Compression::Xz, blocks[..cut].to_vec()).is_err());
        }
    }
}
