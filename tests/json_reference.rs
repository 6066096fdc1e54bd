//! `--json` on every module of a real tree (Debian trixie): `modinfo --json` parses
//! with a real JSON parser and each field's values are `modinfo -0 -F FIELD`'s, and
//! `modprobe --show-depends --json` names exactly the files of the text form, in
//! order. (The text forms themselves are compared with kmod 34.2 elsewhere.)

mod common;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use common::{ours, Tree};
use serde_json::Value;

fn text_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) => s.as_bytes().to_vec(),
        other => panic!("Debian's modules are UTF-8, found {other}"),
    }
}

/// `-0` output split into its values (each is followed by a NUL).
fn nul_values(out: &[u8]) -> Vec<Vec<u8>> {
    let mut values: Vec<Vec<u8>> = out.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
    assert_eq!(values.pop(), Some(Vec::new()), "output ends with a NUL");
    values
}

fn modinfo(args: &[OsString]) -> Vec<u8> {
    let out = Command::new(ours("modinfo")).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn parm_line(p: &Value) -> Vec<u8> {
    let name = text_bytes(&p["name"]);
    let kind = (!p["type"].is_null()).then(|| text_bytes(&p["type"]));
    match (
        (!p["description"].is_null()).then(|| text_bytes(&p["description"])),
        kind,
    ) {
        (None, kind) => [&name[..], b": (", &kind.unwrap_or_default(), b")"].concat(),
        (Some(d), Some(k)) => [&name[..], b":", &d, b" (", &k, b")"].concat(),
        (Some(d), None) => [&name[..], b":", &d].concat(),
    }
}

#[test]
fn modinfo_json_fields_are_modinfo_fields() {
    let tree = Tree::get("trixie-amd64");
    let files: Vec<OsString> = tree.module_files().into_iter().map(Into::into).collect();
    let mut args = vec![OsString::from("--json")];
    args.extend(files.iter().cloned());
    let records: Value = serde_json::from_slice(&modinfo(&args)).expect("modinfo --json is JSON");
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), files.len());
    let keys: BTreeSet<String> = records
        .iter()
        .flat_map(|r| r.as_object().unwrap().keys().cloned())
        .collect();
    assert!(keys.len() > 10, "{keys:?}");
    // One run per field over the whole tree: its values, in order, are the records'.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let keys: Vec<String> = keys.into_iter().collect();
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let (files, records, failures) = (&files, &records, &failures);
        for chunk in keys.chunks(keys.len().div_ceil(threads)) {
            s.spawn(move || {
                for key in chunk {
                    let mut args = vec![OsString::from("-0"), "-F".into(), key.into()];
                    args.extend(files.iter().cloned());
                    let expected = nul_values(&modinfo(&args));
                    let got: Vec<Vec<u8>> = records
                        .iter()
                        .flat_map(|r| match (key.as_str(), r.get(key)) {
                            (_, None) => Vec::new(),
                            ("filename", Some(v)) => vec![text_bytes(v)],
                            ("parm", Some(v)) => {
                                v.as_array().unwrap().iter().map(parm_line).collect()
                            }
                            (_, Some(v)) => v.as_array().unwrap().iter().map(text_bytes).collect(),
                        })
                        .collect();
                    if got != expected {
                        failures.lock().unwrap().push(format!(
                            "{key}: {} values from --json, {} from -F",
                            got.len(),
                            expected.len()
                        ));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn show_depends_json_names_the_text_forms_files() {
    let tree = Tree::get("trixie-amd64");
    let dep = std::fs::read_to_string(tree.module_dir(&tree.ref_root).join("modules.dep")).unwrap();
    let names: Vec<String> = dep
        .lines()
        .filter_map(|l| l.split(':').next())
        .map(|p| {
            let base = p.rsplit('/').next().unwrap();
            base.split('.').next().unwrap().to_string()
        })
        .collect();
    let empty = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("empty-modprobe.d");
    std::fs::create_dir_all(&empty).unwrap();
    let base: Vec<OsString> = vec![
        "-C".into(),
        empty.into(),
        "-d".into(),
        tree.ref_root.clone().into(),
        "-S".into(),
        tree.kver.clone().into(),
        "--show-depends".into(),
    ];
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(name) = names.get(i) else { break };
                let run = |json: bool| {
                    let mut cmd = Command::new(ours("modprobe"));
                    cmd.args(&base).env_remove("MODPROBE_OPTIONS");
                    if json {
                        cmd.arg("--json");
                    }
                    cmd.arg(name).output().unwrap().stdout
                };
                let text = run(false);
                let json: Value = serde_json::from_slice(&run(true)).unwrap();
                let from_json: Vec<String> = json
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|step| match step["action"].as_str().unwrap() {
                        "insmod" => format!(
                            "insmod {} {}",
                            step["path"].as_str().unwrap(),
                            step["options"].as_str().unwrap()
                        ),
                        "builtin" => format!("builtin {}", step["name"].as_str().unwrap()),
                        other => format!("{other}?"),
                    })
                    .collect();
                let from_text: Vec<String> = String::from_utf8(text)
                    .unwrap()
                    .lines()
                    .map(String::from)
                    .collect();
                if from_json != from_text {
                    failures.lock().unwrap().push(name.clone());
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} differ: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
}
