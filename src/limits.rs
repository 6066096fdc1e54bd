//! Ceilings on memory whose size a file decides, and fallible ways to fill it.
//!
//! A module file (or the compressed stream inside it) says how much memory reading it
//! takes, and the tools run as root in early boot: an allocation sized by such a file
//! must never abort the process. Buffers here grow by fallible reservation and never
//! past a ceiling; running out either way is an error callers report as ENOMEM
//! ("Cannot allocate memory"), as kmod does when its own allocation fails.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use nix::errno::Errno;

/// Ceiling on a module image in memory, decompressed: `INT_MAX` bytes (2 GiB - 1).
///
/// It is the kernel's own ceiling on a module file: `finit_module` reads the file with
/// `kernel_read_file(file, 0, &buf, INT_MAX, NULL, READING_MODULE)` and refuses a larger
/// one, so no uncompressed module above it can be loaded from a file. Real modules are
/// far below: a distribution's stripped amdgpu is about 30 MB, the largest unstripped
/// modules of a debug build a few hundred MB. The same ceiling bounds the compressed
/// file and any other file read whole in place of a module.
pub const MODULE_SIZE_LIMIT: u64 = i32::MAX as u64;

/// Where a buffer starts growing when nothing better is known.
const FIRST_CHUNK: usize = 64 * 1024;

/// Why a buffer could not hold the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// The data is (or declares itself) larger than the ceiling.
    #[error("Cannot allocate memory (over the limit of {limit} bytes)")]
    TooLarge { limit: u64 },
    /// Reserving memory for the data failed.
    #[error("Cannot allocate memory")]
    OutOfMemory,
}

impl LimitError {
    pub fn errno(&self) -> Errno {
        Errno::ENOMEM
    }
}

/// A failed whole-file read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Limit(#[from] LimitError),
}

impl ReadError {
    pub fn errno(&self) -> Errno {
        match self {
            ReadError::Io(e) => Errno::from_raw(e.raw_os_error().unwrap_or(Errno::EIO as i32)),
            ReadError::Limit(e) => e.errno(),
        }
    }
}

/// The largest capacity a buffer for at most `limit` bytes needs: one byte more than
/// the limit, so that data of exactly `limit` bytes ends with room to spare and data
/// that goes on is seen to pass the limit.
fn max_capacity(limit: u64) -> usize {
    usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX)
}

/// Makes room for more data in `buf` (full or not): doubles its capacity, up to what
/// `limit` allows. Fails with `TooLarge` when `buf` already holds more than `limit`
/// bytes, or has no room left and the limit allows none.
pub fn grow(buf: &mut Vec<u8>, limit: u64) -> Result<(), LimitError> {
    let max = max_capacity(limit);
    if buf.len() as u64 > limit || buf.len() >= max {
        return Err(LimitError::TooLarge { limit });
    }
    let target = buf.capacity().saturating_mul(2).max(FIRST_CHUNK).min(max);
    if target <= buf.len() {
        return Err(LimitError::TooLarge { limit });
    }
    buf.try_reserve_exact(target - buf.len())
        .map_err(|_| LimitError::OutOfMemory)
}

/// Prepares `buf` for data that declares its own size (a header field, an index):
/// refuses at once a size over `limit`, and reserves room for the whole of it (plus
/// the byte that shows the end), fallibly. The size stays a claim: data that turns out
/// longer still grows the buffer, under the same limit.
pub fn reserve_declared(buf: &mut Vec<u8>, declared: u64, limit: u64) -> Result<(), LimitError> {
    if declared > limit {
        return Err(LimitError::TooLarge { limit });
    }
    let want = max_capacity(declared).saturating_sub(buf.len());
    buf.try_reserve_exact(want)
        .map_err(|_| LimitError::OutOfMemory)
}

/// Appends everything `reader` yields to `out`, which never holds more than `limit`
/// bytes: reading more is `TooLarge`, failing to grow is `OutOfMemory`. Whatever
/// capacity `out` already has is used first.
pub fn read_limited<R: Read>(
    mut reader: R,
    out: &mut Vec<u8>,
    limit: u64,
) -> Result<(), ReadError> {
    // `out` is kept zero-filled up to its capacity so that `read` gets an initialised
    // slice; `filled` is where the data ends.
    let mut filled = out.len();
    let result = loop {
        if filled == out.len() {
            if out.len() == out.capacity() {
                if let Err(e) = grow(out, limit) {
                    break Err(e.into());
                }
            }
            out.resize(out.capacity(), 0);
        }
        match reader.read(&mut out[filled..]) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                filled += n;
                if filled as u64 > limit {
                    break Err(LimitError::TooLarge { limit }.into());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e.into()),
        }
    };
    out.truncate(filled);
    result
}

