//! `kmod sign` and `kmod verify` against the kernel's own `sign-file` (Debian's
//! linux-kbuild build, from scripts/fetch-reference.sh) and `openssl cms`, on real
//! Debian modules, with keys openssl makes here:
//!
//! - RSA-2048 and RSA-4096 with each hash: the signed module, `-p`'s and `-d`'s
//!   `.p7s` are byte-identical to sign-file's, on bookworm `.ko` files (signature
//!   stripped) and trixie `.ko.xz` files (decompressed, signature stripped); so are
//!   `-k`, a DER certificate and a traditional key;
//! - ECDSA P-256 and P-384 (random signatures in OpenSSL): each tool's output is
//!   verified by the other, and by `openssl cms -verify`;
//! - `kmod verify` accepts what sign-file made and rejects tampering;
//! - with `--kernel`, every module of the trixie and bookworm trees verifies against
//!   their own kernel image, and a module signed with a test key does not;
//! - `-s` appends what `openssl cms -sign` makes as sign-file does, and refuses a
//!   signature with signed attributes (the kernel refuses those);
//! - a `.ko.xz` signed inside decompresses to exactly sign-file's output for the
//!   decompressed module, and reference modinfo shows the new signer.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Tree;
use kmod_rs::compression::{decompress, Compression};
use kmod_rs::limits::MODULE_SIZE_LIMIT;
use kmod_rs::signature::split_appended;

