//! Replays every input the fuzzers ever crashed on (fuzz/regressions/TARGET/), and the
//! committed seeds (fuzz/seeds/TARGET/), through the same entry functions the
//! cargo-fuzz targets call. scripts/fuzz.sh saves each new crash there.

use std::path::Path;

use kmod_rs::fuzzing::TARGETS;

#[test]
fn saved_inputs_replay_cleanly() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for (target, entry) in TARGETS {
        for kind in ["regressions", "seeds"] {
            let Ok(dir) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
                continue;
            };
            let mut files: Vec<_> = dir.map(|e| e.unwrap().path()).collect();
            files.sort();
            for file in files {
                if file.file_name().is_some_and(|n| n == ".gitkeep") {
                    continue;
                }
                eprintln!("{target}: {}", file.display());
                entry(&std::fs::read(&file).unwrap());
                replayed += 1;
            }
        }
    }
    assert!(replayed > 0, "nothing replayed from {}", fuzz.display());
}
