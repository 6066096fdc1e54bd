//! depmod with its module cache against reference kmod 34.2 on real Debian trees:
//! on a private copy of a tree, a random sequence of changes (modules replaced,
//! edited in place with their size and mtime kept, removed, added, renamed,
//! touched, aliases and exported symbols edited, symbolic links retargeted,
//! depmod.d changed), and after each one our depmod run with the cache must write
//! the eleven files byte for byte as reference kmod's full run on the same state.
//!
//! The sequence is random but seeded: `KMOD_CACHE_TEST_SEED=N` replays one, and
//! each step is printed (`cargo test -- --nocapture`).

mod common;
mod depmod_support;

use std::io::{Read, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{module_files_under, ours, reference, Rng, Tree};
use depmod_support::OUTPUTS;
use kmod_rs::depmod::cache::{FILE_NAME, RACY_MARGIN_NS};

/// Changes per tree: each of the ten kinds three times, in random order.
const KINDS: usize = 10;
const STEPS: usize = 3 * KINDS;

fn settle() {
    std::thread::sleep(Duration::from_nanos(RACY_MARGIN_NS as u64) + Duration::from_millis(200));
}

fn xz_decode(data: &[u8]) -> Vec<u8> {
    let stream =
        liblzma::stream::Stream::new_stream_decoder(u64::MAX, liblzma::stream::CONCATENATED)
            .unwrap();
    let mut out = Vec::new();
    liblzma::read::XzDecoder::new_stream(data, stream)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn xz_encode(data: &[u8], preset: u32, check: liblzma::stream::Check) -> Vec<u8> {
    let stream = liblzma::stream::Stream::new_easy_encoder(preset, check).unwrap();
    let mut encoder = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// A module file's image and how to write an edited image back.
struct Image {
    data: Vec<u8>,
    xz: bool,
}

impl Image {
    fn read(path: &Path) -> Image {
        let raw = std::fs::read(path).unwrap();
        let xz = raw.starts_with(b"\xfd7zXZ\0");
        let data = if xz { xz_decode(&raw) } else { raw };
        Image { data, xz }
    }

    /// The file for this image; with `size`, exactly that long (an xz file is
    /// recompressed until it fits, then filled up with stream padding, which
    /// both readers skip). None if it cannot be made to fit.
    fn file(&self, size: Option<usize>) -> Option<Vec<u8>> {
        if !self.xz {
            return (size.is_none_or(|s| s == self.data.len())).then(|| self.data.clone());
        }
        use liblzma::stream::{Check, PRESET_EXTREME};
        let tries = [
            (6, Check::Crc32),
            (6 | PRESET_EXTREME, Check::Crc32),
            (9 | PRESET_EXTREME, Check::Crc32),
            (1, Check::Crc32),
            (6, Check::Crc64),
        ];
        let Some(size) = size else {
            return Some(xz_encode(&self.data, 6, Check::Crc32));
        };
        tries.iter().find_map(|&(preset, check)| {
            let mut out = xz_encode(&self.data, preset, check);
            let fits = out.len() <= size && (size - out.len()) % 4 == 0;
            fits.then(|| {
                out.resize(size, 0);
                out
            })
        })
    }

    fn section(&self, name: &str) -> Option<std::ops::Range<usize>> {
        let info = kogen::find_section(&self.data, name)?;
        let start = info.offset as usize;
        Some(start..start + info.size as usize)
    }

    /// Changes one letter or digit at the end of a NUL-terminated string of
    /// `section` that starts with `prefix`: an alias value, or an exported
    /// symbol's name. False if there is none.
    fn edit_string(&mut self, section: &str, prefix: &[u8], rng: &mut Rng) -> bool {
        let Some(range) = self.section(section) else {
            return false;
        };
        let bytes = &self.data[range.clone()];
        let starts: Vec<usize> = (0..bytes.len())
            .filter(|&i| (i == 0 || bytes[i - 1] == 0) && bytes[i..].starts_with(prefix))
            .collect();
        if starts.is_empty() {
            return false;
        }
        let start = *rng.pick(&starts);
        let end = start + bytes[start..].iter().position(|&b| b == 0).unwrap_or(0);
        let Some(at) = (start + prefix.len()..end)
            .rev()
            .find(|&i| bytes[i].is_ascii_alphanumeric())
        else {
            return false;
        };
        let old = self.data[range.start + at];
        self.data[range.start + at] = if old == b'q' { b'x' } else { b'q' };
        true
    }
}

/// Replaces a file by renaming a new one over it.
fn replace(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("new-tmp");
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Writes a file of the same size in place and puts its mtime back (`touch -r`).
fn rewrite_in_place(path: &Path, data: &[u8]) {
    let meta = std::fs::metadata(path).unwrap();
    assert_eq!(meta.len(), data.len() as u64);
    let mtime = meta.modified().unwrap();
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all(data).unwrap();
    file.set_modified(mtime).unwrap();
}

struct Sequence {
    name: &'static str,
    kver: String,
    root: PathBuf,
    dir: PathBuf,
    conf: PathBuf,
    rng: Rng,
    added: usize,
}

impl Sequence {
    fn modules(&self) -> Vec<PathBuf> {
        module_files_under(&self.dir)
    }

    /// A module file small enough to recompress quickly, not a symbolic link.
    fn small_module(&mut self) -> PathBuf {
        let all: Vec<PathBuf> = self
            .modules()
            .into_iter()
            .filter(|p| {
                std::fs::symlink_metadata(p)
                    .is_ok_and(|m| m.file_type().is_file() && m.len() < 150_000)
            })
            .collect();
        self.rng.pick(&all).clone()
    }

    /// An edit of an alias or an exported symbol of some module; the module's path
    /// and its new image.
    fn edited_module(&mut self) -> (PathBuf, Image, &'static str) {
        loop {
            let path = self.small_module();
            let mut image = Image::read(&path);
            let (what, section, prefix) = if self.rng.below(2) == 0 {
                ("alias", ".modinfo", &b"alias="[..])
            } else {
                ("exported symbol", ".strtab", &b"__crc_"[..])
            };
            if image.edit_string(section, prefix, &mut self.rng) {
                return (path, image, what);
            }
        }
    }

    fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.dir)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// Applies a change of the given kind to a random module and says what it was.
    fn change(&mut self, kind: usize) -> String {
        match kind {
            0 => {
                let (path, image, what) = self.edited_module();
                replace(&path, &image.file(None).unwrap());
                format!("{what} edited, replaced by rename: {}", self.rel(&path))
            }
            1 | 2 => loop {
                let (path, image, what) = self.edited_module();
                let size = std::fs::metadata(&path).unwrap().len() as usize;
                if let Some(data) = image.file(Some(size)) {
                    rewrite_in_place(&path, &data);
                    return format!(
                        "{what} edited in place, same size, mtime restored: {}",
                        self.rel(&path)
                    );
                }
            },
            3 => {
                let path = self.small_module();
                std::fs::remove_file(&path).unwrap();
                format!("removed {}", self.rel(&path))
            }
            4 => {
                // A new module, or one in updates/ that overrides the original.
                let path = self.small_module();
                let file = path.file_name().unwrap().to_string_lossy().into_owned();
                self.added += 1;
                let target = if self.rng.below(2) == 0 {
                    self.dir.join("updates").join(&file)
                } else {
                    let suffix = &file[file.find(".ko").unwrap()..];
                    self.dir
                        .join("extra")
                        .join(format!("cachetest{}{suffix}", self.added))
                };
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::copy(&path, &target).unwrap();
                format!(
                    "added {} (a copy of {})",
                    self.rel(&target),
                    self.rel(&path)
                )
            }
            5 => {
                let path = self.small_module();
                let to = self
                    .dir
                    .join("kernel/moved")
                    .join(path.file_name().unwrap());
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::rename(&path, &to).unwrap();
                format!("renamed {} to {}", self.rel(&path), self.rel(&to))
            }
            6 => {
                let path = self.small_module();
                std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_modified(std::time::SystemTime::now())
                    .unwrap();
                format!("touched {}", self.rel(&path))
            }
            7 => {
                // updates/NAME as a symbolic link to some module file, made or
                // retargeted.
                let target = self.small_module();
                let file = target.file_name().unwrap().to_string_lossy().into_owned();
                let suffix = &file[file.find(".ko").unwrap()..];
                let link = self.dir.join("updates").join(format!("cachelink{suffix}"));
                std::fs::create_dir_all(link.parent().unwrap()).unwrap();
                let _ = std::fs::remove_file(&link);
                symlink(&target, &link).unwrap();
                format!("symlink {} -> {}", self.rel(&link), self.rel(&target))
            }
            _ => {
                let path = self.small_module();
                let file = path.file_name().unwrap().to_string_lossy().into_owned();
                let name = file[..file.find(".ko").unwrap()].to_string();
                let text = match self.rng.below(4) {
                    0 => format!("override {name} * extra\n"),
                    1 => format!("exclude {file}\n"),
                    2 => "search extra updates built-in\n".to_string(),
                    _ => String::new(),
                };
                std::fs::write(self.conf.join("test.conf"), &text).unwrap();
                format!("depmod.d: {text:?}")
            }
        }
    }

    /// Runs `program` on the tree; its exit status, stderr and the eleven files.
    fn depmod(&self, program: &Path, extra: &[&str]) -> (Option<i32>, String, Vec<Vec<u8>>) {
        let out = Command::new(program)
            .args(extra)
            .arg("-C")
            .arg(&self.conf)
            .arg("-b")
            .arg(&self.root)
            .arg(&self.kver)
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        let files = OUTPUTS
            .iter()
            .map(|f| std::fs::read(self.dir.join(f)).unwrap_or_default())
            .collect();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            files,
        )
    }

    /// Ours with the cache, then kmod, on the current state: the same files.
    /// Returns (modules reused, modules) from our run.
    fn compare(&self, what: &str) -> (usize, usize) {
        let (code, stderr, files) = self.depmod(&ours("depmod"), &["--cache", "-vvvv"]);
        let (kmod_code, kmod_stderr, kmod_files) = self.depmod(&reference("depmod"), &[]);
        assert_eq!(
            code, kmod_code,
            "{}: {what}: exit status\nours:\n{stderr}\nkmod:\n{kmod_stderr}",
            self.name
        );
        for ((name, a), b) in OUTPUTS.iter().zip(&files).zip(&kmod_files) {
            assert!(
                a == b,
                "{}: {what}: {name} differs from kmod's ({} vs {} bytes)",
                self.name,
                a.len(),
                b.len()
            );
        }
        stderr
            .lines()
            .find_map(|l| l.strip_prefix("depmod: DEBUG: module cache: "))
            .map(|l| {
                let words: Vec<usize> = l.split(' ').filter_map(|w| w.parse().ok()).collect();
                (words[0], words[1])
            })
            .unwrap_or_else(|| panic!("{}: {what}: no cache report:\n{stderr}", self.name))
    }
}

fn run_sequence(name: &'static str, seed: u64) {
    let started = Instant::now();
    let tree = Tree::get(name);
    // A real copy: changes never reach the shared tree, and no other process's
    // hard links change these files' ctimes.
    let root = tree.copy("depmod-cache", false);
    let conf = root.join("depmod.d");
    std::fs::create_dir_all(&conf).unwrap();
    let mut seq = Sequence {
        name,
        dir: tree.module_dir(&root),
        kver: tree.kver.clone(),
        root: root.clone(),
        conf,
        rng: Rng(seed | 1),
        added: 0,
    };
    settle();
    let (_, total) = seq.compare("first run");
    let (reused, _) = seq.compare("unchanged");
    assert_eq!(reused, total, "{name}: nothing reused from the first run");
    let (mut reused_sum, mut total_sum) = (0, 0);
    let mut kinds: Vec<usize> = (0..STEPS).map(|i| i % KINDS).collect();
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, seq.rng.below(i + 1));
    }
    for (step, kind) in kinds.into_iter().enumerate() {
        let what = seq.change(kind);
        eprintln!("{name} step {step}: {what}");
        let (reused, total) = seq.compare(&format!("step {step} ({what})"));
        // Only recently changed or newly included files are read again.
        assert!(
            reused + 60 >= total,
            "{name}: step {step} ({what}) reused only {reused} of {total}"
        );
        reused_sum += reused;
        total_sum += total;
    }
    assert!(std::fs::metadata(seq.dir.join(FILE_NAME)).is_ok());
    eprintln!(
        "{name}: {STEPS} changes, {reused_sum} of {total_sum} module reads answered by the cache, {:.0?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&root);
}

fn seed() -> u64 {
    std::env::var("KMOD_CACHE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6b6d_6f64_6361_6368)
}

#[test]
fn random_changes_on_trixie() {
    run_sequence("trixie-amd64", seed());
}

#[test]
fn random_changes_on_bookworm() {
    run_sequence("bookworm-amd64", seed() ^ 0x9e37_79b9_7f4a_7c15);
}