/// Reads a whole file, like `std::fs::read`, but refuses more than `limit` bytes and
/// reports a failed allocation instead of aborting. Works for files whose size `stat`
/// does not tell (`/proc`, pipes, character devices).
pub fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    read_open_file(&File::open(path)?, limit)
}

/// A whole text or data file (configuration, `modules.builtin.modinfo`, System.map):
/// [`read_file`] under the module ceiling, its failures as I/O errors (ENOMEM for
/// the ceiling), for callers that report errno texts.
pub fn read_whole(path: &Path) -> io::Result<Vec<u8>> {
    read_file(path, MODULE_SIZE_LIMIT).map_err(|e| match e {
        ReadError::Io(e) => e,
        ReadError::Limit(e) => io::Error::from_raw_os_error(e.errno() as i32),
    })
}

/// [`read_file`] for a file already open, read from its current position.
pub fn read_open_file(file: &File, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    // A regular file's size is a good first guess; a wrong one only costs growth.
    if let Ok(meta) = file.metadata() {
        if meta.is_file() && meta.len() > 0 {
            reserve_declared(&mut out, meta.len(), limit)?;
        }
    }
    read_limited(file, &mut out, limit)?;
    Ok(out)
}

/// A copy of `data` in a new buffer, reserved fallibly.
pub fn copy(data: &[u8]) -> Result<Vec<u8>, LimitError> {
    let mut out = Vec::new();
    out.try_reserve_exact(data.len())
        .map_err(|_| LimitError::OutOfMemory)?;
    out.extend_from_slice(data);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that yields `n` zero bytes in small pieces.
    struct Zeros(u64);

    impl Read for Zeros {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(1000).min(self.0 as usize);
            buf[..n].fill(0);
            self.0 -= n as u64;
            Ok(n)
        }
    }

    #[test]
    fn reads_up_to_the_limit_and_no_further() {
        for (len, limit) in [(0, 0), (0, 10), (10, 10), (100_000, 100_000), (5, 1 << 40)] {
            let mut out = Vec::new();
            read_limited(Zeros(len), &mut out, limit).unwrap();
            assert_eq!(out.len() as u64, len);
        }
        for (len, limit) in [(1, 0), (11, 10), (100_001, 100_000)] {
            let mut out = Vec::new();
            let err = read_limited(Zeros(len), &mut out, limit).unwrap_err();
            assert!(
                matches!(err, ReadError::Limit(LimitError::TooLarge { limit: l }) if l == limit),
                "{len} over {limit}: {err}"
            );
            assert!(out.len() as u64 <= limit + 1);
        }
    }

    #[test]
    fn declared_sizes_are_checked_and_reserved() {
        let mut out = Vec::new();
        assert_eq!(
            reserve_declared(&mut out, 11, 10),
            Err(LimitError::TooLarge { limit: 10 })
        );
        reserve_declared(&mut out, 10, 10).unwrap();
        assert!(out.capacity() >= 11);
        // Filling exactly the declared size needs no more memory.
        let cap = out.capacity();
        read_limited(Zeros(10), &mut out, 10).unwrap();
        assert_eq!((out.len(), out.capacity()), (10, cap));
        // A claim that cannot be met in this address space fails cleanly.
        let mut huge = Vec::new();
        assert_eq!(
            reserve_declared(&mut huge, u64::MAX / 2, u64::MAX),
            Err(LimitError::OutOfMemory)
        );
    }

    #[test]
    fn growth_stops_at_the_limit() {
        let mut buf = Vec::new();
        grow(&mut buf, 3).unwrap();
        assert_eq!(buf.capacity(), 4);
        buf.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(grow(&mut buf, 3), Err(LimitError::TooLarge { limit: 3 }));
    }

    #[test]
    fn whole_files_and_special_files() {
        let dir = std::env::temp_dir().join(format!("kmod-rs-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, b"hello").unwrap();
        assert_eq!(read_file(&path, 5).unwrap(), b"hello");
        assert!(matches!(
            read_file(&path, 4),
            Err(ReadError::Limit(LimitError::TooLarge { limit: 4 }))
        ));
        // An endless character device stops at the limit.
        assert!(matches!(
            read_file(Path::new("/dev/zero"), 1 << 20),
            Err(ReadError::Limit(LimitError::TooLarge { .. }))
        ));
        let missing = read_file(&dir.join("missing"), 5).unwrap_err();
        assert_eq!(missing.errno(), Errno::ENOENT);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
