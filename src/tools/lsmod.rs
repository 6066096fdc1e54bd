//! `lsmod`: the loaded modules, in kmod's exact column layout.

use std::ffi::OsString;
use std::io::Write;

use clap::Command;

use kmod_rs::kernel::{self, LiveKernel};

use super::{short_name, start, strerror, tool_logger, with_common_flags, Logger};

const USAGE: &[&str] = &["[options]"];

pub fn command() -> Command {
    with_common_flags(Command::new("lsmod")).about("Show the status of modules in the Linux kernel")
}

pub fn run(argv0: &str, args: Vec<OsString>) -> i32 {
    let prog = short_name(argv0);
    let m = match start(&command(), argv0, args, USAGE, 18) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let log = tool_logger(prog, &m);
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
