//! `kmod verify`: checks module signatures against trusted certificates, one line
//! per module; by default against the certificates built into the running kernel's
//! image, to tell before loading whether it would accept a module.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use clap::{ArgMatches, Command};
use rayon::prelude::*;

use crate::compat::io_strerror;
use crate::diag::{Priority, Sink};
use crate::module::{ModuleError, ModuleFile};
use crate::msg;
use crate::resolve::kernel_release;
use crate::signature::hex_colons;
use crate::signing::kernel_image::builtin_certificates;
use crate::signing::keys::{read_certificates, Certificate};
use crate::signing::sign::{read_limited, SignError};
use crate::signing::verify::{verify, KeyId, Report, Verdict};

use super::{flag, help_or_version, parse, positional_args, short_name, value, words};

const USAGE: &[&str] = &["[--cert CERT]... [--kernel IMAGE] MODULE..."];

/// Exit status when nothing could be verified: a usage error, or certificates that
/// cannot be read.
const SETUP_ERROR: i32 = 2;

/// Certificate files are small; a kernel image is tens of MB.
const MAX_CERT_FILE: u64 = 16 << 20;
const MAX_IMAGE_FILE: u64 = 512 << 20;

pub fn command() -> Command {
    Command::new("verify")
        .about("Verify kernel module signatures")
        .arg(value(
            "cert",
            'c',
            "cert",
            "CERT",
            "trust the certificates in CERT (PEM or DER),\nor in every file of directory CERT",
        ))
        .arg(value(
            "kernel",
            'k',
            "kernel",
            "IMAGE",
            "trust the certificates built into kernel IMAGE\n\
             (default without --cert: /boot/vmlinuz-$(uname -r))",
        ))
        .arg(flag("version", 'V', "version", "show version"))
        .arg(flag("help", 'h', "help", "show this help"))
        .arg(positional_args())
}

pub fn run(argv0: &str, args: Vec<OsString>) -> i32 {
    let prog = format!("{} verify", short_name(argv0));
    let cmd = command();
    let m = match parse(cmd.clone(), argv0, args) {
        Ok(m) => m,
        Err(_) => return SETUP_ERROR,
    };
    if let Some(code) = help_or_version(&m, &cmd, &prog, USAGE, 24) {
        return code;
    }
    let log = Sink::new(&prog, Priority::Error as i32, false);
    let modules = words(&m);
    if modules.is_empty() {
        log.error("missing module.");
        return SETUP_ERROR;
    }
    let trusted = match trusted_certificates(&m) {
        Ok(trusted) => trusted,
        Err(message) => {
            log.log_bytes(Priority::Error, message);
            return SETUP_ERROR;
        }
    };
    // Modules are read and checked on every core; lines come out in argument order.
    let reports: Vec<Result<Report, ModuleError>> = modules
        .par_iter()
        .map(|path| ModuleFile::open(Path::new(path)).map(|file| verify(file.data(), &trusted)))
        .collect();
    let mut all_valid = true;
    let mut out = std::io::stdout().lock();
    for (path, report) in modules.iter().zip(reports) {
        match report {
            Ok(report) => {
                all_valid &= report.verdict == Verdict::Valid;
                if out.write_all(&line(Path::new(path), &report)).is_err() {
                    return 1;
                }
            }
            Err(e) => {
                let _ = out.flush();
                log.log_bytes(Priority::Error, e.message());
                all_valid = false;
            }
        }
    }
    if out.flush().is_err() || !all_valid {
        return 1;
    }
    0
}

/// `PATH: STATUS[, signed by "NAME" (serial|key id HEX) with HASH][: REASON]`; a
/// signer without a name is `key id HEX`.
fn line(path: &Path, report: &Report) -> Vec<u8> {
    let status = match &report.verdict {
        Verdict::Valid => "valid",
        Verdict::Invalid(_) => "invalid",
        Verdict::Unsigned => "unsigned",
        Verdict::UnknownSigner => "unknown signer",
    };
    let mut out = msg![path, ": ", status];
    if let Some(signer) = &report.signer {
        let (what, id) = match &signer.key_id {
            KeyId::Serial(id) => ("serial", id),
            KeyId::SubjectKeyId(id) => ("key id", id),
        };
        // A signer named by key id alone has no name until a certificate matches.
        if signer.name.is_empty() {
            out.extend(msg![", signed by ", what, " ", hex_colons(id)]);
        } else {
            out.extend(msg![
                ", signed by \"",
                signer.name,
                "\" (",
                what,
                " ",
                hex_colons(id),
                ")"
            ]);
        }
        out.extend(msg![" with ", signer.hash]);
    }
    if let Verdict::Invalid(why) = &report.verdict {
        out.extend(msg![": ", why]);
    }
    out.push(b'\n');
    out
}

/// The certificates of every `--cert` and `--kernel`, or of the running kernel's
/// image when neither is given.
fn trusted_certificates(m: &ArgMatches) -> Result<Vec<Certificate>, Vec<u8>> {
    let all = |id: &str| -> Vec<PathBuf> {
        m.get_many::<OsString>(id)
            .map(|v| v.map(PathBuf::from).collect())
            .unwrap_or_default()
    };
    let (certs, mut kernels) = (all("cert"), all("kernel"));
    let running = certs.is_empty() && kernels.is_empty();
    if running {
        let release = kernel_release().map_err(|e| msg!["uname: ", io_strerror(&e)])?;
        kernels.push(PathBuf::from(OsString::from_vec(msg![
            "/boot/vmlinuz-",
            release
        ])));
    }
    let mut trusted = Vec::new();
    for path in &certs {
        trusted.extend(certificates_at(path)?);
    }
    for path in &kernels {
        let image = read_limited(path, MAX_IMAGE_FILE).map_err(|e| {
            let mut message = about(path, e);
            if running {
                message.extend(msg![" (the running kernel's image; name certificates with --cert or an image with --kernel)"]);
            }
            message
        })?;
        let found = builtin_certificates(&image).map_err(|e| msg![path, ": ", e.to_string()])?;
        trusted.extend(found);
    }
    Ok(trusted)
}

/// The certificates in a file, or in the files of a directory (those that hold
/// none, such as private keys beside the certificates, are passed over).
fn certificates_at(path: &Path) -> Result<Vec<Certificate>, Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| about(path, SignError::Io(e)))?;
    if !meta.is_dir() {
        let data = read_limited(path, MAX_CERT_FILE).map_err(|e| about(path, e))?;
        return read_certificates(&data).map_err(|e| msg![path, ": ", e.to_string()]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .and_then(|dir| dir.map(|e| e.map(|e| e.path())).collect())
        .map_err(|e| about(path, SignError::Io(e)))?;
    entries.sort();
    let mut found = Vec::new();
    for entry in entries.iter().filter(|e| e.is_file()) {
        let data = read_limited(entry, MAX_CERT_FILE).map_err(|e| about(entry, e))?;
        found.extend(read_certificates(&data).unwrap_or_default());
    }
    if found.is_empty() {
        return Err(msg![path, ": no certificates in this directory"]);
    }
    Ok(found)
}

fn about(path: &Path, e: SignError) -> Vec<u8> {
    msg![path, ": ", e.to_string()]
}
