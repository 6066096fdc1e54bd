//! `insmod`: insert one module file into the kernel, no dependencies, no config.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use clap::Command;
use nix::errno::Errno;

use crate::compat::{io_strerror, strerror};
use crate::diag::Priority;
use crate::explain::{self, Refusal};
use crate::kernel::{InsertError, InsertFlags, LiveKernel};
use crate::module::options_from_words;
use crate::msg;
use crate::resolve::ModuleDir;

use super::{flag, start_tool, with_common_flags, words};

const USAGE: &[&str] = &["[options] filename [module options]"];

pub fn command() -> Command {
    with_common_flags(
        Command::new("insmod")
        .about("Insert a module into the Linux kernel")
        .arg(flag(
            "force",
            'f',
            "force",
            "DANGEROUS: forces a module load, may cause\ndata corruption and crash your machine",
        ))
    )
}

/// kmod's wording for the errors the kernel gives on insertion.
fn insert_strerror(errno: Errno) -> String {
    match errno {
        Errno::ENOEXEC => "Invalid module format".into(),
        Errno::ENOENT => "Unknown symbol in module".into(),
        Errno::ESRCH => "Module has wrong symbol version".into(),
        Errno::EINVAL => "Invalid parameters".into(),
        e => strerror(e).into_owned(),
    }
}

pub fn run(argv0: &str, args: Vec<OsString>) -> i32 {
    let (m, log) = match start_tool(&command(), argv0, args, USAGE) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let words = words(&m);
    let Some((filename, params)) = words.split_first() else {
        log.error("missing filename.");
        return 1;
    };
    if filename == "-" {
        log.error("this tool does not support loading from stdin!");
        return 1;
    }
    let path = Path::new(filename);
    if let Err(e) = std::fs::metadata(path) {
        log.log_bytes(
            Priority::Error,
            &msg!["could not load module ", filename, ": ", io_strerror(&e)],
        );
        return 1;
    }
    let params: Vec<&[u8]> = params.iter().map(|p| p.as_bytes()).collect();
    let flags = InsertFlags {
        force_vermagic: m.get_flag("force"),
        force_modversion: m.get_flag("force"),
    };
    let live = LiveKernel::default();
    // The running kernel's modules name the providers of missing symbols.
    let dir = ModuleDir::for_kernel(None, None).ok();
    let options = options_from_words(&params);
    match explain::insert(&live, path, &options, flags, dir.as_ref()) {
        Ok(()) => 0,
        Err(Refusal {
            error: e,
            explanation,
        }) => {
            let abs = crate::resolve::absolute(path);
            log.log_bytes(
                Priority::Info,
                &msg!["Failed to insert module '", abs, "': ", strerror(e.errno())],
            );
            let reason = match &e {
                InsertError::Kernel(errno) => insert_strerror(*errno),
                // Our own failures (unreadable or corrupt file) say what went wrong.
                InsertError::Open(e) => e.cause(),
                other => other.to_string(),
            };
            log.log_bytes(
                Priority::Error,
                &msg!["could not insert module ", filename, ": ", reason],
            );
            for line in explanation {
                log.log_bytes(Priority::Error, line);
            }
            1
        }
    }
}
