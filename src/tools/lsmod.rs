//! `lsmod`: the loaded modules, in kmod's exact column layout.

use std::ffi::OsString;
use std::io::Write;

use clap::{Arg, ArgAction, Command};

use kmod_rs::kernel::{self, LiveKernel};

use super::{flag, help_or_version, parse, short_name, strerror, Logger, LOG_ERR};

const USAGE: &[&str] = &["[options]"];

pub fn command() -> Command {
    Command::new("lsmod")
        .about("Show the status of modules in the Linux kernel")
        .arg(flag("syslog", 's', "syslog", "print to syslog, not stderr"))
        .arg(flag("verbose", 'v', "verbose", "enables more messages").action(ArgAction::Count))
        .arg(flag("version", 'V', "version", "show version"))
        .arg(flag("help", 'h', "help", "show this help"))
        .arg(
            Arg::new("args")
                .action(ArgAction::Append)
                .hide(true)
                .value_parser(clap::value_parser!(OsString)),
        )
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
    if m.contains_id("args") {
        log.error("too many arguments provided.");
        return 1;
    }
    list(&LiveKernel::default(), &log)
}

/// Prints the table; shared with `kmod list`.
pub fn list(kernel: &dyn kernel::Kernel, log: &Logger) -> i32 {
    let modules = match kernel::loaded_modules(kernel) {
        Ok(m) => m,
        Err(e) => {
            log.error(format_args!(
                "could not open /proc/modules: {}",
                strerror(&e)
            ));
            log.error(format_args!(
                "could not get list of modules: {}",
                strerror(&e)
            ));
            return 1;
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let _ = writeln!(out, "Module                  Size  Used by");
    for m in modules {
        let _ = write!(out, "{:<19} {:>8}  {}", m.name, m.size, m.use_count);
        if !m.holders.is_empty() {
            let _ = write!(out, " {}", m.holders.join(","));
        }
        let _ = writeln!(out);
    }
    i32::from(out.flush().is_err())
}
