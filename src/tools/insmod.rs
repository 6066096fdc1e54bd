//! `insmod`: insert one module file into the kernel, no dependencies, no config.

use std::ffi::OsString;
use std::path::Path;

use clap::{Arg, ArgAction, Command};
use nix::errno::Errno;

use kmod_rs::kernel::{self, InsertError, InsertFlags, LiveKernel};
use kmod_rs::module::options_from_words;

use super::{flag, help_or_version, parse, short_name, strerror, Logger, LOG_ERR, LOG_INFO};

const USAGE: &[&str] = &["[options] filename [module options]"];

pub fn command() -> Command {
    Command::new("insmod")
        .about("Insert a module into the Linux kernel")
        .arg(flag(
            "force",
            'f',
            "force",
            "DANGEROUS: forces a module load, may cause\ndata corruption and crash your machine",
        ))
        .arg(flag("syslog", 's', "syslog", "print to syslog, not stderr"))
        .arg(flag("verbose", 'v', "verbose", "enables more messages").action(ArgAction::Count))
        .arg(flag("version", 'V', "version", "show version"))
        .arg(flag("help", 'h', "help", "show this help"))
        .arg(
            Arg::new("args")
                .action(ArgAction::Append)
                .allow_hyphen_values(false)
                .value_parser(clap::value_parser!(OsString)),
        )
}

/// kmod's wording for the errors the kernel gives on insertion.
fn insert_strerror(errno: Errno) -> String {
    match errno {
        Errno::ENOEXEC => "Invalid module format".into(),
        Errno::ENOENT => "Unknown symbol in module".into(),
        Errno::ESRCH => "Module has wrong symbol version".into(),
        Errno::EINVAL => "Invalid parameters".into(),
        e => e.desc().into(),
    }
}

pub fn run(argv0: &str, args: Vec<OsString>) -> i32 {
    let prog = short_name(argv0);
    let cmd = command();
    let m = match parse(cmd.clone(), argv0, args) {
        Ok(m) => m,
        Err(code) => return code,
    };
    if let Some(code) = help_or_version(&m, &cmd, prog, USAGE, 18) {
        return code;
    }
    let log = Logger::new(
        prog,
        LOG_ERR + i32::from(m.get_count("verbose")),
        m.get_flag("syslog"),
    );
    let words: Vec<String> = m
        .get_many::<OsString>("args")
        .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
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
        log.error(format_args!(
            "could not load module {filename}: {}",
            strerror(&e)
        ));
        return 1;
    }
    let flags = InsertFlags {
        force_vermagic: m.get_flag("force"),
        force_modversion: m.get_flag("force"),
    };
    let live = LiveKernel::default();
    match kernel::insert_module(&live, path, &options_from_words(params), flags) {
        Ok(()) => 0,
        Err(e) => {
            let abs = kmod_rs::resolve::absolute(path);
            log.log(
                LOG_INFO,
                format_args!(
                    "Failed to insert module '{}': {}",
                    abs.display(),
                    e.errno().desc()
                ),
            );
            let reason = match &e {
                InsertError::Kernel(errno) => insert_strerror(*errno),
                // Our own failures (unreadable or corrupt file) say what went wrong.
                other => other.to_string(),
            };
            log.error(format_args!("could not insert module {filename}: {reason}"));
            1
        }
    }
}
