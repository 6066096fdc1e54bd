//! `--json` on the demo tree: what a real JSON parser reads back is what the text
//! output says, and bytes that are not UTF-8 come back exactly.

mod common;

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The demo tree, indexed by our depmod, plus a module with bytes that are not UTF-8.
fn demo(tag: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("json-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    kogen::demo::write(&root, kogen::demo::KVER).unwrap();
    let odd = kogen::Module::new("odd")
        .modinfo_raw(b"description=caf\xe9 \xff\0")
        .modinfo_raw(b"\xfekey=value\0")
        .modinfo("alias", "odd-a")
        .modinfo("alias", "odd-b")
        .modinfo("parmtype", "level:int")
        .modinfo("parm", "level:How loud")
        .modinfo("parm", "quiet:Undeclared type");
    std::fs::write(moddir(&root).join("kernel/odd.ko"), odd.build()).unwrap();
    let out = kmod(
        &root,
        "depmod",
        &["-b", &root.to_string_lossy(), kogen::demo::KVER],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    root
}

fn moddir(root: &Path) -> PathBuf {
    root.join("lib/modules").join(kogen::demo::KVER)
}

fn kmod(root: &Path, tool: &str, args: &[&str]) -> Output {
    let mut all: Vec<OsString> = Vec::new();
    if tool != "depmod" && tool != "modinfo" {
        all.extend(["-C".into(), root.join("etc/modprobe.d").into()]);
        all.extend([
            "-d".into(),
            root.into(),
            "-S".into(),
            kogen::demo::KVER.into(),
        ]);
    }
    all.extend(args.iter().map(OsString::from));
    Command::new(common::ours(tool))
        .args(all)
        .env_remove("MODPROBE_OPTIONS")
        .output()
        .unwrap()
}

fn parse(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// A text value's bytes: a string, or `{"base64": ...}` for bytes that are not UTF-8.
fn bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Object(o) => base64_decode(o["base64"].as_str().unwrap()),
        other => panic!("not a text value: {other}"),
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let digits: Vec<u32> = text
        .bytes()
        .filter(|&b| b != b'=')
        .map(|b| ALPHABET.iter().position(|&a| a == b).unwrap() as u32)
        .collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0, |n, (i, d)| n | d << (18 - 6 * i));
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// `modinfo -0 -F field` of one module, split into its values.
fn field_values(root: &Path, module: &str, field: &[u8]) -> Vec<Vec<u8>> {
    let out = Command::new(common::ours("modinfo"))
        .args([
            "-b".as_ref(),
            root.as_os_str(),
            "-k".as_ref(),
            kogen::demo::KVER.as_ref(),
        ])
        .arg("-0")
        .arg("-F")
        .arg(OsString::from_vec(field.to_vec()))
        .arg(module)
        .output()
        .unwrap();
    out.stdout
        .split(|&b| b == 0)
        .filter(|v| !v.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn modinfo_json_is_what_modinfo_prints() {
    let root = demo("modinfo");
    let names = ["odd", "demonet", "demo_console", "snd-demo", "democrypto"];
    let mut args = vec![
        "-b",
        root.to_str().unwrap(),
        "-k",
        kogen::demo::KVER,
        "--json",
    ];
    args.extend(names);
    let records = parse(&kmod(&root, "modinfo", &args));
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), names.len());
    for (record, module) in records.iter().zip(names) {
        let record = record.as_object().unwrap();
        for (key, value) in record {
            let key_bytes = match key.strip_prefix("base64:") {
                Some(encoded) => base64_decode(encoded),
                None => key.as_bytes().to_vec(),
            };
            let expected = field_values(&root, module, &key_bytes);
            let got: Vec<Vec<u8>> = match (key.as_str(), value) {
                ("filename", v) => vec![bytes(v)],
                ("parm", Value::Array(params)) => params
                    .iter()
                    .map(|p| {
                        let name = bytes(&p["name"]);
                        let kind = (!p["type"].is_null()).then(|| bytes(&p["type"]));
                        let text = (!p["description"].is_null()).then(|| bytes(&p["description"]));
                        match (text, kind) {
                            (None, kind) => {
                                [&name[..], b": (", &kind.unwrap_or_default(), b")"].concat()
                            }
                            (Some(d), Some(k)) => [&name[..], b":", &d, b" (", &k, b")"].concat(),
                            (Some(d), None) => [&name[..], b":", &d].concat(),
                        }
                    })
                    .collect(),
                (_, Value::Array(values)) => values.iter().map(bytes).collect(),
                (_, other) => panic!("{module}: {key} is {other}"),
            };
            assert_eq!(got, expected, "{module}: {key}");
        }
    }
    let odd = records[0].as_object().unwrap();
    assert_eq!(bytes(&odd["description"][0]), b"caf\xe9 \xff");
    assert_eq!(bytes(&odd["base64:/mtleQ=="][0]), b"value");
    assert_eq!(odd["alias"].as_array().unwrap().len(), 2);
    assert!(odd["parm"][1]["type"].is_null() || odd["parm"][0]["type"].is_null());
    let console = records[2].as_object().unwrap();
    assert_eq!(console["name"][0], "demo_console");
    assert_eq!(console["filename"], "(builtin)");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn show_depends_json_lists_the_text_forms_steps() {
    let root = demo("depends");
    for module in ["snd-demo", "demofs", "demo-eth", "demo_console", "demousb"] {
        let text = kmod(&root, "modprobe", &["--show-depends", module, "x=caf"]);
        let json = parse(&kmod(
            &root,
            "modprobe",
            &["--show-depends", "--json", module, "x=caf"],
        ));
        let lines: Vec<Vec<u8>> = json
            .as_array()
            .unwrap()
            .iter()
            .map(|step| match step["action"].as_str().unwrap() {
                "insmod" => [
                    &b"insmod "[..],
                    &bytes(&step["path"]),
                    b" ",
                    &bytes(&step["options"]),
                ]
                .concat(),
                "builtin" => [&b"builtin "[..], &bytes(&step["name"])].concat(),
                "install" => [
                    &b"install "[..],
                    &bytes(&step["command"]),
                    b" ",
                    &bytes(&step["options"]),
                ]
                .concat(),
                other => panic!("{other}"),
            })
            .collect();
        let text_lines: Vec<Vec<u8>> = text
            .stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        assert_eq!(lines, text_lines, "{module}");
    }
    let names = parse(&kmod(
        &root,
        "modprobe",
        &[
            "-R",
            "--json",
            "pci:v00008086d000010D3sv00001234sd00005678bc02sc00i00",
        ],
    ));
    assert_eq!(names, serde_json::json!(["demonet"]));
    let config = parse(&kmod(&root, "modprobe", &["-c", "--json"]));
    assert_eq!(config["options"][0]["module"], "demonet");
    assert_eq!(
        config["softdep"][0]["pre"],
        serde_json::json!(["demo-char"])
    );
    assert!(config["aliases"].as_array().unwrap().len() >= 10);
    // --json belongs to the queries.
    let refused = kmod(&root, "modprobe", &["--json", "demonet"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(refused.stdout.is_empty());
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn modinfo_json_keeps_path_bytes() {
    let root = demo("path");
    let odd_path = moddir(&root).join(std::ffi::OsStr::from_bytes(b"caf\xe9.ko"));
    std::fs::copy(moddir(&root).join("kernel/odd.ko"), &odd_path).unwrap();
    let out = Command::new(common::ours("modinfo"))
        .arg("--json")
        .arg(&odd_path)
        .output()
        .unwrap();
    let records = parse(&out);
    assert_eq!(
        bytes(&records[0]["filename"]),
        odd_path.as_os_str().as_bytes()
    );
    std::fs::remove_dir_all(root).unwrap();
}
