//! `kmod sign`: the kernel's `scripts/sign-file`, same arguments and same output
//! bytes, signing compressed modules inside and replacing an existing signature.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Command;

use crate::diag::{Priority, Sink};
use crate::msg;
use crate::signing::keys::{read_certificates, Certificate, KeyError, PrivateKey};
use crate::signing::pkcs7::Pkcs7Error;
use crate::signing::sign::{
    check_raw_signature, p7s_path, read_limited, sign, write_atomic, ModuleImage, SignError,
};
use crate::signing::HashAlgo;

use super::{flag, help_or_version, parse, positional_args, short_name, words};

const USAGE: &[&str] = &[
    "[-dpk] HASH KEY CERT MODULE [DEST]",
    "-s RAWSIG HASH CERT MODULE [DEST]",
];

/// sign-file's exit status for a usage error.
const USAGE_ERROR: i32 = 2;

/// Key, certificate and raw signature files are small; this bounds what is read.
const MAX_KEY_FILE: u64 = 16 << 20;

pub fn command() -> Command {
    Command::new("sign")
        .about("Sign a kernel module")
        .arg(flag(
            "save",
            'p',
            "save-signature",
            "also write the signature to MODULE.p7s",
        ))
        .arg(flag(
            "detach",
            'd',
            "detach",
            "only write the signature to MODULE.p7s,\nleave the module as it is",
        ))
        .arg(flag(
            "key-id",
            'k',
            "key-id",
            "name the signer by the certificate's\nsubject key identifier",
        ))
        .arg(flag(
            "raw",
            's',
            "raw-signature",
            "append RAWSIG, a PKCS#7 signature made\nelsewhere, instead of signing",
        ))
        .arg(flag("version", 'V', "version", "show version"))
        .arg(flag("help", 'h', "help", "show this help"))
        .arg(positional_args())
}

fn usage(prog: &str) {
    for (i, form) in USAGE.iter().enumerate() {
        let lead = if i == 0 { "Usage:" } else { "      " };
        eprintln!("{lead} {prog} {form}");
    }
}

pub fn run(argv0: &str, args: Vec<OsString>) -> i32 {
    let prog = format!("{} sign", short_name(argv0));
    let cmd = command();
    let m = match parse(cmd.clone(), argv0, args) {
        Ok(m) => m,
        Err(_) => {
            usage(&prog);
            return USAGE_ERROR;
        }
    };
    if let Some(code) = help_or_version(&m, &cmd, &prog, USAGE, 26) {
        return code;
    }
    let words: Vec<PathBuf> = words(&m).into_iter().map(PathBuf::from).collect();
    if !(4..=5).contains(&words.len()) {
        usage(&prog);
        return USAGE_ERROR;
    }
    let log = Sink::new(&prog, Priority::Error as i32, false);
    let request = Request {
        raw: m.get_flag("raw"),
        save: m.get_flag("save") || m.get_flag("detach"),
        detach: m.get_flag("detach"),
        by_key_id: m.get_flag("key-id"),
        words: &words,
    };
    match request.run() {
        Ok(()) => 0,
        Err(message) => {
            log.log_bytes(Priority::Error, message);
            1
        }
    }
}

struct Request<'a> {
    raw: bool,
    save: bool,
    detach: bool,
    by_key_id: bool,
    words: &'a [PathBuf],
}

impl Request<'_> {
    /// Does the work in sign-file's order; Err is the message to show.
    fn run(&self) -> Result<(), Vec<u8>> {
        let words = self.words;
        let (cert_path, module_path) = (&words[2], &words[3]);
        // Signing in place unless a different destination is named (the same name
        // twice is in place too).
        let dest = words
            .get(4)
            .filter(|d| *d != module_path)
            .unwrap_or(module_path);
        let module = ModuleImage::read(module_path).map_err(|e| about(module_path, e))?;
        let signature = if self.raw {
            let raw_path = &words[0];
            let raw = read_limited(raw_path, MAX_KEY_FILE).map_err(|e| about(raw_path, e))?;
            let cert = certificate(cert_path)?;
            check_raw_signature(&module.content, &raw, &cert)
                .map_err(|e| msg![raw_path, ": ", e.to_string()])?;
            raw
        } else {
            let hash_name = words[0].as_os_str();
            let hash = HashAlgo::from_name(std::os::unix::ffi::OsStrExt::as_bytes(hash_name))
                .ok_or_else(|| {
                    msg![
                        "unsupported hash algorithm '",
                        hash_name,
                        "' (sha256, sha384 or sha512)"
                    ]
                })?;
            let key_path = &words[1];
            let key = read_limited(key_path, MAX_KEY_FILE)
                .map_err(|e| about(key_path, e))
                .and_then(|text| {
                    PrivateKey::from_pem(&text).map_err(|e| about(key_path, SignError::Key(e)))
                })?;
            let cert = certificate(cert_path)?;
            sign(&module.content, &key, &cert, hash, self.by_key_id).map_err(|e| match e {
                SignError::Key(KeyError::Mismatch) => msg![
                    key_path,
                    ": the private key does not match the certificate ",
                    cert_path
                ],
                SignError::Pkcs7(Pkcs7Error::Key(e)) => about(cert_path, SignError::Key(e)),
                e => about(module_path, e),
            })?
        };
        // Like sign-file, -p and -d only apply when signing here.
        if self.save && !self.raw {
            let p7s = p7s_path(module_path);
            write_atomic(&p7s, &signature).map_err(|e| about(&p7s, SignError::Io(e)))?;
            if self.detach {
                return Ok(());
            }
        }
        let signed = module
            .with_signature(&signature)
            .map_err(|e| about(module_path, e))?;
        write_atomic(dest, &signed).map_err(|e| about(dest, SignError::Io(e)))
    }
}

/// The first certificate in CERT, as sign-file takes it.
fn certificate(path: &Path) -> Result<Certificate, Vec<u8>> {
    let data = read_limited(path, MAX_KEY_FILE).map_err(|e| about(path, e))?;
    read_certificates(&data)
        .map_err(|e| about(path, SignError::Key(e)))?
        .into_iter()
        .next()
        .ok_or_else(|| about(path, SignError::Key(KeyError::NoCertificate)))
}

fn about(path: &Path, e: SignError) -> Vec<u8> {
    msg![path, ": ", e.to_string()]
}
