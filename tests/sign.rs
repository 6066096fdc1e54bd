//! `kmod sign` and `kmod verify` on generated modules with the test keys in
//! fixtures/signing: every key type and hash, compressed modules, re-signing, the
//! sign-file options, tampered and malformed signatures, certificate files and
//! directories, and synthetic kernel images holding a built-in certificate list.
//! Byte identity with sign-file itself is tests/sign_reference.rs.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use kmod_rs::compression::{decompress, Compression};
use kmod_rs::limits::MODULE_SIZE_LIMIT;
use kmod_rs::signature::split_appended;
use kmod_rs::signing;

const MAGIC: &[u8] = b"~Module signature appended~\n";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/signing")
        .join(name)
}

/// A new empty directory, never shared: the tests run in parallel.
fn scratch(name: &str) -> PathBuf {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sign-{}", std::process::id()))
        .join(format!("{name}-{}", COUNT.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn module_bytes(name: &str) -> Vec<u8> {
    kogen::Module::new(name)
        .modinfo("license", "GPL")
        .modinfo("description", "signing test")
        .export("demo_symbol")
        .build()
}

fn write_module(dir: &Path, name: &str, compression: kogen::Compression) -> PathBuf {
    let path = dir.join(format!("{name}{}", compression.extension()));
    kogen::Module::new(name)
        .modinfo("license", "GPL")
        .modinfo("description", "signing test")
        .export("demo_symbol")
        .write(&path, compression)
        .unwrap();
    path
}

fn kmod(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(common::ours("kmod"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "failed ({:?}): {}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    out
}

/// `kmod verify` of one module: (exit code, the line printed).
fn verify(certs: &[&Path], module: &Path) -> (i32, String) {
    let mut command = Command::new(common::ours("kmod"));
    command.arg("verify");
    for cert in certs {
        command.arg("--cert").arg(cert);
    }
    let out = command.arg(module).output().unwrap();
    (out.status.code().unwrap(), stdout(&out) + &stderr(&out))
}

const KEYS: [(&str, &str, &str); 5] = [
    ("rsa2048.key", "rsa2048.crt", "kmod-rs test RSA-2048"),
    (
        "rsa2048-traditional.key",
        "rsa2048.der",
        "kmod-rs test RSA-2048",
    ),
    (
        "rsa2048-combined.pem",
        "rsa2048-combined.pem",
        "kmod-rs test RSA-2048",
    ),
    ("p256.key", "p256.crt", "kmod-rs test ECDSA P-256"),
    ("p384.key", "p384.der", "kmod-rs test ECDSA P-384"),
];

#[test]
fn every_key_form_and_hash_signs_and_verifies() {
    let dir = scratch("keys");
    let module = write_module(&dir, "demo", kogen::Compression::None);
    for (key, cert, name) in KEYS {
        for hash in ["sha256", "sha384", "sha512"] {
            for key_id in [false, true] {
                let dest = dir.join(format!("{key}-{hash}-{key_id}.ko"));
                let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"sign"];
                if key_id {
                    args.push(&"-k");
                }
                let (key, cert) = (fixture(key), fixture(cert));
                args.extend([&hash as &dyn AsRef<_>, &key, &cert, &module, &dest]);
                ok(kmod(&args));
                let (code, line) = verify(&[&cert], &dest);
                let expected = if key_id { "(key id " } else { "(serial " };
                assert_eq!(code, 0, "{line}");
                assert!(
                    line.starts_with(&format!(
                        "{}: valid, signed by \"{name}\" {expected}",
                        dest.display()
                    )) && line.ends_with(&format!(") with {hash}\n")),
                    "{line}"
                );
            }
        }
    }
}

#[test]
fn signatures_are_deterministic_and_carry_no_certificate() {
    let content = module_bytes("demo");
    let cert = &signing::keys::read_certificates(&std::fs::read(fixture("rsa2048.crt")).unwrap())
        .unwrap()[0];
    for (key, cert_file) in [("rsa2048.key", "rsa2048.crt"), ("p384.key", "p384.crt")] {
        let key =
            signing::keys::PrivateKey::from_pem(&std::fs::read(fixture(key)).unwrap()).unwrap();
        let cert = &signing::keys::read_certificates(&std::fs::read(fixture(cert_file)).unwrap())
            .unwrap()[0];
        let hash = signing::HashAlgo::Sha256;
        let one = signing::sign::sign(&content, &key, cert, hash, false).unwrap();
        let two = signing::sign::sign(&content, &key, cert, hash, false).unwrap();
        assert_eq!(one, two, "PKCS#1 v1.5 and RFC 6979 ECDSA are deterministic");
        let message = signing::pkcs7::parse(&one).unwrap();
        assert_eq!(message.signers.len(), 1);
        assert!(!message.has_content);
    }
    // A key and a certificate that do not belong together are refused.
    let p384 =
        signing::keys::PrivateKey::from_pem(&std::fs::read(fixture("p384.key")).unwrap()).unwrap();
    assert!(matches!(
        signing::sign::sign(&content, &p384, cert, signing::HashAlgo::Sha256, false),
        Err(signing::sign::SignError::Key(
            signing::keys::KeyError::Mismatch
        ))
    ));
}

/// A copy of `signed` with `edit` applied, written beside it.
fn edited(signed: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut data = std::fs::read(signed).unwrap();
    edit(&mut data);
    let path = signed.with_file_name(name);
    std::fs::write(&path, data).unwrap();
    path
}

#[test]
fn verify_rejects_tampered_and_malformed_signatures() {
    let dir = scratch("tamper");
    let module = write_module(&dir, "demo", kogen::Compression::None);
    let content_len = std::fs::metadata(&module).unwrap().len() as usize;
    let signed = dir.join("signed.ko");
    ok(kmod(&[
        &"sign",
        &"sha256",
        &fixture("rsa2048.key"),
        &fixture("rsa2048.crt"),
        &module,
        &signed,
    ]));
    let cert = fixture("rsa2048.crt");
    assert_eq!(verify(&[&cert], &signed).0, 0);
    let trailer = MAGIC.len() + 12;
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            edited(&signed, "module-byte.ko", |d| d[100] ^= 1),
            "invalid, signed by \"kmod-rs test RSA-2048\" (serial ",
        ),
        (
            edited(&signed, "signature-byte.ko", |d| {
                let at = d.len() - trailer - 1;
                d[at] ^= 0x80;
            }),
            "the signature does not match the module",
        ),
        (
            edited(&signed, "der-length.ko", |d| d[content_len + 3] ^= 0x10),
            "invalid: malformed PKCS#7 message",
        ),
        (
            edited(&signed, "cut-inside.ko", |d| {
                d.drain(content_len + 40..content_len + 50);
            }),
            "invalid: malformed PKCS#7 message",
        ),
        (
            edited(&signed, "length-too-long.ko", |d| {
                let at = d.len() - trailer + 8;
                d[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
            }),
            "invalid: signature length 4294967295 exceeds",
        ),
        (
            edited(&signed, "length-short.ko", |d| {
                let at = d.len() - trailer + 8;
                let len = u32::from_be_bytes(d[at..at + 4].try_into().unwrap());
                d[at..at + 4].copy_from_slice(&(len - 7).to_be_bytes());
            }),
            "invalid: malformed PKCS#7 message",
        ),
        (
            edited(&signed, "garbage.ko", |d| {
                let len = d.len();
                d[content_len..len - trailer].fill(0x5a);
            }),
            "invalid: malformed PKCS#7 message",
        ),
        (
            edited(&signed, "not-pkcs7.ko", |d| {
                let at = d.len() - trailer + 2;
                d[at] = 1;
            }),
            "invalid: signature is not PKCS#7 (identifier type 1)",
        ),
        (
            edited(&signed, "nonzero.ko", |d| {
                let at = d.len() - trailer + 5;
                d[at] = 1;
            }),
            "invalid: PKCS#7 signature info has unexpected non-zero fields",
        ),
        (
            edited(&signed, "cut-end.ko", |d| {
                d.truncate(d.len() - 1);
            }),
            "unsigned",
        ),
        (module.clone(), "unsigned"),
    ];
    for (path, expected) in &cases {
        let (code, line) = verify(&[&cert], path);
        assert_eq!(code, 1, "{line}");
        assert!(line.contains(expected), "{}: {line}", path.display());
    }
    // The wrong certificate: the signer is not trusted.
    let (code, line) = verify(&[&fixture("other.crt"), &fixture("p384.crt")], &signed);
    assert_eq!(code, 1);
    assert_eq!(
        line,
        format!(
            "{}: unknown signer, signed by \"kmod-rs test RSA-2048\" (serial {}) with sha256\n",
            signed.display(),
            serial_of("rsa2048.crt")
        )
    );
    // Several modules: one line each, in order; the status is 1 if any fails.
    let out = kmod(&[&"verify", &"--cert", &cert, &signed, &cases[0].0, &signed]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0].contains(": valid,")
            && lines[1].contains(": invalid,")
            && lines[2].contains(": valid,")
    );
    // A file that is not a module is an error on stderr, not a line.
    let out = kmod(&[
        &"verify",
        &"--cert",
        &cert,
        &dir.join("missing.ko"),
        &signed,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("missing.ko: No such file or directory"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out).lines().count(), 1);
}

/// A certificate's serial number as verify prints it.
fn serial_of(cert: &str) -> String {
    let certs = signing::keys::read_certificates(&std::fs::read(fixture(cert)).unwrap()).unwrap();
    let serial = certs[0].serial_number().as_bytes();
    kmod_rs::signature::hex_colons(serial.strip_prefix(&[0]).unwrap_or(serial))
}

#[test]
fn compressed_modules_are_signed_inside_and_resigned_not_stacked() {
    let dir = scratch("compressed");
    let plain = write_module(&dir, "demo", kogen::Compression::None);
    let expected = dir.join("expected.ko");
    let (key, cert) = (fixture("rsa2048.key"), fixture("rsa2048.crt"));
    ok(kmod(&[&"sign", &"sha512", &key, &cert, &plain, &expected]));
    let expected = std::fs::read(&expected).unwrap();
    for compression in [
        kogen::Compression::Xz,
        kogen::Compression::Zstd,
        kogen::Compression::Gzip,
    ] {
        let module = write_module(&dir, "demo", compression);
        let original = std::fs::read(&module).unwrap();
        ok(kmod(&[&"sign", &"sha512", &key, &cert, &module]));
        let signed = std::fs::read(&module).unwrap();
        let kind = Compression::detect(&signed);
        assert_eq!(kind, Compression::detect(&original), "{compression:?}");
        assert_eq!(
            decompress(kind, &signed, MODULE_SIZE_LIMIT).unwrap(),
            expected,
            "{compression:?}"
        );
        if compression == kogen::Compression::Xz {
            assert_eq!(signed[7], original[7], "xz check type");
        }
        // modinfo reads the signer through the compression.
        let info = ok(Command::new(common::ours("modinfo"))
            .arg("-F")
            .arg("signer")
            .arg(&module)
            .output()
            .unwrap());
        assert_eq!(stdout(&info), "kmod-rs test RSA-2048\n");

        // Signing again with another key replaces the signature.
        ok(kmod(&[
            &"sign",
            &"sha256",
            &fixture("p384.key"),
            &fixture("p384.crt"),
            &module,
        ]));
        let resigned =
            decompress(kind, &std::fs::read(&module).unwrap(), MODULE_SIZE_LIMIT).unwrap();
        assert_eq!(
            resigned
                .windows(MAGIC.len())
                .filter(|w| *w == MAGIC)
                .count(),
            1
        );
        let split = split_appended(&resigned).unwrap().unwrap();
        assert_eq!(split.content, &module_bytes("demo")[..]);
        assert_eq!(verify(&[&fixture("p384.crt")], &module).0, 0);
        assert_eq!(verify(&[&cert], &module).0, 1);
        let info = ok(Command::new(common::ours("modinfo"))
            .arg("-F")
            .arg("signer")
            .arg(&module)
            .output()
            .unwrap());
        assert_eq!(stdout(&info), "kmod-rs test ECDSA P-384\n");
    }
}

#[test]
fn saved_detached_and_raw_signatures() {
    let dir = scratch("p7s");
    let (key, cert) = (fixture("rsa2048.key"), fixture("rsa2048.crt"));
    let module = write_module(&dir, "demo", kogen::Compression::None);
    let original = std::fs::read(&module).unwrap();
    let reference = dir.join("reference.ko");
    ok(kmod(&[
        &"sign", &"sha256", &key, &cert, &module, &reference,
    ]));
    let reference = std::fs::read(reference).unwrap();
    let pkcs7 = split_appended(&reference)
        .unwrap()
        .unwrap()
        .signature
        .to_vec();

    // -d: the signature alone, beside the module, which stays as it was.
    ok(kmod(&[&"sign", &"-d", &"sha256", &key, &cert, &module]));
    assert_eq!(std::fs::read(&module).unwrap(), original);
    let p7s = dir.join("demo.ko.p7s");
    assert_eq!(std::fs::read(&p7s).unwrap(), pkcs7);
    std::fs::remove_file(&p7s).unwrap();

    // -p: both, the module signed in place.
    ok(kmod(&[&"sign", &"-p", &"sha256", &key, &cert, &module]));
    assert_eq!(std::fs::read(&module).unwrap(), reference);
    assert_eq!(std::fs::read(&p7s).unwrap(), pkcs7);

    // -s: the saved signature appended to the unsigned module gives the same file.
    let unsigned = dir.join("unsigned.ko");
    std::fs::write(&unsigned, &original).unwrap();
    let raw_dest = dir.join("raw.ko");
    ok(kmod(&[
        &"sign", &"-s", &p7s, &"sha256", &cert, &unsigned, &raw_dest,
    ]));
    assert_eq!(std::fs::read(&raw_dest).unwrap(), reference);
    // A signature of another module, or checked with another certificate, is refused.
    let other = write_module(&dir, "other", kogen::Compression::None);
    let out = kmod(&[&"sign", &"-s", &p7s, &"sha256", &cert, &other]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("the signature does not verify with the certificate: the signature does not match the module"), "{}", stderr(&out));
    let out = kmod(&[
        &"sign",
        &"-s",
        &p7s,
        &"sha256",
        &fixture("p256.crt"),
        &unsigned,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("made by another signer"),
        "{}",
        stderr(&out)
    );
    let out = kmod(&[&"sign", &"-s", &cert, &"sha256", &cert, &unsigned]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("malformed PKCS#7 message"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&unsigned).unwrap(), original);
    assert!(std::fs::read(&other).is_ok_and(|d| split_appended(&d) == Ok(None)));
}

#[test]
fn in_place_signing_keeps_the_mode_and_leaves_no_temporary_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("mode");
    let module = write_module(&dir, "demo", kogen::Compression::None);
    std::fs::set_permissions(&module, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (key, cert) = (fixture("p256.key"), fixture("p256.crt"));
    // DEST equal to MODULE is signing in place, as in sign-file.
    ok(kmod(&[&"sign", &"sha256", &key, &cert, &module, &module]));
    let mode = std::fs::metadata(&module).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
    assert_eq!(verify(&[&cert], &module).0, 0);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["demo.ko"]);
}

#[test]
fn usage_and_input_errors() {
    let dir = scratch("errors");
    let module = write_module(&dir, "demo", kogen::Compression::None);
    let (key, cert) = (fixture("rsa2048.key"), fixture("rsa2048.crt"));
    for args in [
        vec![&"sign" as &dyn AsRef<std::ffi::OsStr>],
        vec![&"sign", &"sha256", &key, &cert],
        vec![&"sign", &"sha256", &key, &cert, &module, &module, &module],
        vec![&"sign", &"-x", &"sha256", &key, &cert, &module],
    ] {
        let out = kmod(&args);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("Usage: kmod sign [-dpk] HASH KEY CERT MODULE [DEST]"),
            "{}",
            stderr(&out)
        );
    }
    let help = ok(kmod(&[&"sign", &"--help"]));
    assert!(stdout(&help).contains("-s, --raw-signature"));
    let original = std::fs::read(&module).unwrap();
    let missing = dir.join("missing");
    for (args, message) in [
        (
            vec![&"md5" as &dyn AsRef<std::ffi::OsStr>, &key, &cert, &module],
            "unsupported hash algorithm 'md5' (sha256, sha384 or sha512)".to_string(),
        ),
        (
            vec![&"sha256", &key, &cert, &missing],
            format!("{}: No such file or directory", missing.display()),
        ),
        (
            vec![&"sha256", &missing, &cert, &module],
            format!("{}: No such file or directory", missing.display()),
        ),
        (
            vec![&"sha256", &key, &fixture("p256.crt"), &module],
            "the private key does not match the certificate".into(),
        ),
        (
            vec![&"sha256", &fixture("encrypted.key"), &cert, &module],
            "the private key is encrypted".into(),
        ),
        (
            vec![&"sha256", &cert, &cert, &module],
            "no private key found".into(),
        ),
        (
            vec![&"sha256", &key, &key, &module],
            "no certificate found".into(),
        ),
        (
            vec![&"sha256", &key, &fixture("rsa2048.key"), &module],
            "no certificate found".into(),
        ),
    ] {
        let mut full: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"sign"];
        full.extend(args);
        let out = kmod(&full);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).starts_with("kmod sign: ERROR: ") && stderr(&out).contains(&message),
            "{}",
            stderr(&out)
        );
        assert_eq!(std::fs::read(&module).unwrap(), original);
    }

    // verify: no module, unreadable certificates.
    let out = kmod(&[&"verify", &"--cert", &cert]);
    assert_eq!(out.status.code(), Some(2));
    let out = kmod(&[&"verify", &"--cert", &key, &module]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no certificate found"),
        "{}",
        stderr(&out)
    );
    let out = kmod(&[&"verify", &"--kernel", &missing, &module]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("missing: No such file or directory"),
        "{}",
        stderr(&out)
    );
    let empty = scratch("empty");
    let out = kmod(&[&"verify", &"--cert", &empty, &module]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no certificates in this directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn certificate_directories_bundles_and_der_lists() {
    let dir = scratch("certdir");
    let certs = dir.join("certs");
    std::fs::create_dir(&certs).unwrap();
    // A directory as a MOK store has it: certificates beside a private key.
    for name in ["rsa2048.crt", "p384.der", "p256.key"] {
        std::fs::copy(fixture(name), certs.join(name)).unwrap();
    }
    let bundle = dir.join("bundle.pem");
    let der_list = dir.join("list.der");
    let pem = [
        std::fs::read(fixture("p256.crt")).unwrap(),
        std::fs::read(fixture("rsa2048.crt")).unwrap(),
    ]
    .concat();
    std::fs::write(&bundle, pem).unwrap();
    let der = [
        std::fs::read(fixture("p256.der")).unwrap(),
        std::fs::read(fixture("p384.der")).unwrap(),
    ]
    .concat();
    std::fs::write(&der_list, der).unwrap();
    let module = write_module(&dir, "demo", kogen::Compression::None);
    for (key, cert, trusted_by) in [
        ("rsa2048.key", "rsa2048.crt", [true, true, false]),
        ("p384.key", "p384.crt", [true, false, true]),
        ("p256.key", "p256.crt", [false, true, true]),
    ] {
        let signed = dir.join(format!("{key}.ko"));
        ok(kmod(&[
            &"sign",
            &"sha384",
            &fixture(key),
            &fixture(cert),
            &module,
            &signed,
        ]));
        for (source, trusted) in [&certs, &bundle, &der_list].into_iter().zip(trusted_by) {
            let (code, line) = verify(&[source], &signed);
            assert_eq!(
                code == 0,
                trusted,
                "{key} with {}: {line}",
                source.display()
            );
        }
    }
}

/// An uncompressed kernel: text, a decoy certificate not followed by its length,
/// the built-in list (8-aligned, then its length as a 64-bit integer), more data.
fn fake_vmlinux(list: &[&str]) -> Vec<u8> {
    let mut image: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    image.resize(image.len().next_multiple_of(8), 0);
    image.extend(std::fs::read(fixture("other.der")).unwrap());
    image.extend_from_slice(b"unrelated data after a certificate");
    image.resize(image.len().next_multiple_of(8) + 64, 0xcc);
    let certs: Vec<u8> = list
        .iter()
        .flat_map(|c| std::fs::read(fixture(c)).unwrap())
        .collect();
    image.extend(&certs);
    image.resize(image.len().next_multiple_of(8), 0);
    image.extend((certs.len() as u64).to_le_bytes());
    image.extend((0..3000u32).map(|i| (i * 13 % 253) as u8));
    image
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An x86 bzImage around a compressed kernel, with the size the kernel's build
/// appends after it.
fn fake_bzimage(payload: &[u8]) -> Vec<u8> {
    let setup_sects = 3u8;
    let start = (usize::from(setup_sects) + 1) * 512;
    let mut image = vec![0u8; start + 0x40];
    image[0x1f1] = setup_sects;
    image[0x202..0x206].copy_from_slice(b"HdrS");
    image[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    image[0x248..0x24c].copy_from_slice(&0x40u32.to_le_bytes());
    image[0x24c..0x250].copy_from_slice(&(payload.len() as u32 + 4).to_le_bytes());
    image.extend_from_slice(payload);
    image.extend_from_slice(&[1, 2, 3, 4]);
    image
}

/// An EFI zboot image (arm64's vmlinuz).
fn fake_zboot(payload: &[u8]) -> Vec<u8> {
    let mut image = vec![0u8; 64];
    image[..2].copy_from_slice(b"MZ");
    image[4..8].copy_from_slice(b"zimg");
    image[8..12].copy_from_slice(&64u32.to_le_bytes());
    image[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    image[24..28].copy_from_slice(b"gzip");
    image.extend_from_slice(payload);
    image.extend_from_slice(&[0; 100]);
    image
}

#[test]
fn kernel_images_give_their_builtin_certificates() {
    let dir = scratch("kernel");
    let module = write_module(&dir, "demo", kogen::Compression::None);
    let signed_by = |key: &str, cert: &str| {
        let path = dir.join(format!("{key}.ko"));
        ok(kmod(&[
            &"sign",
            &"sha256",
            &fixture(key),
            &fixture(cert),
            &module,
            &path,
        ]));
        path
    };
    let (rsa, p384, other) = (
        signed_by("rsa2048.key", "rsa2048.crt"),
        signed_by("p384.key", "p384.crt"),
        signed_by("other.key", "other.crt"),
    );
    let vmlinux = fake_vmlinux(&["p384.der", "rsa2048.der"]);
    let zstd = zstd::bulk::compress(&vmlinux, 3).unwrap();
    let xz = kogen::Compression::Xz.compress(&vmlinux);
    for (name, image) in [
        ("vmlinux", vmlinux.clone()),
        ("Image.gz", gzip(&vmlinux)),
        ("bzImage-zstd", fake_bzimage(&zstd)),
        ("bzImage-xz", fake_bzimage(&xz)),
        ("zboot", fake_zboot(&gzip(&vmlinux))),
    ] {
        let certs = signing::kernel_image::builtin_certificates(&image)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(certs.len(), 2, "{name}");
        let path = dir.join(name);
        std::fs::write(&path, &image).unwrap();
        let out = kmod(&[&"verify", &"--kernel", &path, &rsa, &p384, &other]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
        assert!(
            lines[0].contains(": valid, signed by \"kmod-rs test RSA-2048\""),
            "{name}: {lines:?}"
        );
        assert!(
            lines[1].contains(": valid, signed by \"kmod-rs test ECDSA P-384\""),
            "{name}: {lines:?}"
        );
        assert!(lines[2].contains(": unknown signer,"), "{name}: {lines:?}");
        // --cert and --kernel together trust both.
        let out = kmod(&[
            &"verify",
            &"--kernel",
            &path,
            &"--cert",
            &fixture("other.crt"),
            &rsa,
            &other,
        ]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stdout(&out));
    }

    // A certificate right before the list, and a list at the very end of the image.
    let mut adjacent: Vec<u8> = vec![0x11; 64];
    let decoy = std::fs::read(fixture("other.der")).unwrap();
    adjacent.extend(&decoy);
    adjacent.resize(adjacent.len().next_multiple_of(8), 0);
    let list = std::fs::read(fixture("p256.der")).unwrap();
    adjacent.extend(&list);
    adjacent.resize(adjacent.len().next_multiple_of(8), 0);
    adjacent.extend((list.len() as u64).to_le_bytes());
    let certs = signing::kernel_image::builtin_certificates(&adjacent).unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].subject_name(), b"kmod-rs test ECDSA P-256");

    // A kernel without a list, a truncated image, an unknown compression.
    let mut no_list = fake_vmlinux(&["p384.der"]);
    let at = no_list.len() - 3000 - 8;
    no_list[at] ^= 1;
    for (image, message) in [
        (no_list, "no built-in certificate list found"),
        (
            fake_bzimage(&zstd)[..3000].to_vec(),
            "header points outside the file",
        ),
        (fake_bzimage(&zstd[..zstd.len() / 2]), "does not decompress"),
        (fake_bzimage(b"\x89LZO\0\0\0"), "compressed with lzo"),
    ] {
        let path = dir.join("bad-image");
        std::fs::write(&path, &image).unwrap();
        let out = kmod(&[&"verify", &"--kernel", &path, &rsa]);
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
    }
}

/// The fuzzing entry points on mutations of real inputs: truncations and byte flips
/// of signed modules, key files and a kernel image never panic.
#[test]
fn fuzz_entries_survive_mutations() {
    let dir = scratch("fuzz");
    let module = write_module(&dir, "demo", kogen::Compression::None);
    type Entry = fn(&[u8]);
    let mut seeds: Vec<(Entry, Vec<u8>)> = Vec::new();
    for (key, cert) in [("rsa2048.key", "rsa2048.crt"), ("p256.key", "p256.crt")] {
        let signed = dir.join(format!("{key}.ko"));
        ok(kmod(&[
            &"sign",
            &"-k",
            &"sha256",
            &fixture(key),
            &fixture(cert),
            &module,
            &signed,
        ]));
        // The certificate travels with the module, as the entry reads it from its input.
        let mut data = std::fs::read(fixture(cert)).unwrap();
        data.extend(std::fs::read(&signed).unwrap());
        seeds.push((kmod_rs::fuzzing::signature, std::fs::read(&signed).unwrap()));
        seeds.push((kmod_rs::fuzzing::signature, data));
    }
    for name in [
        "rsa2048-combined.pem",
        "p256.key",
        "p384.der",
        "rsa2048-traditional.key",
        "encrypted.key",
    ] {
        seeds.push((
            kmod_rs::fuzzing::key_files,
            std::fs::read(fixture(name)).unwrap(),
        ));
    }
    let vmlinux = fake_vmlinux(&["p256.der"]);
    seeds.push((
        kmod_rs::fuzzing::kernel_image,
        fake_bzimage(&gzip(&vmlinux)),
    ));
    seeds.push((kmod_rs::fuzzing::kernel_image, vmlinux));
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (entry, seed) in &seeds {
        entry(seed);
        for _ in 0..300 {
            let mut data = seed.clone();
            match next() % 3 {
                0 => data.truncate(next() as usize % seed.len()),
                1 => {
                    let at = next() as usize % seed.len();
                    data[at] ^= 1 << (next() % 8);
                }
                _ => {
                    let at = next() as usize % seed.len();
                    data[at] = [0, 0x30, 0x80, 0x82, 0xff][next() as usize % 5];
                }
            }
            entry(&data);
        }
    }
}
