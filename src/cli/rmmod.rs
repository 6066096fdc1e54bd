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
use crate::diag::Priority;
use crate::msgf;

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
        // An existing file (relative to the cwd) names its module; anything else is a name.
        let name = if Path::new(arg).exists() {
            match name_from_path(arg.as_bytes()) {
                Some(name) => name,
                None => {
                    log.log_bytes(
                        Priority::Error,
                        msgf!("could not use module {}: {}", arg, strerror(Errno::ENOENT)),
                    );
                    return 1;
                }
            }
        } else {
            normalize_name(arg.as_bytes())
        };
        if !force {
            let builtin = dir.as_ref().is_some_and(|d| d.is_builtin(&name));
            if let Err(refusal) = kernel::check_removable(&live, &name, builtin) {
                log.log_bytes(Priority::Error, refusal.message());
                ok = false;
                continue;
            }
        }
        if let Err(e) = kernel::remove_module(&live, &name, force) {
            log.log_bytes(
                Priority::Error,
                msgf!("could not remove '{}': {}", name, strerror(e)),
            );
            log.log_bytes(
                Priority::Error,
                msgf!("could not remove module {}: {}", arg, strerror(e)),
            );
            ok = false;
        }
    }
    i32::from(!ok)
}
