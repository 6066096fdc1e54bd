//! `rmmod`: remove modules from the kernel, after kmod's in-use checks.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use clap::Command;
use nix::errno::Errno;

use crate::kernel::{self, LiveKernel};
use crate::module::{name_from_path, normalize_name};
use crate::resolve::ModuleDir;

use crate::compat::strerror;

use super::{flag, start_tool, with_common_flags, words};

const USAGE: &[&str] = &["[options] [list of modulenames]"];

pub fn command() -> Command {
    with_common_flags(
        Command::new("rmmod")
            .about("Remove modules from the Linux kernel")
            .arg(flag(
                "force",
                'f',
                "force",
                "DANGEROUS: forces a module unload and may\ncrash your machine",
            )),
    )
}

pub fn run(argv0: &str, args: Vec<OsString>) -> i32 {
    let (m, log) = match start_tool(&command(), argv0, args, USAGE) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let names = words(&m);
    if names.is_empty() {
        log.error("missing module name.");
        return 1;
    }
    let force = m.get_flag("force");
    let dir = ModuleDir::for_kernel(None, None).ok();
    let live = LiveKernel::default();
    let mut ok = true;
    for arg in &names {
        let shown = arg.to_string_lossy();
        // An existing file (relative to the cwd) names its module; anything else is a name.
        let name = if Path::new(arg).exists() {
            match name_from_path(arg.as_bytes()) {
                Some(name) => name,
                None => {
                    log.error(format_args!(
                        "could not use module {shown}: {}",
                        strerror(Errno::ENOENT)
                    ));
                    return 1;
                }
            }
        } else {
            normalize_name(arg.as_bytes())
        };
        if !force {
            let builtin = dir.as_ref().is_some_and(|d| d.is_builtin(&name));
            if let Err(refusal) = kernel::check_removable(&live, &name, builtin) {
                log.error(refusal);
                ok = false;
                continue;
            }
        }
        if let Err(e) = kernel::remove_module(&live, &name, force) {
            log.error(format_args!(
                "could not remove '{}': {}",
                String::from_utf8_lossy(&name),
                strerror(e)
            ));
            log.error(format_args!(
                "could not remove module {shown}: {}",
                strerror(e)
            ));
            ok = false;
        }
    }
    i32::from(!ok)
}