fn sign_file() -> PathBuf {
    let path = common::reference_dir().join("kbuild/bin/sign-file");
    assert!(
        path.exists(),
        "{} missing: run scripts/fetch-reference.sh",
        path.display()
    );
    path
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sign-reference-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[track_caller]
fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn run(program: &Path, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(program)
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

fn kmod(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    run(&common::ours("kmod"), args)
}

fn openssl(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new("openssl")
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("openssl is needed for these tests (apt-get install openssl)")
}

/// A key pair made as the kernel's build makes its signing key (certs/Makefile's
/// x509.genkey: subject key identifier, digitalSignature).
struct Key {
    name: &'static str,
    key: PathBuf,
    cert: PathBuf,
}

fn make_key(dir: &Path, name: &'static str, newkey: &[&str]) -> Key {
    let config = dir.join("x509.genkey");
    std::fs::write(
        &config,
        "[ req ]\ndistinguished_name = dn\nprompt = no\nstring_mask = utf8only\n\
         x509_extensions = exts\n[ dn ]\nO = kmod-rs\nCN = kmod-rs reference test key\n\
         emailAddress = test@example.org\n[ exts ]\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"req",
        &"-new",
        &"-nodes",
        &"-utf8",
        &"-sha256",
        &"-days",
        &"36500",
        &"-batch",
        &"-x509",
        &"-config",
        &config,
        &"-outform",
        &"PEM",
        &"-out",
        &cert,
        &"-keyout",
        &key,
    ];
    for a in newkey {
        args.push(a);
    }
    ok(openssl(&args), &format!("openssl req {name}"));
    Key { name, key, cert }
}

/// Real modules, decompressed, with Debian's signature taken off: what sign-file
/// signs in a kernel build.
fn real_modules(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for (tree, suffix) in [("bookworm-amd64", ".ko"), ("trixie-amd64", ".ko.xz")] {
        let tree = Tree::get(tree);
        for rel in ["drivers/net/dummy", "fs/fat/vfat", "fs/ext4/ext4"] {
            let path = tree
                .module_dir(&tree.pristine)
                .join("kernel")
                .join(format!("{rel}{suffix}"));
            let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let data = decompress(Compression::detect(&raw), &raw, MODULE_SIZE_LIMIT).unwrap();
            let content = split_appended(&data)
                .unwrap()
                .unwrap_or_else(|| panic!("{} is not signed", path.display()))
                .content
                .to_vec();
            let label = format!("{}:{rel}", tree.name);
            let stripped = dir.join(format!("{}-{}.ko", tree.name, rel.replace('/', "_")));
            std::fs::write(&stripped, content).unwrap();
            out.push((label, stripped));
        }
    }
    out
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn rsa_signatures_are_byte_identical_to_sign_file() {
    let dir = scratch("rsa");
    let keys = [
        make_key(&dir, "rsa2048", &["-newkey", "rsa:2048"]),
        make_key(&dir, "rsa4096", &["-newkey", "rsa:4096"]),
    ];
    let modules = real_modules(&dir);
    let mut compared = 0;
    for key in &keys {
        for hash in ["sha256", "sha384", "sha512"] {
            for (label, module) in &modules {
                let what = format!("{} {hash} {label}", key.name);
                let theirs = dir.join("theirs.ko");
                let ours = dir.join("ours.ko");
                ok(
                    run(&sign_file(), &[&hash, &key.key, &key.cert, module, &theirs]),
                    &what,
                );
                ok(
                    kmod(&[&"sign", &hash, &key.key, &key.cert, module, &ours]),
                    &what,
                );
                assert!(
                    read(&theirs) == read(&ours),
                    "{what}: signed modules differ"
                );
                compared += 1;

                // -p and -d write MODULE.p7s; work on copies, as -p signs in place.
                for flag in ["-p", "-d"] {
                    let (a, b) = (dir.join("a.ko"), dir.join("b.ko"));
                    std::fs::copy(module, &a).unwrap();
                    std::fs::copy(module, &b).unwrap();
                    ok(
                        run(&sign_file(), &[&flag, &hash, &key.key, &key.cert, &a]),
                        &what,
                    );
                    ok(
                        kmod(&[&"sign", &flag, &hash, &key.key, &key.cert, &b]),
                        &what,
                    );
                    assert!(read(&a) == read(&b), "{what} {flag}: modules differ");
                    assert!(
                        read(&dir.join("a.ko.p7s")) == read(&dir.join("b.ko.p7s")),
                        "{what} {flag}: .p7s files differ"
                    );
                    if flag == "-d" {
                        assert!(read(&b) == read(module), "{what} -d changed the module");
                    }
                }
            }
        }
    }
    assert_eq!(compared, 2 * 3 * modules.len());

    // The signer named by subject key identifier; a DER certificate; the
    // traditional key form; a key file that holds the certificate too.
    let key = &keys[0];
    let der = dir.join("rsa2048.der");
    let traditional = dir.join("rsa2048-traditional.key");
    let combined = dir.join("combined.pem");
    ok(
        openssl(&[
            &"x509",
            &"-in",
            &key.cert,
            &"-outform",
            &"DER",
            &"-out",
            &der,
        ]),
        "x509",
    );
    ok(
        openssl(&[
            &"pkey",
            &"-in",
            &key.key,
            &"-traditional",
            &"-out",
            &traditional,
        ]),
        "pkey",
    );
    std::fs::write(&combined, [read(&key.key), read(&key.cert)].concat()).unwrap();
    let module = &modules[0].1;
    for args in [
        vec![
            &"-k" as &dyn AsRef<std::ffi::OsStr>,
            &"sha256",
            &key.key,
            &key.cert,
        ],
        vec![&"sha384", &traditional, &der],
        vec![&"-k", &"sha512", &combined, &combined],
    ] {
        let (theirs, ours) = (dir.join("theirs.ko"), dir.join("ours.ko"));
        let mut a = args.clone();
        a.extend([module as &dyn AsRef<_>, &theirs]);
        ok(run(&sign_file(), &a), "sign-file");
        let mut b: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"sign"];
        b.extend(args);
        b.extend([module as &dyn AsRef<_>, &ours]);
        ok(kmod(&b), "kmod sign");
        assert!(
            read(&theirs) == read(&ours),
            "{:?}: signed modules differ",
            b.iter().map(|a| a.as_ref().to_owned()).collect::<Vec<_>>()
        );
    }
}

/// `openssl cms -verify` of a detached signature over `content`.
fn openssl_verifies(dir: &Path, signature: &Path, content: &Path, cert: &Path) -> bool {
    openssl(&[
        &"cms",
        &"-verify",
        &"-binary",
        &"-inform",
        &"DER",
        &"-in",
        &signature,
        &"-content",
        &content,
        &"-certfile",
        &cert,
        &"-noverify",
        &"-out",
        &dir.join("cms.out"),
    ])
    .status
    .success()
}

#[test]
fn ecdsa_and_rsa_signatures_verify_across_tools() {
    let dir = scratch("cross");
    let keys = [
        make_key(
            &dir,
            "p256",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ),
        make_key(
            &dir,
            "p384",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
        ),
        make_key(&dir, "rsa3072", &["-newkey", "rsa:3072"]),
    ];
    let modules = real_modules(&dir);
    for key in &keys {
        for hash in ["sha256", "sha384", "sha512"] {
            for key_id in [false, true] {
                let (label, module) = &modules[(hash.len() + usize::from(key_id)) % modules.len()];
                let what = format!("{} {hash} -k={key_id} {label}", key.name);
                let mut flags: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![];
                if key_id {
                    flags.push(&"-k");
                }
                // sign-file's signature, checked by kmod verify.
                let theirs = dir.join("theirs.ko");
                let mut args = flags.clone();
                args.extend([&hash as &dyn AsRef<_>, &key.key, &key.cert, module, &theirs]);
                ok(run(&sign_file(), &args), &what);
                let out = kmod(&[&"verify", &"--cert", &key.cert, &theirs]);
                assert!(
                    out.status.success(),
                    "{what}: {}",
                    String::from_utf8_lossy(&out.stdout)
                );

                // kmod sign's signature, checked by openssl and kmod verify.
                let copy = dir.join("ours.ko");
                std::fs::copy(module, &copy).unwrap();
                let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"sign", &"-p"];
                args.extend(flags.clone());
                args.extend([&hash as &dyn AsRef<_>, &key.key, &key.cert, &copy]);
                ok(kmod(&args), &what);
                let p7s = dir.join("ours.ko.p7s");
                assert!(
                    openssl_verifies(&dir, &p7s, module, &key.cert),
                    "{what}: openssl rejects kmod sign's signature"
                );
                // The same signature over a changed module is refused by openssl too.
                let mut changed = read(module);
                changed[64] ^= 1;
                let changed_path = dir.join("changed.ko");
                std::fs::write(&changed_path, changed).unwrap();
                assert!(
                    !openssl_verifies(&dir, &p7s, &changed_path, &key.cert),
                    "{what}"
                );
                let out = kmod(&[&"verify", &"--cert", &key.cert, &copy]);
                assert!(
                    out.status.success(),
                    "{what}: {}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
        }
    }
}

#[test]
fn verify_rejects_tampered_sign_file_output() {
    let dir = scratch("tamper");
    let key = make_key(&dir, "rsa2048", &["-newkey", "rsa:2048"]);
    let other = make_key(&dir, "other", &["-newkey", "rsa:2048"]);
    let (_, module) = &real_modules(&dir)[1];
    let signed = dir.join("signed.ko");
    ok(
        run(
            &sign_file(),
            &[&"sha256", &key.key, &key.cert, module, &signed],
        ),
        "sign-file",
    );
    let verify = |path: &Path, cert: &Path| {
        let out = kmod(&[&"verify", &"--cert", &cert, &path]);
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(verify(&signed, &key.cert).0, 0);
    let data = read(&signed);
    let content_len = read(module).len();
    let trailer = 12 + 28;
    let sig_end = data.len() - trailer;
    let variants: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "module byte",
            {
                let mut d = data.clone();
                d[content_len / 2] ^= 4;
                d
            },
            "the signature does not match the module",
        ),
        (
            "signature byte",
            {
                let mut d = data.clone();
                d[sig_end - 10] ^= 4;
                d
            },
            "the signature does not match the module",
        ),
        (
            "truncated signature",
            [&data[..sig_end - 20], &data[sig_end..]].concat(),
            "invalid",
        ),
        (
            "truncated, length kept consistent",
            {
                let mut d = [&data[..sig_end - 20], &data[sig_end..]].concat();
                let at = d.len() - trailer + 8;
                let len = u32::from_be_bytes(d[at..at + 4].try_into().unwrap()) - 20;
                d[at..at + 4].copy_from_slice(&len.to_be_bytes());
                d
            },
            "malformed PKCS#7 message",
        ),
    ];
    for (what, bytes, expected) in variants {
        let path = dir.join("tampered.ko");
        std::fs::write(&path, bytes).unwrap();
        let (code, line) = verify(&path, &key.cert);
        assert_eq!(code, 1, "{what}: {line}");
        assert!(line.contains(expected), "{what}: {line}");
    }
    let (code, line) = verify(&signed, &other.cert);
    assert_eq!(code, 1);
    assert!(
        line.contains(": unknown signer, signed by \"kmod-rs reference test key\""),
        "{line}"
    );
}

/// Runs `kmod verify --kernel IMAGE` on every module of a tree: all valid, one line
/// each.
fn tree_verifies_against_its_kernel(name: &'static str) {
    let tree = Tree::get(name);
    let image = std::fs::read_dir(tree.pristine.join("boot"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("vmlinuz-")
        })
        .expect("kernel image in the tree's boot/");
    let modules = tree.module_files();
    let mut command = Command::new(common::ours("kmod"));
    command
        .arg("verify")
        .arg("--kernel")
        .arg(&image)
        .args(&modules);
    let out = command.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        modules.len(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad: Vec<&&str> = lines
        .iter()
        .filter(|l| {
            !l.contains(": valid, signed by \"Build time autogenerated kernel key\" (serial ")
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{name}: {} of {} not valid, first: {:?}",
        bad.len(),
        lines.len(),
        bad.first()
    );
    assert!(out.status.success(), "{name}");
    eprintln!(
        "{name}: {} modules verified against {}",
        lines.len(),
        image.display()
    );

    // A module signed here with a test key is not one this kernel would load.
    let dir = scratch(&format!("kernel-{name}"));
    let key = make_key(&dir, "rsa2048", &["-newkey", "rsa:2048"]);
    let module = dir.join("resigned.ko");
    ok(
        kmod(&[
            &"sign",
            &"sha256",
            &key.key,
            &key.cert,
            &modules[0],
            &module,
        ]),
        "kmod sign",
    );
    let out = kmod(&[&"verify", &"--kernel", &image, &module]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains(": unknown signer, signed by \"kmod-rs reference test key\""));
}

#[test]
fn trixie_modules_verify_against_the_trixie_kernel() {
    tree_verifies_against_its_kernel("trixie-amd64");
}

#[test]
fn bookworm_modules_verify_against_the_bookworm_kernel() {
    tree_verifies_against_its_kernel("bookworm-amd64");
}

#[test]
fn compressed_module_signed_inside_matches_sign_file() {
    let dir = scratch("compressed");
    let key = make_key(&dir, "rsa4096", &["-newkey", "rsa:4096"]);
    let tree = Tree::get("trixie-amd64");
    let original = tree
        .module_dir(&tree.pristine)
        .join("kernel/fs/fat/vfat.ko.xz");
    let module = dir.join("vfat.ko.xz");
    std::fs::copy(&original, &module).unwrap();
    // What sign-file makes of the module decompressed, its Debian signature removed.
    let raw = read(&original);
    let data = decompress(Compression::Xz, &raw, MODULE_SIZE_LIMIT).unwrap();
    let stripped = dir.join("vfat.ko");
    std::fs::write(&stripped, split_appended(&data).unwrap().unwrap().content).unwrap();
    let expected = dir.join("expected.ko");
    ok(
        run(
            &sign_file(),
            &[&"sha512", &key.key, &key.cert, &stripped, &expected],
        ),
        "sign-file",
    );

    ok(
        kmod(&[&"sign", &"sha512", &key.key, &key.cert, &module]),
        "kmod sign",
    );
    let signed = read(&module);
    assert_eq!(Compression::detect(&signed), Compression::Xz);
    assert_eq!(signed[6..8], raw[6..8], "xz stream flags (check type)");
    assert!(decompress(Compression::Xz, &signed, MODULE_SIZE_LIMIT).unwrap() == read(&expected));
    // The xz tool reads it too.
    let xz = Command::new("xz").args(["-t"]).arg(&module).status();
    if let Ok(status) = xz {
        assert!(status.success(), "xz -t");
    }

    let out = ok(
        run(&common::reference("modinfo"), &[&module]),
        "reference modinfo",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("signer:         kmod-rs reference test key\n"),
        "{text}"
    );
    assert!(text.contains("sig_hashalgo:   sha512\n"), "{text}");
    let ours = ok(run(&common::ours("modinfo"), &[&module]), "modinfo");
    common::assert_same_output("modinfo of the signed module", &ours, &out);
}

/// sign-file's second form: a signature made by `openssl cms -sign` (as with a key
/// kept in a token), appended by both tools alike; one with signed attributes, which
/// the kernel refuses in module signatures, is refused by kmod sign and reported
/// invalid by kmod verify.
#[test]
fn raw_signatures_from_openssl_cms() {
    let dir = scratch("raw");
    let key = make_key(&dir, "rsa2048", &["-newkey", "rsa:2048"]);
    let (_, module) = &real_modules(&dir)[3];
    let cms = |extra: &[&str], out: &Path| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"cms",
            &"-sign",
            &"-binary",
            &"-nocerts",
            &"-outform",
            &"DER",
            &"-md",
            &"sha256",
            &"-signer",
            &key.cert,
            &"-inkey",
            &key.key,
            &"-in",
            module,
            &"-out",
            &out,
        ];
        for e in extra {
            args.push(e);
        }
        ok(openssl(&args), "openssl cms -sign");
    };
    let plain = dir.join("plain.p7s");
    cms(&["-noattr"], &plain);
    // openssl's command makes exactly what sign-file (and kmod sign -d) make.
    let copy = dir.join("copy.ko");
    std::fs::copy(module, &copy).unwrap();
    ok(
        kmod(&[&"sign", &"-d", &"sha256", &key.key, &key.cert, &copy]),
        "kmod sign -d",
    );
    assert!(read(&plain) == read(&dir.join("copy.ko.p7s")));
    let (theirs, ours) = (dir.join("theirs.ko"), dir.join("ours.ko"));
    ok(
        run(
            &sign_file(),
            &[&"-s", &plain, &"sha256", &key.cert, module, &theirs],
        ),
        "sign-file -s",
    );
    ok(
        kmod(&[&"sign", &"-s", &plain, &"sha256", &key.cert, module, &ours]),
        "kmod sign -s",
    );
    assert!(read(&theirs) == read(&ours), "-s: signed modules differ");

    let with_attributes = dir.join("attributes.p7s");
    cms(&[], &with_attributes);
    let out = kmod(&[
        &"sign",
        &"-s",
        &with_attributes,
        &"sha256",
        &key.cert,
        module,
        &ours,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("the kernel refuses module signatures with signed attributes"));
    ok(
        run(
            &sign_file(),
            &[
                &"-s",
                &with_attributes,
                &"sha256",
                &key.cert,
                module,
                &theirs,
            ],
        ),
        "sign-file -s",
    );
    let out = kmod(&[&"verify", &"--cert", &key.cert, &theirs]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains(": invalid, signed by \"kmod-rs reference test key\""));
}
