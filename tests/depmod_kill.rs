//! depmod killed at random moments on a copy of a real tree (trixie): whatever the
//! moment, every output file is either its complete old or its complete new
//! version, at most one temporary file is left, and the next run cleans up.

mod common;
mod depmod_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ours, Rng, Tree};
use depmod_support::{temporaries, OUTPUTS};

const KILLS: usize = 40;

type Set = BTreeMap<&'static str, Vec<u8>>;

fn read_set(dir: &Path) -> Set {
    OUTPUTS
        .iter()
        .map(|&name| (name, std::fs::read(dir.join(name)).unwrap()))
        .collect()
}

fn write_set(dir: &Path, set: &Set) {
    for (name, data) in set {
        std::fs::write(dir.join(name), data).unwrap();
    }
}

fn depmod(root: &Path, kver: &str) -> Command {
    let mut cmd = Command::new(ours("depmod"));
    cmd.arg("-b")
        .arg(root)
        .arg(kver)
        .env("LC_ALL", "C")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Whether process `pid` holds a file being written in an output directory (an
/// unnamed temporary file, or one of kmod's temporary names), seen through /proc.
fn is_writing(pid: u32) -> bool {
    let held = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten();
    held.filter_map(|e| std::fs::read_link(e.path()).ok())
        .any(|target| {
            let target = target.to_string_lossy().into_owned();
            target.contains("/#") && target.ends_with(" (deleted)")
                || OUTPUTS.iter().any(|o| target.contains(&format!("/{o}.")))
        })
}

/// Starts depmod and waits until it writes (or ends); the child and when writing
/// started, if it did.
fn start_until_writing(root: &Path, kver: &str) -> (Child, Instant, Option<Duration>) {
    let start = Instant::now();
    let mut child = depmod(root, kver).spawn().unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            return (child, start, None);
        }
        if is_writing(child.id()) {
            return (child, start, Some(start.elapsed()));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Runs depmod to the end: how long it took, and when it started writing.
fn timed_run(root: &Path, kver: &str) -> (Duration, Option<Duration>) {
    let (mut child, start, writing) = start_until_writing(root, kver);
    let status = child.wait().unwrap();
    assert!(status.success(), "depmod failed: {status}");
    (start.elapsed(), writing)
}

#[test]
fn killed_at_random_moments() {
    let seed = std::env::var("DEPMOD_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("depmod kill test seed: {seed} (DEPMOD_KILL_SEED={seed} repeats the delays)");
    let mut rng = Rng(seed);

    let tree = Tree::get("trixie-amd64");
    let root = tree.copy("depmod-kill", true);
    let dir = tree.module_dir(&root);

    // The old set: the tree without its wireless drivers.
    let wireless = dir.join("kernel/drivers/net/wireless");
    let aside = root.join("wireless-aside");
    std::fs::rename(&wireless, &aside).unwrap();
    timed_run(&root, &tree.kver);
    let old = read_set(&dir);
    std::fs::rename(&aside, &wireless).unwrap();
    let (duration, writing) = timed_run(&root, &tree.kver);
    let new = read_set(&dir);
    let differing = OUTPUTS.iter().filter(|n| old[*n] != new[*n]).count();
    assert!(
        differing >= 6,
        "old and new sets differ in {differing} files only"
    );
    let writing = writing.expect("depmod never seen writing");
    let write_phase = duration.saturating_sub(writing);
    println!(
        "full run {:.3}s, writing for the last {:.3}s",
        duration.as_secs_f64(),
        write_phase.as_secs_f64()
    );

    let (mut all_old, mut all_new, mut mixed, mut left) = (0, 0, 0, 0);
    for kill in 0..KILLS {
        write_set(&dir, &old);
        // Half of the kills anywhere in the run (or just after), half while it
        // writes: the writing is a small part of the run.
        let (mut child, delay) = if kill % 2 == 0 {
            let delay = duration.mul_f64(1.1 * rng.unit());
            let child = depmod(&root, &tree.kver).spawn().unwrap();
            std::thread::sleep(delay);
            (child, delay)
        } else {
            let (child, start, _) = start_until_writing(&root, &tree.kver);
            std::thread::sleep(write_phase.mul_f64(1.2 * rng.unit()));
            (child, start.elapsed())
        };
        let _ = child.kill();
        child.wait().unwrap();

        let now = read_set(&dir);
        for name in OUTPUTS {
            assert!(
                now[name] == old[name] || now[name] == new[name],
                "kill {kill} after {delay:?} (seed {seed}): {name} is neither old nor new ({} bytes)",
                now[name].len()
            );
        }
        let temps = temporaries(&dir);
        assert!(
            temps.len() <= 1,
            "kill {kill} after {delay:?} (seed {seed}): temporary files {temps:?}"
        );
        left += temps.len();
        match OUTPUTS.iter().filter(|n| now[*n] != old[*n]).count() {
            0 => all_old += 1,
            n if n == differing => all_new += 1,
            _ => mixed += 1,
        }
    }
    println!(
        "{KILLS} kills: {all_old} left the old files, {all_new} the new, {mixed} a mix; \
         {left} left a temporary file"
    );

    let status = depmod(&root, &tree.kver).status().unwrap();
    assert!(status.success());
    assert!(read_set(&dir) == new, "the run after the kills");
    assert_eq!(temporaries(&dir), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&root);
}
