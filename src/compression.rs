//! Module file compression: detection by magic bytes and in-memory decompression.
//!
//! Like libkmod, the file name plays no part in detection; only the first bytes do.

use crate::limits::{self, LimitError};

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
    /// The data is larger than allowed, or memory for it could not be had.
    #[error(transparent)]
    Limit(#[from] LimitError),
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

/// Decompresses `data` (already classified as `kind`) into a new buffer of at most
/// `limit` bytes (callers reading modules pass [`limits::MODULE_SIZE_LIMIT`]).
///
/// Uncompressed data is copied as is. Truncated or corrupt streams are errors, never
/// partial results. A stream that declares a size over `limit` is refused before
/// anything is decoded; one that decodes past it stops there. Either way, and when
/// memory cannot be reserved, the error is [`DecompressError::Limit`]: nothing here
/// aborts on a failed allocation.
pub fn decompress(kind: Compression, data: &[u8], limit: u64) -> Result<Vec<u8>, DecompressError> {
    match kind {
        Compression::None => {
            if data.len() as u64 > limit {
                return Err(LimitError::TooLarge { limit }.into());
            }
            Ok(limits::copy(data)?)
        }
        Compression::Xz => decompress_xz(data, limit),
        Compression::Gzip => decompress_gzip(data, limit),
        Compression::Zstd => decompress_zstd(data, limit),
    }
}

/// Decodes every block of an .xz file, using a thread per core when the file has
/// several blocks (xz 5.4+ writes large files that way). Concatenated streams are
/// decoded one after the other, with stream padding between them, as liblzma's
/// `LZMA_CONCATENATED` does. The streams' indexes declare the decompressed size,
/// which sizes the buffer (or refuses the file) before decoding starts.
fn decompress_xz(data: &[u8], limit: u64) -> Result<Vec<u8>, DecompressError> {
    use liblzma::stream::{Action, Error, MtStreamBuilder, Status, Stream};
    let failed = |e: Error| match e {
        Error::Mem => DecompressError::Limit(LimitError::OutOfMemory),
        e => DecompressError::Corrupt("xz", e.to_string()),
    };
    let layout = xz_layout(data);
    let mut out: Vec<u8> = Vec::new();
    if let Some(layout) = &layout {
        limits::reserve_declared(&mut out, layout.decompressed, limit)?;
    }
    // Threads only pay for themselves when there are blocks to share out and the
    // cores are not already busy (in depmod's pool they are: reading one file per core).
    let threads = match layout.map(|l| l.last_stream_blocks) {
        Some(blocks) if blocks > 1 && rayon::current_thread_index().is_none() => {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get().min(blocks.min(8) as usize) as u32)
        }
        _ => 1,
    };
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
        .map_err(failed)?;
        loop {
            if out.len() == out.capacity() {
                limits::grow(&mut out, limit)?;
            }
            let before = stream.total_in();
            let action = if input.is_empty() {
                Action::Finish
            } else {
                Action::Run
            };
            let status = stream
                .process_vec(input, &mut out, action)
                .map_err(failed)?;
            input = &input[(stream.total_in() - before) as usize..];
            if out.len() as u64 > limit {
                return Err(LimitError::TooLarge { limit }.into());
            }
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

/// What the indexes of an .xz file declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct XzLayout {
    /// Decompressed size of all streams together (saturating).
    decompressed: u64,
    /// Number of blocks in the last stream.
    last_stream_blocks: u64,
}

/// Walks an .xz file's streams from the end: each ends in a 12-byte footer (CRC32,
/// backward size, flags, "YZ") that locates its index, whose records give each
/// block's unpadded and decompressed sizes, which in turn locate the stream header.
/// None when any of it does not add up (the decoder then reports what is wrong).
fn xz_layout(data: &[u8]) -> Option<XzLayout> {
    let mut end = data.len();
    let mut decompressed = 0u64;
    let mut last_stream_blocks = None;
    loop {
        // Stream padding: the NUL bytes before a footer, which itself ends in "YZ".
        end -= data[..end].iter().rev().take_while(|&&b| b == 0).count();
        if end == 0 {
            break;
        }
        let footer = data.get(end.checked_sub(12)?..end)?;
        if &footer[10..] != b"YZ" {
            return None;
        }
        let backward = (u64::from(u32::from_le_bytes(footer[4..8].try_into().ok()?)) + 1) * 4;
        let index_start = (end - 12).checked_sub(usize::try_from(backward).ok()?)?;
        let mut index = &data[index_start..end - 12];
        if index.first() != Some(&0) {
            return None;
        }
        index = &index[1..];
        let count = read_varint(&mut index)?;
        let mut blocks_size = 0u64;
        for _ in 0..count {
            let unpadded = read_varint(&mut index)?;
            let size = read_varint(&mut index)?;
            blocks_size = blocks_size.checked_add(unpadded.checked_add(3)? & !3)?;
            decompressed = decompressed.saturating_add(size);
        }
        let header_start = u64::try_from(index_start)
            .ok()?
            .checked_sub(blocks_size)?
            .checked_sub(12)?;
        let header_start = usize::try_from(header_start).ok()?;
        if !data[header_start..].starts_with(XZ_MAGIC) {
            return None;
        }
        last_stream_blocks.get_or_insert(count);
        end = header_start;
    }
    Some(XzLayout {
        decompressed,
        last_stream_blocks: last_stream_blocks?,
    })
}

/// An .xz variable-length integer: little-endian base 128, at most nine bytes.
fn read_varint(data: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..9 {
        let (&b, rest) = data.split_first()?;
        *data = rest;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Deflate cannot expand data more than about 1032 times (a 258-byte match in under
/// two bits), so a gzip trailer claiming more than this is not to be believed.
const GZIP_MAX_RATIO: u64 = 1032;

/// Decodes gzip members one after the other. The last member's trailer (ISIZE) holds
/// its size modulo 2^32, so a valid file is at least that long once decompressed:
/// when believable, it sizes the buffer or refuses the file at once.
fn decompress_gzip(data: &[u8], limit: u64) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    let isize_field = data
        .last_chunk::<4>()
        .map(|b| u64::from(u32::from_le_bytes(*b)));
    if let Some(declared) =
        isize_field.filter(|&n| n <= (data.len() as u64).saturating_mul(GZIP_MAX_RATIO))
    {
        limits::reserve_declared(&mut out, declared, limit)?;
    }
    limits::read_limited(flate2::read::MultiGzDecoder::new(data), &mut out, limit).map_err(
        |e| match e {
            limits::ReadError::Limit(e) => e.into(),
            limits::ReadError::Io(e) => DecompressError::Corrupt("gzip", e.to_string()),
        },
    )?;
    Ok(out)
}

/// Decodes zstd frames one after the other, streaming. The first frame's header
/// declares the decompressed size when the compressor knew it (the kernel's build
/// always does): that sizes the buffer, or refuses the file at once. Frames without
/// one are still read (libkmod refuses them), under the same limit.
fn decompress_zstd(data: &[u8], limit: u64) -> Result<Vec<u8>, DecompressError> {
    use zstd::zstd_safe::{self, DCtx, InBuffer, OutBuffer};
    let mut out = Vec::new();
    if let Ok(Some(declared)) = zstd_safe::get_frame_content_size(data) {
        limits::reserve_declared(&mut out, declared, limit)?;
    }
    let failed = |code: usize| {
        let allocation = zstd_safe::zstd_sys::ZSTD_ErrorCode::ZSTD_error_memory_allocation as usize;
        if code == allocation.wrapping_neg() {
            DecompressError::Limit(LimitError::OutOfMemory)
        } else {
            DecompressError::Corrupt("zstd", zstd_safe::get_error_name(code).to_string())
        }
    };
    let mut dctx = DCtx::try_create().ok_or(LimitError::OutOfMemory)?;
    let mut input = InBuffer::around(data);
    loop {
        if out.len() == out.capacity() {
            limits::grow(&mut out, limit)?;
        }
        let pos = out.len();
        let mut output = OutBuffer::around_pos(&mut out, pos);
        let hint = dctx
            .decompress_stream(&mut output, &mut input)
            .map_err(failed)?;
        let room_left = output.pos() < output.capacity();
        if out.len() as u64 > limit {
            return Err(LimitError::TooLarge { limit }.into());
        }
        if input.pos() == data.len() && room_left {
            // All input is in and all output is out: done if the frame is complete.
            if hint == 0 {
                return Ok(out);
            }
            return Err(DecompressError::Corrupt(
                "zstd",
                "unexpected end of input".into(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const LIMIT: u64 = limits::MODULE_SIZE_LIMIT;

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
            assert_eq!(decompress(kind, &data, LIMIT).unwrap(), payload);
            // Every truncation is an error, never a panic or a short result.
            for cut in [1, data.len() / 2, data.len() - 1] {
                assert!(
                    decompress(kind, &data[..cut], LIMIT).is_err(),
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
        assert_eq!(
            xz_layout(&blocks),
            Some(XzLayout {
                decompressed: payload.len() as u64,
                last_stream_blocks: 7
            })
        );
        assert_eq!(
            decompress(Compression::Xz, &blocks, LIMIT).unwrap(),
            payload
        );
        // Inside a rayon pool the same data is decoded on the calling thread.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        assert_eq!(
            pool.install(|| decompress(Compression::Xz, &blocks, LIMIT))
                .unwrap(),
            payload
        );

        // Two streams with stream padding between them, as `xz` concatenates them.
        let single = {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(b"tail").unwrap();
            e.finish().unwrap()
        };
        assert_eq!(xz_layout(&single).map(|l| l.last_stream_blocks), Some(1));
        let two = [&blocks[..], &[0; 8], &single[..], &[0; 4]].concat();
        let mut expected = payload.clone();
        expected.extend_from_slice(b"tail");
        assert_eq!(decompress(Compression::Xz, &two, LIMIT).unwrap(), expected);
        let bad_padding = [&blocks[..], &[0; 3], &single[..]].concat();
        assert!(decompress(Compression::Xz, &bad_padding, LIMIT).is_err());
        let garbage_after = [&blocks[..], b"junk"].concat();
        assert!(decompress(Compression::Xz, &garbage_after, LIMIT).is_err());
        for cut in [12, blocks.len() / 2, blocks.len() - 1] {
            assert!(decompress(Compression::Xz, &blocks[..cut], LIMIT).is_err());
        }
    }

    fn encoded(payload: &[u8]) -> [(Compression, Vec<u8>); 4] {
        let xz = {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(payload).unwrap();
            e.finish().unwrap()
        };
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(payload).unwrap();
            e.finish().unwrap()
        };
        // Streaming zstd: no content size in the frame header.
        let unsized_zst = {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
            e.include_contentsize(false).unwrap();
            e.write_all(payload).unwrap();
            e.finish().unwrap()
        };
        let sized_zst = zstd::bulk::compress(payload, 1).unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&unsized_zst).unwrap(),
            None
        );
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&sized_zst).unwrap(),
            Some(payload.len() as u64)
        );
        [
            (Compression::Xz, xz),
            (Compression::Gzip, gz),
            (Compression::Zstd, unsized_zst),
            (Compression::Zstd, sized_zst),
        ]
    }

    #[test]
    fn the_limit_is_inclusive_and_enforced() {
        let payload = vec![7u8; 100_000];
        let len = payload.len() as u64;
        for (kind, data) in encoded(&payload) {
            assert_eq!(decompress(kind, &data, len).unwrap(), payload, "{kind:?}");
            for limit in [0, 1, len / 2, len - 1] {
                assert_eq!(
                    decompress(kind, &data, limit).unwrap_err().to_string(),
                    format!("Cannot allocate memory (over the limit of {limit} bytes)"),
                    "{kind:?} with limit {limit}"
                );
            }
        }
        assert!(decompress(Compression::None, b"abcdef", 6).is_ok());
        assert!(decompress(Compression::None, b"abcdef", 5).is_err());
    }

    #[test]
    fn declared_sizes_over_the_limit_are_refused_before_decoding() {
        let payload = vec![0u8; 1 << 20];
        for (kind, data) in encoded(&payload) {
            let declared = match kind {
                Compression::Xz => xz_layout(&data).map(|l| l.decompressed),
                Compression::Gzip => Some(u64::from(u32::from_le_bytes(
                    *data.last_chunk::<4>().unwrap(),
                ))),
                _ => zstd::zstd_safe::get_frame_content_size(&data).unwrap(),
            };
            let Some(declared) = declared else {
                continue;
            };
            assert_eq!(declared, payload.len() as u64, "{kind:?}");
            // Corrupting the body after the size fields shows nothing was decoded: the
            // refusal comes first, where a decoder would have found the damage.
            let mut damaged = data.clone();
            let middle = damaged.len() / 2;
            damaged[middle] ^= 0xff;
            assert!(matches!(
                decompress(kind, &damaged, declared - 1),
                Err(DecompressError::Limit(LimitError::TooLarge { .. }))
            ));
        }
    }

    #[test]
    fn unbelievable_gzip_trailers_are_only_ignored() {
        // A trailer claiming more than deflate can expand to does not refuse the file.
        let mut gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(b"short").unwrap();
            e.finish().unwrap()
        };
        let n = gz.len();
        gz[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = decompress(Compression::Gzip, &gz, 1000).unwrap_err();
        assert!(matches!(err, DecompressError::Corrupt("gzip", _)), "{err}");
    }

    #[test]
    fn concatenated_zstd_frames() {
        let mut data = zstd::bulk::compress(b"first ", 1).unwrap();
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        e.include_contentsize(false).unwrap();
        e.write_all(b"second").unwrap();
        data.extend(e.finish().unwrap());
        assert_eq!(
            decompress(Compression::Zstd, &data, LIMIT).unwrap(),
            b"first second"
        );
        // The first frame's declared size is not the whole: the rest still has to fit.
        assert!(decompress(Compression::Zstd, &data, 8).is_err());
        data.extend_from_slice(b"junk");
        assert!(decompress(Compression::Zstd, &data, LIMIT).is_err());
    }
}
