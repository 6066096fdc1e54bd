//! `kmod`: one binary that is also insmod, rmmod, lsmod, modinfo, modprobe and depmod,
//! chosen by the name it is invoked as.

use std::ffi::OsString;

mod tools;

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = tools::short_name(&argv0).to_string();
    let code = if name == "kmod" {
        tools::run_kmod(&argv0, args)
    } else {
        // Like kmod, an unknown program name exits 1 without a word.
        tools::run_tool(&name, &argv0, args).unwrap_or(1)
    };
    std::process::exit(code);
}
