//! `rmmod`: remove modules from the kernel, after kmod's in-use checks.

use std::ffi::OsString;
use std::path::Path;

use clap::Command;

use kmod_rs::kernel::{self, InitState, Kernel, LiveKernel, StateError};
use kmod_rs::module::name_from_path;
use kmod_rs::resolve::{IndexKind, ModuleDir};

use super::{flag, short_name, start, tool_logger, with_common_flags, words};

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
    let prog = short_name(argv0);
    let m = match start(&command(), argv0, args, USAGE, 18) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let log = tool_logger(prog, &m);
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
            name_from_path(Path::new(arg))
        } else {
            kmod_rs::module::normalize_name(arg)
        };
        if !force {
            let builtin = dir
                .as_ref()
                .and_then(|d| d.index(IndexKind::Builtin))
                .is_some_and(|i| i.lookup(&name).is_some());
            if let Err(msg) = check_in_use(&live, &name, builtin) {
                log.error(msg);
                ok = false;
                continue;
            }
        }
        if let Err(e) = kernel::remove_module(&live, &name, force) {
            log.error(format_args!("could not remove '{name}': {}", e.desc()));
            log.error(format_args!("could not remove module {arg}: {}", e.desc()));
            ok = false;
        }
    }
    i32::from(!ok)
}

/// kmod's checks before `delete_module`; Err is the message to print.
fn check_in_use(kernel: &dyn Kernel, name: &str, builtin: bool) -> Result<(), String> {
    if builtin {
        return Err(format!("Module {name} is builtin."));
    }
    match kernel::initstate(kernel, name) {
        Ok(InitState::Live | InitState::Coming | InitState::Going) => {}
        Err(StateError::NotLoaded) => return Err(format!("Module {name} is not currently loaded")),
        Err(e) => return Err(e.to_string()),
    }
    let holders = kernel.holders(name).unwrap_or_default();
    if !holders.is_empty() {
        // One line, holders in directory order, as reference kmod 34.2 prints it.
        return Err(format!("Module {name} is in use by: {}", holders.join(" ")));
    }
    match kernel::refcnt(kernel, name) {
        Ok(n) if n > 0 => Err(format!("Module {name} is in use")),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err("Module unloading is not supported".into())
        }
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_in_use;
    use kmod_rs::kernel::Kernel;

    // The trait object tests live with the kernel module; here only the message
    // wording is pinned, through a minimal kernel view.
    struct View(
        &'static [(&'static str, &'static str, &'static str)],
        &'static [&'static str],
    );

    impl Kernel for View {
        fn proc_modules(&self) -> std::io::Result<String> {
            Ok(String::new())
        }
        fn module_attr(&self, m: &str, a: &str) -> std::io::Result<String> {
            self.0
                .iter()
                .find(|(mm, aa, _)| *mm == m && *aa == a)
                .map(|(_, _, v)| v.to_string())
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
        fn module_dir_exists(&self, m: &str) -> bool {
            self.0.iter().any(|(mm, _, _)| *mm == m)
        }
        fn holders(&self, _: &str) -> std::io::Result<Vec<String>> {
            Ok(self.1.iter().map(|s| s.to_string()).collect())
        }
        fn compression(&self) -> std::io::Result<String> {
            Ok(String::new())
        }
        fn finit_module(
            &self,
            _: &std::fs::File,
            _: &std::ffi::CStr,
            _: u32,
        ) -> Result<(), nix::errno::Errno> {
            Ok(())
        }
        fn init_module(&self, _: &[u8], _: &std::ffi::CStr) -> Result<(), nix::errno::Errno> {
            Ok(())
        }
        fn delete_module(
            &self,
            _: &std::ffi::CStr,
            _: nix::kmod::DeleteModuleFlags,
        ) -> Result<(), nix::errno::Errno> {
            Ok(())
        }
    }

    #[test]
    fn messages() {
        let live = &[("m", "initstate", "live\n"), ("m", "refcnt", "0\n")];
        assert_eq!(
            check_in_use(&View(live, &[]), "m", true).unwrap_err(),
            "Module m is builtin."
        );
        assert_eq!(
            check_in_use(&View(&[], &[]), "m", false).unwrap_err(),
            "Module m is not currently loaded"
        );
        assert_eq!(
            check_in_use(&View(live, &["a", "b"]), "m", false).unwrap_err(),
            "Module m is in use by: a b"
        );
        let used = &[("m", "initstate", "live\n"), ("m", "refcnt", "2\n")];
        assert_eq!(
            check_in_use(&View(used, &[]), "m", false).unwrap_err(),
            "Module m is in use"
        );
        let no_unload = &[("m", "initstate", "live\n")];
        assert_eq!(
            check_in_use(&View(no_unload, &[]), "m", false).unwrap_err(),
            "Module unloading is not supported"
        );
        assert!(check_in_use(&View(live, &[]), "m", false).is_ok());
    }
}
