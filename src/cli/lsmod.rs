//! `lsmod`: the loaded modules, in kmod's exact column layout.

use std::ffi::OsString;
use std::io::Write;

use clap::Command;

use crate::kernel::{self, LiveKernel};

use crate::compat::io_strerror;
use crate::diag::Sink;
use crate::json::Json;

use super::{json_flag, start_tool, with_common_flags};

const USAGE: &[&str] = &["[options]"];

pub fn command() -> Command {
    with_common_flags(Command::new("lsmod"))
        .about("Show the status of modules in the Linux kernel")
        .arg(json_flag("Print JSON (see lsmod(8))"))
}

pub fn run(argv0: &str, args: Vec<OsString>) -> i32 {
    let (m, log) = match start_tool(&command(), argv0, args, USAGE) {
        Ok(started) => started,
        Err(code) => return code,
    };
    if m.contains_id("args") {
        log.error("too many arguments provided.");
        return 1;
    }
    list(&LiveKernel::default(), &log, m.get_flag("json"))
}

/// Prints the table, or its JSON with `json`; shared with `kmod list`.
pub fn list(kernel: &dyn kernel::Kernel, log: &Sink, json: bool) -> i32 {
    let modules = match kernel::loaded_modules(kernel) {
        Ok(m) => m,
        Err(e) => {
            log.error(format_args!(
                "could not open /proc/modules: {}",
                io_strerror(&e)
            ));
            log.error(format_args!(
                "could not get list of modules: {}",
                io_strerror(&e)
            ));
            return 1;
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        let rows = modules.iter().map(|m| {
            Json::obj(vec![
                ("name", Json::text(&m.name[..])),
                ("size", Json::Int(i64::try_from(m.size).unwrap_or(i64::MAX))),
                ("use_count", Json::Int(m.use_count)),
                ("holders", Json::texts(m.holders.iter().map(|h| &h[..]))),
                ("state", Json::opt_text(m.state.map(|s| s.name()))),
                ("taint", Json::opt_text(m.taint.as_deref())),
            ])
        });
        let _ = out.write_all(&Json::Array(rows.collect()).to_line());
        return i32::from(out.flush().is_err());
    }
    let _ = writeln!(out, "Module                  Size  Used by");
    for m in modules {
        // printf's "%-19s": names are bytes, padded by byte count.
        let _ = out.write_all(&m.name);
        let pad = 19usize.saturating_sub(m.name.len());
        let _ = write!(out, "{:pad$} {:>8}  {}", "", m.size, m.use_count);
        if !m.holders.is_empty() {
            let _ = out.write_all(b" ");
            let _ = out.write_all(&m.holders.join(&b','));
        }
        let _ = writeln!(out);
    }
    i32::from(out.flush().is_err())
}
